//! The device hub end to end: real server on port 0, on the store the including
//! test binary names (`tests/hub.rs`: SQLite, `tests/hub_postgres.rs`:
//! PostgreSQL), devices and clients over WebSocket, history and commands over REST.

use std::time::Duration;

use crate::common::*;
use crate::store;
use gattway::auth::{AuthConfig, Scope};
use serde_json::{json, Value};

struct Hub {
    server: Server,
    hub: gattway::hub::Hub,
    _db: TempDb,
    _rig: Rig,
}

impl Hub {
    async fn start(config: gattway::hub::HubConfig) -> Hub {
        Self::start_with(config, AuthConfig::default()).await
    }

    async fn start_with(config: gattway::hub::HubConfig, auth: AuthConfig) -> Hub {
        let rig = rig();
        let db = store();
        let (server, hub) = start_hub_server(&rig.gateway, &db.url(), config, auth).await;
        Hub {
            server,
            hub,
            _db: db,
            _rig: rig,
        }
    }

    fn ws(&self, query: &str) -> String {
        format!("ws://{}/hub?{query}", self.server.addr)
    }

    async fn device(&self, id: &str) -> JsonWs {
        let mut ws = JsonWs::connect(&self.ws(&format!("device={id}"))).await;
        let welcome = ws.next().await;
        assert_eq!(
            (welcome["type"].clone(), welcome["device"].clone()),
            (json!("welcome"), json!(id))
        );
        ws
    }

    async fn client(&self) -> JsonWs {
        let mut ws = JsonWs::connect(&self.ws("role=client")).await;
        assert_eq!(ws.next().await["type"], "welcome");
        ws
    }

    async fn get(&self, path: &str) -> Value {
        let resp = reqwest::get(self.server.url(path)).await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }
}

fn points(values: &[(&str, Value)]) -> Value {
    json!(values
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect::<Vec<_>>())
}

#[tokio::test]
async fn telemetry_is_acked_once_stored_and_a_retry_is_not_stored_twice() {
    let hub = Hub::start(hub_config()).await;
    let mut dev = hub.device("dev-1").await;
    let batch = json!({"type": "telemetry", "seq": 7, "points": [
        {"key": "temp", "value": 21.5, "ts": 1_763_800_000_000i64},
        {"key": "door", "value": true},
        {"key": "label", "value": "kitchen"},
        {"key": "fix", "value": {"lat": 1.5, "lon": 2}},
    ]});
    dev.send(batch.clone()).await;
    assert_eq!(dev.next().await, json!({"type": "telemetry_ack", "seq": 7}));
    dev.send(batch).await;
    assert_eq!(
        dev.next().await,
        json!({"type": "telemetry_ack", "seq": 7}),
        "a retry is acked"
    );
    let history = hub.get("/api/v1/devices/dev-1/telemetry").await;
    let stored = history["points"].as_array().unwrap();
    assert_eq!(stored.len(), 4, "the retry was not stored again: {history}");
    let temp = stored.iter().find(|p| p["key"] == "temp").unwrap();
    assert_eq!(
        (temp["value"].clone(), temp["ts"].clone()),
        (json!(21.5), json!(1_763_800_000_000i64))
    );
    assert!(stored.iter().any(|p| p["value"] == json!({"lat": 1.5, "lon": 2})));
    assert!(stored.iter().any(|p| p["value"] == json!(true)));
    drop(dev);
    // A device that reconnects learns the last seq stored, to carry on from.
    let mut again = JsonWs::connect(&hub.ws("device=dev-1")).await;
    assert_eq!(again.next().await["last_seq"], 7);
}

