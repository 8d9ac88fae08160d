//! Bad input is a tool error that tells the assistant what to do next.

use crate::common::mcp::*;
use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn bad_input_is_a_tool_error_the_assistant_can_act_on() {
    let (client, _) = stdio_client(&[]).await;
    let msg = fails(
        &client,
        "ble_read",
        json!({"device": HRM, "service": "180d", "characteristic": "2a38"}),
    )
    .await;
    assert!(msg.contains("call ble_connect first"), "{msg}");
    let msg = fails(
        &client,
        "ble_connect",
        json!({"device": "No Such Device", "timeout": 0.5}),
    )
    .await;
    assert!(msg.contains("not found") && msg.contains("ble_scan"), "{msg}");
    ok(&client, "ble_connect", json!({"device": UART})).await;
    let msg = fails(&client, "ble_write", json!({"device": UART, "service": "6e400001-b5a3-f393-e0a9-e50e24dcca9e", "characteristic": "6e400002-b5a3-f393-e0a9-e50e24dcca9e", "value": "0xZZ"})).await;
    assert!(msg.contains("not valid hex"), "{msg}");
    let msg = fails(
        &client,
        "ble_read",
        json!({"device": UART, "service": "not-a-uuid", "characteristic": "2a19"}),
    )
    .await;
    assert!(msg.contains("invalid UUID"), "{msg}");
    let msg = fails(
        &client,
        "ble_read",
        json!({"device": UART, "service": "180f", "characteristic": "2a19"}),
    )
    .await;
    assert!(msg.contains("ble_services"), "{msg}");
    let msg = fails(&client, "ble_unsubscribe", json!({"device": UART, "service": "6e400001-b5a3-f393-e0a9-e50e24dcca9e", "characteristic": "6e400003-b5a3-f393-e0a9-e50e24dcca9e"})).await;
    assert!(msg.contains("not subscribed"), "{msg}");
    let msg = fails(&client, "get_logs", json!({"since": "the dawn of time"})).await;
    assert!(msg.contains("since"), "{msg}");
    // The session still works after every error.
    ok(&client, "status", json!({})).await;
    client.cancel().await.unwrap();
}
