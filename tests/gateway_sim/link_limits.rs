//! When the gateway closes links itself: the connection limit closing the least
//! recently used, an idle link, and shutdown.

use super::{connect, id};
use crate::common::*;
use gattway::ble::{well_known as wk, DisconnectReason};
use gattway::gateway::{ConnectOptions, GatewayConfig, GatewayError, GatewayEvent};

#[tokio::test]
async fn the_connection_limit_closes_the_least_recently_used_link() {
    let rig = rig_with(
        GatewayConfig {
            max_connections: 2,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    connect(&rig, HRM).await;
    connect(&rig, BATTERY).await;
    // Use the HRM so the battery is the least recently used.
    rig.gateway
        .device(&id(HRM))
        .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .unwrap();
    connect(&rig, ENV).await;
    let open: Vec<String> = rig
        .gateway
        .connections()
        .iter()
        .map(|c| c.id.to_string())
        .collect();
    assert_eq!(open, vec![HRM.to_string(), ENV.to_string()]);
    assert!(!rig.control(BATTERY).is_connected());

    let _a = rig.gateway.lease(&id(HRM), "a", false).unwrap();
    let _b = rig.gateway.lease(&id(ENV), "b", false).unwrap();
    let err = rig
        .gateway
        .connect(UART, ConnectOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err, GatewayError::ConnectionLimit(2));
}

#[tokio::test]
async fn an_idle_link_is_closed() {
    let rig = rig_with(
        GatewayConfig {
            idle_timeout_ms: 150,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    let mut events = rig.gateway.events();
    connect(&rig, BATTERY).await;
    connect(&rig, HRM).await;
    // A subscribed device is in use, however quiet.
    let _sub = rig
        .gateway
        .device(&id(HRM))
        .subscribe(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
        .await
        .unwrap();
    let e = wait_event(&mut events, "idle disconnect", |e| {
        matches!(e, GatewayEvent::Disconnected { .. })
    })
    .await;
    assert_eq!(
        e,
        GatewayEvent::Disconnected {
            id: id(BATTERY),
            reason: DisconnectReason::Requested,
            will_reconnect: false
        }
    );
    assert!(rig.control(HRM).is_connected());
}

#[tokio::test]
async fn shutdown_disconnects_everything() {
    let rig = rig();
    for d in [HRM, ENV, CS108] {
        connect(&rig, d).await;
    }
    assert_eq!(rig.gateway.stats().connected, 3);
    within("shutdown", rig.gateway.shutdown()).await;
    for d in [HRM, ENV, CS108] {
        assert!(!rig.control(d).is_connected(), "{d} still connected");
    }
    wait_until("actors gone", || rig.gateway.stats().device_tasks == 0).await;
    let err = rig
        .gateway
        .connect(HRM, ConnectOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err, GatewayError::ShuttingDown);
}
