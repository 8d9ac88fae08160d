//! MCP: what a caller names never becomes a metric label, and a bad argument is a
//! tool error, never a panic.

use serde_json::json;

use crate::common::mcp::{fails, http_client, ok, stdio_client_with_env};
use crate::common::*;

#[tokio::test]
async fn made_up_tool_names_do_not_grow_the_metrics() {
    let rig = rig();
    let server = start_server(&rig.gateway, Default::default()).await;
    let client = http_client(&server.url("/mcp"), None).await.expect("client");
    let names: Vec<String> = (0..50)
        .map(|i| format!("made_up_tool_{i}_{}", "x".repeat(40)))
        .collect();
    for name in &names {
        let params = rmcp::model::CallToolRequestParams::new(name.clone());
        // An unknown tool is the caller's error, whichever way it is reported.
        let _ = within("an unknown tool", client.call_tool(params)).await;
    }
    ok(&client, "ble_scan", json!({"timeout": 0.1})).await;
    let metrics = server.metrics().await;
    for name in &names {
        assert!(!metrics.contains(name.as_str()), "{name} became a label");
    }
    let unknown = metrics
        .lines()
        .find(|l| l.starts_with("gattway_mcp_tool_calls_total{") && l.contains("tool=\"unknown\""))
        .unwrap_or_else(|| panic!("no unknown-tool row in\n{metrics}"));
    assert!(unknown.ends_with(" 50"), "{unknown}");
    assert!(
        metrics.contains("tool=\"ble_scan\""),
        "real tools keep their names"
    );
    client.cancel().await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_hex_parameter_with_a_multi_byte_character_is_a_tool_error() {
    let profiles = TempDir::new();
    std::fs::write(
        profiles.path.join("nordic-uart.toml"),
        r#"name = "nordic-uart"
title = "UART with a bytes command"
[match]
services = ["6e400001-b5a3-f393-e0a9-e50e24dcca9e"]
[channel]
service = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
write = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
notify = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"
[[commands]]
name = "send_bytes"
description = "Sends raw bytes."
request = "{data}"
params = [{ name = "data", type = "hex", description = "the bytes" }]
answer = ""
fields = [{ name = "reply", at = 0, type = "utf8" }]
"#,
    )
    .unwrap();
    let dir = profiles.path.display().to_string();
    let (client, _) = stdio_client_with_env(&[], &[("GATTWAY_MCP_PROFILES_DIR", &dir)]).await;
    ok(&client, "ble_connect", json!({"device": UART})).await;
    let echoed = ok(
        &client,
        "device_command",
        json!({"device": UART, "command": "send_bytes", "params": {"data": "6869"}}),
    )
    .await;
    assert_eq!(echoed["fields"]["reply"]["value"], "hi", "{echoed}");
    // Before: a byte index inside 'é' panicked, and the request never answered.
    let refused = fails(
        &client,
        "device_command",
        json!({"device": UART, "command": "send_bytes", "params": {"data": "aé0"}}),
    )
    .await;
    assert!(refused.contains("not hex"), "{refused}");
    client.cancel().await.unwrap();
}
