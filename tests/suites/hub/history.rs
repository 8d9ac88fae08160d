//! Stored telemetry read back: points and buckets over the socket and REST, and
//! retention deleting what is older than configured.

use std::time::Duration;

use super::Hub;
use crate::common::*;
use crate::store;
use serde_json::{json, Value};

#[tokio::test]
async fn history_answers_points_and_buckets_over_ws_and_rest() {
    let hub = Hub::start(hub_config()).await;
    let mut dev = hub.device("h").await;
    let pts: Vec<Value> = (0..10)
        .map(|i| json!({"key": "t", "value": i, "ts": 1_000 + i * 100}))
        .collect();
    dev.send(json!({"type": "telemetry", "seq": 1, "points": pts}))
        .await;
    dev.next_of("telemetry_ack").await;
    let mut client = hub.client().await;
    client
        .send(json!({"type": "history", "id": 5, "device": "h", "key": "t", "from": 1_200, "to": 1_500, "limit": 2}))
        .await;
    let h = client.next().await;
    assert_eq!(h["id"], 5);
    let values: Vec<i64> = h["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_i64().unwrap())
        .collect();
    assert_eq!(values, [3, 4], "the newest two in range, oldest first");
    client
        .send(json!({"type": "history", "id": 6, "device": "h", "key": "t", "bucket": 500}))
        .await;
    let b = client.next().await;
    assert_eq!(
        b["buckets"][0],
        json!({"key": "t", "ts": 1000, "count": 5, "min": 0.0, "max": 4.0, "avg": 2.0}),
        "{b}"
    );
    let rest = hub.get("/api/v1/devices/h/telemetry?key=t&bucket=500ms").await;
    assert_eq!(rest["buckets"][1]["avg"], 7.0);
    // Without a key, every key is bucketed on its own.
    dev.send(json!({"type": "telemetry", "seq": 2, "points": [{"key": "rh", "value": 40, "ts": 1_000}]}))
        .await;
    dev.next_of("telemetry_ack").await;
    let every = hub.get("/api/v1/devices/h/telemetry?bucket=500").await;
    let keys: Vec<(&str, i64)> = every["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["key"].as_str().unwrap(), b["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(keys, [("rh", 1), ("t", 5), ("t", 5)], "{every}");
    // A limit out of range is refused, not quietly clamped.
    for limit in [0, 10_001] {
        let url = hub
            .server
            .url(&format!("/api/v1/devices/h/telemetry?limit={limit}"));
        assert_eq!(reqwest::get(url).await.unwrap().status(), 400, "limit={limit}");
    }
    client
        .send(json!({"type": "history", "id": 7, "device": "h", "limit": 0}))
        .await;
    assert_eq!(client.next().await["code"], "INVALID_PARAMS");
}

#[tokio::test]
async fn retention_deletes_points_older_than_configured_and_keeps_the_rest() {
    let rig = rig();
    let db = store();
    let (server, hub) = start_hub_server(&rig.gateway, &db.url(), hub_config(), Default::default()).await;
    let mut dev = JsonWs::connect(&format!("ws://{}/hub?device=old", server.addr)).await;
    dev.next().await;
    let now = gattway::store::now_ms();
    dev.send(json!({"type": "telemetry", "seq": 1, "points": [
        {"key": "t", "value": 1, "ts": now - 3 * 86_400_000},
        {"key": "t", "value": 2, "ts": now},
    ]}))
    .await;
    dev.next_of("telemetry_ack").await;
    drop(dev);
    server.stop().await;
    drop(hub);
    // Restarted with a retention of two days: the three-day-old point goes at start.
    let config = gattway::hub::HubConfig {
        retention_days: 2.0,
        ..hub_config()
    };
    let (server, _hub) = start_hub_server(&rig.gateway, &db.url(), config, Default::default()).await;
    let url = server.url("/api/v1/devices/old/telemetry");
    let values = within("retention", async {
        loop {
            let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
            let values: Vec<i64> = body["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["value"].as_i64().unwrap())
                .collect();
            if values.len() < 2 {
                return values;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(values, [2]);
}
