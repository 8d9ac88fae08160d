//! `gattway mcp` on stdio as a child process: every tool listed with its schema and
//! annotations, a scan streaming progress, and a device connected, explored, read,
//! written and subscribed to.

use std::collections::BTreeSet;

use super::ALL_TOOLS;
use crate::common::mcp::*;
use crate::common::*;
use rmcp::model::{CallToolRequestParams, NumberOrString, ProgressToken, RequestMetaObject};
use serde_json::json;

#[tokio::test]
async fn stdio_lists_every_tool_with_schemas_and_annotations() {
    let (client, _) = stdio_client(&[]).await;
    let tools = within("list tools", client.list_all_tools()).await.unwrap();
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, ALL_TOOLS.into_iter().collect());
    for t in &tools {
        assert!(
            t.description.as_deref().is_some_and(|d| d.len() > 20),
            "{} needs a description",
            t.name
        );
        assert_eq!(t.input_schema.get("type"), Some(&json!("object")), "{}", t.name);
        assert!(t.output_schema.is_some(), "{} has no output schema", t.name);
        assert!(t.annotations.is_some(), "{} has no annotations", t.name);
    }
    let by_name = |n: &str| tools.iter().find(|t| t.name == n).unwrap();
    assert_eq!(
        by_name("ble_read").annotations.as_ref().unwrap().read_only_hint,
        Some(true)
    );
    assert_eq!(
        by_name("ble_write")
            .annotations
            .as_ref()
            .unwrap()
            .destructive_hint,
        Some(true)
    );
    let scan_props = by_name("ble_scan")
        .input_schema
        .get("properties")
        .unwrap()
        .clone();
    for arg in ["timeout", "name_prefix", "services", "min_rssi"] {
        assert!(scan_props.get(arg).is_some(), "ble_scan lacks {arg}");
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn stdio_scan_streams_progress_and_returns_devices_by_rssi() {
    let (client, recorder) = stdio_client(&[]).await;
    let mut params = CallToolRequestParams::new("ble_scan")
        .with_arguments(json!({"timeout": 1.0}).as_object().unwrap().clone());
    params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
        NumberOrString::Number(7),
    )));
    let r = within("scan", client.call_tool(params)).await.unwrap();
    let devices = r.structured_content.unwrap()["devices"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(devices.len(), 8, "{devices:?}");
    let rssi: Vec<i64> = devices.iter().map(|d| d["rssi"].as_i64().unwrap()).collect();
    assert!(rssi.windows(2).all(|w| w[0] >= w[1]), "{rssi:?}");
    let hrm = devices.iter().find(|d| d["name"] == "Gattway HRM").unwrap();
    assert_eq!(hrm["services"][0]["short"], "180d");
    assert_eq!(hrm["services"][0]["name"], "Heart Rate");
    assert_eq!(hrm["manufacturer_data"][0]["company"], "Nordic Semiconductor");
    let progress = recorder.progress.lock().unwrap().clone();
    assert_eq!(progress.len(), 8, "one progress notification per device found");
    // The client tags each request with its own progress token; all eight share it.
    assert!(progress
        .iter()
        .all(|p| p.progress_token == progress[0].progress_token));
    assert!(progress[0].message.as_deref().unwrap().starts_with("found "));

    let filtered = ok(&client, "ble_scan", json!({"timeout": 0.5, "services": ["180d"]})).await;
    assert_eq!(filtered["devices"].as_array().unwrap().len(), 1);
    let compat = ok(&client, "scan_devices", json!({"duration": 1000})).await;
    assert_eq!(compat["devices"].as_array().unwrap().len(), 8);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn stdio_connect_explore_read_write_and_notify() {
    let (client, _) = stdio_client(&[]).await;
    let c = ok(&client, "ble_connect", json!({"device": "Gattway HRM"})).await;
    assert_eq!(c["id"], HRM);
    assert_eq!(c["state"], "connected");
    assert_eq!(c["mtu"], 247);

    let tree = ok(&client, "ble_services", json!({"device": "Gattway HRM"})).await;
    let hr = &tree["services"][0];
    assert_eq!(hr["short"], "180d");
    assert_eq!(hr["characteristics"][0]["name"], "Heart Rate Measurement");
    assert_eq!(hr["characteristics"][0]["properties"], json!(["notify"]));
    assert_eq!(hr["characteristics"][0]["descriptors"][0]["short"], "2902");

    let loc = read_body_sensor_location(&client).await;
    assert_eq!(loc["hex"], "01");
    assert_eq!(loc["decoded"], "chest");
    let battery = ok(
        &client,
        "ble_read",
        json!({"device": "Gattway H", "service": "180f", "characteristic": "2A19"}),
    )
    .await;
    assert_eq!(battery["unit"], "%");
    assert!(battery["decoded"].as_u64().unwrap() <= 100);
    let maker = ok(
        &client,
        "ble_read",
        json!({"device": HRM, "service": "180a", "characteristic": "2a29"}),
    )
    .await;
    assert_eq!(maker["text"], "gattway simulator");

    // Heart-rate notifications, decoded.
    let sub = ok(
        &client,
        "ble_subscribe",
        json!({"device": HRM, "service": "180d", "characteristic": "2a37"}),
    )
    .await;
    let cursor = sub["cursor"].as_u64().unwrap();
    let got = ok(
        &client,
        "ble_notifications",
        json!({"cursor": cursor, "timeout": 10}),
    )
    .await;
    let first = &got["notifications"][0];
    assert_eq!(first["characteristic"]["short"], "2a37");
    assert!(first["decoded"]["bpm"].as_u64().is_some(), "{first}");
    assert!(first["display"].as_str().unwrap().contains("bpm"));
    assert_eq!(got["dropped"], 0);
    assert_eq!(got["subscriptions"], json!([format!("{HRM}/2a37")]));
    ok(
        &client,
        "ble_unsubscribe",
        json!({"device": HRM, "service": "180d", "characteristic": "2a37"}),
    )
    .await;

    // Nordic UART: text in, the echo comes back as a notification.
    ok(&client, "ble_connect", json!({"device": UART})).await;
    let sub = ok(&client, "ble_subscribe", json!({"device": UART, "service": "6e400001-b5a3-f393-e0a9-e50e24dcca9e", "characteristic": "6E400003-B5A3-F393-E0A9-E50E24DCCA9E"})).await;
    let w = ok(&client, "ble_write", json!({"device": UART, "service": "6e400001-b5a3-f393-e0a9-e50e24dcca9e", "characteristic": "6e400002-b5a3-f393-e0a9-e50e24dcca9e", "text": "hello gattway"})).await;
    assert_eq!(
        (w["bytes_written"].as_u64(), w["with_response"].as_bool()),
        (Some(13), Some(true))
    );
    let echo = ok(
        &client,
        "ble_notifications",
        json!({"cursor": sub["cursor"], "timeout": 10}),
    )
    .await;
    assert_eq!(echo["notifications"][0]["text"], "hello gattway");

    // The CS108 reader answers a hex command frame.
    ok(&client, "ble_connect", json!({"device": "CS108"})).await;
    let sub = ok(
        &client,
        "ble_subscribe",
        json!({"device": CS108, "service": "9800", "characteristic": "9901"}),
    )
    .await;
    ok(&client, "ble_write", json!({"device": CS108, "service": "9800", "characteristic": "9900", "value": "A7 B3 02 D9 82 37 00 00 A0 00"})).await;
    let answer = ok(
        &client,
        "ble_notifications",
        json!({"cursor": sub["cursor"], "timeout": 10}),
    )
    .await;
    let hex = answer["notifications"][0]["hex"].as_str().unwrap().to_string();
    assert!(hex.starts_with("a7b304d9829e"), "{hex}");
    assert_eq!(&hex[16..20], "a000");

    // Descriptors.
    ok(&client, "ble_connect", json!({"device": ENV})).await;
    let desc = ok(
        &client,
        "ble_read_descriptor",
        json!({"device": ENV, "service": "181a", "characteristic": "2a6e", "descriptor": "2901"}),
    )
    .await;
    assert_eq!(desc["text"], "Air temperature");
    ok(&client, "ble_write_descriptor", json!({"device": ENV, "service": "181a", "characteristic": "2a6e", "descriptor": "2902", "value": "0100"})).await;
    let cccd = ok(
        &client,
        "ble_read_descriptor",
        json!({"device": ENV, "service": "181a", "characteristic": "2a6e", "descriptor": "2902"}),
    )
    .await;
    assert_eq!(cccd["hex"], "0100");

    // The packet log saw every byte.
    let tx = ok(&client, "get_logs", json!({"since": "5m", "filter": "TX"})).await;
    let hexes: Vec<&str> = tx["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["hex"].as_str().unwrap())
        .collect();
    assert!(hexes.contains(&"A7 B3 02 D9 82 37 00 00 A0 00"), "{hexes:?}");
    assert!(tx["logs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["direction"] == "TX"));
    let found = ok(&client, "search_packets", json!({"hex_pattern": "a7b304 d9"})).await;
    assert!(found["count"].as_u64().unwrap() >= 1);
    assert_eq!(found["matches"][0]["direction"], "RX");
    let _ = ok(&client, "get_logs", json!({"since": "last"})).await;
    let nothing_new = ok(
        &client,
        "get_logs",
        json!({"since": "last", "filter": "A7B302D9"}),
    )
    .await;
    assert_eq!(
        nothing_new["count"], 0,
        "'last' only returns what came after the previous call"
    );

    let state = ok(&client, "get_connection_state", json!({})).await;
    assert_eq!(state["connected"], true);
    assert_eq!(state["connections"].as_array().unwrap().len(), 4);
    let status = ok(&client, "status", json!({})).await;
    assert_eq!(
        (status["backend"].as_str(), status["transport"].as_str()),
        (Some("sim"), Some("stdio"))
    );
    assert_eq!(status["writes_enabled"], true);
    let metrics = ok(&client, "get_metrics", json!({})).await;
    assert!(metrics["packets_transmitted"].as_u64().unwrap() >= 2);
    assert_eq!(metrics["session_tool_calls"]["ble_connect"], 4);

    let d = ok(&client, "ble_disconnect", json!({"device": "Gattway UART"})).await;
    assert_eq!(d["id"], UART);
    let conns = ok(&client, "ble_connections", json!({})).await;
    assert_eq!(conns["connections"].as_array().unwrap().len(), 3);
    client.cancel().await.unwrap();
}
