//! What assistants may write: nothing in read-only mode (the write tools are gone),
//! and only what the write allow-list names.

use std::collections::BTreeSet;

use super::ALL_TOOLS;
use crate::common::mcp::*;
use crate::common::*;
use rmcp::model::CallToolRequestParams;
use serde_json::json;

#[tokio::test]
async fn read_only_mode_hides_and_refuses_writes() {
    let (client, _) = stdio_client(&["--mcp-read-only"]).await;
    let tools = client.list_all_tools().await.unwrap();
    let names: BTreeSet<String> = tools.iter().map(|t| t.name.to_string()).collect();
    assert!(!names.contains("ble_write") && !names.contains("ble_write_descriptor"));
    assert!(!names.contains("device_command"), "a profile command writes");
    assert_eq!(names.len(), ALL_TOOLS.len() - 3);
    let r = client
        .call_tool(
            CallToolRequestParams::new("ble_write").with_arguments(
                json!({"device": UART, "service": "180f", "characteristic": "2a19", "value": "00"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await;
    assert!(
        r.is_err() || r.unwrap().is_error == Some(true),
        "a hidden tool cannot be called"
    );
    let status = ok(&client, "status", json!({})).await;
    assert_eq!(status["writes_enabled"], false);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_write_allow_list_limits_what_assistants_may_write() {
    let rig = rig();
    let server = start_server(
        &rig.gateway,
        gattway::mcp::McpConfig {
            write_allow_list: vec![gattway::ble::well_known::NUS_RX],
            ..Default::default()
        },
    )
    .await;
    let client = http_client(&server.url("/mcp"), None).await.unwrap();
    ok(&client, "ble_connect", json!({"device": CS108})).await;
    let msg = fails(
        &client,
        "ble_write",
        json!({"device": CS108, "service": "9800", "characteristic": "9900", "value": "00"}),
    )
    .await;
    assert!(msg.contains("allows writes only to 6e400002"), "{msg}");
    ok(&client, "ble_connect", json!({"device": UART})).await;
    ok(&client, "ble_write", json!({"device": UART, "service": "6e400001-b5a3-f393-e0a9-e50e24dcca9e", "characteristic": "6e400002-b5a3-f393-e0a9-e50e24dcca9e", "value": "00"})).await;
    client.cancel().await.unwrap();
    server.stop().await;
}
