//! Idle clients: warned, then evicted, unless a keepalive comes in the grace period.

use super::{fast_bridge, setup, Client, CS108_QUERY};
use crate::common::*;
use gattway::bridge::BridgeConfig;
use serde_json::json;

#[tokio::test]
async fn an_idle_client_is_warned_then_evicted() {
    let (rig, server) = setup(BridgeConfig {
        idle_timeout_ms: 200,
        eviction_grace_ms: 150,
        ..fast_bridge()
    })
    .await;
    let mut c = Client::open(&server, CS108_QUERY).await;
    c.expect("connected").await;
    let w = c.expect("eviction_warning").await;
    assert_eq!(w["grace_period_ms"], 150);
    assert!(w["reason"].as_str().unwrap().contains("keepalive"));
    assert_eq!(c.expect("disconnected").await["reason"], "idle timeout");
    assert_eq!(c.closed().await, (1000, "idle eviction".to_string()));
    wait_until("device released", || !rig.control(CS108).is_connected()).await;
    server.stop().await;
}

#[tokio::test]
async fn a_keepalive_in_the_grace_period_cancels_the_eviction() {
    let (_rig, server) = setup(BridgeConfig {
        idle_timeout_ms: 200,
        eviction_grace_ms: 400,
        ..fast_bridge()
    })
    .await;
    let mut c = Client::open(&server, CS108_QUERY).await;
    c.expect("connected").await;
    c.expect("eviction_warning").await;
    c.send(json!({"type": "keepalive"})).await;
    c.expect("keepalive_ack").await;
    // Only a session that survived its first eviction window warns a second time.
    c.expect("eviction_warning").await;
    c.battery_round_trip().await;
    server.stop().await;
}
