//! Hub load generator: starts the release `gattway serve` on a fresh database,
//! connects N devices streaming telemetry and M clients subscribed to every
//! device, and reports ingest (points acked, so stored, per second), fan-out
//! (messages and points delivered per second), end-to-end latency from a device's
//! send to a subscriber's receipt (p50/p99/p999) and the server's RSS.
//!
//! `cargo bench --bench hub`; knobs (environment):
//! - `GATTWAY_BENCH_DEVICES` (100), `GATTWAY_BENCH_SUBSCRIBERS` (100)
//! - `GATTWAY_BENCH_RATE`: points/s offered over all devices (100000); 0 = as fast
//!   as acks allow (each device keeps 32 messages in flight): the peak ingest.
//! - `GATTWAY_BENCH_BATCH`: points per message (100), `GATTWAY_BENCH_SECS` (10).
//! - `GATTWAY_BENCH_STORE`: `sqlite` (a fresh file, the default) or `postgres` (a
//!   fresh database on `GATTWAY_BENCH_POSTGRES`, default
//!   `postgres://postgres@127.0.0.1:5432/test`, dropped after).
//!
//! Peak ingest (no subscribers, rate 0) first measures the raw store beside it, in
//! the same run ([`peers`]), and reports the hub's share of it.

mod peers;

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Counters {
    acked_points: AtomicU64,
    delivered_messages: AtomicU64,
    delivered_points: AtomicU64,
    lagged: AtomicU64,
}

