//! Bytes both ways: a command frame gets the reader's answer as `data`, and a
//! client pipelining writes gets every echo.

use super::{cs108, fast_bridge, setup, Client, CS108_QUERY};
use crate::common::*;
use gattway::gateway::GatewayEvent;
use serde_json::json;

#[tokio::test]
async fn a_command_frame_gets_the_readers_answer_as_data() {
    let (rig, server) = setup(fast_bridge()).await;
    let mut c = Client::open(&server, CS108_QUERY).await;
    let connected = c.expect("connected").await;
    assert_eq!(connected["device"], "CS108Reader000001");
    assert_eq!(connected["token"].as_str().unwrap().len(), 36);
    let answer = c.battery_round_trip().await;
    assert_eq!(&answer[..6], &[0xA7, 0xB3, 0x04, 0xD9, 0x82, 0x9E]);
    // Every byte went through the packet log, both ways.
    let log = rig.gateway.packet_log();
    assert!(
        !log.search("A7B302D982370000A000", &gattway::gateway::DeviceFilter::all(), 1)
            .is_empty(),
        "TX logged"
    );
    assert!(
        !log.search("A7B304D9829E", &gattway::gateway::DeviceFilter::all(), 1)
            .is_empty(),
        "RX logged"
    );
    // The session holds the device exclusively.
    assert!(rig
        .gateway
        .lease_of(&cs108())
        .unwrap()
        .holder
        .starts_with("bridge session"));

    c.send(json!({"type": "keepalive"})).await;
    assert!(c.expect("keepalive_ack").await["timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    c.send(json!({"type": "check_pressure"})).await;
    let p = c.expect("pressure_report").await;
    assert_eq!((p["sessions"].as_u64(), p["leases"].as_u64()), (Some(1), Some(1)));
    c.send(json!({"type": "health"})).await;
    assert_eq!(c.expect("health").await["state"], "ACTIVE");

    let mut events = rig.gateway.events();
    c.send(json!({"type": "disconnect"})).await;
    assert_eq!(c.expect("disconnected").await["reason"], "client disconnect");
    assert_eq!(c.closed().await.0, 1000);
    wait_event(
        &mut events,
        "device released",
        |e| matches!(e, GatewayEvent::Disconnected { id, .. } if id.as_str() == CS108),
    )
    .await;
    wait_until("lease released", || rig.gateway.stats().leases == 0).await;
    server.stop().await;
}

#[tokio::test]
async fn a_client_pipelining_writes_gets_every_echo_and_is_not_dropped() {
    let (_rig, server) = setup(fast_bridge()).await;
    let mut c = Client::open(
        &server,
        "service=6e400001-b5a3-f393-e0a9-e50e24dcca9e&write=6e400002-b5a3-f393-e0a9-e50e24dcca9e\
         &notify=6e400003-b5a3-f393-e0a9-e50e24dcca9e&device=Gattway%20UART",
    )
    .await;
    c.expect("connected").await;
    const N: usize = 2_000;
    // Far more than any queue holds, written before reading a single echo.
    for i in 0..N {
        c.send(json!({"type": "data", "data": [(i % 256) as u8, (i / 256) as u8]}))
            .await;
    }
    for i in 0..N {
        let v = c.expect("data").await;
        assert_eq!(
            v["data"],
            json!([(i % 256) as u8, (i / 256) as u8]),
            "echo {i} in order"
        );
    }
    server.stop().await;
}
