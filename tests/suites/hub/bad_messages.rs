//! Malformed and unknown messages: each gets its typed error and the connection
//! carries on.

use super::Hub;
use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn bad_messages_get_typed_errors_and_the_connection_carries_on() {
    let hub = Hub::start(gattway::hub::HubConfig {
        max_message_bytes: 2048,
        ..hub_config()
    })
    .await;
    let mut dev = hub.device("e").await;
    let cases = [
        ("{not json".to_string(), "INVALID_MESSAGE"),
        (json!({"type": "dance", "id": 1}).to_string(), "UNKNOWN_TYPE"),
        (json!({"type": "subscribe", "id": 2}).to_string(), "UNKNOWN_TYPE"),
        (
            json!({"type": "telemetry", "seq": 1}).to_string(),
            "INVALID_PARAMS",
        ),
        (
            json!({"type": "telemetry", "points": [{"key": "", "value": 1}]}).to_string(),
            "INVALID_PARAMS",
        ),
        (
            json!({"type": "command_result", "command_id": "nope", "status": "succeeded"}).to_string(),
            "UNKNOWN_COMMAND",
        ),
        (
            json!({"type": "command_result", "command_id": "nope", "status": "expired"}).to_string(),
            "INVALID_PARAMS",
        ),
        ("x".repeat(4096), "MESSAGE_TOO_LARGE"),
    ];
    for (text, code) in cases {
        dev.send_text(&text).await;
        let e = dev.next().await;
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str()),
            (Some("error"), Some(code)),
            "{text:.60}"
        );
    }
    dev.send(json!({"type": "ping", "id": 3})).await;
    assert_eq!(dev.next().await["type"], "pong");
    let mut client = hub.client().await;
    client.send(json!({"type": "telemetry", "points": []})).await;
    assert_eq!(client.next().await["code"], "UNKNOWN_TYPE");
    client
        .send(json!({"type": "command", "id": 1, "device": "e"}))
        .await;
    assert_eq!(client.next().await["code"], "INVALID_PARAMS");
    client
        .send(json!({"type": "history", "id": 1, "device": "e", "bucket": "soon"}))
        .await;
    assert_eq!(client.next().await["code"], "INVALID_PARAMS");
}
