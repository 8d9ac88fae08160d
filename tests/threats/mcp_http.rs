//! `/mcp` over Streamable HTTP: one credential's calls are rate-limited, as hub
//! REST's are, so one caller cannot keep the radio from everyone else.

use gattway::auth::{AuthConfig, Scope};
use serde_json::{json, Value};

use crate::common::*;

/// An `initialize` request to `/mcp` with `key`.
async fn initialize(client: &reqwest::Client, url: &str, key: &str) -> reqwest::Response {
    client
        .post(url)
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn one_credentials_mcp_calls_are_rate_limited_and_others_go_on() {
    let rig = rig();
    let setup = Setup {
        mcp: gattway::mcp::McpConfig {
            rate_per_principal: 0.01,
            burst_per_principal: 5.0,
            ..Default::default()
        },
        auth: AuthConfig {
            api_keys: vec![
                api_key("eager", vec![Scope::BleRead], vec![]),
                api_key("patient", vec![Scope::BleRead], vec![]),
            ],
            ..Default::default()
        },
        ..Default::default()
    };
    let (server, _) = start(&rig.gateway, setup).await;
    let url = server.url("/mcp");
    let client = reqwest::Client::new();
    for _ in 0..5 {
        assert_eq!(initialize(&client, &url, "eager").await.status(), 200);
    }
    let refused = initialize(&client, &url, "eager").await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "RATE_LIMITED", "{body}");
    // Another credential's bucket is its own.
    assert_eq!(initialize(&client, &url, "patient").await.status(), 200);
    server.stop().await;
}
