//! Links that fail and come back: connects retried with backoff, a dropped link
//! reconnected with its notifications, or not without auto-reconnect, and a device
//! gone out of range.

use super::{connect, id};
use crate::common::*;
use gattway::ble::{well_known as wk, BleError, DisconnectReason};
use gattway::gateway::{ConnectOptions, GatewayConfig, GatewayError, GatewayEvent};

#[tokio::test]
async fn failed_connects_are_retried_with_backoff() {
    let rig = rig();
    rig.control(HRM).fail_next_connects(2);
    let info = within("connect", rig.gateway.connect(HRM, ConnectOptions::default()))
        .await
        .expect("third attempt succeeds");
    assert_eq!(info.mtu, 247);

    rig.control(BATTERY).fail_next_connects(10);
    let err = within("connect", rig.gateway.connect(BATTERY, ConnectOptions::default()))
        .await
        .unwrap_err();
    match &err {
        GatewayError::ConnectFailed { attempts, last, .. } => {
            assert_eq!(*attempts, 3);
            assert!(matches!(last, BleError::ConnectFailed { .. }));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.code(), "connect_failed");
    wait_until("failed actor gone", || rig.gateway.stats().device_tasks == 1).await;
}

#[tokio::test]
async fn a_dropped_link_reconnects_and_notifications_resume() {
    let rig = rig();
    let mut events = rig.gateway.events();
    connect(&rig, HRM).await;
    let dev = rig.gateway.device(&id(HRM));
    let mut sub = dev
        .subscribe(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
        .await
        .unwrap();
    next_value(&mut sub).await;
    rig.control(HRM).drop_link();
    let e = wait_event(&mut events, "disconnect", |e| {
        matches!(e, GatewayEvent::Disconnected { .. })
    })
    .await;
    assert_eq!(
        e,
        GatewayEvent::Disconnected {
            id: id(HRM),
            reason: DisconnectReason::LinkLost,
            will_reconnect: true
        }
    );
    wait_event(&mut events, "reconnect", |e| {
        matches!(e, GatewayEvent::Reconnected { .. })
    })
    .await;
    assert!(rig.control(HRM).is_connected());
    // The same subscription keeps delivering: the gateway re-enabled notifications.
    next_value(&mut sub).await;
    next_value(&mut sub).await;
    assert_eq!(
        dev.read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
            .await
            .unwrap()[0],
        1
    );
}

#[tokio::test]
async fn without_auto_reconnect_a_drop_ends_subscriptions() {
    let rig = rig_with(
        GatewayConfig {
            auto_reconnect: false,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    let mut events = rig.gateway.events();
    connect(&rig, ENV).await;
    let dev = rig.gateway.device(&id(ENV));
    let mut sub = dev
        .subscribe(wk::ENVIRONMENTAL_SENSING, wk::HUMIDITY)
        .await
        .unwrap();
    rig.control(ENV).drop_link();
    let e = wait_event(&mut events, "disconnect", |e| {
        matches!(e, GatewayEvent::Disconnected { .. })
    })
    .await;
    assert!(matches!(
        e,
        GatewayEvent::Disconnected {
            will_reconnect: false,
            ..
        }
    ));
    within("subscription end", async {
        while let Some(ev) = sub.recv().await {
            let _ = ev;
        }
    })
    .await;
    wait_until("actor gone", || rig.gateway.stats().device_tasks == 0).await;
    let err = dev
        .read(wk::ENVIRONMENTAL_SENSING, wk::HUMIDITY)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_connected");
}

#[tokio::test]
async fn a_link_dropped_mid_operation_fails_that_operation_then_recovers() {
    let rig = rig();
    let mut events = rig.gateway.events();
    connect(&rig, BATTERY).await;
    let dev = rig.gateway.device(&id(BATTERY));
    rig.control(BATTERY).drop_link_on_next_op();
    let err = dev
        .read(wk::BATTERY_SERVICE, wk::BATTERY_LEVEL)
        .await
        .unwrap_err();
    assert_eq!(err, GatewayError::Ble(BleError::LinkLost(id(BATTERY))));
    wait_event(&mut events, "reconnect", |e| {
        matches!(e, GatewayEvent::Reconnected { .. })
    })
    .await;
    dev.read(wk::BATTERY_SERVICE, wk::BATTERY_LEVEL)
        .await
        .expect("works after reconnect");
}

#[tokio::test]
async fn a_device_out_of_range_drops_and_cannot_be_reached() {
    let rig = rig_with(
        GatewayConfig {
            reconnect_attempts: 2,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    let mut events = rig.gateway.events();
    connect(&rig, HRM).await;
    rig.control(HRM).set_in_range(Some(false));
    wait_event(&mut events, "given up", |e| {
        matches!(
            e,
            GatewayEvent::Disconnected {
                will_reconnect: false,
                ..
            }
        )
    })
    .await;
    let err = rig
        .gateway
        .connect(HRM, ConnectOptions::default())
        .await
        .unwrap_err();
    match err {
        GatewayError::ConnectFailed {
            last: BleError::ConnectFailed { reason, .. },
            ..
        } => {
            assert!(reason.contains("out of range"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    rig.control(HRM).set_in_range(None);
    connect(&rig, HRM).await;
}
