//! Telemetry from devices: acked once it is stored, a retry never stored twice, and
//! a batch the store refused never acked as a duplicate of a later one.

use super::Hub;
use crate::common::*;
use crate::store;
use gattway::auth::AuthConfig;
use serde_json::{json, Value};

#[tokio::test]
async fn telemetry_is_acked_once_stored_and_a_retry_is_not_stored_twice() {
    let hub = Hub::start(hub_config()).await;
    let mut dev = hub.device("dev-1").await;
    let batch = json!({"type": "telemetry", "seq": 7, "points": [
        {"key": "temp", "value": 21.5, "ts": 1_763_800_000_000i64},
        {"key": "door", "value": true},
        {"key": "label", "value": "kitchen"},
        {"key": "fix", "value": {"lat": 1.5, "lon": 2}},
    ]});
    dev.send(batch.clone()).await;
    assert_eq!(dev.next().await, json!({"type": "telemetry_ack", "seq": 7}));
    dev.send(batch).await;
    assert_eq!(
        dev.next().await,
        json!({"type": "telemetry_ack", "seq": 7}),
        "a retry is acked"
    );
    let history = hub.get("/api/v1/devices/dev-1/telemetry").await;
    let stored = history["points"].as_array().unwrap();
    assert_eq!(stored.len(), 4, "the retry was not stored again: {history}");
    let temp = stored.iter().find(|p| p["key"] == "temp").unwrap();
    assert_eq!(
        (temp["value"].clone(), temp["ts"].clone()),
        (json!(21.5), json!(1_763_800_000_000i64))
    );
    assert!(stored.iter().any(|p| p["value"] == json!({"lat": 1.5, "lon": 2})));
    assert!(stored.iter().any(|p| p["value"] == json!(true)));
    drop(dev);
    // A device that reconnects learns the last seq stored, to carry on from.
    let mut again = JsonWs::connect(&hub.ws("device=dev-1")).await;
    assert_eq!(again.next().await["last_seq"], 7);
}

/// A batch that failed to store, hidden behind a later one: before, the later
/// batch committed, raised the device's `last_seq` past the failed one, and the
/// device's retry of it was acked as a duplicate and never stored.
#[tokio::test]
async fn a_failed_batch_is_never_acked_as_a_duplicate_of_a_later_one() {
    let rig = rig();
    let db = store();
    let config = gattway::hub::HubConfig {
        // One batch per commit: the poisoned batch and the next one commit apart.
        max_batch_points: 1,
        ..hub_config()
    };
    let (server, _hub) = start_hub_server(&rig.gateway, &db.url(), config, AuthConfig::default()).await;
    // The store refuses the point "poison", slowly, so the batch after it is
    // already queued when it fails.
    db.execute(
        "CREATE TRIGGER poison BEFORE INSERT ON telemetry WHEN NEW.key = 'poison' AND \
         (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500000) \
          SELECT count(*) FROM c) > 0 \
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.key = 'poison' THEN PERFORM pg_sleep(0.2); RAISE EXCEPTION 'poisoned'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER poison BEFORE INSERT ON telemetry FOR EACH ROW EXECUTE FUNCTION poison()",
    )
    .await;
    let url = format!("ws://{}/hub?device=meter", server.addr);
    let mut dev = JsonWs::connect(&url).await;
    assert_eq!(dev.next().await["last_seq"], 0);
    let point = |seq: u64, key: &str| json!({"type": "telemetry", "seq": seq, "points": [{"key": key, "value": seq}]});
    dev.send(point(1, "ok")).await;
    assert_eq!(dev.next().await, json!({"type": "telemetry_ack", "seq": 1}));
    dev.send(point(2, "poison")).await;
    dev.send(point(3, "ok")).await;
    let failed = dev.next().await;
    assert_eq!(
        (failed["code"].as_str(), failed["seq"].as_u64()),
        (Some("STORE_ERROR"), Some(2)),
        "{failed}"
    );
    assert_eq!(dev.close_code().await, Some(1011));

    // The device comes back: the hub says 1 is the last stored, not 3.
    db.execute("DROP TRIGGER poison", "DROP TRIGGER poison ON telemetry")
        .await;
    let mut dev = JsonWs::connect(&url).await;
    assert_eq!(
        dev.next().await["last_seq"],
        1,
        "seq 3 was not stored behind the failed 2"
    );
    dev.send(point(2, "poison")).await;
    assert_eq!(dev.next().await, json!({"type": "telemetry_ack", "seq": 2}));
    dev.send(point(3, "ok")).await;
    assert_eq!(dev.next().await, json!({"type": "telemetry_ack", "seq": 3}));
    let history: Value = reqwest::get(server.url("/api/v1/devices/meter/telemetry"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut seqs: Vec<u64> = history["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_u64().unwrap())
        .collect();
    seqs.sort();
    assert_eq!(seqs, vec![1, 2, 3], "every acked point stored once: {history}");
    server.stop().await;
}
