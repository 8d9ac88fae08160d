//! Requests that fail: a read that never answers times out, and each bad request
//! gets its own clear error.

use std::time::Duration;

use super::{connect, id};
use crate::common::*;
use gattway::ble::{well_known as wk, BleError, Uuid, WriteKind};
use gattway::gateway::{ConnectOptions, GatewayConfig, GatewayError, Operation};

#[tokio::test]
async fn a_read_that_never_answers_times_out_and_the_device_stays_usable() {
    let rig = rig_with(
        GatewayConfig {
            op_timeout_ms: 200,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    connect(&rig, BATTERY).await;
    let dev = rig.gateway.device(&id(BATTERY));
    rig.control(BATTERY).hang_next_reads(1);
    let err = within("read", dev.read(wk::BATTERY_SERVICE, wk::BATTERY_LEVEL))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            GatewayError::Timeout {
                operation: Operation::Read,
                ..
            }
        ),
        "{err:?}"
    );
    dev.read(wk::BATTERY_SERVICE, wk::BATTERY_LEVEL)
        .await
        .expect("next read answers");
}

#[tokio::test]
async fn bad_requests_get_distinct_clear_errors() {
    let rig = rig();
    let quick = ConnectOptions {
        timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let err = rig
        .gateway
        .connect("AA:AA:AA:AA:AA:AA", quick.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "device_not_found", "{err}");
    let dev = rig.gateway.device(&id(HRM));
    let err = dev
        .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_connected");
    assert!(err.to_string().contains("not connected"));

    connect(&rig, HRM).await;
    let cases: Vec<(GatewayError, &str)> = vec![
        (
            dev.read(Uuid::from_u16(0x1234), wk::BATTERY_LEVEL)
                .await
                .unwrap_err(),
            "service_not_found",
        ),
        (
            dev.read(wk::HEART_RATE_SERVICE, Uuid::from_u16(0x2A99))
                .await
                .unwrap_err(),
            "characteristic_not_found",
        ),
        (
            dev.write(
                wk::HEART_RATE_SERVICE,
                wk::BODY_SENSOR_LOCATION,
                vec![2],
                WriteKind::WithResponse,
            )
            .await
            .unwrap_err(),
            "not_permitted",
        ),
        (
            dev.read(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
                .await
                .unwrap_err(),
            "not_permitted",
        ),
        (
            dev.subscribe(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
                .await
                .err()
                .unwrap(),
            "not_permitted",
        ),
        (
            dev.read_descriptor(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION, wk::CCCD)
                .await
                .unwrap_err(),
            "descriptor_not_found",
        ),
    ];
    for (err, code) in cases {
        assert_eq!(err.code(), code, "{err}");
    }
    connect(&rig, UART).await;
    let err = rig
        .gateway
        .device(&id(UART))
        .write(
            wk::NUS_SERVICE,
            wk::NUS_RX,
            vec![0u8; 300],
            WriteKind::WithResponse,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        GatewayError::Ble(BleError::ValueTooLong {
            characteristic: wk::NUS_RX,
            len: 300,
            max: 244
        })
    );
}
