//! A credential's device list holds for every tool's result.

use crate::common::mcp::*;
use crate::common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn a_device_list_holds_for_every_tool_result() {
    let rig = rig();
    let auth = gattway::auth::AuthConfig {
        api_keys: vec![
            api_key(
                "everything",
                vec![gattway::auth::Scope::BleRead, gattway::auth::Scope::BleWrite],
                vec![],
            ),
            api_key("cs108-only", vec![gattway::auth::Scope::BleRead], vec!["CS108*"]),
        ],
        ..Default::default()
    };
    let server = start_server_full(&rig.gateway, Default::default(), Default::default(), auth).await;
    let url = server.url("/mcp");
    let all = http_client(&url, Some("everything")).await.expect("everything");
    ok(&all, "ble_connect", json!({"device": UART})).await;
    ok(&all, "ble_write", json!({"device": UART, "service": "6e400001-b5a3-f393-e0a9-e50e24dcca9e", "characteristic": "6e400002-b5a3-f393-e0a9-e50e24dcca9e", "value": "5345435245"})).await;
    let seen = ok(&all, "get_logs", json!({"since": "60s"})).await;
    assert!(seen.to_string().contains(UART), "the write is logged: {seen}");

    let limited = http_client(&url, Some("cs108-only")).await.expect("cs108 key");
    let has_uart = |v: &Value| v.to_string().contains(UART) || v.to_string().contains("Gattway UART");
    for (tool, args) in [
        ("get_logs", json!({"since": "60s"})),
        ("search_packets", json!({"hex_pattern": "5345435245"})),
        ("ble_connections", json!({})),
        ("get_connection_state", json!({})),
        ("scan_devices", json!({"duration": 1000})),
        ("ble_scan", json!({"timeout": 1})),
    ] {
        let result = ok(&limited, tool, args).await;
        assert!(
            !has_uart(&result),
            "{tool} shows a device outside the list: {result}"
        );
    }
    let scan = ok(&limited, "ble_scan", json!({"timeout": 1})).await;
    assert!(
        scan.to_string().contains(CS108),
        "the device in the list is found: {scan}"
    );
    all.cancel().await.unwrap();
    limited.cancel().await.unwrap();
    server.stop().await;
}
