//! The ESPHome proxy's port: a client must finish its handshake in time, the
//! clients served at once are capped, and a device a client leaves unused is let go.

use std::time::{Duration, Instant};

use gattway::ble::esphome::api::{self, proto, request, Message, MessageReader};
use gattway::ble::DeviceId;
use gattway::esphome_proxy::{self, EsphomeConfig};
use gattway::gateway::Gateway;
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::common::*;

/// A plaintext proxy over `gateway` on a free loopback port, as `config` says
/// (its address and name filled in); stops when the guard drops.
async fn proxy(gateway: &Gateway, config: EsphomeConfig) -> (std::net::SocketAddr, DropGuard) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let config = EsphomeConfig {
        listen: addr.to_string(),
        name: "gattway-threats".into(),
        ..config
    };
    tokio::spawn(esphome_proxy::serve(
        listener,
        gateway.clone(),
        config,
        stop.clone(),
    ));
    (addr, stop.drop_guard())
}

/// The next message `pick` takes, skipping others; fails after [`WAIT`].
async fn next_matching<T>(reader: &mut MessageReader, mut pick: impl FnMut(Message) -> Option<T>) -> T {
    within("an ESPHome message", async {
        loop {
            match reader.read().await {
                Ok(Some(m)) => {
                    if let Some(t) = pick(m) {
                        return t;
                    }
                }
                other => panic!("the session ended: {other:?}"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_closed_at_the_deadline() {
    let rig = rig();
    let config = EsphomeConfig {
        handshake_timeout_ms: 300,
        ..Default::default()
    };
    let (addr, _stop) = proxy(&rig.gateway, config).await;
    let opened = Instant::now();
    // One says nothing at all; one opens a plaintext session and never says hello.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let (mut no_hello, _writer) = api::connect(TcpStream::connect(addr).await.unwrap(), None)
        .await
        .unwrap();
    closed_by_server(&mut silent).await;
    let ended = within("the hello-less session to end", no_hello.read()).await;
    assert!(!matches!(ended, Ok(Some(_))), "{ended:?}");
    assert!(
        opened.elapsed() < Duration::from_secs(5),
        "{:?}",
        opened.elapsed()
    );
}

#[tokio::test]
async fn clients_over_the_cap_are_closed_at_once() {
    let rig = rig();
    let config = EsphomeConfig {
        max_connections: 2,
        handshake_timeout_ms: 60_000,
        ..Default::default()
    };
    let (addr, _stop) = proxy(&rig.gateway, config).await;
    let _first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let mut third = TcpStream::connect(addr).await.unwrap();
    let opened = Instant::now();
    closed_by_server(&mut third).await;
    assert!(
        opened.elapsed() < Duration::from_secs(5),
        "{:?}",
        opened.elapsed()
    );
}

#[tokio::test]
async fn a_device_left_unused_is_disconnected_and_its_lease_released() {
    let rig = rig();
    let config = EsphomeConfig {
        lease_idle_timeout_ms: 300,
        ..Default::default()
    };
    let (addr, _stop) = proxy(&rig.gateway, config).await;
    let (mut reader, mut writer) = api::connect(TcpStream::connect(addr).await.unwrap(), None)
        .await
        .unwrap();
    writer
        .send(&Message::HelloRequest(proto::HelloRequest {
            client_info: "threats".into(),
            api_version_major: 1,
            api_version_minor: 14,
        }))
        .await
        .unwrap();
    next_matching(&mut reader, |m| {
        matches!(m, Message::HelloResponse(_)).then_some(())
    })
    .await;
    let hrm = DeviceId::new(HRM);
    let address = api::address_of(&hrm).unwrap();
    writer
        .send(&Message::BluetoothDeviceRequest(proto::BluetoothDeviceRequest {
            address,
            request_type: request::CONNECT_V3_WITHOUT_CACHE,
            ..Default::default()
        }))
        .await
        .unwrap();
    let connection = |m: Message| match m {
        Message::BluetoothDeviceConnectionResponse(r) if r.address == address => Some(r.connected),
        _ => None,
    };
    assert!(next_matching(&mut reader, connection).await, "connected");
    assert!(
        rig.gateway.lease_of(&hrm).is_some(),
        "the client holds the device"
    );
    // Then nothing: the proxy lets the device go and says so.
    assert!(!next_matching(&mut reader, connection).await, "disconnected");
    wait_until("the lease to be released", || {
        rig.gateway.lease_of(&hrm).is_none()
    })
    .await;
}
