//! `/mcp` over Streamable HTTP in-process: one gateway shared with the other front
//! ends, and Origin, Host and credentials checked.

use crate::common::mcp::*;
use crate::common::*;
use serde_json::{json, Value};

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
