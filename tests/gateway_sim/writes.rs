//! Writes larger than one packet: chunked to the MTU.

use crate::common::*;
use gattway::ble::sim::spec::{CharSpec, DeviceSpec, ServiceSpec, WriteAction};
use gattway::ble::{Uuid, WriteKind};
use gattway::gateway::ConnectOptions;

#[tokio::test]
async fn long_writes_without_response_are_chunked_to_the_mtu() {
    let tx = Uuid::from_u16(0xFFF2);
    let mut rx_char = CharSpec {
        uuid: Uuid::from_u16(0xFFF1),
        properties: vec!["write_without_response".into()],
        value: None,
        text: None,
        max_len: 512,
        generator: None,
        on_write: WriteAction::Echo { to: tx },
        descriptors: vec![],
    };
    let tx_char = CharSpec {
        uuid: tx,
        properties: vec!["notify".into()],
        on_write: WriteAction::Store,
        ..rx_char.clone()
    };
    rx_char.max_len = 512;
    let small_mtu = DeviceSpec {
        name: "Tiny MTU".into(),
        address: "AA:00:00:00:00:17".into(),
        rssi: -50,
        tx_power: None,
        mtu: 23,
        connect_latency_ms: 10,
        op_latency_ms: 1,
        advertised_services: vec![Uuid::from_u16(0xFFF0)],
        manufacturer_data: vec![],
        service_data: vec![],
        adverts: vec![],
        advert_period_ms: 1_000,
        range_cycle: None,
        services: vec![ServiceSpec {
            uuid: Uuid::from_u16(0xFFF0),
            characteristics: vec![rx_char, tx_char],
        }],
    };
    let rig = rig_with(fast_gateway(), sim_config(100.0, vec![small_mtu]));
    let info = within("connect", rig.gateway.connect("Tiny", ConnectOptions::default()))
        .await
        .unwrap();
    assert_eq!(info.mtu, 23);
    let dev = rig.gateway.device(&info.id);
    let mut echo = dev.subscribe(Uuid::from_u16(0xFFF0), tx).await.unwrap();
    let payload: Vec<u8> = (0..100u8).collect();
    dev.write(
        Uuid::from_u16(0xFFF0),
        Uuid::from_u16(0xFFF1),
        payload.clone(),
        WriteKind::WithoutResponse,
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    while got.len() < payload.len() {
        let chunk = next_value(&mut echo).await;
        assert!(chunk.len() <= 20, "each packet fits MTU 23 - 3");
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, payload);
}
