//! The Rust client (`clients/rust`, crate `gattway-client`) against the real
//! server, which this test kills (-9) and starts again on the same port and
//! database while a device keeps sending: every acknowledged point is stored
//! exactly once, the subscriber resumes with no gap and no duplicate, the points
//! queued while the server was down go out highest priority first, and a full
//! offline queue drops (and counts) its oldest low-priority points. The control
//! client, across the same kind of restart, connects and subscribes again by
//! itself and its notifications carry on.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::process::{serve_hub, stored_values};
use common::{within, TempDb};
use futures::stream::{FuturesUnordered, StreamExt};
use gattway_client::{
    Backoff, Characteristic, ClientError, ClientEvent, ControlClient, ControlEvent, Filter, HubClient,
    HubDevice, Limits, Options, State,
};
use serde_json::json;

const POINTS: i64 = 1500;

fn fast() -> Options {
    Options {
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
            ..Backoff::default()
        },
        ..Options::default()
    }
}

async fn wait_for_state(device: &HubDevice, wanted: impl Fn(State) -> bool) {
    let mut state = device.state();
    within("the device's state", state.wait_for(|s| wanted(*s)))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_rust_client_rides_out_a_server_restart_losing_and_repeating_nothing() {
    // The queue's bound, on a device that never reaches a server.
    let (nowhere, _) = HubDevice::connect(
        "http://127.0.0.1:1",
        "nowhere",
        fast(),
        Limits {
            queue: 5,
            ..Limits::default()
        },
    );
    let nowhere = Arc::new(nowhere);
    let sends: Vec<_> = (0..10)
        .map(|i| {
            let d = nowhere.clone();
            tokio::spawn(async move { d.send("n", json!(i), 0).await })
        })
        .collect();
    let mut dropped = Vec::new();
    for (i, s) in sends.into_iter().enumerate().take(5) {
        if let Err(ClientError::Dropped) = within("a drop", s).await.unwrap() {
            dropped.push(i);
        }
    }
    assert_eq!(
        (dropped, nowhere.dropped()),
        ((0..5).collect(), 5),
        "the oldest go first"
    );

    let db = TempDb::new();
    let (mut server, addr) = serve_hub(&db.url(), "127.0.0.1:0", &[]).await;
    let base = format!("http://{addr}");
    let (client, mut events) = HubClient::connect(&base, fast());
    client.subscribe(Filter {
        devices: Some(vec!["rs-device".into(), "rs-ordered".into()]),
        since: Some(0),
        ..Filter::default()
    });
    let limits = Limits {
        batch_points: 20,
        batch_delay: Duration::from_millis(5),
        ..Limits::default()
    };
    let (device, _) = HubDevice::connect(&base, "rs-device", fast(), limits);
    let (ordered, _) = HubDevice::connect(
        &base,
        "rs-ordered",
        fast(),
        Limits {
            batch_points: 1,
            ..Limits::default()
        },
    );
    let (device, ordered) = (Arc::new(device), Arc::new(ordered));
    wait_for_state(&ordered, |s| s == State::Open).await;

    // Every point's send, driven together; `acked` counts the stored ones.
    let (acked_tx, mut acked) = tokio::sync::watch::channel(0i64);
    let stream = {
        let device = device.clone();
        tokio::spawn(async move {
            let mut pending = FuturesUnordered::new();
            for i in 1..=POINTS {
                let device = device.clone();
                pending.push(async move { device.send("n", json!(i), 0).await });
            }
            let mut n = 0;
            while let Some(stored) = pending.next().await {
                stored.expect("stored");
                n += 1;
                acked_tx.send_replace(n);
            }
        })
    };
    within("300 acks", acked.wait_for(|n| *n >= 300)).await.unwrap();
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    let at_kill = *acked.borrow();
    assert!(at_kill < POINTS, "the server dies mid-stream ({at_kill} stored)");
    wait_for_state(&ordered, |s| s != State::Open).await;
    let mut queued = FuturesUnordered::new();
    for (name, priority) in [
        ("low-1", 0),
        ("low-2", 0),
        ("low-3", 0),
        ("high-1", 9),
        ("high-2", 9),
        ("high-3", 9),
    ] {
        let ordered = ordered.clone();
        queued.push(tokio::spawn(async move {
            ordered.send("p", json!(name), priority).await
        }));
    }
    let (_server, again) = serve_hub(&db.url(), &addr, &[]).await;
    assert_eq!(again, addr, "the same port");
    within("every point stored", stream).await.unwrap();
    while let Some(stored) = within("the queued points", queued.next()).await {
        stored.unwrap().expect("stored");
    }

    let (mut seen, mut arrived) = (Vec::new(), Vec::new());
    while seen.len() < POINTS as usize || arrived.len() < 6 {
        match within("the subscriber's telemetry", events.recv())
            .await
            .expect("events")
        {
            ClientEvent::Telemetry { device, points } if device == "rs-device" => {
                seen.extend(points.iter().map(|p| p.value.as_i64().unwrap()))
            }
            ClientEvent::Telemetry { points, .. } => arrived.extend(points.iter().map(|p| p.value.clone())),
            ClientEvent::Other(_) => {}
        }
    }
    assert_eq!(
        seen,
        (1..=POINTS).collect::<Vec<_>>(),
        "each point once, in order"
    );
    assert_eq!(
        arrived,
        ["high-1", "high-2", "high-3", "low-1", "low-2", "low-3"].map(|s| json!(s)),
        "the offline queue drains highest priority first"
    );
    let stored = stored_values(&addr, "rs-device", "n").await;
    let unique: BTreeSet<u64> = stored.iter().copied().collect();
    assert_eq!(unique.len(), stored.len(), "stored once each");
    assert_eq!(
        unique,
        (1..=POINTS as u64).collect(),
        "every acknowledged point stored"
    );

    // Requests by id, after the restart.
    let presence = client
        .request(json!({"type": "presence", "devices": ["rs-device"]}))
        .await
        .unwrap();
    assert_eq!(presence["devices"][0]["online"], true, "{presence}");
}

/// Notifications (the simulated heart-rate monitor's) until `n` have arrived.
async fn notifications(events: &mut tokio::sync::mpsc::UnboundedReceiver<ControlEvent>, n: usize) {
    let mut seen = 0;
    while seen < n {
        match within("a notification", events.recv()).await.expect("events") {
            ControlEvent::Notification(m) => {
                assert_eq!(
                    m["characteristicUuid"].as_str().map(|u| u.contains("2a37")),
                    Some(true),
                    "{m}"
                );
                seen += 1;
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn the_control_client_connects_and_subscribes_again_after_a_restart() {
    const HRM: &str = "C0:FF:EE:00:00:01";
    let db = TempDb::new();
    let (mut server, addr) = serve_hub(&db.url(), "127.0.0.1:0", &[]).await;
    let (control, mut events) = ControlClient::connect(&format!("http://{addr}"), fast());
    control
        .scan(1000, json!({"services": ["180d"]}))
        .await
        .expect("scan");
    control.connect_device(HRM).await.expect("connect");
    let battery = control
        .read(Characteristic::new(HRM, "180f", "2a19"))
        .await
        .expect("read");
    assert_eq!(battery["decoded"]["unit"], "%", "{battery}");
    control
        .subscribe(Characteristic::new(HRM, "180d", "2a37"))
        .await
        .expect("subscribe");
    notifications(&mut events, 2).await;

    server.start_kill().unwrap();
    server.wait().await.unwrap();
    let (_server, again) = serve_hub(&db.url(), &addr, &[]).await;
    assert_eq!(again, addr, "the same port");
    loop {
        match within("restored", events.recv()).await.expect("events") {
            ControlEvent::Restored {
                devices,
                subscriptions,
            } => {
                assert_eq!((devices, subscriptions), (1, 1));
                break;
            }
            ControlEvent::Error(e) => panic!("restoring failed: {e}"),
            _ => continue,
        }
    }
    notifications(&mut events, 2).await;

    // A refusal is typed, with the server's code.
    match control.read(Characteristic::new(HRM, "180f", "ffff")).await {
        Err(ClientError::Hub(m)) => assert_eq!(m["code"], "ATTRIBUTE_NOT_FOUND", "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
