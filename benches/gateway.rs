//! Gateway overhead on the simulator with its radio latencies switched off
//! (time scale 10^6: every simulated delay scales below 1 ms and is skipped), so
//! what is measured is gattway itself.
//!
//! - `read_round_trip`: `DeviceRef::read` → device actor → simulated read → reply.
//! - `fanout/N`: one write to the Nordic UART RX; the echo notification reaches N
//!   subscribers of TX (throughput counts deliveries).
//!
//! Run: `cargo bench --bench gateway`

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gattway::ble::sim::{SimBackend, SimConfig};
use gattway::ble::{well_known as wk, DeviceId, WriteKind};
use gattway::gateway::{ConnectOptions, Gateway, GatewayConfig, SubscriptionEvent};
use gattway::metrics::Metrics;

fn setup(rt: &tokio::runtime::Runtime) -> Gateway {
    rt.block_on(async {
        let sim = SimBackend::new(&SimConfig {
            time_scale: 1e6,
            ..SimConfig::default()
        })
        .expect("simulator");
        let gw = Gateway::new(
            sim,
            GatewayConfig {
                subscriber_buffer: 4096,
                ..GatewayConfig::default()
            },
            Arc::new(Metrics::new()),
        )
        .expect("gateway");
        for d in ["C0:FF:EE:00:00:01", "C0:FF:EE:00:00:04"] {
            gw.connect(d, ConnectOptions::default()).await.expect("connect");
        }
        gw
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let gw = setup(&rt);
    let hrm = DeviceId::new("C0:FF:EE:00:00:01");
    let uart = DeviceId::new("C0:FF:EE:00:00:04");

    c.bench_function("read_round_trip", |b| {
        b.to_async(&rt).iter(|| async {
            gw.device(&hrm)
                .read(wk::HEART_RATE_SERVICE, wk::BODY_SENSOR_LOCATION)
                .await
                .expect("read")
        })
    });

    let mut group = c.benchmark_group("fanout");
    for n in [1usize, 10, 100] {
        let mut subs = rt.block_on(async {
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(
                    gw.device(&uart)
                        .subscribe(wk::NUS_SERVICE, wk::NUS_TX)
                        .await
                        .expect("subscribe"),
                );
            }
            v
        });
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            // The subscribers are borrowed mutably, so the timed loop runs inside
            // one block_on per sample rather than one future per iteration.
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = std::time::Instant::now();
                    for _ in 0..iters {
                        gw.device(&uart)
                            .write(
                                wk::NUS_SERVICE,
                                wk::NUS_RX,
                                &b"ping"[..],
                                WriteKind::WithoutResponse,
                            )
                            .await
                            .expect("write");
                        for s in subs.iter_mut() {
                            match s.recv().await {
                                Some(SubscriptionEvent::Notification(_)) => {}
                                other => panic!("subscriber got {other:?}"),
                            }
                        }
                    }
                    start.elapsed()
                })
            })
        });
        drop(subs);
    }
    group.finish();
    rt.block_on(gw.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
