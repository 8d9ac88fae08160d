//! The brokers the hub's fan-out is measured against, in the same run, on the
//! same machine and the same shape of load: one publisher, N subscribers each on
//! its own connection, JSON messages the size of the hub's one-point telemetry
//! frame, carrying their send time. NATS core stores nothing; Mosquitto takes
//! them at QoS 0. The hub stores every message before it fans it out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::stats::percentile;

/// The NATS server the tests and the cluster use.
pub const NATS_URL: &str = "nats://127.0.0.1:4222";
const MOSQUITTO: (&str, u16) = ("127.0.0.1", 1883);

/// Deliveries a second over all subscribers, and latency (ms).
pub struct Fanout {
    pub deliveries: f64,
    pub p50: f64,
    pub p99: f64,
}

/// What subscribers count and sample while `measuring`.
#[derive(Clone, Default)]
struct Tally {
    delivered: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<u64>>>,
    measuring: Arc<AtomicBool>,
}

impl Tally {
    /// One message received: counted, and every 8th one's latency sampled.
    fn received(&self, payload: &[u8], start: Instant, sample: &mut u64) {
        if !self.measuring.load(Ordering::Relaxed) {
            return;
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
        *sample += 1;
        if sample.is_multiple_of(8) {
            if let Some(sent) = sent_at(payload) {
                let now = start.elapsed().as_micros() as u64;
                self.latencies.lock().unwrap().push(now.saturating_sub(sent));
            }
        }
    }

    /// Warms up for 2 s, measures for `secs`.
    async fn measure(&self, secs: u64) -> Fanout {
        tokio::time::sleep(Duration::from_secs(2)).await;
        self.measuring.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        self.measuring.store(false, Ordering::Relaxed);
        let elapsed = t0.elapsed().as_secs_f64();
        let mut lat = std::mem::take(&mut *self.latencies.lock().unwrap());
        lat.sort_unstable();
        Fanout {
            deliveries: self.delivered.load(Ordering::Relaxed) as f64 / elapsed,
            p50: percentile(&lat, 0.5),
            p99: percentile(&lat, 0.99),
        }
    }
}

/// A message like the hub's: one point whose value is the send time (µs).
fn message(n: u64, now: u64) -> Vec<u8> {
    format!(
        r#"{{"type":"telemetry","device":"bench-0","points":[{{"id":{n},"key":"k0","value":{now},"ts":1796112596989}}]}}"#
    )
    .into_bytes()
}

fn sent_at(payload: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(payload).ok()?;
    let at = text.find("\"value\":")? + 8;
    let digits: String = text[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Publishes at `rate` messages a second (0: as fast as the client takes them)
/// until dropped.
fn publish_paced<F, Fut>(rate: u64, start: Instant, mut publish: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut(Vec<u8>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        let mut sent = 0u64;
        loop {
            let due = if rate == 0 {
                sent + 64
            } else {
                (start.elapsed().as_secs_f64() * rate as f64) as u64
            };
            while sent < due {
                sent += 1;
                if !publish(message(sent, start.elapsed().as_micros() as u64)).await {
                    return;
                }
            }
            if rate > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    })
}

/// NATS core: `subscribers` connections on one subject, one publisher.
pub async fn nats(subscribers: u64, rate: u64, secs: u64) -> Fanout {
    let subject = format!("bench.fanout.{}", std::process::id());
    let (tally, start) = (Tally::default(), Instant::now());
    let mut tasks = Vec::new();
    for _ in 0..subscribers {
        let client = async_nats::connect(NATS_URL)
            .await
            .expect("NATS (./test.sh starts it)");
        let mut sub = client.subscribe(subject.clone()).await.unwrap();
        client.flush().await.unwrap();
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let _client = client;
            let mut sample = 0;
            while let Some(m) = sub.next().await {
                tally.received(&m.payload, start, &mut sample);
            }
        }));
    }
    let publisher = async_nats::connect(NATS_URL).await.unwrap();
    tasks.push(publish_paced(rate, start, move |body| {
        let (client, subject) = (publisher.clone(), subject.clone());
        async move { client.publish(subject, body.into()).await.is_ok() }
    }));
    let result = tally.measure(secs).await;
    for t in tasks {
        t.abort();
    }
    result
}

/// Mosquitto at QoS 0: `subscribers` clients on one topic, one publisher.
pub async fn mosquitto(subscribers: u64, rate: u64, secs: u64) -> Fanout {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let topic = format!("bench/fanout/{}", std::process::id());
    let (tally, start) = (Tally::default(), Instant::now());
    let options = |id: String| {
        let mut o = MqttOptions::new(id, MOSQUITTO.0, MOSQUITTO.1);
        o.set_keep_alive(Duration::from_secs(30));
        o
    };
    let mut tasks = Vec::new();
    for i in 0..subscribers {
        let (client, mut events) =
            AsyncClient::new(options(format!("bench-sub-{i}-{}", std::process::id())), 1024);
        client.subscribe(&topic, QoS::AtMostOnce).await.unwrap();
        // Subscribed once the broker says so.
        loop {
            match events.poll().await.expect("Mosquitto (./test.sh starts it)") {
                Event::Incoming(Packet::SubAck(_)) => break,
                _ => continue,
            }
        }
        let tally = tally.clone();
        tasks.push(tokio::spawn(async move {
            let _client = client;
            let mut sample = 0;
            while let Ok(event) = events.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = event {
                    tally.received(&p.payload, start, &mut sample);
                }
            }
        }));
    }
    let (publisher, mut events) =
        AsyncClient::new(options(format!("bench-pub-{}", std::process::id())), 1024);
    tasks.push(tokio::spawn(async move { while events.poll().await.is_ok() {} }));
    tasks.push(publish_paced(rate, start, move |body| {
        let (client, topic) = (publisher.clone(), topic.clone());
        async move { client.publish(topic, QoS::AtMostOnce, false, body).await.is_ok() }
    }));
    let result = tally.measure(secs).await;
    for t in tasks {
        t.abort();
    }
    result
}