#[tokio::test]
async fn subscribe_with_since_replays_stored_points_then_goes_live_without_gap_or_duplicate() {
    let hub = Hub::start(hub_config()).await;
    let url = hub.ws("device=counter");
    const N: i64 = 400;
    // The device streams 1..=N; the client subscribes while it is halfway.
    let (halfway_tx, halfway) = tokio::sync::oneshot::channel();
    let device = tokio::spawn(async move {
        let mut dev = JsonWs::connect(&url).await;
        dev.next().await;
        let mut halfway_tx = Some(halfway_tx);
        for i in 1..=N {
            dev.send(json!({"type": "telemetry", "seq": i, "points": [{"key": "n", "value": i}]}))
                .await;
            if i % 20 == 0 {
                // Let acks and other tasks interleave with the stream.
                dev.next_of("telemetry_ack").await;
            }
            if i == N / 2 {
                if let Some(tx) = halfway_tx.take() {
                    let _ = tx.send(());
                }
            }
        }
        dev
    });
    within("halfway", halfway).await.unwrap();
    let mut client = hub.client().await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": ["counter"], "keys": ["n"], "since": 0}))
        .await;
    assert_eq!(client.next().await["type"], "subscribed");
    let mut seen = Vec::new();
    let mut replayed_marker = false;
    while seen.last() != Some(&N) {
        let m = client.next().await;
        match m["type"].as_str().unwrap() {
            "telemetry" => seen.extend(
                m["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["value"].as_i64().unwrap()),
            ),
            "replayed" => replayed_marker = true,
            other => panic!("unexpected {other}: {m}"),
        }
    }
    assert!(replayed_marker, "the end of the replay is marked");
    assert_eq!(seen, (1..=N).collect::<Vec<_>>(), "every point once, in order");
    drop(device.await.unwrap());
}

#[tokio::test]
async fn subscriptions_filter_by_device_and_key_and_unsubscribe_stops_them() {
    let hub = Hub::start(hub_config()).await;
    let mut a = hub.device("a").await;
    let mut b = hub.device("b").await;
    let mut client = hub.client().await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": ["a"], "keys": ["temp"]}))
        .await;
    let sub = client.next().await["subscription"].clone();
    b.send(json!({"type": "telemetry", "seq": 1, "points": points(&[("temp", json!(1))])}))
        .await;
    b.next().await;
    a.send(
        json!({"type": "telemetry", "seq": 1, "points": points(&[("hum", json!(50)), ("temp", json!(20))])}),
    )
    .await;
    a.next().await;
    let t = client.next_of("telemetry").await;
    assert_eq!(t["device"], "a");
    assert_eq!(t["points"].as_array().unwrap().len(), 1, "only temp: {t}");
    assert_eq!(t["points"][0]["value"], 20);
    client
        .send(json!({"type": "unsubscribe", "id": 2, "subscription": sub}))
        .await;
    assert_eq!(client.next_of("unsubscribed").await["count"], 1);
    wait_until("unsubscribed", || hub.hub.subscriber_count() == 0).await;
}

#[tokio::test]
async fn a_command_goes_through_sent_delivered_and_succeeded_with_its_history() {
    let hub = Hub::start(hub_config()).await;
    let mut dev = hub.device("dev-1").await;
    let mut client = hub.client().await;
    client
        .send(json!({"type": "command", "id": 2, "device": "dev-1", "name": "reboot", "params": {"delay": 1}, "timeout": 30}))
        .await;
    let accepted = client.next().await;
    assert_eq!(accepted["type"], "command_accepted", "{accepted}");
    assert_eq!(accepted["id"], 2);
    let command_id = accepted["command_id"].as_str().unwrap().to_string();
    let to_device = dev.next_of("command").await;
    assert_eq!(
        (
            to_device["command_id"].as_str().unwrap(),
            to_device["name"].clone(),
            to_device["params"].clone()
        ),
        (command_id.as_str(), json!("reboot"), json!({"delay": 1}))
    );
    assert_eq!(client.next_of("command_status").await["status"], "sent");
    dev.send(json!({"type": "command_result", "command_id": command_id, "status": "delivered"}))
        .await;
    assert_eq!(client.next_of("command_status").await["status"], "delivered");
    dev.send(json!({"type": "command_result", "command_id": command_id, "status": "succeeded", "result": {"uptime": 0}}))
        .await;
    let done = client.next_of("command_status").await;
    assert_eq!(
        (done["status"].clone(), done["result"].clone()),
        (json!("succeeded"), json!({"uptime": 0}))
    );
    let record = hub.get(&format!("/api/v1/commands/{command_id}")).await;
    let statuses: Vec<&str> = record["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["queued", "sent", "delivered", "succeeded"]);
    let list = hub.get("/api/v1/devices/dev-1/commands").await;
    assert_eq!(list["commands"][0]["status"], "succeeded");
    // A result for a closed command is refused.
    dev.send(json!({"type": "command_result", "id": 9, "command_id": command_id, "status": "failed"}))
        .await;
    let refused = dev.next_of("error").await;
    assert_eq!(
        (refused["code"].clone(), refused["id"].clone()),
        (json!("UNKNOWN_COMMAND"), json!(9))
    );
}

#[tokio::test]
async fn commands_for_an_offline_device_queue_and_arrive_highest_priority_first() {
    let hub = Hub::start(hub_config()).await;
    let mut client = hub.client().await;
    let mut ids = Vec::new();
    for (i, priority) in [1, 5, 3, 5].into_iter().enumerate() {
        client
            .send(json!({"type": "command", "id": i, "device": "sleepy", "name": format!("c{i}"), "priority": priority}))
            .await;
        let accepted = client.next_of("command_accepted").await;
        ids.push(accepted["command_id"].as_str().unwrap().to_string());
    }
    let listed = hub.get("/api/v1/devices/sleepy/commands").await;
    assert!(listed["commands"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == "queued"));
    let mut dev = hub.device("sleepy").await;
    // One at a time (commands_in_flight = 1): 5 (older), 5, 3, 1.
    let mut order = Vec::new();
    for _ in 0..4 {
        let c = dev.next_of("command").await;
        order.push(c["name"].as_str().unwrap().to_string());
        dev.send(json!({"type": "command_result", "command_id": c["command_id"], "status": "succeeded"}))
            .await;
    }
    assert_eq!(order, ["c1", "c3", "c2", "c0"]);
}

#[tokio::test]
async fn commands_time_out_expire_and_cancel() {
    let hub = Hub::start(hub_config()).await;
    let mut dev = hub.device("slow").await;
    let mut client = hub.client().await;
    client
        .send(json!({"type": "command", "id": 1, "device": "slow", "name": "hang", "timeout": 0.2}))
        .await;
    client.next_of("command_accepted").await;
    dev.next_of("command").await;
    let timed_out = loop {
        let s = client.next_of("command_status").await;
        if s["status"] != "sent" {
            break s;
        }
    };
    assert_eq!(timed_out["status"], "timed_out");

    client
        .send(json!({"type": "command", "id": 2, "device": "nobody", "name": "x", "ttl": 0.2}))
        .await;
    client.next_of("command_accepted").await;
    assert_eq!(client.next_of("command_status").await["status"], "expired");

    client
        .send(json!({"type": "command", "id": 3, "device": "nobody", "name": "y"}))
        .await;
    let id = client.next_of("command_accepted").await["command_id"].clone();
    client
        .send(json!({"type": "cancel", "id": 4, "command_id": id}))
        .await;
    assert_eq!(client.next_of("cancelled").await["id"], 4);
    assert_eq!(client.next_of("command_status").await["status"], "cancelled");
    client
        .send(json!({"type": "cancel", "id": 5, "command_id": id}))
        .await;
    assert_eq!(client.next_of("error").await["code"], "UNKNOWN_COMMAND");
}

#[tokio::test]
async fn queued_and_unconfirmed_commands_survive_a_restart() {
    let rig = rig();
    let db = store();
    let (server, hub) = start_hub_server(&rig.gateway, &db.url(), hub_config(), Default::default()).await;
    let ws = |addr: std::net::SocketAddr, q: &str| format!("ws://{addr}/hub?{q}");
    let mut client = JsonWs::connect(&ws(server.addr, "role=client")).await;
    client.next().await;
    // One is sent to the device but never confirmed; one waits queued behind it.
    let mut dev = JsonWs::connect(&ws(server.addr, "device=d")).await;
    dev.next().await;
    client
        .send(json!({"type": "command", "id": 1, "device": "d", "name": "first"}))
        .await;
    client.next_of("command_accepted").await;
    assert_eq!(dev.next_of("command").await["name"], "first");
    client
        .send(json!({"type": "command", "id": 2, "device": "d", "name": "second"}))
        .await;
    client.next_of("command_accepted").await;
    drop((client, dev));
    server.stop().await;
    drop(hub);

    let (server, _hub) = start_hub_server(&rig.gateway, &db.url(), hub_config(), Default::default()).await;
    let mut dev = JsonWs::connect(&ws(server.addr, "device=d")).await;
    dev.next().await;
    let mut names = Vec::new();
    for _ in 0..2 {
        let c = dev.next_of("command").await;
        names.push(c["name"].as_str().unwrap().to_string());
        dev.send(json!({"type": "command_result", "command_id": c["command_id"], "status": "succeeded"}))
            .await;
    }
    assert_eq!(
        names,
        ["first", "second"],
        "the unconfirmed one is sent again, then the queued one"
    );
}

#[tokio::test]
async fn presence_follows_connections_and_heartbeats() {
    let hub = Hub::start(gattway::hub::HubConfig {
        heartbeat_secs: 0.2,
        heartbeat_misses: 2,
        ..hub_config()
    })
    .await;
    let mut client = hub.client().await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": ["p1"]}))
        .await;
    client.next_of("subscribed").await;
    let mut dev = hub.device("p1").await;
    let online = client.next_of("presence").await;
    assert_eq!(
        (online["device"].clone(), online["online"].clone()),
        (json!("p1"), json!(true))
    );
    client
        .send(json!({"type": "presence", "id": 2, "devices": ["p1", "never"]}))
        .await;
    let listed = client.next_of("presence").await;
    assert_eq!(listed["id"], 2);
    let by_id = |id: &str| {
        listed["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        (by_id("p1")["online"].clone(), by_id("never")["online"].clone()),
        (json!(true), json!(false))
    );
    // Heartbeats keep it online; silence takes it offline.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        dev.send(json!({"type": "heartbeat"})).await;
        assert_eq!(dev.next_of("heartbeat_ack").await["type"], "heartbeat_ack");
    }
    let offline = client.next_of("presence").await;
    assert_eq!(offline["online"], false);
    let err = dev.next_of("error").await;
    assert_eq!(err["code"], "HEARTBEAT_TIMEOUT");
    assert_eq!(dev.close_code().await, Some(4008));
}

#[tokio::test]
async fn a_newer_connection_of_a_device_replaces_the_older() {
    let hub = Hub::start(hub_config()).await;
    let mut old = hub.device("twin").await;
    let _new = hub.device("twin").await;
    assert_eq!(old.next_of("error").await["code"], "REPLACED");
    assert_eq!(old.close_code().await, Some(4009));
}

#[tokio::test]
async fn a_slow_subscriber_gets_lagged_while_devices_and_other_clients_keep_full_speed() {
    let hub = Hub::start(gattway::hub::HubConfig {
        client_queue: 8,
        ..hub_config()
    })
    .await;
    let mut slow = hub.client().await;
    slow.send(json!({"type": "subscribe", "id": 1})).await;
    slow.next_of("subscribed").await;
    let mut fast = hub.client().await;
    fast.send(json!({"type": "subscribe", "id": 1})).await;
    fast.next_of("subscribed").await;
    let mut dev = hub.device("big").await;
    // 64 KiB per message: the slow client's socket buffers fill, then its queue.
    let blob = "x".repeat(64 * 1024);
    const MESSAGES: u64 = 200;
    // Lock-step with the fast client: each message is acked to the device and
    // reaches the fast client while the slow one reads nothing.
    for seq in 1..=MESSAGES {
        dev.send(json!({"type": "telemetry", "seq": seq, "points": [{"key": "blob", "value": blob}]}))
            .await;
        assert_eq!(
            dev.next_of("telemetry_ack").await["seq"],
            seq,
            "the device is acked in full"
        );
        let t = fast.next_of("telemetry").await;
        assert_eq!(
            t["points"][0]["id"].as_u64().unwrap(),
            seq,
            "the fast client misses nothing"
        );
    }
    let mut telemetry = 0;
    let missed = loop {
        let m = slow.next().await;
        match m["type"].as_str().unwrap() {
            "telemetry" => telemetry += 1,
            "lagged" => break m["missed"].as_u64().unwrap(),
            "presence" => {}
            other => panic!("unexpected {other}"),
        }
    };
    assert!(
        missed > 0 && telemetry < MESSAGES,
        "missed {missed}, got {telemetry}"
    );
}

#[tokio::test]
async fn history_answers_points_and_buckets_over_ws_and_rest() {
    let hub = Hub::start(hub_config()).await;
    let mut dev = hub.device("h").await;
    let pts: Vec<Value> = (0..10)
        .map(|i| json!({"key": "t", "value": i, "ts": 1_000 + i * 100}))
        .collect();
    dev.send(json!({"type": "telemetry", "seq": 1, "points": pts}))
        .await;
    dev.next_of("telemetry_ack").await;
    let mut client = hub.client().await;
    client
        .send(json!({"type": "history", "id": 5, "device": "h", "key": "t", "from": 1_200, "to": 1_500, "limit": 2}))
        .await;
    let h = client.next().await;
    assert_eq!(h["id"], 5);
    let values: Vec<i64> = h["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_i64().unwrap())
        .collect();
    assert_eq!(values, [3, 4], "the newest two in range, oldest first");
    client
        .send(json!({"type": "history", "id": 6, "device": "h", "key": "t", "bucket": 500}))
        .await;
    let b = client.next().await;
    assert_eq!(
        b["buckets"][0],
        json!({"key": "t", "ts": 1000, "count": 5, "min": 0.0, "max": 4.0, "avg": 2.0}),
        "{b}"
    );
    let rest = hub.get("/api/v1/devices/h/telemetry?key=t&bucket=500ms").await;
    assert_eq!(rest["buckets"][1]["avg"], 7.0);
    // Without a key, every key is bucketed on its own.
    dev.send(json!({"type": "telemetry", "seq": 2, "points": [{"key": "rh", "value": 40, "ts": 1_000}]}))
        .await;
    dev.next_of("telemetry_ack").await;
    let every = hub.get("/api/v1/devices/h/telemetry?bucket=500").await;
    let keys: Vec<(&str, i64)> = every["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["key"].as_str().unwrap(), b["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(keys, [("rh", 1), ("t", 5), ("t", 5)], "{every}");
    // A limit out of range is refused, not quietly clamped.
    for limit in [0, 10_001] {
        let url = hub
            .server
            .url(&format!("/api/v1/devices/h/telemetry?limit={limit}"));
        assert_eq!(reqwest::get(url).await.unwrap().status(), 400, "limit={limit}");
    }
    client
        .send(json!({"type": "history", "id": 7, "device": "h", "limit": 0}))
        .await;
    assert_eq!(client.next().await["code"], "INVALID_PARAMS");
}

#[tokio::test]
async fn bad_messages_get_typed_errors_and_the_connection_carries_on() {
    let hub = Hub::start(gattway::hub::HubConfig {
        max_message_bytes: 2048,
        ..hub_config()
    })
    .await;
    let mut dev = hub.device("e").await;
    let cases = [
        ("{not json".to_string(), "INVALID_MESSAGE"),
        (json!({"type": "dance", "id": 1}).to_string(), "UNKNOWN_TYPE"),
        (json!({"type": "subscribe", "id": 2}).to_string(), "UNKNOWN_TYPE"),
        (
            json!({"type": "telemetry", "seq": 1}).to_string(),
            "INVALID_PARAMS",
        ),
        (
            json!({"type": "telemetry", "points": [{"key": "", "value": 1}]}).to_string(),
            "INVALID_PARAMS",
        ),
        (
            json!({"type": "command_result", "command_id": "nope", "status": "succeeded"}).to_string(),
            "UNKNOWN_COMMAND",
        ),
        (
            json!({"type": "command_result", "command_id": "nope", "status": "expired"}).to_string(),
            "INVALID_PARAMS",
        ),
        ("x".repeat(4096), "MESSAGE_TOO_LARGE"),
    ];
    for (text, code) in cases {
        dev.send_text(&text).await;
        let e = dev.next().await;
        assert_eq!(
            (e["type"].as_str(), e["code"].as_str()),
            (Some("error"), Some(code)),
            "{text:.60}"
        );
    }
    dev.send(json!({"type": "ping", "id": 3})).await;
    assert_eq!(dev.next().await["type"], "pong");
    let mut client = hub.client().await;
    client.send(json!({"type": "telemetry", "points": []})).await;
    assert_eq!(client.next().await["code"], "UNKNOWN_TYPE");
    client
        .send(json!({"type": "command", "id": 1, "device": "e"}))
        .await;
    assert_eq!(client.next().await["code"], "INVALID_PARAMS");
    client
        .send(json!({"type": "history", "id": 1, "device": "e", "bucket": "soon"}))
        .await;
    assert_eq!(client.next().await["code"], "INVALID_PARAMS");
}

fn hub_auth() -> AuthConfig {
    AuthConfig {
        api_keys: vec![
            api_key("sensor-7", vec![Scope::HubDevice], vec![]),
            api_key("dashboard", vec![Scope::HubClient], vec!["sensor-*"]),
            api_key("ble-only", vec![Scope::BleRead], vec![]),
        ],
        jwt_secret: "hub-secret".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn authentication_roles_scopes_and_device_lists_hold() {
    let hub = Hub::start_with(hub_config(), hub_auth()).await;
    // A device key: the device id is the key's name.
    let mut dev = JsonWs::connect(&hub.ws("token=sensor-7")).await;
    let welcome = dev.next().await;
    assert_eq!(
        (welcome["role"].clone(), welcome["device"].clone()),
        (json!("device"), json!("sensor-7"))
    );
    // A JWT as the first message.
    let jwt = gattway::auth::issue_jwt(
        "hub-secret",
        &gattway::auth::TokenRequest {
            subject: "sensor-8",
            scopes: &[Scope::HubDevice],
            devices: &[],
            ttl: Duration::from_secs(60),
            audience: None,
            issuer: None,
        },
    )
    .unwrap();
    let mut second = JsonWs::connect(&hub.ws("")).await;
    second.send(json!({"type": "auth", "token": jwt})).await;
    assert_eq!(second.next().await["type"], "authenticated");
    assert_eq!(second.next().await["device"], "sensor-8");
    // No credential, or the wrong scope: refused and closed.
    let mut none = JsonWs::connect(&hub.ws("")).await;
    none.send(json!({"type": "subscribe"})).await;
    assert_eq!(none.next().await["code"], "NOT_AUTHENTICATED");
    assert_eq!(none.close_code().await, Some(1008));
    let mut ble = JsonWs::connect(&hub.ws("token=ble-only")).await;
    assert_eq!(ble.next().await["code"], "FORBIDDEN");
    // A client limited to sensor-*: other devices are refused.
    let mut client = JsonWs::connect(&hub.ws("token=dashboard")).await;
    assert_eq!(client.next().await["role"], "client");
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": ["sensor-7"]}))
        .await;
    assert_eq!(client.next().await["type"], "subscribed");
    client
        .send(json!({"type": "command", "id": 2, "device": "boiler", "name": "off"}))
        .await;
    assert_eq!(client.next().await["code"], "FORBIDDEN");
    client
        .send(json!({"type": "subscribe", "id": 3, "devices": ["*"]}))
        .await;
    assert_eq!(client.next().await["code"], "INVALID_PARAMS");
    // REST takes the same credentials.
    let http = reqwest::Client::new();
    let status = |path: &str, key: &str| {
        let req = http.get(hub.server.url(path)).bearer_auth(key);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        status("/api/v1/devices/sensor-7/telemetry", "dashboard").await,
        200
    );
    assert_eq!(status("/api/v1/devices/boiler/telemetry", "dashboard").await, 403);
    assert_eq!(
        status("/api/v1/devices/sensor-7/telemetry", "ble-only").await,
        403
    );
    drop(dev);
}

#[tokio::test]
async fn rest_sends_commands_and_lists_devices() {
    let hub = Hub::start(hub_config()).await;
    let mut dev = hub.device("r1").await;
    let resp = reqwest::Client::new()
        .post(hub.server.url("/api/v1/devices/r1/commands"))
        .json(&json!({"name": "blink", "params": {"times": 3}, "priority": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let id = resp.json::<Value>().await.unwrap()["command_id"].clone();
    let c = dev.next_of("command").await;
    assert_eq!(
        (c["command_id"].clone(), c["params"].clone()),
        (id.clone(), json!({"times": 3}))
    );
    dev.send(json!({"type": "command_result", "command_id": id, "status": "failed", "error": "no LED"}))
        .await;
    let record = within("failed status", async {
        loop {
            let r = hub
                .get(&format!("/api/v1/commands/{}", id.as_str().unwrap()))
                .await;
            if r["status"] == "failed" {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(record["error"], "no LED");
    // The connection log, written in the background, shows who came and how they left.
    let mut gone = hub.device("leaver").await;
    gone.send_text("{}").await;
    drop(gone);
    let log = within("connection log", async {
        loop {
            let log = hub.get("/api/v1/hub/connections").await;
            let entry = log["connections"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["device"] == "leaver")
                .cloned();
            if let Some(e) = entry.filter(|e| !e["reason"].is_null()) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(
        (log["role"].as_str(), log["reason"].as_str()),
        (Some("device"), Some("closed"))
    );
    assert!(log["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(log["disconnected_at"].as_i64() >= log["connected_at"].as_i64());
    let devices = hub.get("/api/v1/hub/devices").await;
    assert!(devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["device"] == "r1" && d["online"] == true));
    let missing = reqwest::get(hub.server.url("/api/v1/commands/none"))
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

#[tokio::test]
async fn simulated_ble_notifications_arrive_as_telemetry_and_commands_become_writes() {
    let hub = Hub::start(gattway::hub::HubConfig {
        sim_feed: true,
        ..hub_config()
    })
    .await;
    let mut client = hub.client().await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": [HRM, ENV], "keys": ["heart_rate", "temperature"]}))
        .await;
    client.next_of("subscribed").await;
    let mut keys = std::collections::BTreeSet::new();
    while keys.len() < 2 {
        let t = client.next_of("telemetry").await;
        for p in t["points"].as_array().unwrap() {
            let v = p["value"].as_f64().unwrap();
            match p["key"].as_str().unwrap() {
                "heart_rate" => assert!((30.0..=220.0).contains(&v), "{v} bpm"),
                "temperature" => assert!((-40.0..=85.0).contains(&v), "{v} °C"),
                other => panic!("unexpected key {other}"),
            }
            keys.insert(p["key"].as_str().unwrap().to_string());
        }
    }
    client
        .send(json!({"type": "command", "id": 2, "device": HRM, "name": "reset_energy_expended", "params": {"value": "01"}}))
        .await;
    client.next_of("command_accepted").await;
    let done = loop {
        let s = client.next_of("command_status").await;
        if s["status"] != "sent" {
            break s;
        }
    };
    assert_eq!(
        (done["status"].clone(), done["result"].clone()),
        (json!("succeeded"), json!({"written": "01"}))
    );
    let stored = hub
        .get(&format!("/api/v1/devices/{HRM}/telemetry?key=heart_rate"))
        .await;
    assert!(!stored["points"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_client_that_asks_gets_queued_updates_batched_in_one_frame_in_order() {
    let hub = Hub::start(hub_config()).await;
    let mut client = JsonWs::connect(&hub.ws("role=client&batch=1")).await;
    client.next().await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": ["burst"]}))
        .await;
    client.next_of("subscribed").await;
    let mut dev = hub.device("burst").await;
    const N: i64 = 300;
    // Sent back to back: they are committed in groups and queue up for the client.
    for seq in 1..=N {
        dev.send(json!({"type": "telemetry", "seq": seq, "points": [{"key": "n", "value": seq}]}))
            .await;
    }
    let (mut seen, mut batches) = (Vec::new(), 0);
    while seen.len() < N as usize {
        let m = client.next().await;
        let messages = match m["type"].as_str().unwrap() {
            "batch" => {
                batches += 1;
                m["messages"].as_array().unwrap().clone()
            }
            _ => vec![m],
        };
        for t in messages.iter().filter(|t| t["type"] == "telemetry") {
            seen.extend(
                t["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["value"].as_i64().unwrap()),
            );
        }
    }
    assert_eq!(seen, (1..=N).collect::<Vec<_>>(), "every update once, in order");
    assert!(batches > 0, "updates that queued together came as batches");
}

#[tokio::test]
async fn subscribers_of_a_device_see_its_commands_whoever_sent_them_once_each() {
    let hub = Hub::start(hub_config()).await;
    let mut watcher = hub.client().await;
    watcher
        .send(json!({"type": "subscribe", "id": 1, "devices": ["watched"]}))
        .await;
    watcher
        .send(json!({"type": "subscribe", "id": 2, "devices": ["watched"], "keys": ["x"]}))
        .await;
    watcher.next_of("subscribed").await;
    watcher.next_of("subscribed").await;
    // A command sent over REST, with no client of its own to tell.
    let resp = reqwest::Client::new()
        .post(hub.server.url("/api/v1/devices/watched/commands"))
        .json(&json!({"name": "blink"}))
        .send()
        .await
        .unwrap();
    let id = resp.json::<Value>().await.unwrap()["command_id"].clone();
    let statuses = |m: &Value| (m["command_id"].clone(), m["status"].as_str().unwrap().to_string());
    assert_eq!(
        statuses(&watcher.next_of("command_status").await),
        (id.clone(), "queued".into())
    );
    let mut dev = hub.device("watched").await;
    let c = dev.next_of("command").await;
    assert_eq!(
        statuses(&watcher.next_of("command_status").await),
        (id.clone(), "sent".into())
    );
    dev.send(json!({"type": "command_result", "command_id": c["command_id"], "status": "succeeded"}))
        .await;
    let done = watcher.next_of("command_status").await;
    assert_eq!(
        statuses(&done),
        (id, "succeeded".into()),
        "each status once, though two subscriptions match"
    );

    // The sender of a command that also watches the device hears each status once.
    watcher
        .send(json!({"type": "command", "id": 3, "device": "watched", "name": "beep"}))
        .await;
    let mine = watcher.next_of("command_accepted").await["command_id"].clone();
    let c = dev.next_of("command").await;
    dev.send(json!({"type": "command_result", "command_id": c["command_id"], "status": "succeeded"}))
        .await;
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("succeeded") {
        let m = watcher.next_of("command_status").await;
        assert_eq!(m["command_id"], mine);
        seen.push(m["status"].as_str().unwrap().to_string());
    }
    assert_eq!(seen, ["sent", "succeeded"]);
}

#[tokio::test]
async fn retention_deletes_points_older_than_configured_and_keeps_the_rest() {
    let rig = rig();
    let db = store();
    let (server, hub) = start_hub_server(&rig.gateway, &db.url(), hub_config(), Default::default()).await;
    let mut dev = JsonWs::connect(&format!("ws://{}/hub?device=old", server.addr)).await;
    dev.next().await;
    let now = gattway::store::now_ms();
    dev.send(json!({"type": "telemetry", "seq": 1, "points": [
        {"key": "t", "value": 1, "ts": now - 3 * 86_400_000},
        {"key": "t", "value": 2, "ts": now},
    ]}))
    .await;
    dev.next_of("telemetry_ack").await;
    drop(dev);
    server.stop().await;
    drop(hub);
    // Restarted with a retention of two days: the three-day-old point goes at start.
    let config = gattway::hub::HubConfig {
        retention_days: 2.0,
        ..hub_config()
    };
    let (server, _hub) = start_hub_server(&rig.gateway, &db.url(), config, Default::default()).await;
    let url = server.url("/api/v1/devices/old/telemetry");
    let values = within("retention", async {
        loop {
            let body: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
            let values: Vec<i64> = body["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["value"].as_i64().unwrap())
                .collect();
            if values.len() < 2 {
                return values;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(values, [2]);
}

/// A batch that failed to store, hidden behind a later one: before, the later
/// batch committed, raised the device's `last_seq` past the failed one, and the
/// device's retry of it was acked as a duplicate and never stored.
#[tokio::test]
async fn a_failed_batch_is_never_acked_as_a_duplicate_of_a_later_one() {
    let rig = rig();
    let db = store();
    let config = gattway::hub::HubConfig {
        // One batch per commit: the poisoned batch and the next one commit apart.
        max_batch_points: 1,
        ..hub_config()
    };
    let (server, _hub) = start_hub_server(&rig.gateway, &db.url(), config, AuthConfig::default()).await;
    // The store refuses the point "poison", slowly, so the batch after it is
    // already queued when it fails.
    db.execute(
        "CREATE TRIGGER poison BEFORE INSERT ON telemetry WHEN NEW.key = 'poison' AND \
         (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500000) \
          SELECT count(*) FROM c) > 0 \
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
        "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.key = 'poison' THEN PERFORM pg_sleep(0.2); RAISE EXCEPTION 'poisoned'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER poison BEFORE INSERT ON telemetry FOR EACH ROW EXECUTE FUNCTION poison()",
    )
    .await;
    let url = format!("ws://{}/hub?device=meter", server.addr);
    let mut dev = JsonWs::connect(&url).await;
    assert_eq!(dev.next().await["last_seq"], 0);
    let point = |seq: u64, key: &str| json!({"type": "telemetry", "seq": seq, "points": [{"key": key, "value": seq}]});
    dev.send(point(1, "ok")).await;
    assert_eq!(dev.next().await, json!({"type": "telemetry_ack", "seq": 1}));
    dev.send(point(2, "poison")).await;
    dev.send(point(3, "ok")).await;
    let failed = dev.next().await;
    assert_eq!(
        (failed["code"].as_str(), failed["seq"].as_u64()),
        (Some("STORE_ERROR"), Some(2)),
        "{failed}"
    );
    assert_eq!(dev.close_code().await, Some(1011));

    // The device comes back: the hub says 1 is the last stored, not 3.
    db.execute("DROP TRIGGER poison", "DROP TRIGGER poison ON telemetry")
        .await;
    let mut dev = JsonWs::connect(&url).await;
    assert_eq!(
        dev.next().await["last_seq"],
        1,
        "seq 3 was not stored behind the failed 2"
    );
    dev.send(point(2, "poison")).await;
    assert_eq!(dev.next().await, json!({"type": "telemetry_ack", "seq": 2}));
    dev.send(point(3, "ok")).await;
    assert_eq!(dev.next().await, json!({"type": "telemetry_ack", "seq": 3}));
    let history: Value = reqwest::get(server.url("/api/v1/devices/meter/telemetry"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut seqs: Vec<u64> = history["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_u64().unwrap())
        .collect();
    seqs.sort();
    assert_eq!(seqs, vec![1, 2, 3], "every acked point stored once: {history}");
    server.stop().await;
}

/// A status the store refused is not announced: the device is told its result was
/// not stored (and may send it again), and subscribers never hear of it.
#[tokio::test]
async fn a_command_status_that_was_not_stored_is_not_announced() {
    let rig = rig();
    let db = store();
    let (server, _hub) = start_hub_server(&rig.gateway, &db.url(), hub_config(), AuthConfig::default()).await;
    db.execute(
        "CREATE TRIGGER refuse BEFORE UPDATE ON commands WHEN NEW.status = 'succeeded' \
         BEGIN SELECT RAISE(ABORT, 'refused'); END",
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.status = 'succeeded' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse BEFORE UPDATE ON commands FOR EACH ROW EXECUTE FUNCTION refuse()",
    )
    .await;
    let ws = |q: &str| format!("ws://{}/hub?{q}", server.addr);
    let mut dev = JsonWs::connect(&ws("device=dev-1")).await;
    dev.next().await;
    let mut client = JsonWs::connect(&ws("role=client")).await;
    client.next().await;
    client
        .send(json!({"type": "command", "id": 1, "device": "dev-1", "name": "reboot"}))
        .await;
    let command_id = client.next_of("command_accepted").await["command_id"].clone();
    dev.next_of("command").await;
    assert_eq!(client.next_of("command_status").await["status"], "sent");
    dev.send(json!({"type": "command_result", "id": 5, "command_id": command_id, "status": "succeeded"}))
        .await;
    let refused = dev.next_of("error").await;
    assert_eq!(
        (refused["id"].as_u64(), refused["code"].as_str()),
        (Some(5), Some("STORE_ERROR")),
        "{refused}"
    );

    // Once the store takes it, the same result goes through and is announced;
    // the client hears `succeeded` exactly once, after it was stored.
    db.execute("DROP TRIGGER refuse", "DROP TRIGGER refuse ON commands")
        .await;
    dev.send(json!({"type": "command_result", "command_id": command_id, "status": "succeeded"}))
        .await;
    let status = client.next_of("command_status").await;
    assert_eq!(status["status"], "succeeded", "{status}");
    let record: Value =
        reqwest::get(server.url(&format!("/api/v1/commands/{}", command_id.as_str().unwrap())))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(record["status"], "succeeded");
    server.stop().await;
}

#[tokio::test]
async fn commands_that_become_ble_writes_need_ble_write() {
    let auth = AuthConfig {
        api_keys: vec![
            api_key("dashboard", vec![Scope::HubClient], vec![]),
            api_key("operator", vec![Scope::HubClient, Scope::BleWrite], vec![]),
        ],
        ..Default::default()
    };
    let config = gattway::hub::HubConfig {
        sim_feed: true,
        ..hub_config()
    };
    let hub = Hub::start_with(config, auth).await;
    let send = |key: &'static str| {
        let url = hub.server.url(&format!("/api/v1/devices/{HRM}/commands"));
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .json(&json!({"name": "reset_energy_expended", "params": {"value": "01"}}))
                .send()
                .await
                .unwrap()
        }
    };
    let refused = send("dashboard").await;
    assert_eq!(refused.status(), 403);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("ble:write"),
        "{problem}"
    );
    assert_eq!(send("operator").await.status(), 202);

    // Over the socket too; a command to a network device needs no more than hub:client.
    let mut client = JsonWs::connect(&hub.ws("role=client&token=dashboard")).await;
    client.next_of("welcome").await;
    client
        .send(json!({"type": "command", "id": 1, "device": HRM, "name": "reset_energy_expended"}))
        .await;
    assert_eq!(client.next_of("error").await["code"], "FORBIDDEN");
    client
        .send(json!({"type": "command", "id": 2, "device": "thermostat", "name": "set"}))
        .await;
    assert_eq!(client.next_of("command_accepted").await["id"], 2);
}

#[tokio::test]
async fn a_connection_and_a_device_cannot_pile_up_without_bound() {
    let config = gattway::hub::HubConfig {
        max_subscriptions: 2,
        max_open_commands: 2,
        rest_rate_per_principal: 0.001,
        rest_burst_per_principal: 3.0,
        ..hub_config()
    };
    let hub = Hub::start(config).await;
    let mut client = hub.client().await;
    for id in 1..=2 {
        client
            .send(json!({"type": "subscribe", "id": id, "devices": ["a"]}))
            .await;
        assert_eq!(client.next_of("subscribed").await["id"], id);
    }
    client
        .send(json!({"type": "subscribe", "id": 3, "devices": ["a"]}))
        .await;
    assert_eq!(client.next_of("error").await["code"], "TOO_MANY_SUBSCRIPTIONS");

    for id in 1..=2 {
        client
            .send(json!({"type": "command", "id": id, "device": "offline", "name": "x"}))
            .await;
        assert_eq!(client.next_of("command_accepted").await["id"], id);
    }
    client
        .send(json!({"type": "command", "id": 3, "device": "offline", "name": "x"}))
        .await;
    assert_eq!(client.next_of("error").await["code"], "COMMAND_QUEUE_FULL");

    // Hub REST is rate-limited per caller: the burst, then 429 with Retry-After.
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            let r = reqwest::get(hub.server.url("/api/v1/hub/devices")).await.unwrap();
            v.push(r.status().as_u16());
        }
        v
    };
    assert_eq!(statuses, vec![200, 200, 200, 429]);
}

#[tokio::test]
async fn the_ble_feed_carries_on_through_a_radio_failover() {
    let (gateway, near, _far) = two_radios(7, 7);
    let db = store();
    let config = gattway::hub::HubConfig {
        sim_feed: true,
        ..hub_config()
    };
    let (server, _hub) = start_hub_server(&gateway, &db.url(), config, AuthConfig::default()).await;
    let mut client = JsonWs::connect(&format!("ws://{}/hub?role=client", server.addr)).await;
    assert_eq!(client.next().await["type"], "welcome");
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": [HRM], "keys": ["heart_rate"]}))
        .await;
    client.next_of("subscribed").await;
    client.next_of("telemetry").await;
    assert_eq!(link_radio(&gateway, HRM).as_deref(), Some("near"));

    // Near dies mid-session: the feed's link is re-made through far, once.
    let mut events = gateway.events();
    near.set_powered(false);
    reconnected(&mut events, HRM).await;
    assert_eq!(link_radio(&gateway, HRM).as_deref(), Some("far"));
    // Telemetry measured after the reconnect arrives, and the client saw no error.
    let reconnected_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    loop {
        let m = client.next().await;
        assert_ne!(m["type"], "error", "{m}");
        let fresh = m["points"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["ts"].as_i64() > Some(reconnected_ms)));
        if m["type"] == "telemetry" && fresh {
            assert_eq!(m["points"][0]["key"], "heart_rate");
            break;
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_broadcasting_sensors_readings_become_its_telemetry_each_packet_once() {
    let hub = Hub::start(gattway::hub::HubConfig {
        advert_feed: true,
        ..hub_config()
    })
    .await;
    let mut client = hub.client().await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": [BTHOME]}))
        .await;
    client.next_of("subscribed").await;
    // Live, as the sensor broadcasts: the readings Home Assistant would give.
    let mut keys = std::collections::BTreeSet::new();
    while keys.len() < 4 {
        let t = client.next_of("telemetry").await;
        assert_eq!(t["device"], BTHOME, "{t}");
        for p in t["points"].as_array().unwrap() {
            keys.insert(p["key"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        keys.into_iter().collect::<Vec<_>>(),
        ["battery", "humidity", "packet_id", "temperature"]
    );
    // Stored, and each packet once although the sensor repeats it: consecutive
    // packet ids differ.
    let stored = within("a few packets stored", async {
        loop {
            let h = hub
                .get(&format!("/api/v1/devices/{BTHOME}/telemetry?key=packet_id"))
                .await;
            if h["points"].as_array().is_some_and(|p| p.len() >= 3) {
                return h;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let ids: Vec<i64> = stored["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_i64().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] != w[1]),
        "a packet stored twice: {ids:?}"
    );
    let temps = hub
        .get(&format!("/api/v1/devices/{BTHOME}/telemetry?key=temperature"))
        .await;
    for p in temps["points"].as_array().unwrap() {
        let t = p["value"].as_f64().unwrap();
        assert!([25.06, 25.16, 25.36, 25.26].contains(&t), "{t}");
    }
}

/// A client that reconnects resumes with the last point id it saw: the replay is
/// what came after it, nothing before.
#[tokio::test]
async fn subscribe_with_after_id_replays_only_the_points_after_it() {
    let hub = Hub::start(hub_config()).await;
    let mut dev = hub.device("resumer").await;
    for i in 1..=10 {
        dev.send(json!({"type": "telemetry", "seq": i, "points": [{"key": "n", "value": i}]}))
            .await;
        dev.next_of("telemetry_ack").await;
    }
    let mut client = hub.client().await;
    client
        .send(json!({"type": "subscribe", "id": 1, "devices": ["resumer"], "since": 0}))
        .await;
    let mut ids = Vec::new();
    loop {
        let m = client.next().await;
        match m["type"].as_str().unwrap() {
            "telemetry" => ids.extend(
                m["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["id"].as_i64().unwrap()),
            ),
            "replayed" => break,
            _ => {}
        }
    }
    assert_eq!(ids.len(), 10);
    let mut again = hub.client().await;
    again
        .send(json!({"type": "subscribe", "id": 1, "devices": ["resumer"], "after_id": ids[4]}))
        .await;
    let mut values = Vec::new();
    loop {
        let m = again.next().await;
        match m["type"].as_str().unwrap() {
            "telemetry" => values.extend(
                m["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["value"].as_i64().unwrap()),
            ),
            "replayed" => break,
            _ => {}
        }
    }
    assert_eq!(values, (6..=10).collect::<Vec<_>>());
}
