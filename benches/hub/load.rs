//! The hub under load: starts the release `gattway serve` (one instance, or two
//! of a cluster on PostgreSQL and NATS), connects devices streaming telemetry and
//! clients subscribed to every device, and measures ingest (points acked, so
//! stored), fan-out, latency from a device's send to a subscriber's receipt, the
//! bytes on the wire, and the servers' CPU and RSS.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::stats::percentile;
use crate::stores::Store;
use crate::wire::{self, Kind, Wire, WireBytes};

/// One load: who sends, who listens, how fast.
#[derive(Clone)]
pub struct Params {
    pub devices: u64,
    pub subscribers: u64,
    /// Points a second over all devices; 0: as fast as acks allow (32 messages in
    /// flight per device).
    pub rate: u64,
    /// Points per message.
    pub batch: u64,
    pub secs: u64,
    pub store: Store,
    /// 2: devices on one instance of a cluster, subscribers on another.
    pub instances: usize,
    /// What devices and subscribers speak.
    pub wire: Wire,
}

#[derive(Default)]
pub struct Report {
    pub ingest: f64,
    pub messages: f64,
    pub points: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub samples: usize,
    pub lagged: u64,
    pub server_cpu: f64,
    pub load_cpu: f64,
    pub rss_mib: u64,
    /// Bytes subscribers read per telemetry message delivered (framing included).
    pub bytes_per_delivery: f64,
    /// Bytes devices wrote per telemetry message acked.
    pub bytes_per_sent: f64,
}

#[derive(Default)]
struct Counters {
    acked_points: AtomicU64,
    delivered_messages: AtomicU64,
    delivered_points: AtomicU64,
    lagged: AtomicU64,
}

