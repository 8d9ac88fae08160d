//! Nothing acknowledged is lost: the real binary is killed (-9) while a device
//! streams telemetry, restarted on the same database, and every acked point is there.

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const POINTS_PER_MESSAGE: u64 = 2;
/// Messages sent at most: every point fits one history answer (10,000).
const MESSAGES: u64 = 4_000;

/// Starts `gattway serve` on `db`; returns it and its address.
async fn serve(db: &str) -> (tokio::process::Child, String) {
    crate::common::process::serve_hub(db, "127.0.0.1:0", &[]).await
}

#[tokio::test]
async fn acked_telemetry_survives_kill_9() {
    let db = crate::store();
    let (mut child, addr) = serve(&db.url()).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/hub?device=crash"))
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    // Stream more than will be acked before the kill.
    let sender = tokio::spawn(async move {
        for seq in 1..=MESSAGES {
            let points: Vec<Value> = (0..POINTS_PER_MESSAGE)
                .map(|j| json!({"key": "v", "value": seq * 10 + j}))
                .collect();
            let msg = json!({"type": "telemetry", "seq": seq, "points": points});
            if tx.send(Message::Text(msg.to_string().into())).await.is_err() {
                return;
            }
        }
    });
    let mut acked = 0u64;
    while acked < 300 {
        match crate::common::within("acks", rx.next()).await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "telemetry_ack" {
                    let seq = v["seq"].as_u64().unwrap();
                    assert!(seq > acked, "acks come in order");
                    acked = seq;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    sender.abort();
    drop(rx);

    let (_child, addr) = serve(&db.url()).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/hub?device=crash"))
        .await
        .unwrap();
    let (_tx, mut rx) = ws.split();
    let welcome: Value = match crate::common::within("welcome", rx.next()).await {
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t).unwrap(),
        other => panic!("unexpected {other:?}"),
    };
    let last_seq = welcome["last_seq"].as_u64().unwrap();
    assert!(last_seq >= acked, "stored seq {last_seq} < acked {acked}");
    let body: Value = reqwest::get(format!(
        "http://{addr}/api/v1/devices/crash/telemetry?key=v&limit=10000"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let stored: std::collections::HashSet<u64> = body["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_u64().unwrap())
        .collect();
    let lost: Vec<u64> = (1..=acked)
        .flat_map(|seq| (0..POINTS_PER_MESSAGE).map(move |j| seq * 10 + j))
        .filter(|v| !stored.contains(v))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acked points lost, first {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}
