//! One session per device: a second is busy until it forces a takeover, fifty racing
//! clients get one winner, and `force_cleanup` needs the admin token.

use super::{cs108, fast_bridge, setup, Client, CS108_QUERY};
use crate::common::*;
use gattway::gateway::GatewayEvent;
use serde_json::json;

#[tokio::test]
async fn force_cleanup_needs_the_right_token_and_really_releases() {
    let (rig, server) = setup(fast_bridge()).await;
    let mut events = rig.gateway.events();
    let mut c = Client::open(&server, CS108_QUERY).await;
    let token = c.expect("connected").await["token"].as_str().unwrap().to_string();
    c.send(json!({"type": "force_cleanup", "token": "not-the-token"}))
        .await;
    let e = c.json().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("invalid_token"))
    );
    c.battery_round_trip().await;

    // Another client with the token (the first lost track of its socket, say).
    let mut other = Client::open(
        &server,
        "service=180f&write=2a19&notify=2a19&device=Gattway%20Battery",
    )
    .await;
    let _ = other.json().await;
    other.send(json!({"type": "force_cleanup", "token": token})).await;
    assert_eq!(
        other.expect("force_cleanup_complete").await["message"],
        "Cleanup complete"
    );
    assert_eq!(c.closed().await.0, 1000);
    wait_event(
        &mut events,
        "reader disconnected",
        |e| matches!(e, GatewayEvent::Disconnected { id, .. } if id.as_str() == CS108),
    )
    .await;
    assert!(!rig.control(CS108).is_connected(), "no zombie link");
    assert!(rig.gateway.lease_of(&cs108()).is_none(), "no zombie lease");
    server.stop().await;
}

#[tokio::test]
async fn a_second_session_is_busy_until_it_forces_a_takeover() {
    let (rig, server) = setup(fast_bridge()).await;
    let mut events = rig.gateway.events();
    let mut a = Client::open(&server, &format!("{CS108_QUERY}&session=alpha")).await;
    a.expect("connected").await;

    let mut b = Client::open(&server, &format!("{CS108_QUERY}&session=beta")).await;
    let busy = b.json().await;
    assert_eq!(busy["type"], "error");
    assert_eq!(busy["code"], "busy");
    assert_eq!(busy["blocking_session_id"], "alpha");
    assert_eq!(busy["device"], CS108);
    assert!(busy["error"].as_str().unwrap().contains("force=true"));
    assert_eq!(b.closed().await.0, 1013);

    let mut c = Client::open(&server, &format!("{CS108_QUERY}&session=gamma&force=true")).await;
    let warning = c.json().await;
    assert_eq!(warning["type"], "warning");
    assert!(warning["warning"].as_str().unwrap().contains("alpha"));
    c.expect("connected").await;
    let evicted = a.json().await;
    assert_eq!(evicted["code"], "evicted");
    assert!(evicted["error"].as_str().unwrap().contains("gamma"));
    assert_eq!(a.closed().await.0, 4006);
    c.battery_round_trip().await;
    assert_eq!(
        rig.gateway.lease_of(&cs108()).unwrap().holder,
        "bridge session 'gamma'"
    );
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, GatewayEvent::Disconnected { .. }),
            "a take-over keeps the link: {e:?}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_racing_for_one_device_one_wins() {
    let (_rig, server) = setup(fast_bridge()).await;
    let server = std::sync::Arc::new(server);
    let racers = (0..50).map(|i| {
        let server = server.clone();
        tokio::spawn(async move {
            let mut c = Client::open(&server, &format!("{CS108_QUERY}&session=racer-{i}")).await;
            let first = c.json().await;
            (
                first["type"].as_str().unwrap().to_string(),
                first["code"].as_str().map(str::to_string),
                c,
            )
        })
    });
    let results = futures::future::join_all(racers).await;
    let mut winners = 0;
    let mut busy = 0;
    let mut keep = Vec::new();
    for r in results {
        let (kind, code, c) = r.unwrap();
        match (kind.as_str(), code.as_deref()) {
            ("connected", _) => winners += 1,
            ("error", Some("busy")) => busy += 1,
            other => panic!("unexpected {other:?}"),
        }
        keep.push(c);
    }
    assert_eq!((winners, busy), (1, 49));
    drop(keep);
}
