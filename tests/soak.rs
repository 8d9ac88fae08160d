//! 1,000 connect / discover / subscribe / disconnect cycles: every task,
//! subscription and lease the cycles create must be gone afterwards.

mod common;

use common::*;
use gattway::ble::{well_known as wk, DeviceId};
use gattway::gateway::{ConnectOptions, SubscriptionEvent};

const CYCLES: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_subscribe_disconnect_cycles_leak_nothing() {
    // 1000× real time: connect and GATT latencies vanish, the heart rate ticks each ms.
    let rig = rig_with(fast_gateway(), sim_config(1000.0, vec![]));
    let runtime = tokio::runtime::Handle::current().metrics();
    let tasks_before = runtime.num_alive_tasks();
    let stats_before = rig.gateway.stats();
    let hrm = DeviceId::new(HRM);

    for cycle in 0..CYCLES {
        within("connect", rig.gateway.connect(HRM, ConnectOptions::default()))
            .await
            .unwrap_or_else(|e| panic!("cycle {cycle}: connect: {e}"));
        let lease = rig.gateway.lease(&hrm, "soak", false).expect("free");
        let dev = lease.device();
        let services = dev.services().await.expect("discover");
        assert_eq!(services.len(), 3);
        let mut sub = dev
            .subscribe(wk::HEART_RATE_SERVICE, wk::HEART_RATE_MEASUREMENT)
            .await
            .expect("subscribe");
        match within("notification", sub.recv()).await {
            Some(SubscriptionEvent::Notification(_) | SubscriptionEvent::Lagged(_)) => {}
            None => panic!("cycle {cycle}: subscription ended early"),
        }
        dev.disconnect().await.expect("disconnect");
        // The subscription ends with the link (after what was already buffered).
        within("end of stream", async { while sub.recv().await.is_some() {} }).await;
    }

    wait_until("gateway resources back to their start", || {
        rig.gateway.stats() == stats_before
    })
    .await;
    wait_until("runtime tasks back to their start", || {
        runtime.num_alive_tasks() == tasks_before
    })
    .await;
    assert!(!rig.control(HRM).is_connected());
}
