//! Finding devices: every simulated device found with a plausible RSSI, filters by
//! name, service and RSSI, connecting by a name prefix, and forgetting devices not
//! heard for the expiry.

use std::time::Duration;

use super::connect;
use crate::common::*;
use gattway::ble::{well_known as wk, ScanFilter};
use gattway::gateway::{ConnectOptions, GatewayConfig, GatewayError};

#[tokio::test]
async fn scan_finds_every_simulated_device_with_plausible_rssi() {
    let rig = rig();
    let found = rig.scan(ScanFilter::default(), 400).await;
    let ids: Vec<&str> = found.iter().map(|d| d.id.as_str()).collect();
    for want in [HRM, BATTERY, ENV, UART, ROAMER, CS108, BTHOME, BTHOME_SECURE] {
        assert!(ids.contains(&want), "{want} not found in {ids:?}");
    }
    assert_eq!(found.len(), 8, "each device once: {ids:?}");
    for d in &found {
        assert!((-100..=-30).contains(&d.rssi), "{} rssi {}", d.id, d.rssi);
        assert!(d.name.is_some());
    }
    assert!(
        found.windows(2).all(|w| w[0].rssi >= w[1].rssi),
        "strongest first"
    );
}

#[tokio::test]
async fn scan_filters_by_name_service_and_rssi() {
    let rig = rig();
    let scan = |filter| rig.gateway.scan(filter, Duration::from_millis(300));
    let by_service = scan(ScanFilter {
        services: vec![wk::HEART_RATE_SERVICE],
        ..Default::default()
    })
    .await
    .unwrap()
    .collect()
    .await;
    assert_eq!(
        by_service.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        vec![HRM]
    );
    let by_name = scan(ScanFilter {
        name_prefix: Some("CS108".into()),
        ..Default::default()
    })
    .await
    .unwrap()
    .collect()
    .await;
    assert_eq!(by_name.len(), 1);
    assert_eq!(by_name[0].id.as_str(), CS108);
    let strong = scan(ScanFilter {
        min_rssi: Some(-70),
        ..Default::default()
    })
    .await
    .unwrap()
    .collect()
    .await;
    assert!(strong.iter().all(|d| d.rssi >= -70));
    assert!(
        strong.iter().any(|d| d.id.as_str() == CS108),
        "the reader sits near -55 dBm"
    );
    assert!(
        !strong.iter().any(|d| d.id.as_str() == ROAMER),
        "the roamer sits near -80 dBm (never above -72)"
    );
}

#[tokio::test]
async fn connect_by_name_prefix_and_ambiguity() {
    let rig = rig();
    let info = within(
        "connect",
        rig.gateway.connect("Gattway H", ConnectOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(info.id.as_str(), HRM);
    assert_eq!(info.name.as_deref(), Some("Gattway HRM"));
    // Hear everyone, then a prefix that several share is refused with the list.
    rig.scan(ScanFilter::default(), 300).await;
    let err = rig
        .gateway
        .connect("Gattway", ConnectOptions::default())
        .await
        .unwrap_err();
    match err {
        GatewayError::Ambiguous { candidates, .. } => assert!(candidates.len() >= 4, "{candidates:?}"),
        other => panic!("{other:?}"),
    }
    let with_service = rig
        .gateway
        .connect(
            "Gattway",
            ConnectOptions {
                services: vec![wk::ENVIRONMENTAL_SENSING],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(with_service.id.as_str(), ENV);
}

#[tokio::test]
async fn devices_not_heard_for_the_expiry_are_forgotten_unless_connected() {
    let rig = rig_with(
        GatewayConfig {
            device_expiry_ms: 300,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    connect(&rig, UART).await;
    let heard = rig
        .gateway
        .scan(ScanFilter::default(), Duration::from_millis(200))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(heard.len() > 1, "{heard:?}");
    // Scanning stopped, nothing is heard: all go but the connected one.
    within("expiry", async {
        while rig.gateway.known_devices().len() > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let left: Vec<String> = rig
        .gateway
        .known_devices()
        .into_iter()
        .map(|d| d.id.to_string())
        .collect();
    assert_eq!(left, [UART]);
}
