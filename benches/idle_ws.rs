//! What an idle WebSocket costs the server: opens N control connections (`/ws`) to a
//! real `gattway serve` (release build, simulator) and reports the server's resident
//! memory growth per connection, once `/metrics` shows all N open. Client and server
//! are separate processes on this machine.
//!
//! Run: `cargo bench --bench idle_ws` (GATTWAY_BENCH_CONNECTIONS sets N, default 5000;
//! it needs an open-files limit above N). GATTWAY_BENCH_ENDPOINT picks the socket:
//! `control` (`/ws`, the default), `hub` (hub clients) or `hub-device` (hub devices,
//! each its own device id, online in the hub).

mod support;

use std::time::Duration;

async fn run(n: usize, endpoint: &str) {
    let (label, path) = match endpoint {
        "hub" => ("hub", "/hub?role=client"),
        "hub-device" => ("hub", "/hub?device=idle-"),
        _ => ("control", "/ws"),
    };
    // Hub devices each need their own id.
    let url = |addr: &str, i: usize| {
        if path.ends_with('-') {
            format!("ws://{addr}{path}{i}")
        } else {
            format!("ws://{addr}{path}")
        }
    };
    // A database file, as in production: rows written per connection (the hub's
    // connection log, devices) go to disk, not into the measured memory.
    let server = support::Server::start(
        "idle",
        &["--log-level", "info"],
        &[
            ("GATTWAY_CONTROL_MAX_CONNECTIONS", (n + 10).to_string()),
            ("GATTWAY_HUB_SIM_FEED", "false".into()),
            ("GATTWAY_HUB_ADVERT_FEED", "false".into()),
        ],
    )
    .await;
    let addr = server.addr.clone();
    // The gauge of open sockets on this endpoint.
    let open = format!("gattway_ws_connections{{endpoint=\"{label}\"}}");
    // Warm the server up with a few connections so one-time allocations are not
    // counted against every connection.
    let mut warm = Vec::new();
    for i in 0..50 {
        warm.push(
            tokio_tungstenite::connect_async(url(&addr, n + i))
                .await
                .expect("connect")
                .0,
        );
    }
    drop(warm);
    while server.metric(&open).await != 0.0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = server.status_kib("VmRSS:");
    let mut sockets = Vec::with_capacity(n);
    for i in 0..n {
        sockets.push(
            tokio_tungstenite::connect_async(url(&addr, i))
                .await
                .expect("connect")
                .0,
        );
    }
    while server.metric(&open).await != n as f64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let allocator and kernel settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.status_kib("VmRSS:");
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    println!("| {n} idle {endpoint} WebSockets | server RSS {before} KiB → {after} KiB | {per:.0} bytes per connection |");
    drop(sockets);
}

fn main() {
    let n: usize = std::env::var("GATTWAY_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let endpoint = std::env::var("GATTWAY_BENCH_ENDPOINT").unwrap_or_else(|_| "control".into());
    rt.block_on(run(n, &endpoint));
}
