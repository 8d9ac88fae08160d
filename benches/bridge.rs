//! The WebSocket bridge's round trip and throughput, through a real WebSocket
//! client: `data` → session → gateway write to the simulated Nordic UART RX → echo
//! notification on TX → `data` back. The server runs in this process on loopback;
//! the simulator at time scale 10^6 (radio latency skipped), so this measures
//! gattway's bridge path. Client and server share the machine.
//!
//! Run: `cargo bench --bench bridge` (GATTWAY_BENCH_FRAMES sets frames per phase).

use std::sync::Arc;
use std::time::Instant;

use futures::{SinkExt, StreamExt};
use gattway::app::{serve, AppState};
use gattway::ble::sim::{SimBackend, SimConfig};
use gattway::gateway::{Gateway, GatewayConfig};
use gattway::metrics::Metrics;
use tokio_tungstenite::tungstenite::Message;

const QUERY: &str = "service=6e400001-b5a3-f393-e0a9-e50e24dcca9e&write=6e400002-b5a3-f393-e0a9-e50e24dcca9e\
                     &notify=6e400003-b5a3-f393-e0a9-e50e24dcca9e&device=Gattway%20UART";
const FRAME: &str = r#"{"type":"data","data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]}"#;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_data(ws: &mut Ws) {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().starts_with(r#"{"type":"data""#) => return,
            Some(Ok(Message::Text(t))) if t.as_str().contains(r#""type":"error""#) => {
                panic!("bridge error: {t}")
            }
            Some(Ok(_)) => continue,
            other => panic!("socket ended: {other:?}"),
        }
    }
}

async fn run(frames: usize) {
    let sim = SimBackend::new(&SimConfig {
        time_scale: 1e6,
        ..SimConfig::default()
    })
    .expect("simulator");
    let gateway = Gateway::new(sim, GatewayConfig::default(), Arc::new(Metrics::new())).expect("gateway");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let auth =
        std::sync::Arc::new(gattway::auth::Authenticator::new(&Default::default()).expect("open auth"));
    let state = AppState::new(gateway.clone(), Default::default(), Default::default(), auth);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/?{QUERY}"))
        .await
        .expect("handshake");
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str().contains("connected") => {}
        other => panic!("expected connected, got {other:?}"),
    }
    for _ in 0..frames / 10 {
        ws.send(Message::Text(FRAME.into())).await.expect("send");
        next_data(&mut ws).await;
    }

    let mut lat = Vec::with_capacity(frames);
    let start = Instant::now();
    for _ in 0..frames {
        let t = Instant::now();
        ws.send(Message::Text(FRAME.into())).await.expect("send");
        next_data(&mut ws).await;
        lat.push(t.elapsed());
    }
    let sequential = start.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;

    // Pipelined: the writer never waits; count echoes as they come back.
    let (mut sink, mut stream) = ws.split();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        for _ in 0..frames {
            sink.send(Message::Text(FRAME.into())).await.expect("send");
        }
        sink
    });
    let mut received = 0;
    while received < frames {
        match stream.next().await {
            Some(Ok(Message::Text(t))) if t.as_str().starts_with(r#"{"type":"data""#) => received += 1,
            Some(Ok(Message::Text(t))) if t.as_str().contains(r#""type":"warning""#) => {}
            Some(Ok(_)) => {}
            other => panic!("socket ended after {received}: {other:?}"),
        }
    }
    let pipelined = start.elapsed();
    let _ = writer.await;

    println!(
        "| round trip, one at a time | {:.0}/s | {:.0} µs | {:.0} µs | {:.0} µs |",
        frames as f64 / sequential.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        pct(0.999)
    );
    println!(
        "| pipelined writes → echoes | {:.0}/s | | | |",
        frames as f64 / pipelined.as_secs_f64()
    );
    let _ = stop.send(());
    let _ = server.await;
    gateway.shutdown().await;
}

fn main() {
    let frames: usize = std::env::var("GATTWAY_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("Bridge, {frames} frames of 20 bytes per phase (Nordic UART echo)");
    println!("| phase | frames/s | p50 | p99 | p99.9 |");
    println!("|---|---|---|---|---|");
    rt.block_on(run(frames));
}
