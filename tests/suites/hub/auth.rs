//! Who may do what on the hub: keys and JWTs, roles, scopes and device lists, and
//! commands that become BLE writes needing `ble:write`.

use std::time::Duration;

use super::Hub;
use crate::common::*;
use gattway::auth::{AuthConfig, Scope};
use serde_json::{json, Value};

fn hub_auth() -> AuthConfig {
    AuthConfig {
        api_keys: vec![
            api_key("sensor-7", vec![Scope::HubDevice], vec![]),
            api_key("dashboard", vec![Scope::HubClient], vec!["sensor-*"]),
            api_key("ble-only", vec![Scope::BleRead], vec![]),
        ],
        jwt_secret: "hub-secret".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn authentication_roles_scopes_and_device_lists_hold() {
    let hub = Hub::start_with(hub_config(), hub_auth()).await;
    // A device key: the device id is the key's name.
    let mut dev = JsonWs::connect(&hub.ws("token=sensor-7")).await;
    let welcome = dev.next().await;
    assert_eq!(
        (welcome["role"].clone(), welcome["device"].clone()),
        (json!("device"), json!("sensor-7"))
    );
    // A JWT as the first message.
    let jwt = gattway::auth::issue_jwt(
        "hub-secret",
        &gattway::auth::TokenRequest {
            subject: "sensor-8",
            scopes: &[Scope::HubDevice],
            devices: &[],
            ttl: Duration::from_secs(60),
            audience: None,
            issuer: None,
        },
    )
    .unwrap();
    let mut second = JsonWs::connect(&hub.ws("")).await;
    second.send(json!({"type": "auth", "token": jwt})).await;
    assert_eq!(second.next().await["type"], "authenticated");
    assert_eq!(second.next().await["device"], "sensor-8");
    // No credential, or the wrong scope: refused and closed.
    let mut none = JsonWs::connect(&hub.ws("")).await;
    none.send(json!({"type": "subscribe"})).await;
    assert_eq!(none.next().await["code"], "NOT_AUTHENTICATED");
    assert_eq!(none.close_code().await, Some(1008));
    let mut ble = JsonWs::connect(&hub.ws("token=ble-only")).await;
    assert_eq!(ble.next().await["code"], "FORBIDDEN");
    // A client limited to sensor-*: other devices are refused.
    let mut client = JsonWs::connect(&hub.ws("token=dashboard")).await;
    assert_eq!(client.next().await["role"], "client");
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": ["sensor-7"]}))
        .await;
    assert_eq!(client.next().await["type"], "subscribed");
    client
        .send(json!({"type": "command", "id": 2, "device": "boiler", "name": "off"}))
        .await;
    assert_eq!(client.next().await["code"], "FORBIDDEN");
    client
        .send(json!({"type": "subscribe", "id": 3, "devices": ["*"]}))
        .await;
    assert_eq!(client.next().await["code"], "INVALID_PARAMS");
    // REST takes the same credentials.
    let http = reqwest::Client::new();
    let status = |path: &str, key: &str| {
        let req = http.get(hub.server.url(path)).bearer_auth(key);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        status("/api/v1/devices/sensor-7/telemetry", "dashboard").await,
        200
    );
    assert_eq!(status("/api/v1/devices/boiler/telemetry", "dashboard").await, 403);
    assert_eq!(
        status("/api/v1/devices/sensor-7/telemetry", "ble-only").await,
        403
    );
    drop(dev);
}

#[tokio::test]
async fn commands_that_become_ble_writes_need_ble_write() {
    let auth = AuthConfig {
        api_keys: vec![
            api_key("dashboard", vec![Scope::HubClient], vec![]),
            api_key("operator", vec![Scope::HubClient, Scope::BleWrite], vec![]),
        ],
        ..Default::default()
    };
    let config = gattway::hub::HubConfig {
        sim_feed: true,
        ..hub_config()
    };
    let hub = Hub::start_with(config, auth).await;
    let send = |key: &'static str| {
        let url = hub.server.url(&format!("/api/v1/devices/{HRM}/commands"));
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .json(&json!({"name": "reset_energy_expended", "params": {"value": "01"}}))
                .send()
                .await
                .unwrap()
        }
    };
    let refused = send("dashboard").await;
    assert_eq!(refused.status(), 403);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("ble:write"),
        "{problem}"
    );
    assert_eq!(send("operator").await.status(), 202);

    // Over the socket too; a command to a network device needs no more than hub:client.
    let mut client = JsonWs::connect(&hub.ws("role=client&token=dashboard")).await;
    client.next_of("welcome").await;
    client
        .send(json!({"type": "command", "id": 1, "device": HRM, "name": "reset_energy_expended"}))
        .await;
    assert_eq!(client.next_of("error").await["code"], "FORBIDDEN");
    client
        .send(json!({"type": "command", "id": 2, "device": "thermostat", "name": "set"}))
        .await;
    assert_eq!(client.next_of("command_accepted").await["id"], 2);
}
