//! The hub's benchmark: every figure the cluster issue sets a bar for, each beside
//! its peer measured in the same run on the same machine, printed as a table.
//!
//! `cargo bench --bench hub` runs them all (about four minutes); the rows are:
//! - fan-out, 1 publisher → 100 subscribers, one point per message, at 100k and
//!   600k deliveries/s, and as fast as it goes: the hub (storing every message
//!   first) beside NATS core and Mosquitto;
//! - the same at 100k/s through two instances of a cluster (device on one,
//!   subscribers on the other), beside one instance on the same store;
//! - ingest, 100 devices × 100 points a message, as fast as acks allow: the hub on
//!   SQLite and on PostgreSQL beside the raw store ([`stores`]);
//! - the hub issue's own target: 100 devices × 100 subscribers × 100k points/s;
//! - the wire: fan-out at 100k deliveries/s in JSON, JSON with permessage-deflate,
//!   CBOR (`gattway.cbor`) and CBOR with deflate: bytes, CPU, p99
//!   (`GATTWAY_BENCH_ROW=wire` runs only these).
//!
//! `GATTWAY_BENCH_SECS` (10) is each measurement's window. One load of your own
//! instead: `GATTWAY_BENCH_ROW=custom` with `GATTWAY_BENCH_DEVICES` (100),
//! `_SUBSCRIBERS` (100), `_RATE` (points/s over all devices, 100000; 0 = as fast
//! as acked), `_BATCH` (100), `_STORE` (`sqlite` or `postgres`), `_INSTANCES` (1),
//! `_WIRE` (`json`, `deflate`, `cbor`, `cbor+deflate`).
//! PostgreSQL databases are made on `GATTWAY_BENCH_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and dropped after.

mod load;
mod peers;
mod stats;
mod stores;
mod wire;

use load::{Params, Report};
use stores::Store;
use wire::Wire;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        match std::env::var("GATTWAY_BENCH_ROW").as_deref() {
            Ok("custom") => custom().await,
            Ok("wire") => {
                header();
                wire_rows(knob("GATTWAY_BENCH_SECS", 10)).await
            }
            _ => table().await,
        }
    });
}

async fn custom() {
    let p = Params {
        devices: knob("GATTWAY_BENCH_DEVICES", 100),
        subscribers: knob("GATTWAY_BENCH_SUBSCRIBERS", 100),
        rate: knob("GATTWAY_BENCH_RATE", 100_000),
        batch: knob("GATTWAY_BENCH_BATCH", 100),
        secs: knob("GATTWAY_BENCH_SECS", 10),
        store: Store::from_env(),
        instances: knob("GATTWAY_BENCH_INSTANCES", 1) as usize,
        wire: Wire::from_env(),
    };
    let r = load::run(&p).await;
    println!(
        "hub on {} ({} instance(s), {}): {} devices, {} subscribers, {} points/message, offered {}",
        p.store.name(),
        p.instances,
        p.wire.name(),
        p.devices,
        p.subscribers,
        p.batch,
        if p.rate == 0 {
            "as fast as acked".to_string()
        } else {
            format!("{} points/s", p.rate)
        }
    );
    print_report(&r);
}

fn print_report(r: &Report) {
    println!("  ingest (acked = stored): {:.0} points/s", r.ingest);
    println!(
        "  fan-out: {:.0} messages/s, {:.0} points/s delivered",
        r.messages, r.points
    );
    println!(
        "  latency device→subscriber: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms ({} samples)",
        r.p50, r.p99, r.p999, r.samples
    );
    println!(
        "  lagged notices: {}; servers' RSS {} MiB; CPU: servers {:.0} %, load generator {:.0} % (of one core)",
        r.lagged, r.rss_mib, r.server_cpu, r.load_cpu
    );
    println!(
        "  wire: {:.1} bytes per delivery, {:.1} bytes per device message",
        r.bytes_per_delivery, r.bytes_per_sent
    );
}

fn header() {
    println!("| what | gattway | peer, same run | bar |");
    println!("|---|---|---|---|");
}

/// Fan-out at 100k deliveries/s in each encoding: bytes, CPU, p99.
async fn wire_rows(secs: u64) {
    let mut json_bytes = 0.0;
    for wire in Wire::ALL {
        let r = load::run(&Params {
            devices: 1,
            subscribers: 100,
            rate: 1000,
            batch: 1,
            secs,
            store: Store::Sqlite,
            instances: 1,
            wire,
        })
        .await;
        if wire == Wire::Json {
            json_bytes = r.bytes_per_delivery;
        }
        row(
            &format!("the wire, fan-out 1 → 100 at 100k deliveries/s: {}", wire.name()),
            format!(
                "**{:.1}** bytes/delivery (**{:.0} %** fewer than JSON), {:.1} bytes/device message; server CPU {:.0} %, load generator {:.0} %, server RSS {} MiB; p50 {:.2} / p99 **{:.2}** ms, {:.0} deliveries/s",
                r.bytes_per_delivery,
                (1.0 - r.bytes_per_delivery / json_bytes) * 100.0,
                r.bytes_per_sent,
                r.server_cpu,
                r.load_cpu,
                r.rss_mib,
                r.p50,
                r.p99,
                r.messages
            ),
            String::new(),
            "≥ 60 % fewer bytes than JSON; p99 ≤ NATS core's",
        );
    }
}

