//! What goes wrong, on the wire: missing parameters refused with ble-mcp-test's
//! error, each failure closing with its code, bad frames answered while the session
//! carries on.

use std::time::Duration;

use super::{cs108, fast_bridge, setup, setup_with, Client, CS108_QUERY};
use crate::common::*;
use gattway::gateway::GatewayConfig;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn missing_parameters_are_refused_with_the_ble_mcp_test_error() {
    let (_rig, server) = setup(fast_bridge()).await;
    let mut c = Client::open(&server, "service=9800&write=9900").await;
    let e = c.json().await;
    assert_eq!(
        e,
        json!({"type": "error", "error": "Missing required parameters: service, write, notify", "code": "missing_parameters"})
    );
    assert_eq!(c.closed().await.0, 1008);
    // The same on /ws/bridge.
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/bridge?{CS108_QUERY}", server.addr))
        .await
        .unwrap();
    let mut c = Client { ws };
    c.expect("connected").await;
    server.stop().await;
}

#[tokio::test]
async fn every_failure_closes_with_its_code() {
    let (rig, server) = setup_with(
        GatewayConfig {
            auto_reconnect: false,
            ..fast_gateway()
        },
        fast_bridge(),
    )
    .await;
    let case = |query: String| {
        let server = &server;
        async move {
            let mut c = Client::open(server, &query).await;
            let e = c.json().await;
            assert_eq!(e["type"], "error", "{query}: {e}");
            (c.closed().await.0, e["error"].as_str().unwrap().to_string())
        }
    };
    let (code, text) =
        case("service=9800&write=9900&notify=9901&device=NoSuchDevice&timeout=200".into()).await;
    assert_eq!(code, 4001, "{text}");
    rig.control(UART).fail_next_connects(10);
    let (code, text) = case("service=6e400001-b5a3-f393-e0a9-e50e24dcca9e&write=6e400002-b5a3-f393-e0a9-e50e24dcca9e&notify=6e400003-b5a3-f393-e0a9-e50e24dcca9e&device=Gattway%20UART".into()).await;
    assert_eq!(code, 4002, "{text}");
    let (code, text) = case("service=1234&write=9900&notify=9901&device=CS108".into()).await;
    assert_eq!(code, 4003, "{text}");
    let (code, text) = case("service=9800&write=9999&notify=9901&device=CS108".into()).await;
    assert_eq!(code, 4004, "{text}");

    // 4005: the device drops and is not coming back.
    let mut c = Client::open(&server, CS108_QUERY).await;
    c.expect("connected").await;
    rig.control(CS108).drop_link();
    assert_eq!(c.expect("disconnected").await["reason"], "device disconnected");
    assert_eq!(c.closed().await.0, 4005);

    // 4006: a new client while the previous session is still releasing the device.
    wait_until("reader free", || rig.gateway.lease_of(&cs108()).is_none()).await;
    let mut a = Client::open(&server, CS108_QUERY).await;
    a.expect("connected").await;
    rig.control(CS108).set_response_delay(Duration::from_secs(3));
    a.send(json!({"type": "force_cleanup"})).await;
    assert!(a.expect("warning").await["warning"]
        .as_str()
        .unwrap()
        .starts_with("Cleaning up"));
    let (code, text) = case(CS108_QUERY.to_string()).await;
    assert_eq!(code, 4006, "{text}");
    assert!(text.contains("Retry"), "{text}");
    server.stop().await;
}

#[tokio::test]
async fn bad_frames_get_an_error_and_the_session_keeps_working() {
    let (_rig, server) = setup(fast_bridge()).await;
    let mut c = Client::open(&server, CS108_QUERY).await;
    c.expect("connected").await;
    let cases: Vec<(Message, &str)> = vec![
        (Message::Text("not json".into()), "invalid_message"),
        (Message::Text(r#"{"type":"dance"}"#.into()), "unknown_type"),
        (
            Message::Text(r#"{"type":"data","data":[1,256]}"#.into()),
            "invalid_data",
        ),
        (
            Message::Text(r#"{"type":"data","data":["x"]}"#.into()),
            "invalid_data",
        ),
        (
            Message::Text(json!({"type": "data", "data": vec![1; 2000]}).to_string().into()),
            "message_too_large",
        ),
        (Message::Binary(vec![1, 2, 3].into()), "invalid_message"),
        (
            Message::Text(r#"{"type":"admin_cleanup","auth":"guess","action":"cleanup_all"}"#.into()),
            "unauthorized",
        ),
    ];
    for (frame, code) in cases {
        c.send_raw(frame).await;
        let e = c.json().await;
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str()),
            (Some("error"), Some(code)),
            "{e}"
        );
    }
    c.battery_round_trip().await;
    c.send(json!({"type": "admin_cleanup", "auth": "admin-secret", "action": "cleanup_all"}))
        .await;
    // The admin's own session is among those cleaned up: its socket closes.
    let (code, _) = c.closed().await;
    assert_eq!(code, 1000);
    server.stop().await;
}
