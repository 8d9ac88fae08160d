//! The `gattway` binary as a user runs it: `scan` prints the simulated devices,
//! `serve` listens where it says it does and answers `/healthz`.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn gattway() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gattway"));
    c.env_remove("GATTWAY_CONFIG")
        .env("GATTWAY_SIM_TIME_SCALE", "10")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

#[tokio::test]
async fn scan_prints_the_simulated_devices_as_json() {
    let out = gattway()
        .args(["--backend", "sim", "scan", "--timeout", "1", "--json"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let devices: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let mut names: Vec<&str> = devices.iter().filter_map(|d| d["name"].as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "CS108Reader000001",
            "Gattway Battery",
            "Gattway Env",
            "Gattway HRM",
            "Gattway Roamer",
            "Gattway UART"
        ]
    );
    let hrm = devices.iter().find(|d| d["name"] == "Gattway HRM").unwrap();
    assert_eq!(hrm["id"], "C0:FF:EE:00:00:01");
    assert_eq!(hrm["manufacturer_data"]["89"], "0102");
    assert!(hrm["rssi"].as_i64().unwrap() < -30);
}

#[tokio::test]
async fn scan_table_filters_by_service() {
    let out = gattway()
        .args(["--backend", "sim", "scan", "--timeout", "1", "--service", "181a"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("Gattway Env"), "{table}");
    assert!(table.contains("181a (Environmental Sensing)"), "{table}");
    assert!(!table.contains("Gattway HRM"), "{table}");
    assert!(table.trim_end().ends_with("1 device(s)"), "{table}");
}

#[tokio::test]
async fn bad_arguments_fail_with_a_message() {
    let out = gattway()
        .args(["scan", "--service", "nope"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid UUID"));
    let out = gattway()
        .args(["--backend", "sim", "scan"])
        .env("GATTWAY_GATEWAY_MAX_CONNECTIONS", "lots")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GATTWAY_GATEWAY_MAX_CONNECTIONS"));
}

#[tokio::test]
async fn serve_logs_its_address_answers_healthz_and_stops_on_sigterm() {
    let mut child = gattway()
        .args(["--backend", "sim", "serve", "--listen", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                return rest.split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("server exited without saying where it listens");
    })
    .await
    .expect("listening line");
    let body: serde_json::Value = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["backend"], "sim");

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_on_stderr() {
    let out = gattway()
        .args([
            "--backend",
            "sim",
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "scan",
            "--timeout",
            "0.3",
            "--json",
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
    // stdout stays clean JSON for the caller.
    let _: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
}
