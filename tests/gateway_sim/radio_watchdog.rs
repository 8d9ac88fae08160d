//! The radio watchdog: a radio that stops hearing advertisements gets its scan
//! restarted, then a power cycle.

use std::time::Duration;

use crate::common::*;
use gattway::ble::ScanFilter;
use gattway::gateway::GatewayConfig;

/// Waits until the radio has heard an advertisement in the last `ms` milliseconds.
async fn hears_within(rig: &Rig, what: &str, ms: u64) {
    within(what, async {
        loop {
            let radio = rig.gateway.radios().await.remove(0);
            if radio.last_advert_age_ms.is_some_and(|age| age < ms) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// The watchdog's count of `action` recoveries that worked.
async fn recoveries(rig: &Rig, action: &str) -> u64 {
    let wanted =
        format!("gattway_radio_recoveries_total{{radio=\"sim\",action=\"{action}\",outcome=\"ok\"}} ");
    let text = rig.gateway.render_metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&wanted))
        .map_or(0, |n| n.parse().expect("a count"))
}

/// Waits for the watchdog's `n`th `action` recovery.
async fn recovered(rig: &Rig, action: &str, n: u64) {
    within(action, async {
        while recoveries(rig, action).await < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_deaf_radio_gets_its_scan_restarted_then_a_power_cycle() {
    let rig = rig_with(
        GatewayConfig {
            watchdog_stall_ms: 300,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    let scan = rig
        .gateway
        .scan(ScanFilter::default(), Duration::from_secs(60))
        .await
        .unwrap();
    hears_within(&rig, "adverts", 100).await;
    assert_eq!(
        recoveries(&rig, "restart_scan").await,
        0,
        "a working radio is left alone"
    );

    // A stuck scanner: a scan restart brings it back.
    rig.sim.stall(gattway::ble::sim::Stall::Scanner);
    recovered(&rig, "restart_scan", 1).await;
    hears_within(&rig, "adverts after the scan restart", 100).await;
    assert_eq!(recoveries(&rig, "power_cycle").await, 0);

    // A stuck adapter: the restart does not help, the power cycle does.
    rig.sim.stall(gattway::ble::sim::Stall::Adapter);
    recovered(&rig, "power_cycle", 1).await;
    hears_within(&rig, "adverts after the power cycle", 100).await;
    assert_eq!(recoveries(&rig, "restart_scan").await, 2);
    let radio = rig.gateway.radios().await.remove(0);
    assert_eq!(radio.state, gattway::gateway::RadioState::Ok);
    drop(scan);
}