/// One line of the table.
fn row(what: &str, ours: String, peer: String, bar: &str) {
    println!("| {what} | {ours} | {peer} | {bar} |");
}

fn latency(r: &Report) -> String {
    format!(
        "p50 {:.2} / p99 **{:.2}** ms, {:.0} deliveries/s",
        r.p50, r.p99, r.messages
    )
}

async fn table() {
    let secs = knob("GATTWAY_BENCH_SECS", 10);
    let postgres = Store::Postgres(
        std::env::var("GATTWAY_BENCH_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into()),
    );
    let fan_out = |rate: u64, store: Store, instances: usize| Params {
        devices: 1,
        subscribers: 100,
        rate,
        batch: 1,
        secs,
        store,
        instances,
        wire: Wire::Json,
    };
    header();
    for deliveries in [100_000u64, 600_000] {
        let hub = load::run(&fan_out(deliveries / 100, Store::Sqlite, 1)).await;
        let nats = peers::nats(100, deliveries / 100, secs).await;
        let mosquitto = peers::mosquitto(100, deliveries / 100, secs).await;
        row(
            &format!(
                "fan-out 1 → 100 at {}k deliveries/s (hub: each stored first, SQLite)",
                deliveries / 1000
            ),
            latency(&hub),
            format!(
                "NATS core p50 {:.2} / p99 {:.2} ms ({:.0}/s); Mosquitto p50 {:.2} / p99 {:.2} ms ({:.0}/s)",
                nats.p50, nats.p99, nats.deliveries, mosquitto.p50, mosquitto.p99, mosquitto.deliveries
            ),
            "p99 ≤ NATS core's",
        );
    }
    let hub = load::run(&fan_out(0, Store::Sqlite, 1)).await;
    let nats = peers::nats(100, 0, secs).await;
    row(
        "fan-out 1 → 100, as fast as it goes",
        format!("{:.0} deliveries/s (p99 {:.2} ms)", hub.messages, hub.p99),
        format!(
            "NATS core {:.0} deliveries/s (p99 {:.2} ms)",
            nats.deliveries, nats.p99
        ),
        "",
    );
    let one = load::run(&fan_out(1000, postgres.clone(), 1)).await;
    let two = load::run(&fan_out(1000, postgres.clone(), 2)).await;
    row(
        "fan-out 1 → 100 at 100k/s through two instances (device on A, subscribers on B), PostgreSQL",
        latency(&two),
        format!("one instance on PostgreSQL: {}", latency(&one)),
        "p99 ≤ 2 × one instance's",
    );
    for store in [Store::Sqlite, postgres.clone()] {
        let raw = store.raw_ingest(secs, true).await;
        let unindexed = match store {
            Store::Sqlite => format!(
                "; without the series index: {:.0} (the brief's ~840k)",
                store.raw_ingest(secs, false).await
            ),
            Store::Postgres(_) => String::new(),
        };
        let hub = load::run(&Params {
            devices: 100,
            subscribers: 0,
            rate: 0,
            batch: 100,
            secs,
            store: store.clone(),
            instances: 1,
            wire: Wire::Json,
        })
        .await;
        row(
            &format!(
                "ingest on {}, 100 devices × 100 points/message, as fast as acked",
                store.name()
            ),
            format!(
                "**{:.0}** points/s = **{:.0} %** of raw (server CPU {:.0} %)",
                hub.ingest,
                hub.ingest / raw * 100.0,
                hub.server_cpu
            ),
            format!(
                "raw {}, same schema: {raw:.0} points/s{unindexed}",
                store.peer_name()
            ),
            "≥ 50 % of raw",
        );
    }
    let target = load::run(&Params {
        devices: 100,
        subscribers: 100,
        rate: 100_000,
        batch: 100,
        secs,
        store: Store::Sqlite,
        instances: 1,
        wire: Wire::Json,
    })
    .await;
    row(
        "the hub issue's target: 100 devices × 100 subscribers × 100k points/s (SQLite)",
        format!(
            "p50 {:.2} / p99 **{:.2}** / p999 {:.2} ms, {:.0} points/s delivered",
            target.p50, target.p99, target.p999, target.points
        ),
        String::new(),
        "p99 < 20 ms",
    );
    wire_rows(secs).await;
}
