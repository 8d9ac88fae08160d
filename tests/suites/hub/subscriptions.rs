//! Clients subscribing to telemetry: replay then live without gap, filters,
//! resuming after a point id, batching, and a slow subscriber lagged alone.

use super::Hub;
use crate::common::*;
use serde_json::{json, Value};

/// A telemetry message's `points` from (key, value) pairs.
fn points(values: &[(&str, Value)]) -> Value {
    json!(values
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect::<Vec<_>>())
}

#[tokio::test]
async fn subscribe_with_since_replays_stored_points_then_goes_live_without_gap_or_duplicate() {
    let hub = Hub::start(hub_config()).await;
    let url = hub.ws("device=counter");
    const N: i64 = 400;
    // The device streams 1..=N; the client subscribes while it is halfway.
    let (halfway_tx, halfway) = tokio::sync::oneshot::channel();
    let device = tokio::spawn(async move {
        let mut dev = JsonWs::connect(&url).await;
        dev.next().await;
        let mut halfway_tx = Some(halfway_tx);
        for i in 1..=N {
            dev.send(json!({"type": "telemetry", "seq": i, "points": [{"key": "n", "value": i}]}))
                .await;
            if i % 20 == 0 {
                // Let acks and other tasks interleave with the stream.
                dev.next_of("telemetry_ack").await;
            }
            if i == N / 2 {
                if let Some(tx) = halfway_tx.take() {
                    let _ = tx.send(());
                }
            }
        }
        dev
    });
    within("halfway", halfway).await.unwrap();
    let mut client = hub.client().await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": ["counter"], "keys": ["n"], "since": 0}))
        .await;
    assert_eq!(client.next().await["type"], "subscribed");
    let mut seen = Vec::new();
    let mut replayed_marker = false;
    while seen.last() != Some(&N) {
        let m = client.next().await;
        match m["type"].as_str().unwrap() {
            "telemetry" => seen.extend(
                m["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["value"].as_i64().unwrap()),
            ),
            "replayed" => replayed_marker = true,
            other => panic!("unexpected {other}: {m}"),
        }
    }
    assert!(replayed_marker, "the end of the replay is marked");
    assert_eq!(seen, (1..=N).collect::<Vec<_>>(), "every point once, in order");
    drop(device.await.unwrap());
}

#[tokio::test]
async fn subscriptions_filter_by_device_and_key_and_unsubscribe_stops_them() {
    let hub = Hub::start(hub_config()).await;
    let mut a = hub.device("a").await;
    let mut b = hub.device("b").await;
    let mut client = hub.client().await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": ["a"], "keys": ["temp"]}))
        .await;
    let sub = client.next().await["subscription"].clone();
    b.send(json!({"type": "telemetry", "seq": 1, "points": points(&[("temp", json!(1))])}))
        .await;
    b.next().await;
    a.send(
        json!({"type": "telemetry", "seq": 1, "points": points(&[("hum", json!(50)), ("temp", json!(20))])}),
    )
    .await;
    a.next().await;
    let t = client.next_of("telemetry").await;
    assert_eq!(t["device"], "a");
    assert_eq!(t["points"].as_array().unwrap().len(), 1, "only temp: {t}");
    assert_eq!(t["points"][0]["value"], 20);
    client
        .send(json!({"type": "unsubscribe", "id": 2, "subscription": sub}))
        .await;
    assert_eq!(client.next_of("unsubscribed").await["count"], 1);
    wait_until("unsubscribed", || hub.hub.subscriber_count() == 0).await;
}

/// A client that reconnects resumes with the last point id it saw: the replay is
/// what came after it, nothing before.
#[tokio::test]
async fn subscribe_with_after_id_replays_only_the_points_after_it() {
    let hub = Hub::start(hub_config()).await;
    let mut dev = hub.device("resumer").await;
    for i in 1..=10 {
        dev.send(json!({"type": "telemetry", "seq": i, "points": [{"key": "n", "value": i}]}))
            .await;
        dev.next_of("telemetry_ack").await;
    }
    let mut client = hub.client().await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": ["resumer"], "since": 0}))
        .await;
    let mut ids = Vec::new();
    loop {
        let m = client.next().await;
        match m["type"].as_str().unwrap() {
            "telemetry" => ids.extend(
                m["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["id"].as_i64().unwrap()),
            ),
            "replayed" => break,
            _ => {}
        }
    }
    assert_eq!(ids.len(), 10);
    let mut again = hub.client().await;
    again
        .send(json!({"type": "subscribe", "id": 1, "devices": ["resumer"], "after_id": ids[4]}))
        .await;
    let mut values = Vec::new();
    loop {
        let m = again.next().await;
        match m["type"].as_str().unwrap() {
            "telemetry" => values.extend(
                m["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["value"].as_i64().unwrap()),
            ),
            "replayed" => break,
            _ => {}
        }
    }
    assert_eq!(values, (6..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_slow_subscriber_gets_lagged_while_devices_and_other_clients_keep_full_speed() {
    let hub = Hub::start(gattway::hub::HubConfig {
        client_queue: 8,
        ..hub_config()
    })
    .await;
    let mut slow = hub.client().await;
    slow.send(json!({"type": "subscribe", "id": 1})).await;
    slow.next_of("subscribed").await;
    let mut fast = hub.client().await;
    fast.send(json!({"type": "subscribe", "id": 1})).await;
    fast.next_of("subscribed").await;
    let mut dev = hub.device("big").await;
    // 64 KiB per message: the slow client's socket buffers fill, then its queue.
    let blob = "x".repeat(64 * 1024);
    const MESSAGES: u64 = 200;
    // Lock-step with the fast client: each message is acked to the device and
    // reaches the fast client while the slow one reads nothing.
    for seq in 1..=MESSAGES {
        dev.send(json!({"type": "telemetry", "seq": seq, "points": [{"key": "blob", "value": blob}]}))
            .await;
        assert_eq!(
            dev.next_of("telemetry_ack").await["seq"],
            seq,
            "the device is acked in full"
        );
        let t = fast.next_of("telemetry").await;
        assert_eq!(
            t["points"][0]["id"].as_u64().unwrap(),
            seq,
            "the fast client misses nothing"
        );
    }
    let mut telemetry = 0;
    let missed = loop {
        let m = slow.next().await;
        match m["type"].as_str().unwrap() {
            "telemetry" => telemetry += 1,
            "lagged" => break m["missed"].as_u64().unwrap(),
            "presence" => {}
            other => panic!("unexpected {other}"),
        }
    };
    assert!(
        missed > 0 && telemetry < MESSAGES,
        "missed {missed}, got {telemetry}"
    );
}

#[tokio::test]
async fn a_client_that_asks_gets_queued_updates_batched_in_one_frame_in_order() {
    let hub = Hub::start(hub_config()).await;
    let mut client = JsonWs::connect(&hub.ws("role=client&batch=1")).await;
    client.next().await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": ["burst"]}))
        .await;
    client.next_of("subscribed").await;
    let mut dev = hub.device("burst").await;
    const N: i64 = 300;
    // Sent back to back: they are committed in groups and queue up for the client.
    for seq in 1..=N {
        dev.send(json!({"type": "telemetry", "seq": seq, "points": [{"key": "n", "value": seq}]}))
            .await;
    }
    let (mut seen, mut batches) = (Vec::new(), 0);
    while seen.len() < N as usize {
        let m = client.next().await;
        let messages = match m["type"].as_str().unwrap() {
            "batch" => {
                batches += 1;
                m["messages"].as_array().unwrap().clone()
            }
            _ => vec![m],
        };
        for t in messages.iter().filter(|t| t["type"] == "telemetry") {
            seen.extend(
                t["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["value"].as_i64().unwrap()),
            );
        }
    }
    assert_eq!(seen, (1..=N).collect::<Vec<_>>(), "every update once, in order");
    assert!(batches > 0, "updates that queued together came as batches");
}
