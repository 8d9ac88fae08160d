//! Who may open the bridge: browser origins checked, and with auth configured a
//! credential with the write scope.

use super::{fast_bridge, setup, Client, CS108_QUERY};
use crate::common::*;

#[tokio::test]
async fn browser_origins_are_checked() {
    let (_rig, server) = setup(fast_bridge()).await;
    let refused = Client::open_with_origin(&server, CS108_QUERY, Some("https://evil.example")).await;
    assert!(refused.err().unwrap().contains("403"));
    let mut ok = Client::open_with_origin(&server, CS108_QUERY, Some("http://localhost:5173"))
        .await
        .expect("a local dev server may connect");
    ok.expect("connected").await;
    server.stop().await;
}

#[tokio::test]
async fn with_auth_configured_the_bridge_needs_a_credential_with_write_scope() {
    use gattway::auth::{sha256_hex, ApiKeyConfig, AuthConfig, Scope};
    let rig = rig();
    let key = |name: &str, scopes: Vec<Scope>, devices: Vec<String>| ApiKeyConfig {
        name: name.into(),
        sha256: sha256_hex(name.as_bytes()),
        scopes,
        devices,
    };
    let auth = AuthConfig {
        api_keys: vec![
            key("writer", vec![Scope::BleWrite], vec![]),
            key("reader", vec![Scope::BleRead], vec![]),
            key("hrm-only", vec![Scope::BleWrite], vec!["Gattway HRM".into()]),
        ],
        ..Default::default()
    };
    let server = start_server_full(&rig.gateway, Default::default(), fast_bridge(), auth).await;
    let refused = Client::open_with_origin(&server, CS108_QUERY, None).await;
    assert!(refused.err().unwrap().contains("401"));
    let refused =
        Client::open_with_origin(&server, &format!("{CS108_QUERY}&access_token=reader"), None).await;
    assert!(refused.err().unwrap().contains("403"));
    let mut outside = Client::open(&server, &format!("{CS108_QUERY}&access_token=hrm-only")).await;
    let e = outside.json().await;
    assert_eq!(e["code"], "forbidden", "{e}");
    assert_eq!(outside.closed().await.0, 1008);
    let mut ok = Client::open(&server, &format!("{CS108_QUERY}&access_token=writer")).await;
    ok.expect("connected").await;
    ok.battery_round_trip().await;
    let packets = reqwest::get(server.url("/api/v1/packets")).await.unwrap();
    assert_eq!(
        packets.status(),
        401,
        "the packet log is data: it needs a credential too"
    );
    server.stop().await;
}
