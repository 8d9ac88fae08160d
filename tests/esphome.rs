//! gattway as an ESPHome Bluetooth proxy, driven by Home Assistant's own client
//! (`aioesphomeapi` from PyPI, in the reference venv): device info with the proxy's
//! feature flags, raw advertisements, connect, GATT services, reads, notifications,
//! connection slots and disconnect, in plaintext and over Noise; a wrong key and a
//! missing one are refused as an ESP32 refuses them.

mod common;

use common::{rig, HRM};
use gattway::esphome_proxy::{self, EsphomeConfig};
use gattway::gateway::Gateway;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A proxy over `gateway` on a free loopback port; stops when the token drops.
async fn start_proxy(gateway: &Gateway, noise_psk: &str) -> (u16, tokio_util::sync::DropGuard) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let config = EsphomeConfig {
        listen: format!("127.0.0.1:{port}"),
        noise_psk: noise_psk.into(),
        name: "gattway-test".into(),
    };
    tokio::spawn(esphome_proxy::serve(
        listener,
        gateway.clone(),
        config,
        stop.clone(),
    ));
    (port, stop.drop_guard())
}

/// Runs the reference client against the proxy; its JSON report.
async fn home_assistant(port: u16, device: &str, key: Option<&str>) -> Value {
    let python = tokio::task::spawn_blocking(common::reference::python)
        .await
        .unwrap();
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(common::reference::script("esphome_client.py"))
        .args(["127.0.0.1", &port.to_string(), device])
        .args(key)
        .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(90), cmd.output())
        .await
        .expect("the reference client finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|_| {
        panic!(
            "no report; stdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// What a user sees of the proxy is what the simulated heart-rate monitor is.
fn assert_drove_the_heart_rate_monitor(report: &Value) {
    assert!(report.get("error").is_none(), "{report}");
    assert_eq!(report["name"], "gattway-test");
    assert_eq!(report["esphome_version"], "2026.6.2");
    assert_eq!(report["active"], true, "{report}");
    assert_eq!(report["raw"], true, "{report}");
    // Its raw advertisement, as on the air: flags, then the complete name.
    let data = report["heard"][HRM]["data"].as_str().unwrap();
    assert!(data.starts_with("020106"), "{data}");
    assert!(data.contains(&hex::encode("Gattway HRM")), "{data}");
    let services: Vec<&str> = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["uuid"].as_str().unwrap())
        .collect();
    assert!(
        services.contains(&"0000180d-0000-1000-8000-00805f9b34fb"),
        "{services:?}"
    );
    // Body sensor location: chest (1); the device information strings.
    assert_eq!(report["reads"]["00002a38-0000-1000-8000-00805f9b34fb"], "01");
    assert_eq!(
        report["reads"]["00002a24-0000-1000-8000-00805f9b34fb"],
        hex::encode("HRM-1")
    );
    // A heart-rate measurement: flags, then a rate in a plausible range.
    let notification = hex::decode(report["notification"].as_str().unwrap()).unwrap();
    assert!((40..=200).contains(&notification[1]), "{notification:?}");
    // Connected with the MTU the device negotiates, then cleanly disconnected.
    let states = report["states"].as_array().unwrap();
    assert_eq!(states.first().unwrap()[0], true, "{states:?}");
    assert!(states.first().unwrap()[1].as_u64().unwrap() >= 23);
    assert_eq!(states.last().unwrap()[0], false, "{states:?}");
    // Slots: all free at first, one taken while connected.
    let slots = report["slots"].as_array().unwrap();
    let limit = slots[0][1].as_u64().unwrap();
    assert!(
        slots.iter().any(|s| s[0].as_u64() == Some(limit - 1)),
        "{slots:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistants_client_scans_connects_reads_and_subscribes_through_the_proxy() {
    let rig = rig();
    let (port, _stop) = start_proxy(&rig.gateway, "").await;
    let report = home_assistant(port, HRM, None).await;
    assert_drove_the_heart_rate_monitor(&report);
    // The client's link is gone with its disconnect.
    common::wait_until("the link to close", || rig.gateway.connections().is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_proxy_serves_the_right_key_and_refuses_a_wrong_or_missing_one() {
    let key = "px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2+O2pNPbedtA=";
    let rig = rig();
    let (port, _stop) = start_proxy(&rig.gateway, key).await;
    assert_drove_the_heart_rate_monitor(&home_assistant(port, HRM, Some(key)).await);
    let wrong = home_assistant(port, HRM, Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")).await;
    assert_eq!(wrong["error"], "InvalidEncryptionKeyAPIError", "{wrong}");
    let plaintext = home_assistant(port, HRM, None).await;
    assert_eq!(plaintext["error"], "RequiresEncryptionAPIError", "{plaintext}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_proxy_tells_an_encrypting_client_so() {
    let rig = rig();
    let (port, _stop) = start_proxy(&rig.gateway, "").await;
    let report = home_assistant(port, HRM, Some("px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2+O2pNPbedtA=")).await;
    assert_eq!(report["error"], "EncryptionPlaintextAPIError", "{report}");
}
