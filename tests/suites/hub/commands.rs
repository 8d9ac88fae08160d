//! Commands to devices: their status through to the end, queueing by priority,
//! timeouts, expiry and cancel, surviving a restart, and who hears of them.

use super::Hub;
use crate::common::*;
use crate::store;
use gattway::auth::AuthConfig;
use serde_json::{json, Value};

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
