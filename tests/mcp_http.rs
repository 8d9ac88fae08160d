//! MCP over Streamable HTTP as clients see it on the wire: a plain call answered as
//! `application/json` (so a keep-alive client reuses its connection), a call that
//! reports progress first answered as SSE with nothing lost, and a session's state
//! (a subscription and its notifications) kept across calls by a pooled client, and
//! a session ended with `DELETE`.

mod common;

use common::mcp::*;
use common::*;
use serde_json::{json, Value};

async fn post(client: &reqwest::Client, url: &str, session: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = client
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&body);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    req.send().await.unwrap()
}

async fn session(client: &reqwest::Client, url: &str) -> String {
    let init = post(
        client,
        url,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    assert_eq!(init.headers()["content-type"], "application/json");
    let id = init.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let body: Value = init.json().await.unwrap();
    assert_eq!(body["result"]["serverInfo"]["name"], "gattway");
    let ack = post(
        client,
        url,
        Some(&id),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(ack.status(), 202);
    id
}

#[tokio::test]
async fn plain_answers_are_json_and_progress_keeps_the_stream() {
    let rig = rig();
    let server = start_server(&rig.gateway, Default::default()).await;
    let url = server.url("/mcp");
    let client = reqwest::Client::new();
    let id = session(&client, &url).await;

    let status = post(
        &client,
        &url,
        Some(&id),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "status", "arguments": {}}}),
    )
    .await;
    assert_eq!(status.headers()["content-type"], "application/json");
    let body: Value = status.json().await.unwrap();
    assert_eq!(body["id"], 2);
    assert!(body["result"]["structuredContent"].is_object(), "{body}");

    // A scan with a progress token reports progress before its answer: SSE, with
    // the progress events and then the response, in order.
    let scan = post(
        &client,
        &url,
        Some(&id),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "ble_scan", "arguments": {"timeout": 1}, "_meta": {"progressToken": "p1"}}}),
    )
    .await;
    assert!(scan.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = within("scan stream", scan.text()).await.unwrap();
    let messages: Vec<Value> = text
        .split("\n\n")
        .filter_map(|event| {
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .collect();
            serde_json::from_str(&data).ok()
        })
        .collect();
    let progress = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .count();
    assert!(progress >= 1, "{text}");
    let last = messages.last().unwrap();
    assert_eq!(last["id"], 3, "{text}");
    assert!(!last["result"]["structuredContent"]["devices"]
        .as_array()
        .unwrap()
        .is_empty());
    server.stop().await;
}

#[tokio::test]
async fn ending_a_session_answers_no_content_and_the_session_is_gone() {
    let rig = rig();
    let server = start_server(&rig.gateway, Default::default()).await;
    let client = reqwest::Client::new();
    let url = server.url("/mcp");
    let id = session(&client, &url).await;
    let ended = client
        .delete(&url)
        .header("mcp-session-id", &id)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    // MCP clients take 200 or 204 as ended; 202 reads as a failure.
    assert_eq!(ended.status(), 204);
    let after = post(
        &client,
        &url,
        Some(&id),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(after.status(), 404, "the session is gone");
    server.stop().await;
}

#[tokio::test]
async fn a_pooled_client_keeps_its_session_state_across_calls() {
    let rig = rig();
    let server = start_server(&rig.gateway, Default::default()).await;
    let pooled = reqwest::Client::new();
    let transport = rmcp::transport::StreamableHttpClientTransport::with_client(
        pooled,
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            server.url("/mcp"),
        ),
    );
    let client = within(
        "handshake",
        rmcp::ServiceExt::serve(Recorder::default(), transport),
    )
    .await
    .unwrap();
    ok(&client, "ble_connect", json!({"device": HRM})).await;
    let sub = ok(
        &client,
        "ble_subscribe",
        json!({"device": HRM, "service": "180d", "characteristic": "2a37"}),
    )
    .await;
    let got = ok(
        &client,
        "ble_notifications",
        json!({"cursor": sub["cursor"], "timeout": 10}),
    )
    .await;
    assert!(!got["notifications"].as_array().unwrap().is_empty(), "{got}");
    assert_eq!(got["subscriptions"], json!([format!("{HRM}/2a37")]));
    client.cancel().await.unwrap();
    server.stop().await;
}
