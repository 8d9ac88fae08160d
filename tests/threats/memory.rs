//! Memory under load: every queue between the sockets and the store is bounded in
//! bytes, not only in messages. A store that stalls holds at most
//! `hub.writer_queue_bytes` of telemetry (senders wait, nothing is lost), and a
//! client that stops reading holds at most `hub.client_queue_bytes` (it is told
//! `lagged`).

use serde_json::{json, Value};
use sqlx::Connection;

use crate::common::*;

/// A metric's value in the `/metrics` text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn a_stalled_store_holds_at_most_its_byte_budget_and_loses_nothing() {
    const BUDGET: usize = 256 * 1024;
    let rig = rig();
    let db = TempDb::new();
    let config = gattway::hub::HubConfig {
        writer_queue_bytes: BUDGET,
        ..hub_config()
    };
    let (server, _hub) = start_hub_server(&rig.gateway, &db.url(), config, Default::default()).await;
    let mut devices = Vec::new();
    for d in 0..4 {
        let mut ws = JsonWs::connect(&format!("ws://{}/hub?device=big{d}", server.addr)).await;
        ws.next_of("welcome").await;
        devices.push(ws);
    }
    // Another connection holds SQLite's write lock: every commit waits (well
    // within the store's 10 s busy timeout).
    let mut blocker = sqlx::SqliteConnection::connect(&db.url()).await.unwrap();
    sqlx::raw_sql("BEGIN EXCLUSIVE")
        .execute(&mut blocker)
        .await
        .unwrap();
    let chunk = "x".repeat(20_000);
    const MESSAGES: u64 = 40;
    for ws in &mut devices {
        for seq in 1..=MESSAGES {
            ws.send(json!({"type": "telemetry", "seq": seq, "points": [{"key": "blob", "value": chunk}]}))
                .await;
        }
    }
    // 4 × 40 × 20 kB = 3.2 MB sent; what waits for the store stays in budget.
    let queued = within("the writer's queue to fill", async {
        loop {
            let q = metric(&server.metrics().await, "gattway_hub_writer_queued_bytes");
            if q > (BUDGET / 2) as f64 {
                return q;
            }
        }
    })
    .await;
    for _ in 0..20 {
        let q = metric(&server.metrics().await, "gattway_hub_writer_queued_bytes");
        assert!(q <= BUDGET as f64, "{q} bytes queued past a budget of {BUDGET}");
    }
    assert!(queued <= BUDGET as f64);
    sqlx::raw_sql("COMMIT").execute(&mut blocker).await.unwrap();

    // Everything sent is acknowledged, in order, and stored.
    for ws in &mut devices {
        let mut acked = 0;
        while acked < MESSAGES {
            let ack = ws.next_of("telemetry_ack").await;
            acked = ack["seq"].as_u64().unwrap();
        }
    }
    for d in 0..4 {
        let history: Value =
            reqwest::get(server.url(&format!("/api/v1/devices/big{d}/telemetry?limit=1000")))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        assert_eq!(history["points"].as_array().unwrap().len(), MESSAGES as usize);
    }
    assert_eq!(
        metric(&server.metrics().await, "gattway_hub_writer_queued_bytes"),
        0.0
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_holds_at_most_its_byte_budget() {
    let rig = rig();
    let db = TempDb::new();
    let config = gattway::hub::HubConfig {
        client_queue_bytes: 256 * 1024,
        ..hub_config()
    };
    let (server, _hub) = start_hub_server(&rig.gateway, &db.url(), config, Default::default()).await;
    let mut client = JsonWs::connect(&format!("ws://{}/hub?role=client", server.addr)).await;
    client.next_of("welcome").await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": ["big"]}))
        .await;
    client.next_of("subscribed").await;
    let mut device = JsonWs::connect(&format!("ws://{}/hub?device=big", server.addr)).await;
    device.next_of("welcome").await;
    // 300 frames of 100 kB, far more than the socket's buffers hold, while the
    // client reads nothing; fewer than `hub.client_queue` (4096) frames, so only
    // the byte budget can drop any.
    let chunk = "y".repeat(100_000);
    const MESSAGES: u64 = 300;
    for seq in 1..=MESSAGES {
        device
            .send(json!({"type": "telemetry", "seq": seq, "points": [{"key": "blob", "value": chunk}]}))
            .await;
        device.next_of("telemetry_ack").await;
    }
    let mut telemetry = 0;
    let missed = loop {
        let m = client.next().await;
        match m["type"].as_str() {
            Some("telemetry") => telemetry += 1,
            Some("lagged") => break m["missed"].as_u64().unwrap(),
            Some("presence") => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(missed > 0);
    assert!(telemetry < MESSAGES, "{telemetry} frames before lagged");
    let dropped = metric(&server.metrics().await, "gattway_hub_dropped_total");
    assert!(dropped >= missed as f64, "{dropped} counted, {missed} missed");
    server.stop().await;
}
