//! The JavaScript client (`clients/js/`) in Node against the real server, which
//! this test kills (-9) and starts again on the same port and database while a
//! device keeps sending: every acknowledged point is stored exactly once, the
//! subscriber resumes with no gap and no duplicate, the points queued while the
//! server was down go out highest priority first, and a full offline queue drops
//! (and counts) its oldest low-priority points.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;

use common::process::{serve_hub, stored_values};
use common::{within, TempDb};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const POINTS: u64 = 1500;

type Lines = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

async fn next_line(out: &mut Lines) -> String {
    within("the client's next line", out.next_line())
        .await
        .unwrap()
        .expect("node ended")
}

#[tokio::test]
async fn the_js_client_rides_out_a_server_restart_losing_and_repeating_nothing() {
    let db = TempDb::new();
    let (mut server, addr) = serve_hub(&db.url(), "127.0.0.1:0", &[]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/js/test/restart.mjs");
    let mut node = tokio::process::Command::new("node")
        .args([
            "--experimental-websocket",
            script,
            &format!("http://{addr}"),
            &POINTS.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node (./test.sh installs it)");
    let mut stdin = node.stdin.take().unwrap();
    let mut out = BufReader::new(node.stdout.take().unwrap()).lines();

    while next_line(&mut out).await != "acked 300" {}
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    stdin.write_all(b"down\n").await.unwrap();
    while next_line(&mut out).await != "queued-offline" {}
    let (_server, again) = serve_hub(&db.url(), &addr, &[]).await;
    assert_eq!(again, addr, "the same port");
    stdin.write_all(b"up\n").await.unwrap();
    let summary: Value = loop {
        let line = next_line(&mut out).await;
        if let Some(json) = line.strip_prefix("done ") {
            break serde_json::from_str(json).unwrap();
        }
    };

    assert_eq!(summary["acked"], POINTS, "every point acknowledged: {summary}");
    let seen: Vec<u64> = summary["seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(
        seen,
        (1..=POINTS).collect::<Vec<_>>(),
        "the subscriber saw each point once, in order"
    );
    assert_eq!(
        summary["arrived"],
        serde_json::json!(["high-1", "high-2", "high-3", "low-1", "low-2", "low-3"]),
        "the offline queue drains highest priority first"
    );
    assert_eq!(summary["bound"]["dropped"], 5, "{summary}");
    assert_eq!(
        summary["bound"]["refused"],
        serde_json::json!([0, 1, 2, 3, 4]),
        "oldest dropped first"
    );
    let states: Vec<&str> = summary["states"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        states.contains(&"reconnecting") && states.last() == Some(&"open"),
        "{states:?}"
    );

    let stored = stored_values(&addr, "js-device", "n").await;
    let unique: BTreeSet<u64> = stored.iter().copied().collect();
    assert_eq!(unique.len(), stored.len(), "stored once each");
    assert_eq!(unique, (1..=POINTS).collect(), "every acknowledged point stored");
}

/// The client in Chromium, as a web app loads it: the simulated heart-rate
/// monitor's readings (stored by the hub's simulator feed) and the page's own
/// points, with the page as a device.
#[tokio::test]
async fn the_js_client_runs_in_chromium_against_the_simulated_devices() {
    let db = TempDb::new();
    let (_server, addr) = serve_hub(&db.url(), "127.0.0.1:0", &[("GATTWAY_HUB_SIM_FEED", "true")]).await;
    let base = format!("http://{addr}");
    let report = common::browser::run("jsclient.mjs", &[base.as_ref()]).await;
    let results = &report["results"];
    assert_eq!(
        results["heart"],
        serde_json::json!(["number", "number", "number"]),
        "{report}"
    );
    assert_eq!(results["mine"], serde_json::json!([1, 2, 3, 4, 5]), "{report}");
    assert_eq!(results["online"], true, "{report}");
    assert_eq!(results["states"][0], "open", "{report}");
}
