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

/// The connection states a script's summary lists, in order.
fn states_of(summary: &Value) -> Vec<&str> {
    summary["states"]
        .as_array()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Reads lines until the script's `done {json}`; its summary.
async fn summary(out: &mut Lines) -> Value {
    loop {
        if let Some(json) = next_line(out).await.strip_prefix("done ") {
            return serde_json::from_str(json).expect("a JSON summary");
        }
    }
}

/// Runs `clients/js/test/SCRIPT` with `args` in Node; its stdin, and its stdout
/// line by line.
fn node(script: &str, args: &[&str]) -> (tokio::process::Child, tokio::process::ChildStdin, Lines) {
    let path = format!("{}/clients/js/test/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = tokio::process::Command::new("node")
        .arg("--experimental-websocket")
        .arg(path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node (./test.sh installs it)");
    let stdin = child.stdin.take().expect("stdin");
    let out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, stdin, out)
}

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
    let (_node, mut stdin, mut out) = node("restart.mjs", &[&format!("http://{addr}"), &POINTS.to_string()]);
    while next_line(&mut out).await != "acked 300" {}
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    stdin.write_all(b"down\n").await.unwrap();
    while next_line(&mut out).await != "queued-offline" {}
    let (_server, again) = serve_hub(&db.url(), &addr, &[]).await;
    assert_eq!(again, addr, "the same port");
    stdin.write_all(b"up\n").await.unwrap();
    let summary = summary(&mut out).await;

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
    let states = states_of(&summary);
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
/// points, with the page as a device; Chromium and the server agree on
/// permessage-deflate.
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
    for side in ["client", "device"] {
        let agreed = results["extensions"][side].as_str().unwrap_or_default();
        assert!(agreed.starts_with("permessage-deflate"), "{side}: {report}");
    }
}

/// The control API in the JavaScript client across a server restart: scan,
/// connect, read, subscribe; after the restart it connects and subscribes again by
/// itself and the notifications carry on.
#[tokio::test]
async fn the_js_control_client_reconnects_and_resubscribes_after_a_restart() {
    let db = TempDb::new();
    let (mut server, addr) = serve_hub(&db.url(), "127.0.0.1:0", &[]).await;
    let (_node, mut stdin, mut out) = node("control.mjs", &[&format!("http://{addr}")]);
    while next_line(&mut out).await != "subscribed" {}
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    let (_server, again) = serve_hub(&db.url(), &addr, &[]).await;
    assert_eq!(again, addr, "the same port");
    stdin.write_all(b"restarted\n").await.unwrap();
    let summary = summary(&mut out).await;
    assert!(
        summary["found"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == "C0:FF:EE:00:00:01"),
        "{summary}"
    );
    assert_eq!(summary["battery"]["unit"], "%", "{summary}");
    assert!(
        summary["after"].as_u64().unwrap() >= 2,
        "notifications after the restart: {summary}"
    );
    assert_eq!(
        summary["again"],
        serde_json::json!({"devices": 1, "subscriptions": 1}),
        "{summary}"
    );
    assert_eq!(summary["refused"], "ATTRIBUTE_NOT_FOUND", "{summary}");
    let states = states_of(&summary);
    assert!(states.contains(&"reconnecting"), "{states:?}");
}
