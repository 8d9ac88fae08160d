//! MCP tool calls per second and latency, through the real `gattway` binary, with the
//! official rmcp client: `ble_read` of the HRM's body sensor location, over stdio
//! (`gattway mcp`) and Streamable HTTP (`gattway serve`, `/mcp`). The simulator runs
//! at time scale 10^6 so radio latency is skipped: this measures gattway's MCP path.
//! Client and server share the machine.
//!
//! Run: `cargo bench --bench mcp` (GATTWAY_BENCH_CALLS sets calls per phase).

use std::process::Stdio;
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const CONCURRENCY: usize = 16;

fn gattway() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_gattway"));
    c.args(["--backend", "sim"])
        .env("GATTWAY_SIM_TIME_SCALE", "1000000")
        .env_remove("GATTWAY_CONFIG")
        .kill_on_drop(true);
    c
}

fn read_params() -> CallToolRequestParams {
    CallToolRequestParams::new("ble_read").with_arguments(
        json!({"device": "C0:FF:EE:00:00:01", "service": "180d", "characteristic": "2a38"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
}

struct Figures {
    sequential_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    concurrent_per_s: f64,
}

async fn measure(client: &RunningService<RoleClient, ()>, calls: usize) -> Figures {
    let connect = CallToolRequestParams::new("ble_connect").with_arguments(
        json!({"device": "C0:FF:EE:00:00:01"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let r = client.call_tool(connect).await.expect("ble_connect");
    assert_ne!(r.is_error, Some(true), "ble_connect failed: {r:?}");
    for _ in 0..calls / 10 {
        client.call_tool(read_params()).await.expect("warm-up");
    }

    let mut lat = Vec::with_capacity(calls);
    let start = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        let r = client.call_tool(read_params()).await.expect("ble_read");
        lat.push(t.elapsed());
        assert_ne!(r.is_error, Some(true));
    }
    let sequential = start.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;

    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let peer = client.peer().clone();
        let n = calls / CONCURRENCY;
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                peer.call_tool(read_params()).await.expect("ble_read");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let concurrent = start.elapsed();
    Figures {
        sequential_per_s: calls as f64 / sequential.as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        p999_us: pct(0.999),
        concurrent_per_s: (calls / CONCURRENCY * CONCURRENCY) as f64 / concurrent.as_secs_f64(),
    }
}

async fn stdio(calls: usize) -> Figures {
    let mut cmd = gattway();
    cmd.args(["--log-level", "warn", "mcp"]);
    let transport = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gattway mcp")
        .0;
    let client = ().serve(transport).await.expect("initialize");
    let f = measure(&client, calls).await;
    let _ = client.cancel().await;
    f
}

async fn http(calls: usize) -> Figures {
    let mut child = gattway()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("GATTWAY_LOG_LEVEL", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gattway serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                return rest.split_whitespace().next().map(str::to_string);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("server address");
    // Keep draining stderr so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let transport = StreamableHttpClientTransport::from_uri(format!("http://{addr}/mcp"));
    let client = ().serve(transport).await.expect("initialize");
    let f = measure(&client, calls).await;
    let _ = client.cancel().await;
    let _ = child.kill().await;
    f
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let calls: usize = std::env::var("GATTWAY_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("MCP ble_read, {calls} calls per phase, {CONCURRENCY} in flight for the concurrent phase");
    println!("| transport | sequential calls/s | p50 | p99 | p99.9 | concurrent calls/s |");
    println!("|---|---|---|---|---|---|");
    for (name, f) in [
        ("stdio", rt.block_on(stdio(calls))),
        ("http", rt.block_on(http(calls))),
    ] {
        println!(
            "| {name} | {:.0} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} |",
            f.sequential_per_s, f.p50_us, f.p99_us, f.p999_us, f.concurrent_per_s
        );
    }
}
