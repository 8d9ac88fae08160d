//! The hub's door and its store: whatever any encoding accepts is stored and read
//! back (SQLite and PostgreSQL), and a row that cannot be read never stops the
//! server from starting.

use serde_json::{json, Value};

use crate::common::cbor::{cbor_client, next_cbor, send_cbor};
use crate::common::*;
use gattway::store::MAX_JSON_DEPTH;

/// An array `levels` deep around a number.
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(1), |inner, _| json!([inner]))
}

struct HubUnderTest {
    server: Server,
    hub: gattway::hub::Hub,
}

async fn hub_on(rig: &Rig, db: &TempDb) -> HubUnderTest {
    let (server, hub) = start_hub_server(&rig.gateway, &db.url(), hub_config(), Default::default()).await;
    HubUnderTest { server, hub }
}

impl HubUnderTest {
    async fn stop(self) {
        self.server.stop().await;
        drop(self.hub);
    }
}

/// Every way a command or a point comes in, at the depth that once broke start-up
/// and at the deepest the store keeps, then a restart on the same database.
async fn accepted_means_readable(db: TempDb) {
    let rig = rig();
    let hub = hub_on(&rig, &db).await;
    let addr = hub.server.addr;

    // CBOR allowed 256 levels, the store reads back 128: 150 was queued, then
    // broke every read and the next start.
    let mut cbor = cbor_client(addr, "/hub?role=client").await;
    assert_eq!(next_cbor(&mut cbor).await["type"], "welcome");
    // Past the wire's own limit (as JSON's parser has) it is not a message at all;
    // under it, the store's limit answers.
    let command = |levels| json!({"type": "command", "id": 1, "device": "d", "name": "unlock", "params": nested(levels)});
    send_cbor(&mut cbor, &command(150)).await;
    let refused = next_cbor(&mut cbor).await;
    assert_eq!(refused["code"], "INVALID_MESSAGE", "{refused}");
    send_cbor(&mut cbor, &command(100)).await;
    let refused = next_cbor(&mut cbor).await;
    assert_eq!(refused["code"], "INVALID_PARAMS", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("deeper than 64"),
        "{refused}"
    );

    // JSON is held to the same limit, not to its parser's.
    let mut json_client = JsonWs::connect(&format!("ws://{addr}/hub?role=client")).await;
    json_client.next().await;
    json_client
        .send(json!({"type": "command", "id": 2, "device": "d", "name": "unlock", "params": nested(MAX_JSON_DEPTH + 1)}))
        .await;
    assert_eq!(json_client.next_of("error").await["code"], "INVALID_PARAMS");
    // REST too.
    let http = reqwest::Client::new();
    let rest = http
        .post(format!("http://{addr}/api/v1/devices/d/commands"))
        .json(&json!({"name": "unlock", "params": nested(100)}))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 400);
    // A device's answer and its points are held to it as well.
    let mut device = JsonWs::connect(&format!("ws://{addr}/hub?device=d")).await;
    device.next().await;
    device
        .send(json!({"type": "telemetry", "id": 3, "points": [{"key": "deep", "value": nested(100)}]}))
        .await;
    assert_eq!(device.next_of("error").await["code"], "INVALID_PARAMS");
    // NUL is kept by SQLite and refused by PostgreSQL's TEXT: refused everywhere.
    device
        .send(json!({"type": "telemetry", "id": 4, "points": [{"key": "a\u{0}b", "value": 1}]}))
        .await;
    let nul = device.next_of("error").await;
    assert_eq!(nul["code"], "INVALID_PARAMS", "{nul}");
    assert!(nul["message"].as_str().unwrap().contains("NUL"), "{nul}");

    // The deepest that is taken reads back whole: over REST, and after a restart.
    let deepest = nested(MAX_JSON_DEPTH);
    send_cbor(
        &mut cbor,
        &json!({"type": "command", "id": 5, "device": "d", "name": "unlock", "params": deepest.clone()}),
    )
    .await;
    let accepted = loop {
        let m = next_cbor(&mut cbor).await;
        if m["type"] == "command_accepted" {
            break m;
        }
    };
    let command_id = accepted["command_id"].as_str().unwrap().to_string();
    let cmd = reqwest::get(format!("http://{addr}/api/v1/commands/{command_id}"))
        .await
        .unwrap();
    assert_eq!(cmd.status(), 200);
    assert_eq!(cmd.json::<Value>().await.unwrap()["params"], deepest);
    // Values each store keeps in its own way: exact past a double's 53 bits, NUL
    // and any character inside JSON text, empty containers.
    let tricky = [
        deepest.clone(),
        json!("a\u{0}b"),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(9_007_199_254_740_993u64),
        json!(0.1),
        json!(-1.5e-300),
        json!("😀 ünï \u{1} \\ \""),
        json!({"k\u{0}": [true, null, false]}),
        json!([]),
        json!({}),
        json!(true),
        json!(null),
    ];
    let points: Vec<Value> = tricky
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"key": format!("v{i}"), "value": v, "ts": 1_000 + i}))
        .collect();
    device
        .send(json!({"type": "telemetry", "id": 6, "points": points}))
        .await;
    device.next_of("telemetry_ack").await;
    drop((cbor, json_client, device));
    hub.stop().await;

    let hub = hub_on(&rig, &db).await;
    let addr = hub.server.addr;
    let listed = reqwest::get(format!("http://{addr}/api/v1/devices/d/commands"))
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed["commands"][0]["params"], deepest, "{listed}");
    let history: Value = reqwest::get(format!("http://{addr}/api/v1/devices/d/telemetry?limit=100"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored: std::collections::HashMap<&str, &Value> = history["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["key"].as_str().unwrap(), &p["value"]))
        .collect();
    for (i, v) in tricky.iter().enumerate() {
        assert_eq!(stored.get(format!("v{i}").as_str()), Some(&v), "{history}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn what_the_hub_accepts_reads_back_on_sqlite() {
    accepted_means_readable(TempDb::new()).await;
}

#[tokio::test]
async fn what_the_hub_accepts_reads_back_on_postgres() {
    accepted_means_readable(TempDb::postgres()).await;
}

/// Rows written behind the server's back, one unreadable in each way a table
/// loaded at start-up can be: the server starts, serves, and the open command that
/// cannot be read is marked failed so it never comes back.
async fn unreadable_rows_do_not_stop_start_up(db: TempDb) {
    let rig = rig();
    // The schema, made by a first start.
    hub_on(&rig, &db).await.stop().await;
    let now = gattway::store::now_ms();
    let command = |id: &str, params: &str, status: &str, result: &str| {
        format!(
            "INSERT INTO commands (id, device_id, name, params, priority, status, result, timeout_ms, \
             created_at, updated_at, expires_at) VALUES ('{id}', 'd', 'n', '{params}', 0, '{status}', \
             {result}, 1000, {now}, {now}, {later});",
            later = now + 86_400_000
        )
    };
    let shared = [
        command("bad-params", "{not json", "queued", "NULL"),
        command("bad-result", "{}", "delivered", "'[oops'"),
        command("bad-status", "{}", "bogus", "NULL"),
        command("good", "{\"ok\": true}", "queued", "NULL"),
        format!("INSERT INTO command_events (command_id, status, at) VALUES ('good', 'bogus', {now});"),
        format!("INSERT INTO telemetry (id, device_id, key, ts, num, value) VALUES (1, 'd', 'k', {now}, NULL, '{{not json');"),
    ]
    .concat();
    // SQLite keeps any type in any column: text where numbers belong.
    let sqlite_only = format!(
        "INSERT INTO devices (id, kind, last_seq, online, first_seen, last_seen) VALUES ('x', 'network', 'many', 1, 'x', {now});\
         INSERT INTO connections (id, role, connected_at) VALUES (7, 'device', 'yesterday');"
    );
    db.execute(&format!("{shared}{sqlite_only}"), &shared).await;

    let hub = hub_on(&rig, &db).await;
    let addr = hub.server.addr;
    for listing in ["hub/devices", "hub/connections"] {
        let answer = reqwest::get(format!("http://{addr}/api/v1/{listing}"))
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{listing}");
    }
    let listed = reqwest::get(format!("http://{addr}/api/v1/devices/d/commands"))
        .await
        .unwrap();
    assert_eq!(listed.status(), 200, "one bad row does not hide the rest");
    let listed: Value = listed.json().await.unwrap();
    let ids: Vec<&str> = listed["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"good"), "{listed}");
    let good = reqwest::get(format!("http://{addr}/api/v1/commands/good"))
        .await
        .unwrap();
    assert_eq!(good.status(), 200);
    // A device connects and gets the good command, and only it.
    let mut device = JsonWs::connect(&format!("ws://{addr}/hub?device=d")).await;
    let welcome = device.next().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let sent = device.next_of("command").await;
    assert_eq!(sent["command_id"], "good");
    // The unreadable open ones are failed, with the reason, in the database.
    hub.stop().await;
    for (id, status) in [
        ("bad-params", "failed"),
        ("bad-result", "failed"),
        ("bad-status", "bogus"),
    ] {
        assert_eq!(stored_status(&db, id).await, status, "{id}");
    }
}

/// A command's stored status, read with the database's own driver.
async fn stored_status(db: &TempDb, id: &str) -> String {
    let url = db.url();
    let query = "SELECT status FROM commands WHERE id = $1";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query_scalar(query).bind(id).fetch_one(&pool).await.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query_scalar(query).bind(id).fetch_one(&pool).await.unwrap()
    }
}

#[tokio::test]
async fn start_up_survives_unreadable_rows_on_sqlite() {
    unreadable_rows_do_not_stop_start_up(TempDb::new()).await;
}

#[tokio::test]
async fn start_up_survives_unreadable_rows_on_postgres() {
    unreadable_rows_do_not_stop_start_up(TempDb::postgres()).await;
}
