//! The MCP server through the official rmcp client: `gattway mcp` on stdio as a
//! child process, and `/mcp` over Streamable HTTP in-process, against the simulator.

mod common;

use std::collections::BTreeSet;

use common::mcp::*;
use common::*;
use rmcp::model::{CallToolRequestParams, NumberOrString, ProgressToken, RequestMetaObject};
use serde_json::{json, Value};

const ALL_TOOLS: [&str; 23] = [
    "ble_collect_list",
    "ble_collect_start",
    "ble_collect_stop",
    "ble_connect",
    "ble_connections",
    "ble_disconnect",
    "ble_notifications",
    "ble_profile",
    "ble_read",
    "ble_read_descriptor",
    "ble_scan",
    "ble_services",
    "ble_subscribe",
    "ble_unsubscribe",
    "ble_write",
    "ble_write_descriptor",
    "device_command",
    "get_connection_state",
    "get_logs",
    "get_metrics",
    "scan_devices",
    "search_packets",
    "status",
];

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
async fn http_shares_the_gateway_with_other_front_ends() {
    let rig = rig();
    let server = start_server(&rig.gateway, Default::default()).await;
    let client = http_client(&server.url("/mcp"), None).await.expect("connect");
    let c = ok(&client, "ble_connect", json!({"device": HRM})).await;
    assert_eq!(c["id"], HRM);
    // Connected through MCP, visible to everyone holding the gateway.
    assert_eq!(rig.gateway.connections()[0].id.as_str(), HRM);
    let loc = read_body_sensor_location(&client).await;
    assert_eq!(loc["decoded"], "chest");
    // And the other way round: a lease taken elsewhere shows in MCP.
    let _lease = rig
        .gateway
        .lease(&gattway::ble::DeviceId::new(HRM), "bridge session", false)
        .unwrap();
    let msg = fails(
        &client,
        "ble_read",
        json!({"device": HRM, "service": "180d", "characteristic": "2a38"}),
    )
    .await;
    assert!(msg.contains("bridge session"), "{msg}");
    let status = ok(&client, "status", json!({})).await;
    assert_eq!(status["transport"], "http");

    // Each MCP session owns its subscriptions: they go when it does.
    ok(&client, "ble_connect", json!({"device": ENV})).await;
    ok(
        &client,
        "ble_subscribe",
        json!({"device": ENV, "service": "181a", "characteristic": "2a6e"}),
    )
    .await;
    assert_eq!(rig.gateway.stats().subscribers, 1);
    client.cancel().await.unwrap();
    wait_until("session subscriptions released", || {
        rig.gateway.stats().subscribers == 0
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn http_checks_origin_host_and_credentials() {
    let rig = rig();
    let key = "gw_test_key";
    let auth = gattway::auth::AuthConfig {
        api_keys: vec![
            gattway::auth::ApiKeyConfig {
                name: "assistant".into(),
                sha256: gattway::auth::sha256_hex(key.as_bytes()),
                scopes: vec![gattway::auth::Scope::BleRead],
                devices: vec![],
            },
            gattway::auth::ApiKeyConfig {
                name: "writer".into(),
                sha256: gattway::auth::sha256_hex(b"writer-key"),
                scopes: vec![gattway::auth::Scope::BleRead, gattway::auth::Scope::BleWrite],
                devices: vec![],
            },
            gattway::auth::ApiKeyConfig {
                name: "hrm-only".into(),
                sha256: gattway::auth::sha256_hex(b"hrm-key"),
                scopes: vec![gattway::auth::Scope::BleRead],
                devices: vec!["Gattway HRM".into()],
            },
            gattway::auth::ApiKeyConfig {
                name: "hub-only".into(),
                sha256: gattway::auth::sha256_hex(b"hub-key"),
                scopes: vec![gattway::auth::Scope::HubClient],
                devices: vec![],
            },
        ],
        jwt_secret: "jwt-secret".into(),
        ..Default::default()
    };
    let server = start_server_full(&rig.gateway, Default::default(), Default::default(), auth).await;
    let url = server.url("/mcp");
    assert!(http_client(&url, None).await.is_err(), "no credential");
    assert!(http_client(&url, Some("wrong")).await.is_err(), "wrong key");
    assert!(
        http_client(&url, Some("hub-key")).await.is_err(),
        "a key without ble:read"
    );
    let client = http_client(&url, Some(key)).await.expect("right key");
    ok(&client, "status", json!({})).await;
    ok(&client, "ble_connect", json!({"device": UART})).await;
    let write = json!({"device": UART, "service": "6e400001-b5a3-f393-e0a9-e50e24dcca9e", "characteristic": "6e400002-b5a3-f393-e0a9-e50e24dcca9e", "text": "hi"});
    let msg = fails(&client, "ble_write", write.clone()).await;
    assert!(
        msg.contains("ble:write"),
        "a read-only credential cannot write: {msg}"
    );
    client.cancel().await.unwrap();
    // A credential's device list holds for assistants too.
    let hrm_only = http_client(&url, Some("hrm-key")).await.expect("hrm key");
    ok(&hrm_only, "ble_connect", json!({"device": "Gattway HRM"})).await;
    ok(
        &hrm_only,
        "ble_read",
        json!({"device": HRM, "service": "180d", "characteristic": "2a38"}),
    )
    .await;
    let msg = fails(&hrm_only, "ble_read", json!({"device": UART, "service": "6e400001-b5a3-f393-e0a9-e50e24dcca9e", "characteristic": "6e400003-b5a3-f393-e0a9-e50e24dcca9e"})).await;
    assert!(msg.contains("device list"), "{msg}");
    let msg = fails(&hrm_only, "ble_connect", json!({"device": ENV})).await;
    assert!(msg.contains("device list"), "{msg}");
    hrm_only.cancel().await.unwrap();
    let writer = http_client(&url, Some("writer-key")).await.expect("writer key");
    ok(&writer, "ble_write", write).await;
    writer.cancel().await.unwrap();
    let jwt = gattway::auth::issue_jwt(
        "jwt-secret",
        &gattway::auth::TokenRequest {
            subject: "claude",
            scopes: &[gattway::auth::Scope::BleRead],
            devices: &[],
            ttl: std::time::Duration::from_secs(60),
            audience: None,
            issuer: None,
        },
    )
    .unwrap();
    let client = http_client(&url, Some(&jwt)).await.expect("a JWT");
    ok(&client, "status", json!({})).await;
    client.cancel().await.unwrap();

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let http = reqwest::Client::new();
    let post = |origin: Option<&str>, host: Option<&str>| {
        let mut req = http
            .post(&url)
            .header("Authorization", format!("Bearer {key}"))
            .header("Accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        if let Some(h) = host {
            req = req.header("Host", h);
        }
        req.send()
    };
    let unauthorized = http.post(&url).json(&init).send().await.unwrap();
    assert_eq!(unauthorized.status(), 401);
    let problem: Value = unauthorized.json().await.unwrap();
    assert_eq!(problem["code"], "NOT_AUTHENTICATED");
    let forbidden = http
        .post(&url)
        .header("Authorization", "Bearer hub-key")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    assert_eq!(
        post(Some("http://localhost:3000"), None).await.unwrap().status(),
        200
    );
    assert_eq!(
        post(Some("https://evil.example"), None).await.unwrap().status(),
        403,
        "foreign origin"
    );
    assert_eq!(
        post(None, Some("evil.example")).await.unwrap().status(),
        403,
        "DNS rebinding"
    );
    server.stop().await;
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

#[tokio::test]
async fn an_assistant_keeps_its_device_through_a_radio_failover() {
    let (gateway, near, _far) = two_radios(7, 7);
    let server = start_server(&gateway, Default::default()).await;
    let client = http_client(&server.url("/mcp"), None).await.expect("connect");
    ok(&client, "ble_scan", json!({"duration_ms": 300})).await;
    ok(&client, "ble_connect", json!({"device": HRM})).await;
    let radio_of_hrm = |conns: &Value| {
        conns["connections"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["id"] == HRM))
            .map(|c| c["radio"].clone())
    };
    let conns = ok(&client, "ble_connections", json!({})).await;
    assert_eq!(radio_of_hrm(&conns), Some(json!("near")), "{conns}");

    // Near dies: the link is re-made through far; the assistant reads on.
    let mut events = gateway.events();
    near.set_powered(false);
    reconnected(&mut events, HRM).await;
    let conns = ok(&client, "ble_connections", json!({})).await;
    assert_eq!(radio_of_hrm(&conns), Some(json!("far")), "{conns}");
    let loc = read_body_sensor_location(&client).await;
    assert_eq!(loc["decoded"], "chest");
    server.stop().await;
}
