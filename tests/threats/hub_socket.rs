//! `/hub`'s WebSocket: sockets that never authenticate wait in the door's own
//! budget and never take a device's or a client's slot.

use gattway::auth::{AuthConfig, Scope};
use gattway::http::HttpConfig;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn hub_sockets_waiting_to_authenticate_never_take_a_slot() {
    let rig = rig();
    let db = TempDb::new();
    let setup = Setup {
        auth: AuthConfig {
            api_keys: vec![
                api_key("sensor-1", vec![Scope::HubDevice], vec![]),
                api_key("dashboard", vec![Scope::HubClient], vec![]),
            ],
            ..Default::default()
        },
        http: HttpConfig {
            max_unauthenticated_websockets: 3,
            ..Default::default()
        },
        hub: Some((
            db.url(),
            gattway::hub::HubConfig {
                max_connections: 2,
                ..hub_config()
            },
        )),
        ..Default::default()
    };
    let (server, _hub) = start(&rig.gateway, setup).await;
    let url = format!("ws://{}/hub", server.addr);
    // As many sockets as the hub has slots, none of which ever authenticates.
    let mut lurkers = Vec::new();
    for _ in 0..2 {
        lurkers.push(JsonWs::connect(&url).await);
    }
    // A device with its credential at the upgrade, and a client in-band, get in.
    let mut device = JsonWs::connect(&format!("{url}?access_token=sensor-1")).await;
    assert_eq!(device.next_of("welcome").await["device"], "sensor-1");
    let mut client = JsonWs::connect(&url).await;
    client
        .send(json!({"type": "auth", "id": 1, "token": "dashboard"}))
        .await;
    assert_eq!(client.next().await["type"], "authenticated");
    assert_eq!(client.next().await["type"], "welcome");
    // The hub's two slots are theirs now: a third credential is turned away.
    let mut third = JsonWs::connect(&format!("{url}?access_token=dashboard")).await;
    let refused = third.next().await;
    assert_eq!(refused["code"], "RATE_LIMITED", "{refused}");
    assert_eq!(third.close_code().await, Some(1013));
    // Lurkers wait among themselves: one more fits their budget (3), the next not.
    lurkers.push(JsonWs::connect(&url).await);
    let mut over = JsonWs::connect(&url).await;
    let refused = over.next().await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("waiting to authenticate"),
        "{refused}"
    );
    server.stop().await;
}
