//! Bounds on what one connection or caller may pile up: subscriptions, open
//! commands, and the REST rate limit.

use super::Hub;
use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn a_connection_and_a_device_cannot_pile_up_without_bound() {
    let config = gattway::hub::HubConfig {
        max_subscriptions: 2,
        max_open_commands: 2,
        rest_rate_per_principal: 0.001,
        rest_burst_per_principal: 3.0,
        ..hub_config()
    };
    let hub = Hub::start(config).await;
    let mut client = hub.client().await;
    for id in 1..=2 {
        client
            .send(json!({"type": "subscribe", "id": id, "devices": ["a"]}))
            .await;
        assert_eq!(client.next_of("subscribed").await["id"], id);
    }
    client
        .send(json!({"type": "subscribe", "id": 3, "devices": ["a"]}))
        .await;
    assert_eq!(client.next_of("error").await["code"], "TOO_MANY_SUBSCRIPTIONS");

    for id in 1..=2 {
        client
            .send(json!({"type": "command", "id": id, "device": "offline", "name": "x"}))
            .await;
        assert_eq!(client.next_of("command_accepted").await["id"], id);
    }
    client
        .send(json!({"type": "command", "id": 3, "device": "offline", "name": "x"}))
        .await;
    assert_eq!(client.next_of("error").await["code"], "COMMAND_QUEUE_FULL");

    // Hub REST is rate-limited per caller: the burst, then 429 with Retry-After.
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            let r = reqwest::get(hub.server.url("/api/v1/hub/devices")).await.unwrap();
            v.push(r.status().as_u16());
        }
        v
    };
    assert_eq!(statuses, vec![200, 200, 200, 429]);
}
