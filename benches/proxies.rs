//! Advertisements handled from 10 ESPHome proxies, and the gateway's CPU at that
//! rate. Ten `gattway serve` processes each serve their simulator as an ESPHome
//! Bluetooth proxy (the built-in devices, advertising every 5 ms at the default
//! time scale); an eleventh uses the ten as its radios (`[[radios]] kind =
//! "esphome"`) and keeps a scan running (its hub's advert feed, decoding and
//! storing BTHome readings as in production). Over a window it reports what the
//! proxies heard, what the gateway handled (`gattway_radio_adverts_total`), and
//! the gateway's CPU time as a share of one core. All eleven share this machine.
//!
//! Run: `cargo bench --bench proxies`. GATTWAY_BENCH_PROXIES (default 10),
//! GATTWAY_BENCH_DEVICES (extra simulated devices per proxy, default 0),
//! GATTWAY_BENCH_TIME_SCALE (default 20: the fastest the simulator advertises) and
//! GATTWAY_BENCH_SECONDS (default 10) change it.

mod support;

use std::time::{Duration, Instant};

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A loopback port nobody holds now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn adverts(server: &support::Server) -> f64 {
    server.metric("gattway_radio_adverts_total").await
}

/// A config file with `n` extra simulated devices (advertising a BTHome payload,
/// as the sensors a proxy hears do), for proxy `p`.
fn devices_config(p: usize, n: usize) -> std::path::PathBuf {
    let mut toml = String::new();
    for d in 0..n {
        toml.push_str(&format!(
            "[[sim.devices]]\nname = \"tag-{p}-{d}\"\naddress = \"AA:{p:02X}:00:00:{:02X}:{:02X}\"\n\
             service_data = [{{ uuid = \"fcd2\", data = \"4002{:02x}0a\" }}]\nservices = []\n\n",
            d >> 8,
            d & 0xff,
            d & 0xff
        ));
    }
    let path = std::env::temp_dir().join(format!("gattway-bench-proxy-{p}-{}.toml", std::process::id()));
    std::fs::write(&path, toml).expect("devices config");
    path
}

async fn run(proxies: usize, devices: usize, time_scale: f64, window: Duration) {
    let mut upstream = Vec::with_capacity(proxies);
    let mut configs = Vec::new();
    let mut radios = String::new();
    for i in 0..proxies {
        let port = free_port();
        let devices_file = devices_config(i, devices);
        let server = support::Server::start(
            &format!("proxy-{i}"),
            &[
                "--config",
                devices_file.to_str().expect("path"),
                "--log-level",
                "warn,gattway=info",
            ],
            &[
                ("GATTWAY_ESPHOME_LISTEN", format!("127.0.0.1:{port}")),
                ("GATTWAY_ESPHOME_NAME", format!("proxy-{i}")),
                ("GATTWAY_SIM_TIME_SCALE", time_scale.to_string()),
                // Linked devices stop advertising: nothing is linked.
                ("GATTWAY_HUB_SIM_FEED", "false".into()),
                ("GATTWAY_HUB_ADVERT_FEED", "false".into()),
            ],
        )
        .await;
        radios.push_str(&format!(
            "[[radios]]\nname = \"proxy-{i}\"\nkind = \"esphome\"\naddress = \"127.0.0.1:{port}\"\n\n"
        ));
        upstream.push(server);
        configs.push(devices_file);
    }
    let config = std::env::temp_dir().join(format!("gattway-bench-proxies-{}.toml", std::process::id()));
    std::fs::write(&config, radios).expect("config");
    let gateway = support::Server::start(
        "proxies-gateway",
        &[
            "--config",
            config.to_str().expect("path"),
            "--log-level",
            "warn,gattway=info",
        ],
        &[],
    )
    .await;
    // Every proxy heard through: the gateway's count grows from each radio.
    let warm_until = Instant::now() + Duration::from_secs(30);
    loop {
        let body = reqwest::get(format!("http://{}/api/v1/radios", gateway.addr))
            .await
            .expect("radios")
            .text()
            .await
            .expect("body");
        let ok = body.matches("\"state\":\"ok\"").count();
        let heard = body.matches("\"last_advert_age_ms\":").count()
            - body.matches("\"last_advert_age_ms\":null").count();
        if (ok == proxies && heard == proxies) || Instant::now() > warm_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut offered_before = 0.0;
    for p in &upstream {
        offered_before += adverts(p).await;
    }
    let (handled_before, cpu_before, started) =
        (adverts(&gateway).await, gateway.cpu_seconds(), Instant::now());
    tokio::time::sleep(window).await;
    let (handled_after, cpu_after, elapsed) =
        (adverts(&gateway).await, gateway.cpu_seconds(), started.elapsed());
    let mut offered_after = 0.0;
    for p in &upstream {
        offered_after += adverts(p).await;
    }
    let secs = elapsed.as_secs_f64();
    let offered = (offered_after - offered_before) / secs;
    let handled = (handled_after - handled_before) / secs;
    let cpu = (cpu_after - cpu_before) / secs * 100.0;
    println!(
        "| {proxies} ESPHome proxies ({} devices each) → 1 gateway | proxies heard {offered:.0} adverts/s | gateway handled {handled:.0} adverts/s ({:.1} %) | gateway CPU {cpu:.1} % of one core ({:.1} µs per advert) |",
        devices + 8,
        handled / offered.max(1.0) * 100.0,
        (cpu_after - cpu_before) * 1e6 / (handled_after - handled_before).max(1.0),
    );
    let _ = std::fs::remove_file(&config);
    for c in configs {
        let _ = std::fs::remove_file(c);
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(
        var("GATTWAY_BENCH_PROXIES", 10),
        var("GATTWAY_BENCH_DEVICES", 0),
        var("GATTWAY_BENCH_TIME_SCALE", 20.0),
        Duration::from_secs(var("GATTWAY_BENCH_SECONDS", 10)),
    ));
}