/// Microseconds since the bench started: what devices put in each point's value.
fn micros(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

/// The first point's value in a telemetry frame, without parsing the whole frame.
fn first_value(frame: &str) -> Option<u64> {
    let at = frame.find("\"value\":")? + 8;
    let digits: String = frame[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
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

/// CPU seconds the process has used (user + system).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ')'.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let devices = knob("GATTWAY_BENCH_DEVICES", 100);
    let subscribers = knob("GATTWAY_BENCH_SUBSCRIBERS", 100);
    let rate = knob("GATTWAY_BENCH_RATE", 100_000);
    let batch = knob("GATTWAY_BENCH_BATCH", 100).max(1);
    let secs = knob("GATTWAY_BENCH_SECS", 10);
    let db = std::env::temp_dir().join(format!("gattway-bench-{}.db", std::process::id()));
    let store = Store::from_env();
    let raw = if rate == 0 && subscribers == 0 {
        let url = store.fresh("raw");
        let raw = match store {
            Store::Sqlite => peers::sqlite(&url, secs).await,
            Store::Postgres(_) => peers::postgres(&url, secs).await,
        };
        store.remove(&url);
        println!("raw {}: {raw:.0} points/s", store.peer_name());
        Some(raw)
    } else {
        None
    };
    let database = match store {
        Store::Sqlite => format!("sqlite://{}", db.display()),
        Store::Postgres(_) => store.fresh("hub"),
    };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_gattway"))
        .args([
            "--backend",
            "sim",
            "--log-level",
            "warn,gattway=info",
            "--log-format",
            "text",
            "serve",
        ])
        .args(["--listen", "127.0.0.1:0", "--database", &database])
        .env_remove("GATTWAY_CONFIG")
        .env("GATTWAY_HUB_SIM_FEED", "false")
        .env("GATTWAY_HUB_RATE_PER_CONNECTION", "1000000")
        .env("GATTWAY_HUB_BURST_PER_CONNECTION", "1000000")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("gattway binary");
    let pid = child.id().unwrap_or(0);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next_line().await.unwrap().expect("gattway exited");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let rss_idle = rss_kib(pid);
    let start = Instant::now();
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));

    for _ in 0..subscribers {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/hub?role=client"), None, true)
                .await
                .expect("client");
        ws.send(Message::Text(
            r#"{"type":"subscribe","id":1,"devices":["*"]}"#.into(),
        ))
        .await
        .unwrap();
        let (counters, latencies, measuring) = (counters.clone(), latencies.clone(), measuring.clone());
        tokio::spawn(async move {
            let mut sample = 0u64;
            while let Some(Ok(Message::Text(t))) = ws.next().await {
                if t.starts_with(r#"{"type":"telemetry""#) {
                    if !measuring.load(Ordering::Relaxed) {
                        continue;
                    }
                    counters.delivered_messages.fetch_add(1, Ordering::Relaxed);
                    // Every message carries one device message's points.
                    counters.delivered_points.fetch_add(batch, Ordering::Relaxed);
                    sample += 1;
                    // Every 8th message's first point: enough samples, little cost.
                    if sample.is_multiple_of(8) {
                        if let Some(sent) = first_value(&t) {
                            let now = micros(start);
                            latencies.lock().unwrap().push(now.saturating_sub(sent));
                        }
                    }
                } else if t.contains(r#""type":"lagged""#) {
                    counters.lagged.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let per_device_msgs = if rate == 0 {
        0.0
    } else {
        rate as f64 / batch as f64 / devices as f64
    };
    for d in 0..devices {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(
            format!("ws://{addr}/hub?device=bench-{d}"),
            None,
            true,
        )
        .await
        .expect("device");
        let (mut tx, mut rx) = ws.split();
        let in_flight = Arc::new(tokio::sync::Semaphore::new(32));
        let acks = {
            let (counters, in_flight) = (counters.clone(), in_flight.clone());
            tokio::spawn(async move {
                while let Some(Ok(Message::Text(t))) = rx.next().await {
                    if t.contains(r#""type":"telemetry_ack""#) {
                        counters.acked_points.fetch_add(batch, Ordering::Relaxed);
                        in_flight.add_permits(1);
                    }
                }
            })
        };
        tokio::spawn(async move {
            let _acks = acks;
            let mut tick = (per_device_msgs > 0.0).then(|| {
                // Devices out of phase, as real ones are: ticks spread over the period
                // rather than 100 devices sending in the same instant.
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
                if tx.send(Message::Text(msg.into())).await.is_err() {
                    return;
                }
            }
        });
    }
    // Warm up, then measure a window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    measuring.store(true, Ordering::Relaxed);
    let acked0 = counters.acked_points.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let (cpu0, own0) = (cpu_secs(pid), cpu_secs(std::process::id()));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let server_cpu = (cpu_secs(pid) - cpu0) / elapsed * 100.0;
    let load_cpu = (cpu_secs(std::process::id()) - own0) / elapsed * 100.0;
    measuring.store(false, Ordering::Relaxed);
    let acked = counters.acked_points.load(Ordering::Relaxed) - acked0;
    let msgs = counters.delivered_messages.load(Ordering::Relaxed);
    let pts = counters.delivered_points.load(Ordering::Relaxed);
    let rss = rss_kib(pid);
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_unstable();
    let pct = |q: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((lat.len() - 1) as f64 * q) as usize] as f64 / 1000.0
        }
    };
    println!(
        "hub: {devices} devices, {subscribers} subscribers (all devices), {batch} points/message, offered {}",
        if rate == 0 {
            "as fast as acked".to_string()
        } else {
            format!("{rate} points/s")
        }
    );
    let ingest = acked as f64 / elapsed;
    match raw {
        Some(raw) => println!(
            "  ingest (acked = stored): {ingest:.0} points/s = {:.0} % of {} ({raw:.0}), same run",
            ingest / raw * 100.0,
            store.peer_name()
        ),
        None => println!("  ingest (acked = stored): {ingest:.0} points/s"),
    }
    println!(
        "  fan-out: {:.0} messages/s, {:.0} points/s delivered",
        msgs as f64 / elapsed,
        pts as f64 / elapsed
    );
    println!(
        "  latency device→subscriber: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms ({} samples)",
        pct(0.5),
        pct(0.99),
        pct(0.999),
        lat.len()
    );
    println!(
        "  lagged notices: {}; server RSS {} MiB (idle {} MiB); CPU: server {server_cpu:.0} %, load generator {load_cpu:.0} % (of one core)",
        counters.lagged.load(Ordering::Relaxed),
        rss / 1024,
        rss_idle / 1024
    );
    let size = |suffix: &str| {
        std::fs::metadata(format!("{}{suffix}", db.display()))
            .map(|m| m.len() / (1024 * 1024))
            .unwrap_or(0)
    };
    if let Store::Sqlite = store {
        println!("  database {} MiB, WAL {} MiB", size(""), size("-wal"));
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    store.remove(&database);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

/// Which store the hub (and its raw peer) runs on.
enum Store {
    Sqlite,
    /// The admin URL fresh databases are made on.
    Postgres(String),
}

impl Store {
    fn from_env() -> Store {
        match std::env::var("GATTWAY_BENCH_STORE").as_deref() {
            Ok("postgres") => Store::Postgres(
                std::env::var("GATTWAY_BENCH_POSTGRES")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
            ),
            Ok("sqlite") | Err(_) => Store::Sqlite,
            Ok(other) => panic!("GATTWAY_BENCH_STORE={other}: sqlite or postgres"),
        }
    }

    fn peer_name(&self) -> &'static str {
        match self {
            Store::Sqlite => "batched SQLite INSERTs",
            Store::Postgres(_) => "PostgreSQL COPY",
        }
    }

    /// A new empty database's URL, named for `purpose`.
    fn fresh(&self, purpose: &str) -> String {
        let name = format!("gattway_bench_{purpose}_{}", std::process::id());
        match self {
            Store::Sqlite => format!(
                "sqlite://{}",
                std::env::temp_dir().join(format!("{name}.db")).display()
            ),
            Store::Postgres(admin) => {
                admin_sql(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                admin_sql(admin, &format!("CREATE DATABASE {name}"));
                let server = admin
                    .rsplit_once('/')
                    .map_or(admin.as_str(), |(server, _)| server);
                format!("{server}/{name}")
            }
        }
    }

    fn remove(&self, url: &str) {
        match self {
            Store::Sqlite => {
                let path = url.trim_start_matches("sqlite://");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
            Store::Postgres(admin) => {
                let name = url.rsplit('/').next().unwrap_or_default();
                admin_sql(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// One statement on the admin database, from a thread of its own (the bench's
/// runtime is busy with the load).
fn admin_sql(admin: &str, sql: &str) {
    let (admin, sql) = (admin.to_string(), sql.to_string());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("PostgreSQL admin");
                sqlx::raw_sql(&sql)
                    .execute(&mut conn)
                    .await
                    .expect("admin statement");
            })
    })
    .join()
    .unwrap();
}
