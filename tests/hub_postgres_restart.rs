//! PostgreSQL restarted under load, under a real `gattway serve`: batches caught
//! by the outage are refused with a typed error (never acknowledged), the device
//! reconnects and carries on from the `last_seq` the hub reports, and in the end
//! every acknowledged point is stored exactly once.
//!
//! Alone in its test binary: it restarts the server every other PostgreSQL test
//! uses, and cargo runs test binaries one at a time.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{JsonWs, TempDb};
use serde_json::{json, Value};

/// Messages the device sends in all, one point each (value = seq).
const MESSAGES: u64 = 600;

/// Stops or starts the local PostgreSQL cluster, as `./test.sh` starts it.
fn postgres(action: &'static str) {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("PostgreSQL from Debian's packages")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .next()
        .expect("a PostgreSQL cluster");
    let status = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .status()
        .expect("pg_ctlcluster");
    assert!(status.success(), "PostgreSQL {action}");
}

/// Starts PostgreSQL again if the test ends (fails) while it is stopped, so the
/// test binaries after this one find it up.
struct StartAgainOnDrop;

impl Drop for StartAgainOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("sh")
            .args([
                "-c",
                "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -1) main start",
            ])
            .status();
    }
}

/// Where the outage is.
#[derive(PartialEq)]
enum Outage {
    Before,
    /// Stopped; started again once the device has been refused a few times.
    Down,
    Over,
}

#[tokio::test]
async fn a_postgresql_restart_under_load_refuses_clearly_acks_nothing_unstored_and_recovers() {
    let db = TempDb::postgres();
    let (_server, addr) = common::process::serve_hub(&db.url(), "127.0.0.1:0", &[]).await;
    let url = format!("ws://{addr}/hub?device=logger");

    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut refusals: Vec<Value> = Vec::new();
    let mut outage = Outage::Before;
    let _restart_on_failure = StartAgainOnDrop;
    let deadline = Instant::now() + Duration::from_secs(60);
    'connection: while acked.last() != Some(&MESSAGES) {
        if outage == Outage::Down && refusals.len() >= 3 {
            tokio::task::spawn_blocking(|| postgres("start")).await.unwrap();
            outage = Outage::Over;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery within 60 s: acked up to {:?}",
            acked.last()
        );
        let Ok(mut dev) = JsonWs::try_connect(&url).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let welcome = match dev.try_next().await {
            Some(w) if w["type"] == "welcome" => w,
            Some(refused) => {
                // The store is down: the device hears why, then the door closes.
                assert_eq!(refused["code"], "STORE_ERROR", "{refused}");
                refusals.push(refused);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            None => continue,
        };
        let from = welcome["last_seq"].as_u64().unwrap() + 1;
        // Ten in flight at a time, as a device with a small window sends.
        for start in (from..=MESSAGES).step_by(10) {
            let end = (start + 9).min(MESSAGES);
            for seq in start..=end {
                dev.send(json!({"type": "telemetry", "seq": seq, "points": [{"key": "v", "value": seq}]}))
                    .await;
            }
            let mut answered = 0;
            while answered < end - start + 1 {
                let Some(m) = dev.try_next().await else {
                    continue 'connection;
                };
                match m["type"].as_str() {
                    Some("telemetry_ack") => {
                        acked.insert(m["seq"].as_u64().unwrap());
                        answered += 1;
                    }
                    Some("error") => {
                        assert_eq!(m["code"], "STORE_ERROR", "{m}");
                        refusals.push(m);
                        answered += 1;
                    }
                    _ => {}
                }
            }
            if outage == Outage::Before && acked.len() >= 200 {
                // Mid-stream: the next windows meet a database that is gone.
                tokio::task::spawn_blocking(|| postgres("stop")).await.unwrap();
                outage = Outage::Down;
            }
            if outage == Outage::Down && refusals.len() >= 3 {
                continue 'connection;
            }
        }
    }
    assert!(outage == Outage::Over, "PostgreSQL was stopped and started again");
    assert!(refusals.len() >= 3, "the outage was seen by the device");
    assert!(
        refusals.iter().any(|r| r["message"]
            .as_str()
            .unwrap_or_default()
            .contains("the database is unreachable")),
        "the refusals say why: {refusals:?}"
    );

    let stored = common::process::stored_values(&addr, "logger", "v").await;
    let unique: BTreeSet<u64> = stored.iter().copied().collect();
    assert_eq!(unique.len(), stored.len(), "no point stored twice");
    let lost: Vec<&u64> = acked.difference(&unique).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert_eq!(
        unique,
        (1..=MESSAGES).collect(),
        "the device's retries filled every gap"
    );
}
