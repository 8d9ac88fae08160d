//! One contract, two radios: the same gateway scenario runs on the simulator and on
//! the native backend (btleplug) over the BlueZ stand-in, whose heart-rate monitor
//! and UART have the simulator's ids, names and GATT layout. What a backend must do
//! for the layers above is written once, here.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::bluez::FakeBluez;
use common::*;
use gattway::ble::native::NativeBackend;
use gattway::ble::{CharProps, DeviceId, ScanFilter, Uuid, WriteKind};
use gattway::gateway::{ConnectOptions, Gateway, GatewayEvent};
use gattway::metrics::Metrics;

const NUS: &str = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
const NUS_RX: &str = "6e400002-b5a3-f393-e0a9-e50e24dcca9e";
const NUS_TX: &str = "6e400003-b5a3-f393-e0a9-e50e24dcca9e";

/// The one thing the contract cannot do through the gateway: make a link drop.
enum Radio {
    Sim(Rig),
    Native(Box<FakeBluez>),
}

impl Radio {
    async fn drop_link(&self, id: &str) {
        match self {
            Radio::Sim(rig) => rig.control(id).drop_link(),
            Radio::Native(bluez) => {
                let path = format!("objpath:/org/bluez/hci0/dev_{}", id.replace(':', "_"));
                bluez.mock("DropConnection", &[&path]).await;
            }
        }
    }
}

async fn contract(gateway: &Gateway, radio: &Radio) {
    // Scan.
    let found = gateway
        .scan(ScanFilter::default(), Duration::from_millis(1500))
        .await
        .expect("scan")
        .collect()
        .await;
    for (id, name) in [(HRM, "Gattway HRM"), (UART, "Gattway UART")] {
        let d = found
            .iter()
            .find(|d| d.id.as_str() == id)
            .unwrap_or_else(|| panic!("{id} not found in {found:?}"));
        assert_eq!(d.name.as_deref(), Some(name));
        assert!((-100..0).contains(&d.rssi), "{}", d.rssi);
    }
    let by_service = gateway
        .scan(
            ScanFilter {
                services: vec![NUS.parse().unwrap()],
                ..Default::default()
            },
            Duration::from_millis(1500),
        )
        .await
        .expect("scan")
        .collect()
        .await;
    assert!(by_service
        .iter()
        .all(|d| d.services.contains(&NUS.parse().unwrap())));
    assert!(by_service.iter().any(|d| d.id.as_str() == UART));

    // Connect by name; the GATT tree.
    let info = gateway
        .connect("Gattway HRM", ConnectOptions::default())
        .await
        .expect("connect");
    assert_eq!(info.id.as_str(), HRM);
    assert!(info.mtu >= 23);
    let id = DeviceId::new(HRM);
    let hrm = gateway.device(&id);
    let services = hrm.services().await.expect("services");
    let hr = Uuid::from_u16(0x180D);
    let measurement = services
        .iter()
        .find(|s| s.uuid == hr)
        .and_then(|s| {
            s.characteristics
                .iter()
                .find(|c| c.uuid == Uuid::from_u16(0x2A37))
        })
        .expect("2A37");
    assert!(measurement.props.contains(CharProps::NOTIFY));
    assert!(measurement
        .descriptors
        .iter()
        .any(|d| d.uuid == Uuid::from_u16(0x2902)));
    assert!(services.iter().any(|s| s.uuid == Uuid::from_u16(0x180F)));

    // Reads, and what cannot be read.
    assert_eq!(
        hrm.read(hr, Uuid::from_u16(0x2A38)).await.expect("read").to_vec(),
        [0x01]
    );
    let battery = hrm
        .read(Uuid::from_u16(0x180F), Uuid::from_u16(0x2A19))
        .await
        .expect("battery");
    assert!(battery.len() == 1 && battery[0] <= 100, "{battery:?}");
    assert!(hrm.read(hr, Uuid::from_u16(0x2A37)).await.is_err(), "notify-only");
    assert!(
        hrm.read(hr, Uuid::from_u16(0x2A99)).await.is_err(),
        "no such characteristic"
    );

    // Writes both ways, with notifications: the UART echoes.
    gateway
        .connect(UART, ConnectOptions::default())
        .await
        .expect("connect UART");
    let uart = gateway.device(&DeviceId::new(UART));
    let nus: Uuid = NUS.parse().unwrap();
    let mut tx = uart
        .subscribe(nus, NUS_TX.parse().unwrap())
        .await
        .expect("subscribe");
    for (text, kind) in [
        ("ping", WriteKind::WithoutResponse),
        ("pong", WriteKind::WithResponse),
    ] {
        uart.write(nus, NUS_RX.parse().unwrap(), text.as_bytes().to_vec(), kind)
            .await
            .expect("write");
        assert_eq!(next_value(&mut tx).await, text.as_bytes());
    }

    // A dropped link comes back by itself, and its subscriptions with it.
    let mut events = gateway.events();
    radio.drop_link(UART).await;
    wait_event(
        &mut events,
        "reconnected",
        |e| matches!(e, GatewayEvent::Reconnected { id, .. } if id.as_str() == UART),
    )
    .await;
    uart.write(
        nus,
        NUS_RX.parse().unwrap(),
        b"again".to_vec(),
        WriteKind::WithResponse,
    )
    .await
    .expect("write after reconnect");
    assert_eq!(next_value(&mut tx).await, b"again");

    // Disconnect.
    hrm.disconnect().await.expect("disconnect");
    assert!(!gateway.connections().iter().any(|c| c.id.as_str() == HRM));
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_contract_holds_on_the_simulator() {
    let rig = rig();
    let gateway = rig.gateway.clone();
    contract(&gateway, &Radio::Sim(rig)).await;
}

#[tokio::test]
async fn the_contract_holds_on_the_native_backend_over_bluez() {
    let bluez = FakeBluez::start().await;
    // The only native test in this binary: the bus address is process-wide.
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &bluez.address);
    let backend = NativeBackend::open(None).await.expect("native backend");
    let gateway = Gateway::new(backend, fast_gateway(), Arc::new(Metrics::new())).expect("gateway");
    contract(&gateway, &Radio::Native(Box::new(bluez))).await;
}

#[tokio::test]
async fn the_contract_holds_on_one_radio_of_a_shared_simulated_world() {
    let sim = gattway::ble::sim::SimBackend::new(&sim_config(100.0, vec![])).expect("simulator");
    // Another radio in the same world, which the contract never touches.
    let _other = sim.radio("far", -30);
    let gateway =
        Gateway::new(sim.radio("near", -5), fast_gateway(), Arc::new(Metrics::new())).expect("gateway");
    assert_eq!(gateway.backend_name(), "near");
    contract(
        &gateway,
        &Radio::Sim(Rig {
            gateway: gateway.clone(),
            sim,
        }),
    )
    .await;
}
