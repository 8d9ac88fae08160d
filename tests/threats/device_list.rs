//! REST and `/ws`: a device list holds for the device a name prefix resolves to,
//! not for the text the caller typed.

use serde_json::{json, Value};

use crate::common::*;
use gattway::auth::{AuthConfig, Scope};

fn keys() -> AuthConfig {
    AuthConfig {
        api_keys: vec![
            // An entry without `*` is a whole id or name: "Gattway U" is neither.
            api_key(
                "prefix-only",
                vec![Scope::BleRead, Scope::BleWrite],
                vec!["Gattway U"],
            ),
            api_key(
                "whole-name",
                vec![Scope::BleRead, Scope::BleWrite],
                vec!["Gattway UART"],
            ),
        ],
        ..Default::default()
    }
}

async fn rest_connect(server: &Server, key: &str, target: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(server.url(&format!("/api/v1/devices/{target}/connect")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn ws_connect(server: &Server, key: &str, target: &str) -> Value {
    let mut ws = JsonWs::connect(&format!("ws://{}/ws?access_token={key}", server.addr)).await;
    ws.send(json!({"type": "CONNECT", "id": 1, "deviceId": target}))
        .await;
    loop {
        let m = ws.next().await;
        if m["id"] == 1 {
            return m;
        }
    }
}

#[tokio::test]
async fn a_name_prefix_is_checked_against_the_device_it_names() {
    let rig = rig();
    let server = start_control_server(&rig.gateway, Default::default(), keys()).await;

    let (status, body) = rest_connect(&server, "prefix-only", "Gattway%20U").await;
    assert_eq!(status, 403, "REST connected past the device list: {body}");
    let refused = ws_connect(&server, "prefix-only", "Gattway U").await;
    assert_eq!(
        refused["code"], "FORBIDDEN",
        "/ws connected past the device list: {refused}"
    );
    assert!(rig.gateway.connections().is_empty());

    // The list that names the device admits it, however it is asked for.
    let (status, body) = rest_connect(&server, "whole-name", "Gattway%20U").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], UART);
    server.stop().await;
}
