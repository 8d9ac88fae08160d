//! The operator dashboard at `/` in Debian's Chromium (tests/browser/dashboard.mjs):
//! the radio card, a live scan, the GATT explorer reading (decoded) and subscribing,
//! the packet log filtered, the device hub (a live chart that moves, history
//! buckets, a command sent to `succeeded` with its timeline), at desktop and phone
//! width with nothing overflowing, and
//! no page error. Screenshots of each view go to `$CARGO_TARGET_DIR/screenshots/{open,signed-in}/`.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn the_dashboard_scans_explores_and_shows_the_packet_log() {
    dashboard_flow(Default::default(), None).await;
}

#[tokio::test]
async fn with_credentials_the_dashboard_signs_in_first() {
    use gattway::auth::Scope;
    let auth = gattway::auth::AuthConfig {
        api_keys: vec![api_key(
            "operator-key",
            vec![Scope::BleAdmin, Scope::HubClient],
            vec![],
        )],
        ..Default::default()
    };
    let r = dashboard_flow(auth, Some("operator-key")).await;
    assert_eq!(r["desktop.loginShown"], true);
    assert_eq!(r["phone.loginShown"], true);
}

/// The whole tour of the dashboard (signing in with `token` first when given); the
/// report's results.
async fn dashboard_flow(auth: gattway::auth::AuthConfig, token: Option<&str>) -> serde_json::Value {
    let rig = rig();
    let db = TempDb::new();
    // The hub with the simulator's feed: the heart-rate monitor's readings are its
    // telemetry, and reset_energy_expended its command.
    let hub = gattway::hub::HubConfig {
        sim_feed: true,
        ..hub_config()
    };
    let (server, _hub) = start_hub_server(&rig.gateway, &db.url(), hub, auth).await;
    // A bridge session's exclusive hold on the UART device, for the dashboard to release.
    let uart = gattway::ble::DeviceId::new(UART);
    rig.gateway
        .connect(UART, gattway::gateway::ConnectOptions::default())
        .await
        .unwrap();
    let lease = rig.gateway.lease(&uart, "bridge session 7", false).unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    // A folder per flow: the two tests run at once, and a screenshot being written
    // by one was read half-written by the other.
    let flow = if token.is_some() { "signed-in" } else { "open" };
    let shots = target.join("screenshots").join(flow);
    std::fs::create_dir_all(&shots).unwrap();
    let base = server.url("");
    let mut args = vec![base.trim_end_matches('/').as_ref(), shots.as_os_str()];
    if let Some(t) = token {
        args.push(t.as_ref());
    }
    let report = common::browser::run("dashboard.mjs", &args).await;
    let r = &report["results"];
    for view in ["desktop", "phone"] {
        let card = r[format!("{view}.card")].as_str().unwrap();
        assert!(
            card.contains("sim · ok") && card.contains("scanning: ") && card.contains("adverts/s"),
            "{card}"
        );
        assert!(r[format!("{view}.scanRows")].as_u64().unwrap() >= 5, "{r:#}");
        assert_eq!(r[format!("{view}.read")], "01 = chest");
        assert!(r[format!("{view}.notifications")].as_u64().unwrap() >= 2);
        assert!(r[format!("{view}.packets")].as_u64().unwrap() > 0);
        assert_eq!(r[format!("{view}.packetDirs")], json!(["RX"]));
        assert_eq!(
            r[format!("{view}.overflow")],
            false,
            "{view} is wider than its window"
        );
        assert_eq!(r[format!("{view}.chartMoved")], true, "{r:#}");
        assert_eq!(r[format!("{view}.chartCanvas")], 1);
        assert!(r[format!("{view}.buckets")].as_u64().unwrap() >= 1, "{r:#}");
        assert_eq!(r[format!("{view}.command")], "succeeded");
        let timeline: Vec<String> = (r[format!("{view}.timeline")].as_array().unwrap().iter())
            .map(|t| t.as_str().unwrap().rsplit(' ').next().unwrap().to_string())
            .collect();
        assert_eq!(timeline, ["queued", "sent", "succeeded"], "{r:#}");
        for shot in ["radios", "scan", "explorer", "packets", "hub", "leases"] {
            let png = shots.join(format!("dashboard-{shot}-{view}.png"));
            assert!(
                std::fs::metadata(&png).is_ok_and(|m| m.len() > 1000),
                "{}",
                png.display()
            );
        }
    }
    assert_eq!(r["desktop.heldBy"], "bridge session 7");
    assert_eq!(
        r["desktop.released"],
        format!("{UART} released from bridge session 7")
    );
    assert!(rig.gateway.lease_of(&uart).is_none(), "the lease is gone");
    drop(lease);
    server.stop().await;
    r.clone()
}
