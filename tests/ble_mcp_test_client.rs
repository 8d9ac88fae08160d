//! Wire compatibility with the real thing: ble-mcp-test's own `NodeBleClient` (from
//! npm, pinned in tests/compat/package-lock.json) connects through gattway's bridge
//! to the simulated CS108 and gets the reader's answer to a command frame.
//! Needs Node.js and npm; installs the pinned client on first run.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;

fn compat_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/compat")
}

/// `npm ci` the pinned client once; scripts are skipped so its optional native BLE
/// dependency is never built (the client itself needs only `ws`).
fn ensure_client_installed() {
    let dir = compat_dir();
    if dir.join("node_modules/ble-mcp-test/package.json").exists() {
        return;
    }
    let status = std::process::Command::new("npm")
        .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status()
        .expect("npm must be installed to run the ble-mcp-test compatibility test");
    assert!(status.success(), "npm ci in tests/compat failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ble_mcp_test_node_client_talks_to_the_bridge() {
    ensure_client_installed();
    let rig = rig();
    let server = start_server(&rig.gateway, Default::default()).await;
    let run = tokio::process::Command::new("node")
        .arg(compat_dir().join("node_bridge_client.mjs"))
        .arg(format!("ws://{}", server.addr))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the Node client finished")
        .expect("node must be installed to run the ble-mcp-test compatibility test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "NodeBleClient failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("ok battery answer: a7 b3 04 d9 82 9e"),
        "{stdout}"
    );
    // Its disconnect released the reader.
    wait_until("reader released", || {
        rig.gateway
            .lease_of(&gattway::ble::DeviceId::new(CS108))
            .is_none()
    })
    .await;
    server.stop().await;
}
