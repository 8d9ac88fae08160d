//! Each built-in simulated device behaves as the real one: heart rate, battery and
//! environmental sensor, Nordic UART, the CS108 reader, a broadcasting sensor.

use std::time::Duration;

use super::{connect, id};
use crate::common::*;
use gattway::ble::sim::cs108;
use gattway::ble::{well_known as wk, ScanFilter, Uuid, WriteKind};

#[tokio::test]
async fn heart_rate_monitor_reads_and_notifies() {
    let rig = rig();
    connect(&rig, HRM).await;
    let dev = rig.gateway.device(&id(HRM));
    let services = dev.services().await.unwrap();
    let uuids: Vec<Uuid> = services.iter().map(|s| s.uuid).collect();
    assert_eq!(
        uuids,
        vec![
            wk::HEART_RATE_SERVICE,
            wk::BATTERY_SERVICE,
            wk::DEVICE_INFORMATION
        ]
    );
    let location = dev
        .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
        .await
        .unwrap();
    assert_eq!(&location[..], &[0x01], "chest");
    let mut sub = dev
        .subscribe(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
        .await
        .unwrap();
    for _ in 0..3 {
        let v = next_value(&mut sub).await;
        assert_eq!(v[0] & 0x01, 0, "u8 heart-rate format");
        assert!((40..=200).contains(&v[1]), "bpm {}", v[1]);
    }
    let maker = dev
        .read(wk::DEVICE_INFORMATION, wk::MANUFACTURER_NAME)
        .await
        .unwrap();
    assert_eq!(&maker[..], b"gattway simulator");
}

#[tokio::test]
async fn battery_and_environmental_sensor_values_are_plausible() {
    let rig = rig();
    connect(&rig, BATTERY).await;
    connect(&rig, ENV).await;
    let level = rig
        .gateway
        .device(&id(BATTERY))
        .read(wk::BATTERY_SERVICE, wk::BATTERY_LEVEL)
        .await
        .unwrap();
    assert!((1..=100).contains(&level[0]));
    let env = rig.gateway.device(&id(ENV));
    let t = env
        .read(wk::ENVIRONMENTAL_SENSING, wk::TEMPERATURE)
        .await
        .unwrap();
    let celsius = i16::from_le_bytes([t[0], t[1]]) as f64 / 100.0;
    assert!((15.0..=30.0).contains(&celsius), "{celsius} °C");
    let h = env.read(wk::ENVIRONMENTAL_SENSING, wk::HUMIDITY).await.unwrap();
    let percent = u16::from_le_bytes([h[0], h[1]]) as f64 / 100.0;
    assert!((20.0..=80.0).contains(&percent), "{percent} %");
    let desc = env
        .read_descriptor(wk::ENVIRONMENTAL_SENSING, wk::TEMPERATURE, wk::USER_DESCRIPTION)
        .await
        .unwrap();
    assert_eq!(&desc[..], b"Air temperature");
    let mut sub = env
        .subscribe(wk::ENVIRONMENTAL_SENSING, wk::TEMPERATURE)
        .await
        .unwrap();
    assert_eq!(next_value(&mut sub).await.len(), 2);
    let cccd = env
        .read_descriptor(wk::ENVIRONMENTAL_SENSING, wk::TEMPERATURE, wk::CCCD)
        .await
        .unwrap();
    assert_eq!(&cccd[..], &[0x01, 0x00], "notifications enabled");
}

#[tokio::test]
async fn nordic_uart_echoes_what_is_written() {
    let rig = rig();
    connect(&rig, "Gattway UART").await;
    let dev = rig.gateway.device(&id(UART));
    let mut tx = dev.subscribe(wk::NUS_SERVICE, wk::NUS_TX).await.unwrap();
    dev.write(
        wk::NUS_SERVICE,
        wk::NUS_RX,
        &b"hello"[..],
        WriteKind::WithResponse,
    )
    .await
    .unwrap();
    assert_eq!(&next_value(&mut tx).await[..], b"hello");
    dev.write(
        wk::NUS_SERVICE,
        wk::NUS_RX,
        &b"again"[..],
        WriteKind::WithoutResponse,
    )
    .await
    .unwrap();
    assert_eq!(&next_value(&mut tx).await[..], b"again");
}

#[tokio::test]
async fn cs108_reader_answers_command_frames_and_streams_inventory() {
    let rig = rig();
    connect(&rig, "CS108").await;
    let dev = rig.gateway.device(&id(CS108));
    let mut rx = dev.subscribe(wk::CS108_SERVICE, wk::CS108_NOTIFY).await.unwrap();
    let battery = hex::decode("A7B302D982370000A000").unwrap();
    dev.write(
        wk::CS108_SERVICE,
        wk::CS108_WRITE,
        battery,
        WriteKind::WithResponse,
    )
    .await
    .unwrap();
    let answer = next_value(&mut rx).await;
    assert_eq!(&answer[..6], &[0xA7, 0xB3, 0x04, 0xD9, 0x82, 0x9E]);
    assert_eq!(&answer[8..10], &[0xA0, 0x00]);
    let mv = u16::from_be_bytes([answer[10], answer[11]]);
    assert!((3000..=4300).contains(&mv), "{mv} mV");

    let start = cs108::downlink(
        cs108::MODULE_RFID,
        cs108::EV_RFID_COMMAND,
        &[0x70, 0x01, 0x00, 0xF0, 0x0F, 0, 0, 0],
    );
    dev.write(wk::CS108_SERVICE, wk::CS108_WRITE, start, WriteKind::WithResponse)
        .await
        .unwrap();
    let ack = next_value(&mut rx).await;
    assert_eq!(&ack[8..], &[0x80, 0x02, 0x00]);
    for _ in 0..3 {
        let tag = next_value(&mut rx).await;
        assert_eq!(&tag[8..10], &[0x81, 0x00], "tag report");
    }
    let abort = cs108::downlink(
        cs108::MODULE_RFID,
        cs108::EV_RFID_COMMAND,
        &[0x40, 0x03, 0, 0, 0, 0, 0, 0],
    );
    dev.write(wk::CS108_SERVICE, wk::CS108_WRITE, abort, WriteKind::WithResponse)
        .await
        .unwrap();
    // Reports already in flight may precede the abort's acknowledgement.
    loop {
        let v = next_value(&mut rx).await;
        if v[8..] == [0x80, 0x02, 0x00] {
            break;
        }
    }
    let abort_answer = next_value(&mut rx).await;
    assert_eq!(&abort_answer[8..12], &[0x81, 0x00, 0x40, 0x03]);

    let unknown = cs108::downlink(cs108::MODULE_NOTIFICATION, 0xA0EE, &[]);
    dev.write(
        wk::CS108_SERVICE,
        wk::CS108_WRITE,
        unknown,
        WriteKind::WithResponse,
    )
    .await
    .unwrap();
    assert_eq!(
        &next_value(&mut rx).await[8..10],
        &[0xA1, 0x01],
        "error notification"
    );
}

#[tokio::test]
async fn a_broadcasting_sensor_cycles_its_payloads_in_service_data() {
    let rig = rig();
    let _scan = rig
        .gateway
        .scan(ScanFilter::default(), Duration::from_secs(30))
        .await
        .unwrap();
    let fcd2 = Uuid::from_u16(0xFCD2);
    let mut seen = std::collections::BTreeSet::new();
    within("every payload of the BTHome thermometer", async {
        while seen.len() < 4 {
            let known = rig.gateway.known_devices();
            if let Some(d) = known.iter().find(|d| d.id.as_str() == BTHOME) {
                if let Some(data) = d.service_data.get(&fcd2) {
                    seen.insert(hex::encode(data));
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [
            "400001015c02ca0903bf13",
            "400002015c02d40903b513",
            "400003015b02e80903a113",
            "400004015b02de0903ab13"
        ]
    );
}
