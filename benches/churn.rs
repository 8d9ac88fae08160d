//! Reconnect churn under a busy store: a hub device connects, is welcomed and
//! closes, again and again, while the simulator (at `sim.time_scale = 1000000`)
//! floods the store with telemetry through the hub's BLE feed. The server's
//! anonymous resident memory must stay flat: nothing per connection may pile up behind the
//! busy writer (the connection log, presence, the writer's per-device state).
//!
//! Run: `cargo bench --bench churn`. GATTWAY_BENCH_CYCLES sets the reconnects
//! (default 1,000,000), GATTWAY_BENCH_CHURNERS how many devices reconnect at
//! once (default 4, each its own device id), GATTWAY_BENCH_REPORT_EVERY how
//! often RSS is sampled (default 50,000), GATTWAY_BENCH_TIME_SCALE the
//! simulator's speed (default 1000000: the busy store; 1 leaves it nearly idle).
//! The first quarter of the cycles is warm-up; the verdict compares every later
//! sample with the first of them. The spread over the second half is printed too.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One reconnect: open, wait for the welcome, close, wait for the server's close.
async fn cycle(url: &str) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("\"welcome\"") => break,
            Some(Ok(_)) => continue,
            other => panic!("no welcome: {other:?}"),
        }
    }
    ws.send(Message::Close(None)).await.expect("close");
    while let Some(Ok(_)) = ws.next().await {}
}

async fn run(cycles: u64, churners: u64, report_every: u64) {
    let time_scale = std::env::var("GATTWAY_BENCH_TIME_SCALE").unwrap_or("1000000".into());
    let server = support::Server::start(
        "churn",
        &[],
        &[
            ("GATTWAY_SIM_TIME_SCALE", time_scale),
            ("GATTWAY_LOG_LEVEL", "warn,gattway=info".into()),
        ],
    )
    .await;
    let addr = server.addr.clone();

    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for k in 0..churners {
        let url = format!("ws://{addr}/hub?device=churn-{k}");
        let done = done.clone();
        let share = cycles / churners + u64::from(k < cycles % churners);
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                cycle(&url).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // Anonymous memory is what the server allocates; the resident total also counts
    // file pages mapped in, such as SQLite's WAL index, which grows with the WAL.
    println!("| cycles | anonymous RSS KiB | all RSS KiB | reconnects/s | points stored | connection-log rows dropped |");
    println!("|---|---|---|---|---|---|");
    // Warm-up is the first quarter: until then the server's buffers and the
    // allocator's arenas reach the high-water marks of the bursts they see (RSS rose
    // ~1.7 MB from 100k to 250k reconnects and then stopped, the same with SQLite's
    // page cache cut to 64 KiB a connection, so not that cache).
    let warm_up = cycles / 4;
    let mut baseline: Option<u64> = None;
    let (mut low, mut high) = (u64::MAX, 0u64);
    // The second half alone: a leak would still grow there.
    let (mut low2, mut high2) = (u64::MAX, 0u64);
    let started = Instant::now();
    let mut next_report = report_every.min(cycles);
    let (mut last_at, mut last_n) = (Instant::now(), 0u64);
    loop {
        let n = done.load(Ordering::Relaxed);
        if n >= next_report || n >= cycles {
            let rss = server.status_kib("RssAnon:");
            let all = server.status_kib("VmRSS:");
            let rate = (n - last_n) as f64 / last_at.elapsed().as_secs_f64();
            (last_at, last_n) = (Instant::now(), n);
            let stored = server.metric("gattway_hub_points_stored").await;
            let dropped = server.metric("gattway_hub_connection_log_dropped").await;
            println!("| {n} | {rss} | {all} | {rate:.0} | {stored:.0} | {dropped:.0} |");
            if n >= warm_up {
                baseline.get_or_insert(rss);
                low = low.min(rss);
                high = high.max(rss);
            }
            if n >= cycles / 2 {
                low2 = low2.min(rss);
                high2 = high2.max(rss);
            }
            if n >= cycles {
                break;
            }
            next_report = (next_report + report_every).min(cycles);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in tasks {
        t.await.expect("churner");
    }
    let base = baseline.unwrap_or(low);
    let spread = high.saturating_sub(base).max(base.saturating_sub(low));
    println!(
        "\n{cycles} reconnects by {churners} devices in {:.0} s; after warm-up RSS {low}–{high} KiB \
         around {base} KiB (anonymous): {} (bar: within ±2 MB = 2048 KiB)",
        started.elapsed().as_secs_f64(),
        if spread <= 2048 {
            format!("flat, ±{spread} KiB")
        } else {
            format!("NOT flat, {spread} KiB")
        },
    );
    println!(
        "second half: anonymous RSS {low2}–{high2} KiB, a spread of {} KiB",
        high2.saturating_sub(low2)
    );
}

fn main() {
    let cycles = env_or("GATTWAY_BENCH_CYCLES", 1_000_000);
    let churners = env_or("GATTWAY_BENCH_CHURNERS", 4).max(1);
    let report_every = env_or("GATTWAY_BENCH_REPORT_EVERY", 50_000).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(cycles, churners, report_every));
}