/// Microseconds since `start`: what devices put in each point's value.
fn micros(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

/// CPU seconds a process has used (user + system).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ')'.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// A running `gattway serve`.
struct Server {
    child: tokio::process::Child,
    addr: String,
    pid: u32,
}

async fn serve(database: &str, cluster: Option<&str>, env: &[(&str, &str)]) -> Server {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_gattway"));
    command
        .args([
            "--backend",
            "sim",
            "--log-level",
            "warn,gattway=info",
            "--log-format",
            "text",
            "serve",
        ])
        .args(["--listen", "127.0.0.1:0", "--database", database])
        .env_remove("GATTWAY_CONFIG")
        .env("GATTWAY_HUB_SIM_FEED", "false")
        .env("GATTWAY_HUB_ADVERT_FEED", "false")
        .env("GATTWAY_HUB_RATE_PER_CONNECTION", "1000000")
        .env("GATTWAY_HUB_BURST_PER_CONNECTION", "1000000")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(name) = cluster {
        command
            .env("GATTWAY_CLUSTER_NATS", crate::peers::NATS_URL)
            .env("GATTWAY_CLUSTER_NAME", name)
            .env("GATTWAY_CLUSTER_SECRET", "the-benchmark-clusters-secret");
    }
    let mut child = command.spawn().expect("gattway binary");
    let pid = child.id().unwrap_or(0);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next_line().await.unwrap().expect("gattway exited");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server { child, addr, pid }
}

/// Runs one load and reports it.
pub async fn run(p: &Params) -> Report {
    let database = p.store.fresh("hub");
    let cluster = (p.instances > 1).then(|| format!("bench-{}", std::process::id()));
    let mut servers = Vec::new();
    for _ in 0..p.instances.max(1) {
        servers.push(serve(&database, cluster.as_deref(), p.wire.server_env()).await);
    }
    let device_addr = servers[0].addr.clone();
    let client_addr = servers[servers.len() - 1].addr.clone();
    let start = Instant::now();
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let measuring = Arc::new(AtomicBool::new(false));
    let batch = p.batch.max(1);

    let (down, up) = (Arc::new(WireBytes::default()), Arc::new(WireBytes::default()));
    for _ in 0..p.subscribers {
        let mut ws = p
            .wire
            .connect(&client_addr, "/hub?role=client", down.clone())
            .await;
        let subscribe = r#"{"type":"subscribe","id":1,"devices":["*"]}"#.to_string();
        ws.send(p.wire.frame(subscribe)).await.unwrap();
        let (counters, latencies, measuring) = (counters.clone(), latencies.clone(), measuring.clone());
        tokio::spawn(async move {
            let mut sample = 0u64;
            while let Some(frame) = ws.next().await {
                match wire::kind(&frame) {
                    Kind::Telemetry => {
                        if !measuring.load(Ordering::Relaxed) {
                            continue;
                        }
                        counters.delivered_messages.fetch_add(1, Ordering::Relaxed);
                        // Every message carries one device message's points.
                        counters.delivered_points.fetch_add(batch, Ordering::Relaxed);
                        sample += 1;
                        // Every 8th message's first point: enough samples, little cost.
                        if sample.is_multiple_of(8) {
                            if let Some(sent) = wire::first_value(&frame) {
                                let now = micros(start);
                                latencies.lock().unwrap().push(now.saturating_sub(sent));
                            }
                        }
                    }
                    Kind::Lagged => {
                        counters.lagged.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        });
    }
    let per_device_msgs = if p.rate == 0 {
        0.0
    } else {
        p.rate as f64 / batch as f64 / p.devices as f64
    };
    let mut senders = Vec::new();
    for d in 0..p.devices {
        let path = format!("/hub?device=bench-{d}");
        let ws = p.wire.connect(&device_addr, &path, up.clone()).await;
        let (mut tx, mut rx) = ws.split();
        let in_flight = Arc::new(tokio::sync::Semaphore::new(32));
        let acks = {
            let (counters, in_flight) = (counters.clone(), in_flight.clone());
            tokio::spawn(async move {
                while let Some(frame) = rx.next().await {
                    if matches!(wire::kind(&frame), Kind::Ack) {
                        counters.acked_points.fetch_add(batch, Ordering::Relaxed);
                        in_flight.add_permits(1);
                    }
                }
            })
        };
        let (devices, wire) = (p.devices, p.wire);
        senders.push(tokio::spawn(async move {
            let _acks = acks;
            let mut tick = (per_device_msgs > 0.0).then(|| {
                // Devices out of phase, as real ones are: ticks spread over the period
                // rather than every device sending in the same instant.
                let period = Duration::from_secs_f64(1.0 / per_device_msgs);
                let phase = period.mul_f64(d as f64 / devices as f64);
                let mut t = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            for seq in 1u64.. {
                match &mut tick {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => in_flight.acquire().await.unwrap().forget(),
                }
                let now = micros(start);
                let mut msg = format!(r#"{{"type":"telemetry","seq":{seq},"points":["#);
                for k in 0..batch {
                    if k > 0 {
                        msg.push(',');
                    }
                    msg.push_str(&format!(r#"{{"key":"k{}","value":{now}}}"#, k % 8));
                }
                msg.push_str("]}");
                if tx.send(wire.frame(msg)).await.is_err() {
                    return;
                }
            }
        }));
    }
    // Warm up, then measure a window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    measuring.store(true, Ordering::Relaxed);
    let acked0 = counters.acked_points.load(Ordering::Relaxed);
    let (read0, written0) = (
        down.read.load(Ordering::Relaxed),
        up.written.load(Ordering::Relaxed),
    );
    let t0 = Instant::now();
    let server_cpu = || servers.iter().map(|s| cpu_secs(s.pid)).sum::<f64>();
    let (cpu0, own0) = (server_cpu(), cpu_secs(std::process::id()));
    tokio::time::sleep(Duration::from_secs(p.secs)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    measuring.store(false, Ordering::Relaxed);
    let read = down.read.load(Ordering::Relaxed) - read0;
    let written = up.written.load(Ordering::Relaxed) - written0;
    let acked_messages = (counters.acked_points.load(Ordering::Relaxed) - acked0) / batch;
    let mut lat = std::mem::take(&mut *latencies.lock().unwrap());
    lat.sort_unstable();
    let report = Report {
        ingest: (counters.acked_points.load(Ordering::Relaxed) - acked0) as f64 / elapsed,
        messages: counters.delivered_messages.load(Ordering::Relaxed) as f64 / elapsed,
        points: counters.delivered_points.load(Ordering::Relaxed) as f64 / elapsed,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        p999: percentile(&lat, 0.999),
        samples: lat.len(),
        lagged: counters.lagged.load(Ordering::Relaxed),
        server_cpu: (server_cpu() - cpu0) / elapsed * 100.0,
        load_cpu: (cpu_secs(std::process::id()) - own0) / elapsed * 100.0,
        rss_mib: servers.iter().map(|s| rss_kib(s.pid)).sum::<u64>() / 1024,
        bytes_per_delivery: read as f64 / counters.delivered_messages.load(Ordering::Relaxed).max(1) as f64,
        bytes_per_sent: written as f64 / acked_messages.max(1) as f64,
    };
    for s in &senders {
        s.abort();
    }
    for mut s in servers {
        let _ = s.child.start_kill();
        let _ = s.child.wait().await;
    }
    p.store.remove(&database);
    report
}
