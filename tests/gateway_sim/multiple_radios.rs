//! Several radios in one world: each hears it from its own distance, they share
//! one link per device, links go through the radio that hears best and fail over.

use std::time::Duration;

use super::id;
use crate::common::*;
use gattway::ble::{well_known as wk, ScanFilter};
use gattway::gateway::ConnectOptions;

#[tokio::test]
async fn radios_of_one_world_hear_it_from_their_own_distance_and_share_one_link() {
    use gattway::ble::{Backend, BackendEvent};
    let sim = gattway::ble::sim::SimBackend::new(&sim_config(100.0, vec![])).expect("simulator");
    let (near, far) = (sim.radio("near", 0), sim.radio("far", -20));
    let (mut near_events, mut far_events) = (near.events(), far.events());
    let heard = |rx: &mut tokio::sync::broadcast::Receiver<BackendEvent>| {
        let mut rx = rx.resubscribe();
        async move {
            loop {
                if let Ok(BackendEvent::Advertisement(a)) = rx.recv().await {
                    if a.id.as_str() == HRM {
                        return a.rssi;
                    }
                }
            }
        }
    };
    // Only a scanning radio hears; each at its own distance.
    near.start_scan(&ScanFilter::default()).await.unwrap();
    let loud = within("near hears", heard(&mut near_events)).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(100), heard(&mut far_events))
            .await
            .is_err(),
        "a radio that does not scan hears nothing"
    );
    far.start_scan(&ScanFilter::default()).await.unwrap();
    let faint = within("far hears", heard(&mut far_events)).await;
    assert!(faint < loud - 10, "far {faint} dBm, near {loud} dBm");

    // One link, through one radio.
    near.connect(&id(HRM)).await.expect("connect through near");
    assert!(far.connect(&id(HRM)).await.is_err(), "linked through near");
    assert!(far
        .read(&id(HRM), wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .is_err());
    near.read(&id(HRM), wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .expect("read through near");

    // The near radio dies: its link drops (it says so), and far takes the device.
    near.set_powered(false);
    within("near's link to drop", async {
        loop {
            if let Ok(BackendEvent::Disconnected { id, .. }) = near_events.recv().await {
                if id.as_str() == HRM {
                    return;
                }
            }
        }
    })
    .await;
    assert!(near.adapter_status().await.is_err());
    within("far to connect", async {
        while far.connect(&id(HRM)).await.is_err() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    far.read(&id(HRM), wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .expect("read through far");
}

#[tokio::test]
async fn links_go_through_the_radio_that_hears_best_fill_its_slots_and_fail_over() {
    let (gateway, near, _far) = two_radios(1, 2);
    let heard = gateway
        .scan(ScanFilter::default(), Duration::from_millis(300))
        .await
        .unwrap()
        .collect()
        .await;
    let hrm = heard.iter().find(|d| d.id.as_str() == HRM).expect("HRM heard");
    assert_eq!(hrm.radio.as_deref(), Some("near"), "the radio that hears it best");

    // The strongest radio first; when it is full, the next.
    for target in [HRM, UART, ENV] {
        within("connect", gateway.connect(target, ConnectOptions::default()))
            .await
            .unwrap_or_else(|e| panic!("{target}: {e}"));
    }
    assert_eq!(link_radio(&gateway, HRM).as_deref(), Some("near"));
    assert_eq!(
        link_radio(&gateway, UART).as_deref(),
        Some("far"),
        "near's one slot is taken"
    );
    assert_eq!(link_radio(&gateway, ENV).as_deref(), Some("far"));
    let full = gateway
        .connect(BATTERY, ConnectOptions::default())
        .await
        .unwrap_err();
    assert_eq!(full.code(), "no_free_slot", "{full}");
    let slots: Vec<(String, usize, usize)> = gateway
        .radios()
        .await
        .into_iter()
        .map(|r| (r.name, r.slots_used, r.slots_free))
        .collect();
    assert_eq!(slots, [("near".into(), 1, 0), ("far".into(), 2, 0)]);

    // Near dies: its link moves to far, once far has room, with one reconnect.
    gateway.device(&id(ENV)).disconnect().await.unwrap();
    let mut events = gateway.events();
    near.set_powered(false);
    reconnected(&mut events, HRM).await;
    assert_eq!(link_radio(&gateway, HRM).as_deref(), Some("far"));
    let value = gateway
        .device(&id(HRM))
        .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .expect("read through far");
    assert_eq!(value.to_vec(), [0x01]);
    gateway.shutdown().await;
}
