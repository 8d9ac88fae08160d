//! Several `gattway serve` processes as one hub: one PostgreSQL database (a fresh
//! one per test), one NATS server (127.0.0.1:4222, a cluster name per test), real
//! devices and clients over WebSocket on different instances.

mod common;

use std::collections::HashMap;

use common::process::serve_hub;
use common::{within, JsonWs, TempDb};
use serde_json::{json, Value};

/// Where the tests' NATS server listens (`./test.sh` starts it).
fn nats_url() -> String {
    std::env::var("GATTWAY_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// The secret every instance of a test's hub seals its messages with.
const SECRET: &str = "the-test-clusters-shared-secret";

/// One instance: its process and address.
struct Instance {
    child: tokio::process::Child,
    addr: String,
}

impl Instance {
    fn ws(&self, query: &str) -> String {
        format!("ws://{}/hub?{query}", self.addr)
    }

    async fn device(&self, id: &str) -> (JsonWs, Value) {
        let mut ws = JsonWs::connect(&self.ws(&format!("device={id}"))).await;
        let welcome = ws.next().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        (ws, welcome)
    }

    async fn client(&self) -> JsonWs {
        let mut ws = JsonWs::connect(&self.ws("role=client")).await;
        assert_eq!(ws.next().await["type"], "welcome");
        ws
    }

    async fn get(&self, path: &str) -> Value {
        common::process::get_json(&format!("http://{}{path}", self.addr)).await
    }
}

/// Instances of one hub on one database.
struct Cluster {
    db: TempDb,
    name: String,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster {
            db: TempDb::postgres(),
            name: format!("test-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    async fn start(&self) -> Instance {
        let nats = nats_url();
        let env = [
            ("GATTWAY_CLUSTER_NATS", nats.as_str()),
            ("GATTWAY_CLUSTER_NAME", self.name.as_str()),
            ("GATTWAY_CLUSTER_SECRET", SECRET),
            ("GATTWAY_HUB_RETENTION_DAYS", "0"),
        ];
        let (child, addr) = serve_hub(&self.db.url(), "127.0.0.1:0", &env).await;
        Instance { child, addr }
    }
}

/// Sends `values` as telemetry with seq = value, each acked before the next
/// twentieth; returns the connection.
async fn stream(mut dev: JsonWs, values: std::ops::RangeInclusive<i64>) -> JsonWs {
    for i in values {
        dev.send(json!({"type": "telemetry", "seq": i, "points": [{"key": "n", "value": i}]}))
            .await;
        if i % 20 == 0 {
            dev.next_of("telemetry_ack").await;
        }
    }
    dev
}

/// Telemetry values per device, read from a subscription until each named
/// device reached `last`.
async fn collect(client: &mut JsonWs, last: &HashMap<&str, i64>) -> HashMap<String, Vec<i64>> {
    let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
    while last
        .iter()
        .any(|(d, n)| seen.get(*d).and_then(|v| v.last()) != Some(n))
    {
        let m = client.next().await;
        if m["type"] == "telemetry" {
            let values = m["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["value"].as_i64().unwrap());
            seen.entry(m["device"].as_str().unwrap().to_string())
                .or_default()
                .extend(values);
        }
    }
    seen
}

#[tokio::test]
async fn three_instances_are_one_hub_for_telemetry_presence_and_commands() {
    let cluster = Cluster::new();
    let (a, b, c) = (
        cluster.start().await,
        cluster.start().await,
        cluster.start().await,
    );

    // Live telemetry with replay across instances: devices on A and B stream;
    // a client on C subscribes with since=0 while they are halfway.
    const N: i64 = 300;
    let (dev_a, _) = a.device("meter-a").await;
    let (dev_b, _) = b.device("meter-b").await;
    let first_a = tokio::spawn(stream(dev_a, 1..=N / 2));
    let first_b = tokio::spawn(stream(dev_b, 1..=N / 2));
    let (dev_a, dev_b) = (first_a.await.unwrap(), first_b.await.unwrap());
    let mut watcher = c.client().await;
    watcher
        .send(json!({"type": "subscribe", "id": 1, "devices": ["*"], "since": 0}))
        .await;
    assert_eq!(watcher.next().await["type"], "subscribed");
    let rest_a = tokio::spawn(stream(dev_a, N / 2 + 1..=N));
    let rest_b = tokio::spawn(stream(dev_b, N / 2 + 1..=N));
    let seen = collect(&mut watcher, &HashMap::from([("meter-a", N), ("meter-b", N)])).await;
    for device in ["meter-a", "meter-b"] {
        assert_eq!(
            seen[device],
            (1..=N).collect::<Vec<_>>(),
            "{device}: every point once, in order"
        );
    }
    let (mut dev_a, _dev_b) = (rest_a.await.unwrap(), rest_b.await.unwrap());

    // Presence is global: C lists devices held by A and B.
    watcher
        .send(json!({"type": "presence", "id": 2, "devices": ["meter-a", "meter-b", "nobody"]}))
        .await;
    let presence = watcher.next_of("presence").await;
    let online: HashMap<String, bool> = presence["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["device"].as_str().unwrap().to_string(),
                d["online"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        online,
        HashMap::from([
            ("meter-a".into(), true),
            ("meter-b".into(), true),
            ("nobody".into(), false)
        ]),
        "{presence}"
    );

    // A command sent on C reaches the device on A; its status comes back to C.
    watcher
        .send(json!({"type": "command", "id": 3, "device": "meter-a", "name": "reboot"}))
        .await;
    let command_id = watcher.next_of("command_accepted").await["command_id"].clone();
    let command = dev_a.next_of("command").await;
    assert_eq!(
        (command["command_id"].clone(), command["name"].clone()),
        (command_id.clone(), json!("reboot"))
    );
    dev_a
        .send(json!({"type": "command_result", "command_id": command_id, "status": "succeeded", "result": {"up": true}}))
        .await;
    loop {
        let status = watcher.next_of("command_status").await;
        if status["status"] == "succeeded" {
            assert_eq!(status["result"], json!({"up": true}));
            break;
        }
    }
    // And the other way: a client on A, a device on C.
    let (mut dev_c, _) = c.device("lamp-c").await;
    let mut client_a = a.client().await;
    client_a
        .send(json!({"type": "command", "id": 1, "device": "lamp-c", "name": "on"}))
        .await;
    let command_id = client_a.next_of("command_accepted").await["command_id"].clone();
    assert_eq!(dev_c.next_of("command").await["command_id"], command_id);
    dev_c
        .send(
            json!({"type": "command_result", "command_id": command_id, "status": "failed", "error": "fuse"}),
        )
        .await;
    loop {
        let status = client_a.next_of("command_status").await;
        if status["status"] == "failed" {
            assert_eq!(status["error"], "fuse");
            break;
        }
    }
    // REST on B agrees on the command's history.
    let record = b
        .get(&format!("/api/v1/commands/{}", command_id.as_str().unwrap()))
        .await;
    assert_eq!(record["status"], "failed", "{record}");

    // One connection log for the cluster, its ids unique across instances.
    let log = within("the connection log to be written", async {
        loop {
            let log = b.get("/api/v1/hub/connections").await;
            let devices: Vec<String> = log["connections"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|c| c["device_id"].as_str().or(c["device"].as_str()).map(String::from))
                .collect();
            if ["meter-a", "meter-b", "lamp-c"]
                .iter()
                .all(|d| devices.iter().any(|x| x == d))
            {
                return log;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let ids: Vec<i64> = log["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    let unique: std::collections::HashSet<&i64> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "connection ids collide across instances: {log}"
    );

    // A device leaving A is offline for a subscriber on C.
    drop(dev_a);
    loop {
        let p = watcher.next_of("presence").await;
        if p["device"] == "meter-a" {
            assert_eq!(p["online"], false, "{p}");
            break;
        }
    }
    drop((a, b, c));
}

#[tokio::test]
async fn a_device_that_moves_to_another_instance_ends_its_older_connection() {
    let cluster = Cluster::new();
    let (a, b) = (cluster.start().await, cluster.start().await);
    let (mut old, _) = a.device("roamer").await;
    old.send(json!({"type": "telemetry", "seq": 1, "points": [{"key": "n", "value": 1}]}))
        .await;
    old.next_of("telemetry_ack").await;
    let mut watcher = a.client().await;
    watcher
        .send(json!({"type": "subscribe", "id": 1, "devices": ["roamer"]}))
        .await;
    watcher.next_of("subscribed").await;
    let (mut new, welcome) = b.device("roamer").await;
    assert_eq!(welcome["last_seq"], 1, "the store is shared: {welcome}");
    assert!(old.close_code().await.is_some(), "the older connection on A ends");
    // Its seq de-duplication holds across instances: a retry of 1 is not stored.
    new.send(json!({"type": "telemetry", "seq": 1, "points": [{"key": "n", "value": 1}]}))
        .await;
    new.send(json!({"type": "telemetry", "seq": 2, "points": [{"key": "n", "value": 2}]}))
        .await;
    new.next_of("telemetry_ack").await;
    new.next_of("telemetry_ack").await;
    // The watcher on A never saw it go offline, and gets its new points.
    let m = watcher.next().await;
    assert_eq!(
        (m["type"].clone(), m["points"][0]["value"].clone()),
        (json!("telemetry"), json!(2)),
        "{m}"
    );
    let history = a.get("/api/v1/devices/roamer/telemetry").await;
    assert_eq!(history["points"].as_array().unwrap().len(), 2, "{history}");
}

/// The instance holding a device is killed (-9) mid-stream: nothing it
/// acknowledged is lost, a subscriber elsewhere sees every acked point once, the
/// device carries on on another instance, and the command it had been sent is
/// sent again there (at least once).
#[tokio::test]
async fn killing_the_instance_holding_a_device_loses_nothing_and_its_commands_follow() {
    let cluster = Cluster::new();
    let (mut a, b) = (cluster.start().await, cluster.start().await);
    let mut watcher = b.client().await;
    watcher
        .send(json!({"type": "subscribe", "id": 1, "devices": ["pump"], "keys": ["n"]}))
        .await;
    watcher.next_of("subscribed").await;
    let (mut dev, _) = a.device("pump").await;
    // A command from B reaches the device on A, which never answers it.
    watcher
        .send(json!({"type": "command", "id": 2, "device": "pump", "name": "prime"}))
        .await;
    let command_id = watcher.next_of("command_accepted").await["command_id"].clone();
    assert_eq!(dev.next_of("command").await["command_id"], command_id);

    // Stream, then kill A once 200 are acked, with more in flight.
    let mut acked = 0;
    for i in 1..=400i64 {
        dev.send(json!({"type": "telemetry", "seq": i, "points": [{"key": "n", "value": i}]}))
            .await;
        if i % 10 == 0 {
            acked = dev.next_of("telemetry_ack").await["seq"].as_i64().unwrap();
            if acked >= 200 {
                break;
            }
        }
    }
    a.child.start_kill().unwrap();
    a.child.wait().await.unwrap();
    drop(dev);

    let (mut dev, welcome) = b.device("pump").await;
    let last_seq = welcome["last_seq"].as_i64().unwrap();
    assert!(last_seq >= acked, "stored seq {last_seq} < acked {acked}");
    // The command follows the device (sent again: at least once).
    assert_eq!(dev.next_of("command").await["command_id"], command_id);
    dev.send(json!({"type": "command_result", "command_id": command_id, "status": "succeeded"}))
        .await;
    for i in last_seq + 1..=last_seq + 20 {
        dev.send(json!({"type": "telemetry", "seq": i, "points": [{"key": "n", "value": i}]}))
            .await;
    }
    // The watcher on B saw every stored point once, in order, across the kill.
    let mut seen = Vec::new();
    let mut succeeded = false;
    while seen.last() != Some(&(last_seq + 20)) || !succeeded {
        let m = within("the stream on B", watcher.next()).await;
        match m["type"].as_str() {
            Some("telemetry") => seen.extend(
                m["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["value"].as_i64().unwrap()),
            ),
            Some("command_status") if m["status"] == "succeeded" => succeeded = true,
            _ => {}
        }
    }
    assert_eq!(
        seen,
        (1..=last_seq + 20).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    let history = b.get("/api/v1/devices/pump/telemetry?limit=10000").await;
    assert_eq!(history["points"].as_array().unwrap().len() as i64, last_seq + 20);
}

#[tokio::test]
async fn a_cluster_without_a_shared_postgresql_database_is_refused_with_the_reason() {
    let mut command = common::process::gattway();
    command
        .args(["--backend", "sim", "serve", "--listen", "127.0.0.1:0"])
        .env("GATTWAY_CLUSTER_NATS", nats_url())
        .env("GATTWAY_CLUSTER_SECRET", SECRET);
    let output = command.output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("share one PostgreSQL database"), "{stderr}");
}

#[tokio::test]
async fn an_unreachable_nats_server_stops_start_up_with_the_reason() {
    let cluster = Cluster::new();
    let mut command = common::process::gattway();
    command
        .args(["--backend", "sim", "serve", "--listen", "127.0.0.1:0"])
        .args(["--database", &cluster.db.url()])
        .env("GATTWAY_CLUSTER_NATS", "nats://127.0.0.1:1")
        .env("GATTWAY_CLUSTER_SECRET", SECRET);
    let output = within("start-up to fail", command.output()).await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("cannot reach NATS at nats://127.0.0.1:1"),
        "{stderr}"
    );
}

/// An instance that dies takes its devices offline everywhere: the others stop
/// hearing its heartbeat and say so, to subscribers and in presence queries.
#[tokio::test]
async fn a_dead_instances_devices_go_offline_on_the_others() {
    let cluster = Cluster::new();
    let (mut a, b) = (cluster.start().await, cluster.start().await);
    let mut watcher = b.client().await;
    watcher
        .send(json!({"type": "subscribe", "id": 1, "devices": ["ghost"]}))
        .await;
    watcher.next_of("subscribed").await;
    let (_ghost, _) = a.device("ghost").await;
    let online = watcher.next_of("presence").await;
    assert_eq!(
        (online["device"].clone(), online["online"].clone()),
        (json!("ghost"), json!(true))
    );
    a.child.start_kill().unwrap();
    a.child.wait().await.unwrap();
    // Heartbeats stop; within the 3 s silence (and a beat) B says it is gone.
    let offline = watcher.next_of("presence").await;
    assert_eq!(
        (offline["device"].clone(), offline["online"].clone()),
        (json!("ghost"), json!(false))
    );
    // Asked, B says so too (A may have died before its log stored the device).
    watcher
        .send(json!({"type": "presence", "id": 2, "devices": ["ghost"]}))
        .await;
    let answer = loop {
        let m = watcher.next_of("presence").await;
        if m["id"] == 2 {
            break m;
        }
    };
    assert_eq!(answer["devices"][0]["online"], false, "{answer}");
}

/// A client on one instance cancels a command that the device's instance sent:
/// the store decides, the device is told, and everyone hears `cancelled` once.
#[tokio::test]
async fn a_command_sent_by_another_instance_is_cancelled_from_here() {
    let cluster = Cluster::new();
    let (a, b) = (cluster.start().await, cluster.start().await);
    let (mut dev, _) = a.device("valve").await;
    let mut client = b.client().await;
    client
        .send(json!({"type": "command", "id": 1, "device": "valve", "name": "open"}))
        .await;
    let command_id = client.next_of("command_accepted").await["command_id"].clone();
    assert_eq!(dev.next_of("command").await["command_id"], command_id);
    client
        .send(json!({"type": "cancel", "id": 2, "command_id": command_id}))
        .await;
    assert_eq!(client.next_of("cancelled").await["command_id"], command_id);
    assert_eq!(dev.next_of("cancel").await["command_id"], command_id);
    // Too late for the device's result: the command is closed.
    dev.send(json!({"type": "command_result", "id": 9, "command_id": command_id, "status": "succeeded"}))
        .await;
    assert_eq!(dev.next_of("error").await["code"], "UNKNOWN_COMMAND");
    let record = a
        .get(&format!("/api/v1/commands/{}", command_id.as_str().unwrap()))
        .await;
    assert_eq!(record["status"], "cancelled", "{record}");
}
