//! The Web Bluetooth polyfill (`/webbluetooth.js`) in Debian's Chromium through
//! playwright-core (tests/browser/webbluetooth.mjs), forced over Chromium's own
//! navigator.bluetooth, against the simulated devices: the flows of Chrome's Web
//! Bluetooth samples (battery level, device information, notifications, read
//! descriptors, reset energy expended, device disconnect, link loss, discover
//! services and characteristics), watchAdvertisements on a broadcasting sensor, the
//! chooser driven by its button names, standard errors, granted devices, and a
//! foreign origin refused. No page logs an error.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn the_web_bluetooth_samples_run_unmodified_on_the_polyfill() {
    let rig = rig();
    let server = start_server(&rig.gateway, Default::default()).await;
    let base = server.url("");
    let report = common::browser::run("webbluetooth.mjs", &[base.trim_end_matches('/').as_ref()]).await;
    let r = &report["results"];

    assert_eq!(r["battery"]["name"], "Gattway Battery");
    assert!(r["battery"]["level"].as_u64().is_some_and(|l| l <= 100), "{r:#}");
    assert_eq!(r["battery"]["isDataView"], true);
    assert_eq!(
        r["deviceInfo"],
        json!({"manufacturer": "gattway simulator", "model": "HRM-1"})
    );
    let bpms = r["notifications"]["bpms"].as_array().unwrap();
    assert_eq!(bpms.len(), 3);
    assert!(
        bpms.iter().all(|b| (40..=200).contains(&b.as_u64().unwrap())),
        "{bpms:?}"
    );
    assert_eq!(r["notifications"]["notify"], true);
    assert_eq!(r["notifications"]["read"], false);
    assert!(r["descriptors"]["count"].as_u64().unwrap() >= 1);
    assert!(!r["descriptors"]["text"].as_str().unwrap().is_empty(), "{r:#}");
    assert_eq!(r["descriptors"]["notGranted"], "SecurityError");
    assert_eq!(r["descriptors"]["missing"], "NotFoundError");
    assert_eq!(r["descriptors"]["badName"], "TypeError");
    assert_eq!(r["resetEnergy"], json!({"written": true, "value": 1}));
    assert_eq!(
        r["disconnect"],
        json!({"before": true, "after": false, "events": ["gattserverdisconnected"]})
    );
    assert_eq!(r["linkLoss"]["connectedAfter"], false);
    assert!(r["linkLoss"]["reconnectedLevel"].as_u64().is_some());
    let hr = &r["discover"]["0000180d-0000-1000-8000-00805f9b34fb"];
    assert!(
        hr.as_array()
            .unwrap()
            .contains(&json!("00002a37-0000-1000-8000-00805f9b34fb")),
        "{r:#}"
    );
    assert!(r["discover"]["0000180a-0000-1000-8000-00805f9b34fb"].is_array());
    assert_eq!(r["cancel"], "NotFoundError");
    assert_eq!(r["availability"], true);
    assert_eq!(r["typeErrors"], json!(["TypeError", "TypeError", "TypeError"]));
    assert_eq!(r["grantedFresh"], 0);
    assert_eq!(r["grantedAfterReload"], json!(["Gattway Battery"]));
    // BTHome v2's first byte: its device information (0x40, version 2, unencrypted).
    assert_eq!(
        r["advertisements"],
        json!({"name": "Gattway BTHome", "rssi": "number", "firstByte": 64, "watching": true, "after": false})
    );
    assert_eq!(r["foreign"], "NetworkError");
    server.stop().await;
}
