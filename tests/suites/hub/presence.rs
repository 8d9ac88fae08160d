//! Which devices are online: presence following connections and heartbeats, and
//! a newer connection of a device replacing the older.

use std::time::Duration;

use super::Hub;
use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn presence_follows_connections_and_heartbeats() {
    let hub = Hub::start(gattway::hub::HubConfig {
        heartbeat_secs: 0.2,
        heartbeat_misses: 2,
        ..hub_config()
    })
    .await;
    let mut client = hub.client().await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": ["p1"]}))
        .await;
    client.next_of("subscribed").await;
    let mut dev = hub.device("p1").await;
    let online = client.next_of("presence").await;
    assert_eq!(
        (online["device"].clone(), online["online"].clone()),
        (json!("p1"), json!(true))
    );
    client
        .send(json!({"type": "presence", "id": 2, "devices": ["p1", "never"]}))
        .await;
    let listed = client.next_of("presence").await;
    assert_eq!(listed["id"], 2);
    let by_id = |id: &str| find_listed(&listed, "devices", "device", id).unwrap();
    assert_eq!(
        (by_id("p1")["online"].clone(), by_id("never")["online"].clone()),
        (json!(true), json!(false))
    );
    // Heartbeats keep it online; silence takes it offline.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        dev.send(json!({"type": "heartbeat"})).await;
        assert_eq!(dev.next_of("heartbeat_ack").await["type"], "heartbeat_ack");
    }
    let offline = client.next_of("presence").await;
    assert_eq!(offline["online"], false);
    let err = dev.next_of("error").await;
    assert_eq!(err["code"], "HEARTBEAT_TIMEOUT");
    assert_eq!(dev.close_code().await, Some(4008));
}

#[tokio::test]
async fn a_newer_connection_of_a_device_replaces_the_older() {
    let hub = Hub::start(hub_config()).await;
    let mut old = hub.device("twin").await;
    let _new = hub.device("twin").await;
    assert_eq!(old.next_of("error").await["code"], "REPLACED");
    assert_eq!(old.close_code().await, Some(4009));
}
