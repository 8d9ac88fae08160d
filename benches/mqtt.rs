//! MQTT publishes per second: a real `gattway serve` (release, simulator feeds off)
//! exports to the Mosquitto on 127.0.0.1:1883 while one hub device sends N points
//! (batches of 100, as fast as they are acknowledged). Reports how fast the broker
//! acknowledged them (`gattway_mqtt_published_total`, QoS 1, 64 in flight), and
//! what a subscriber on the same broker received. Mosquitto, gattway, the device
//! and the subscriber share the two cores.
//!
//! Run: `cargo bench --bench mqtt` (GATTWAY_BENCH_POINTS, default 100000).

mod support;

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio_tungstenite::tungstenite::Message;

async fn run(n: usize) {
    let base = format!("gattway-bench-{}", std::process::id());
    let server = support::Server::start(
        "mqtt",
        &["--log-level", "warn,gattway=info"],
        &[
            ("GATTWAY_MQTT_URL", "mqtt://127.0.0.1:1883".into()),
            ("GATTWAY_MQTT_BASE_TOPIC", base.clone()),
            ("GATTWAY_MQTT_CLIENT_ID", base.clone()),
            ("GATTWAY_MQTT_DISCOVERY_PREFIX", format!("{base}-ha")),
            ("GATTWAY_HUB_SIM_FEED", "false".into()),
            ("GATTWAY_HUB_ADVERT_FEED", "false".into()),
        ],
    )
    .await;
    // A subscriber, to count what reached the broker's other side.
    let mut options = MqttOptions::new(format!("{base}-sub"), "127.0.0.1", 1883);
    options.set_keep_alive(Duration::from_secs(30));
    let (sub, mut events) = AsyncClient::new(options, 100);
    sub.subscribe(format!("{base}/bench/#"), QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = received.clone();
    tokio::spawn(async move {
        while let Ok(e) = events.poll().await {
            if let Event::Incoming(Packet::Publish(_)) = e {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    while server.metric("gattway_mqtt_connected").await != 1.0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut device, _) = tokio_tungstenite::connect_async(format!("ws://{}/hub?device=bench", server.addr))
        .await
        .expect("hub device");
    device.next().await;
    let published_before = server.metric("gattway_mqtt_published_total").await;
    let started = Instant::now();
    let batches = n / 100;
    let mut acked = 0;
    for seq in 0..batches {
        let points: Vec<serde_json::Value> = (0..100)
            .map(|i| serde_json::json!({"key": format!("k{}", i % 10), "value": seq * 100 + i}))
            .collect();
        let msg = serde_json::json!({"type": "telemetry", "seq": seq + 1, "points": points});
        device.send(Message::text(msg.to_string())).await.expect("send");
        // Up to 32 batches in flight, as the hub bench's devices keep.
        while seq + 1 - acked > 32 {
            if let Some(Ok(Message::Text(t))) = device.next().await {
                if t.contains("telemetry_ack") {
                    acked += 1;
                }
            }
        }
    }
    let stored_at = started.elapsed();
    loop {
        let published = server.metric("gattway_mqtt_published_total").await - published_before;
        if published >= (batches * 100) as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let total = batches * 100;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = received.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "| {total} points → MQTT (QoS 1) | stored in {:.2} s | broker acknowledged all in {:.2} s: **{:.0} publishes/s** | subscriber received {got} |",
        stored_at.as_secs_f64(),
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
    );
}

fn main() {
    let n: usize = std::env::var("GATTWAY_BENCH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n));
}
