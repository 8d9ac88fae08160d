//! One device's notifications shared by many subscribers: each gets every one, and
//! a lagging one is told how many it missed.

use super::{connect, id};
use crate::common::*;
use gattway::ble::well_known as wk;
use gattway::gateway::{GatewayConfig, SubscriptionEvent};

#[tokio::test]
async fn two_subscribers_both_receive_every_notification() {
    let rig = rig();
    connect(&rig, HRM).await;
    let dev = rig.gateway.device(&id(HRM));
    let mut a = dev
        .subscribe(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
        .await
        .unwrap();
    let mut b = dev
        .subscribe(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
        .await
        .unwrap();
    assert_eq!(
        rig.gateway.stats().radio_subscriptions,
        1,
        "one radio subscription shared"
    );
    assert_eq!(rig.gateway.stats().subscribers, 2);
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for _ in 0..20 {
        match within("a", a.recv()).await.unwrap() {
            SubscriptionEvent::Notification(n) => seen_a.push(n),
            other => panic!("{other:?}"),
        }
        match within("b", b.recv()).await.unwrap() {
            SubscriptionEvent::Notification(n) => seen_b.push(n),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen_a, seen_b);
    drop(a);
    drop(b);
    wait_until("radio unsubscribed", || {
        rig.gateway.stats().radio_subscriptions == 0
    })
    .await;
    assert_eq!(rig.gateway.stats().subscribers, 0);
}

#[tokio::test]
async fn a_lagging_subscriber_is_told_how_many_it_missed() {
    let rig = rig_with(
        GatewayConfig {
            subscriber_buffer: 4,
            ..fast_gateway()
        },
        sim_config(100.0, vec![]),
    );
    connect(&rig, HRM).await;
    let dev = rig.gateway.device(&id(HRM));
    let mut fast = dev
        .subscribe(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
        .await
        .unwrap();
    let mut slow = dev
        .subscribe(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
        .await
        .unwrap();
    for _ in 0..12 {
        next_value(&mut fast).await;
    }
    match within("slow", slow.recv()).await {
        Some(SubscriptionEvent::Lagged(n)) => assert!(n >= 8, "missed {n}"),
        other => panic!("expected Lagged, got {other:?}"),
    }
    // Then it carries on with what is buffered.
    assert!(matches!(
        within("slow", slow.recv()).await,
        Some(SubscriptionEvent::Notification(_))
    ));
}
