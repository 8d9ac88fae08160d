//! MCP tool calls per second and latency, through the real `gattway` binary, with the
//! official rmcp client: `ble_read` of the HRM's body sensor location, over stdio
//! (`gattway mcp`) and Streamable HTTP (`gattway serve`, `/mcp`). The simulator runs
//! at time scale 10^6 so radio latency is skipped: this measures gattway's MCP path.
//! Client and server share the machine.
//!
//! Run: `cargo bench --bench mcp` (GATTWAY_BENCH_CALLS sets calls per phase).

use std::process::Stdio;
use std::time::Instant;

mod support;

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;

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
    /// The server's CPU time per call in the sequential phase.
    server_cpu_us: f64,
}

async fn measure(client: &RunningService<RoleClient, ()>, calls: usize, server_pid: u32) -> Figures {
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
    let cpu_before = support::cpu_seconds(server_pid);
    let start = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        let r = client.call_tool(read_params()).await.expect("ble_read");
        lat.push(t.elapsed());
        assert_ne!(r.is_error, Some(true));
    }
    let sequential = start.elapsed();
    let server_cpu_us = (support::cpu_seconds(server_pid) - cpu_before) * 1e6 / calls as f64;
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
        server_cpu_us,
    }
}

/// The Python MCP SDK's server (benches/reference/python_mcp_server.py) on stdio, in
/// the reference venv the tests make (`$CARGO_TARGET_DIR/reference-venv`, with
/// `mcp` 2.3.0); `None` when there is no such venv yet.
fn python_reference() -> Option<tokio::process::Command> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let python = target.join("reference-venv/bin/python");
    let has_mcp = std::process::Command::new(&python)
        .args(["-c", "import mcp.server.mcpserver"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    has_mcp.then(|| {
        let mut c = tokio::process::Command::new(python);
        c.arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/reference/python_mcp_server.py"
        ))
        .kill_on_drop(true);
        c
    })
}

async fn stdio(calls: usize) -> Figures {
    let mut cmd = gattway();
    cmd.args(["--log-level", "warn", "mcp"]);
    stdio_server(cmd, calls).await
}

async fn stdio_server(cmd: tokio::process::Command, calls: usize) -> Figures {
    let transport = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gattway mcp")
        .0;
    let pid = transport.id().expect("pid");
    let client = ().serve(transport).await.expect("initialize");
    let f = measure(&client, calls, pid).await;
    let _ = client.cancel().await;
    f
}

/// `pooled`: a reqwest client that keeps connections alive, as the TypeScript and
/// Python SDKs' HTTP clients do; otherwise rmcp's default client, which keeps none
/// (a new TCP connection for every call, by its design).
async fn http(calls: usize, pooled: bool) -> Figures {
    // The hub's feeds store the simulated sensors' readings; at time scale 10^6
    // they would be a flood competing with the calls measured here.
    let env = [
        ("GATTWAY_SIM_TIME_SCALE", "1000000".to_string()),
        ("GATTWAY_HUB_SIM_FEED", "false".to_string()),
        ("GATTWAY_HUB_ADVERT_FEED", "false".to_string()),
        ("GATTWAY_LOG_LEVEL", "info".to_string()),
    ];
    let server = support::Server::start("mcp", &[], &env).await;
    let uri = format!("http://{}/mcp", server.addr);
    let transport = if pooled {
        let client = reqwest::Client::builder().build().expect("reqwest client");
        StreamableHttpClientTransport::with_client(client, StreamableHttpClientTransportConfig::with_uri(uri))
    } else {
        StreamableHttpClientTransport::from_uri(uri)
    };
    let client = ().serve(transport).await.expect("initialize");
    let f = measure(&client, calls, server.pid).await;
    let _ = client.cancel().await;
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
    println!(
        "| transport | sequential calls/s | p50 | p99 | p99.9 | concurrent calls/s | server CPU per call |"
    );
    println!("|---|---|---|---|---|---|---|");
    let python = python_reference().map(|cmd| rt.block_on(stdio_server(cmd, calls)));
    if python.is_none() {
        println!("(Python MCP SDK row skipped: no reference venv; `cargo test --test mcp_python` makes it)");
    }
    for (name, f) in python
        .map(|f| ("Python MCP SDK server, stdio", f))
        .into_iter()
        .chain([
            ("stdio", rt.block_on(stdio(calls))),
            ("http, keep-alive client", rt.block_on(http(calls, true))),
            (
                "http, rmcp's default client (a connection per call)",
                rt.block_on(http(calls, false)),
            ),
        ])
    {
        println!(
            "| {name} | {:.0} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} | {:.0} µs |",
            f.sequential_per_s, f.p50_us, f.p99_us, f.p999_us, f.concurrent_per_s, f.server_cpu_us
        );
    }
}
