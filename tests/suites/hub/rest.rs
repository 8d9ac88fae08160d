//! The hub's REST API: commands sent and read back, the connection log and the
//! device list.

use std::time::Duration;

use super::Hub;
use crate::common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn rest_sends_commands_and_lists_devices() {
    let hub = Hub::start(hub_config()).await;
    let mut dev = hub.device("r1").await;
    let resp = reqwest::Client::new()
        .post(hub.server.url("/api/v1/devices/r1/commands"))
        .json(&json!({"name": "blink", "params": {"times": 3}, "priority": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let id = resp.json::<Value>().await.unwrap()["command_id"].clone();
    let c = dev.next_of("command").await;
    assert_eq!(
        (c["command_id"].clone(), c["params"].clone()),
        (id.clone(), json!({"times": 3}))
    );
    dev.send(json!({"type": "command_result", "command_id": id, "status": "failed", "error": "no LED"}))
        .await;
    let record = within("failed status", async {
        loop {
            let r = hub
                .get(&format!("/api/v1/commands/{}", id.as_str().unwrap()))
                .await;
            if r["status"] == "failed" {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(record["error"], "no LED");
    // The connection log, written in the background, shows who came and how they left.
    let mut gone = hub.device("leaver").await;
    gone.send_text("{}").await;
    drop(gone);
    let log = within("connection log", async {
        loop {
            let log = hub.get("/api/v1/hub/connections").await;
            let entry = find_listed(&log, "connections", "device", "leaver");
            if let Some(e) = entry.filter(|e| !e["reason"].is_null()) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(
        (log["role"].as_str(), log["reason"].as_str()),
        (Some("device"), Some("closed"))
    );
    assert!(log["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(log["disconnected_at"].as_i64() >= log["connected_at"].as_i64());
    let devices = hub.get("/api/v1/hub/devices").await;
    assert!(devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["device"] == "r1" && d["online"] == true));
    let missing = reqwest::get(hub.server.url("/api/v1/commands/none"))
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}
