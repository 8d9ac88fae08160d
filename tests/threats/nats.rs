//! The NATS surface: instances seal what they tell each other with
//! `cluster.secret`, so a publisher on the same NATS who is not an instance (a
//! plain async-nats client here) is not heard, and counted; an instance with
//! another secret is no part of the hub; start-up refuses a cluster without a
//! secret; and NATS credentials are used. Real processes, the real NATS at
//! 127.0.0.1:4222 (a cluster name per test) and a fresh PostgreSQL database each.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::process::{gattway, serve_hub};
use crate::common::{within, JsonWs, TempDb};

fn nats_url() -> String {
    std::env::var("GATTWAY_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

const SECRET: &str = "a-secret-the-instances-share";

/// Instances of one hub: one database, one cluster name.
struct Hub {
    db: TempDb,
    name: String,
}

struct Instance {
    _child: tokio::process::Child,
    addr: String,
}

impl Hub {
    fn new() -> Hub {
        Hub {
            db: TempDb::postgres(),
            name: format!("threat-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    async fn start(&self, secret: &str, nats: &str, extra: &[(&str, &str)]) -> Instance {
        let mut env = vec![
            ("GATTWAY_CLUSTER_NATS", nats),
            ("GATTWAY_CLUSTER_NAME", self.name.as_str()),
            ("GATTWAY_CLUSTER_SECRET", secret),
            ("GATTWAY_HUB_RETENTION_DAYS", "0"),
        ];
        env.extend_from_slice(extra);
        let (child, addr) = serve_hub(&self.db.url(), "127.0.0.1:0", &env).await;
        Instance { _child: child, addr }
    }
}

impl Instance {
    async fn connect(&self, query: &str) -> JsonWs {
        let mut ws = JsonWs::connect(&format!("ws://{}/hub?{query}", self.addr)).await;
        assert_eq!(ws.next().await["type"], "welcome");
        ws
    }

    /// `gattway_cluster_rejected_total` on this instance.
    async fn rejected(&self) -> u64 {
        let text = reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("gattway_cluster_rejected_total "))
            .and_then(|v| v.trim().parse().ok())
            .expect("gattway_cluster_rejected_total")
    }

    /// Waits until this instance has dropped at least `n` messages.
    async fn rejected_at_least(&self, n: u64) {
        within("the rejected messages counted", async {
            while self.rejected().await < n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }
}

/// A publisher on the hub's NATS that is not an instance.
async fn intruder() -> async_nats::Client {
    async_nats::connect(nats_url()).await.expect("NATS")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A real device on `a` sends a reading: it is the first `watcher` gets, so
/// nothing forged reached it before.
async fn the_first_reading_is_a_real_devices(a: &Instance, watcher: &mut JsonWs) {
    let mut device = a.connect("device=real-dev").await;
    device
        .send(json!({"type": "telemetry", "seq": 1, "points": [{"key": "t", "value": 21}]}))
        .await;
    let live = within("the real reading", watcher.next_of("telemetry")).await;
    assert_eq!(
        (&live["device"], &live["points"][0]["value"]),
        (&json!("real-dev"), &json!(21))
    );
}

#[tokio::test]
async fn a_forged_presence_does_not_kick_a_connected_device() {
    let hub = Hub::new();
    let a = hub.start(SECRET, &nats_url(), &[]).await;
    let mut device = a.connect("device=probe-dev").await;
    // "probe-dev came online elsewhere, later": an instance would end its older
    // connection here (close 4009).
    let forged = json!({"instance": "intruder", "device": "probe-dev", "kind": "network",
        "online": true, "at": now_ms() + 60_000});
    let nats = intruder().await;
    nats.publish(format!("{}.presence", hub.name), forged.to_string().into())
        .await
        .unwrap();
    nats.flush().await.unwrap();
    a.rejected_at_least(1).await;
    // Still connected, and served.
    device
        .send(json!({"type": "telemetry", "seq": 1, "points": [{"key": "n", "value": 1}]}))
        .await;
    assert_eq!(device.next().await["type"], "telemetry_ack");
}

#[tokio::test]
async fn a_forged_telemetry_does_not_reach_live_subscribers() {
    let hub = Hub::new();
    let a = hub.start(SECRET, &nats_url(), &[]).await;
    let mut watcher = a.connect("role=client").await;
    watcher
        .send(json!({"type": "subscribe", "id": 1, "devices": ["*"]}))
        .await;
    assert_eq!(watcher.next().await["type"], "subscribed");
    // The next id the fan-out takes, holding a fake reading; and a copy of an
    // instance's message re-signed with a wrong secret.
    let fake = json!({"first_id": 1, "batches": [{"device": "ghost", "seq": null,
        "points": [{"key": "t", "value": 666, "ts": now_ms()}]}]});
    let nats = intruder().await;
    let subject = format!("{}.telemetry", hub.name);
    nats.publish(subject.clone(), fake.to_string().into())
        .await
        .unwrap();
    let wrong = format!("GW1 intruder 1 {} {}\n{fake}", now_ms(), "ab".repeat(32));
    nats.publish(subject, wrong.into()).await.unwrap();
    nats.flush().await.unwrap();
    a.rejected_at_least(2).await;
    // The first reading the subscriber gets is a real device's.
    the_first_reading_is_a_real_devices(&a, &mut watcher).await;
}

#[tokio::test]
async fn an_instance_with_another_secret_is_not_part_of_the_hub() {
    let hub = Hub::new();
    let a = hub.start(SECRET, &nats_url(), &[]).await;
    // Same NATS, same cluster name, its own database and another secret.
    let elsewhere = Hub {
        db: TempDb::postgres(),
        name: hub.name.clone(),
    };
    let stranger = elsewhere
        .start("not-the-hubs-secret-at-all", &nats_url(), &[])
        .await;
    let mut watcher = a.connect("role=client").await;
    watcher
        .send(json!({"type": "subscribe", "id": 1, "devices": ["*"]}))
        .await;
    assert_eq!(watcher.next().await["type"], "subscribed");
    // Its commit 1 goes out on NAME.telemetry, and is dropped on A with its
    // heartbeats; A's own commit 1 is what A's subscriber gets.
    let mut outsider = stranger.connect("device=stranger-dev").await;
    outsider
        .send(json!({"type": "telemetry", "seq": 1, "points": [{"key": "t", "value": 666}]}))
        .await;
    assert_eq!(outsider.next().await["type"], "telemetry_ack");
    a.rejected_at_least(2).await;
    the_first_reading_is_a_real_devices(&a, &mut watcher).await;
}

#[tokio::test]
async fn start_up_without_a_cluster_secret_is_refused() {
    let hub = Hub::new();
    let output = within(
        "start-up to fail",
        gattway()
            .args(["--backend", "sim", "serve", "--listen", "127.0.0.1:0"])
            .args(["--database", &hub.db.url()])
            .env("GATTWAY_CLUSTER_NATS", nats_url())
            .env("GATTWAY_CLUSTER_NAME", &hub.name)
            .output(),
    )
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("cluster.secret") && stderr.contains("GATTWAY_CLUSTER_SECRET"),
        "{stderr}"
    );
}

/// A NATS server of this test's own that asks for a user and password.
struct PrivateNats {
    _child: tokio::process::Child,
    port: u16,
}

impl PrivateNats {
    async fn start(user: &str, password: &str) -> PrivateNats {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|b| std::path::Path::new(b).exists())
            .unwrap_or("nats-server");
        let child = tokio::process::Command::new(binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--user",
                user,
                "--pass",
                password,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server");
        within("nats-server to listen", async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        PrivateNats { _child: child, port }
    }
}

#[tokio::test]
async fn instances_log_in_to_a_nats_server_that_asks_for_credentials() {
    let server = PrivateNats::start("gattway", "nats-password").await;
    let url = format!("nats://127.0.0.1:{}", server.port);
    let hub = Hub::new();
    let credentials = [
        ("GATTWAY_CLUSTER_USER", "gattway"),
        ("GATTWAY_CLUSTER_PASSWORD", "nats-password"),
    ];
    let a = hub.start(SECRET, &url, &credentials).await;
    let b = hub.start(SECRET, &url, &credentials).await;
    // One hub through that server: a device's reading on B reaches a subscriber
    // on A.
    let mut watcher = a.connect("role=client").await;
    watcher
        .send(json!({"type": "subscribe", "id": 1, "devices": ["logged-in"]}))
        .await;
    assert_eq!(watcher.next().await["type"], "subscribed");
    let mut device = b.connect("device=logged-in").await;
    device
        .send(json!({"type": "telemetry", "seq": 1, "points": [{"key": "t", "value": 7}]}))
        .await;
    let live: Value = within("the reading on A", watcher.next_of("telemetry")).await;
    assert_eq!(live["points"][0]["value"], 7);
    // Without them, start-up stops with the server's answer.
    let output = within(
        "start-up to fail",
        gattway()
            .args(["--backend", "sim", "serve", "--listen", "127.0.0.1:0"])
            .args(["--database", &hub.db.url()])
            .env("GATTWAY_CLUSTER_NATS", &url)
            .env("GATTWAY_CLUSTER_NAME", &hub.name)
            .env("GATTWAY_CLUSTER_SECRET", SECRET)
            .output(),
    )
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("cannot reach NATS"), "{stderr}");
}
