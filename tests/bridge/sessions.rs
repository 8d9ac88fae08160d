//! A session outliving its socket: resumed within the grace period, the device
//! released after it, and a released session id reopened fresh.

use super::{fast_bridge, setup, Client, CS108_QUERY};
use crate::common::*;
use gattway::bridge::BridgeConfig;
use gattway::gateway::GatewayEvent;
use serde_json::json;

#[tokio::test]
async fn a_session_resumes_within_its_grace_period() {
    let (rig, server) = setup(fast_bridge()).await;
    let mut events = rig.gateway.events();
    let query = format!("{CS108_QUERY}&session=resume-me");
    let mut first = Client::open(&server, &query).await;
    let token = first.expect("connected").await["token"].clone();
    first.ws.close(None).await.unwrap();
    drop(first);
    let mut second = Client::open(&server, &query).await;
    assert_eq!(
        second.expect("connected").await["token"],
        token,
        "same session, same token"
    );
    second.battery_round_trip().await;
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, GatewayEvent::Disconnected { .. }),
            "the link stayed up: {e:?}"
        );
    }
    assert!(rig.control(CS108).is_connected());
    server.stop().await;
}

#[tokio::test]
async fn after_the_grace_period_the_device_is_released() {
    let (rig, server) = setup(BridgeConfig {
        session_grace_ms: 150,
        ..fast_bridge()
    })
    .await;
    let mut events = rig.gateway.events();
    let mut c = Client::open(&server, CS108_QUERY).await;
    c.expect("connected").await;
    c.ws.close(None).await.unwrap();
    wait_event(
        &mut events,
        "release after grace",
        |e| matches!(e, GatewayEvent::Disconnected { id, .. } if id.as_str() == CS108),
    )
    .await;
    wait_until("lease and subscription gone", || {
        let s = rig.gateway.stats();
        s.leases == 0 && s.subscribers == 0
    })
    .await;
    assert!(!rig.control(CS108).is_connected());
    server.stop().await;
}

#[tokio::test]
async fn reopening_a_released_session_id_gets_a_fresh_working_session() {
    let (rig, server) = setup(fast_bridge()).await;
    let query = format!("{CS108_QUERY}&session=again");
    for round in 0..3 {
        let mut c = Client::open(&server, &query).await;
        c.expect("connected").await;
        c.battery_round_trip().await;
        c.send(json!({"type": "disconnect"})).await;
        assert_eq!(c.closed().await.0, 1000, "round {round}");
    }
    let mut c = Client::open(&server, &query).await;
    c.expect("connected").await;
    c.battery_round_trip().await;
    c.send(json!({"type": "check_pressure"})).await;
    assert_eq!(c.expect("pressure_report").await["sessions"], 1);
    assert_eq!(rig.gateway.stats().leases, 1);
    server.stop().await;
}
