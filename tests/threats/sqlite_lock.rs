//! One server per SQLite file: a second `gattway serve` on the same data
//! directory is refused and names the first, which goes on storing; a store that
//! refuses commits shows in `/readyz` and `/health`, and a feed goes on once it
//! works again.

use serde_json::{json, Value};

use crate::common::process::{hub_server_command, listening_addr, reading_stderr, wait_for_line};
use crate::common::*;

/// `gattway serve` as a new user runs it: the default data directory (under this
/// HOME), the simulator, any port.
fn serve_in(home: &std::path::Path) -> tokio::process::Command {
    let mut command = hub_server_command("127.0.0.1:0");
    command
        .env_remove("GATTWAY_DATABASE")
        .env_remove("XDG_DATA_HOME")
        .env_remove("STATE_DIRECTORY")
        .env("HOME", home);
    command
}

#[tokio::test]
async fn a_second_server_on_the_same_sqlite_file_is_refused_by_name() {
    let home = TempDir::new();
    let (first, mut lines) = reading_stderr(serve_in(&home.path));
    let addr = listening_addr(&wait_for_line(&mut lines, "listening on http://").await);
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let second = within("the second server to give up", serve_in(&home.path).output())
        .await
        .expect("run");
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "the second server must not run: {said}");
    assert!(said.contains("in use by another gattway server"), "{said}");
    let pid = first.id().expect("running");
    assert!(
        said.contains(&format!("pid {pid}")),
        "the holder is named: {said}"
    );

    // The first goes on storing, and says it is ready.
    let mut device = JsonWs::connect(&format!("ws://{addr}/hub?device=d")).await;
    device.next_of("welcome").await;
    for seq in 1..=3u64 {
        device
            .send(json!({"type": "telemetry", "seq": seq, "points": [{"key": "t", "value": seq}]}))
            .await;
        assert_eq!(device.next_of("telemetry_ack").await["seq"], seq);
    }
    let ready = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn a_store_that_refuses_commits_is_unready_and_a_feed_goes_on_after() {
    let rig = rig();
    let db = TempDb::new();
    let config = gattway::hub::HubConfig {
        sim_feed: true,
        ..hub_config()
    };
    let (server, _hub) = start_hub_server(&rig.gateway, &db.url(), config, Default::default()).await;
    let heart_rate = format!("{}/api/v1/devices/{HRM}/telemetry?limit=1", server.url(""));
    let newest = || async {
        let v: Value = reqwest::get(&heart_rate).await.unwrap().json().await.unwrap();
        v["points"][0]["id"].as_i64()
    };
    let status = |path: &'static str| {
        let url = server.url(path);
        async move {
            let r = reqwest::get(url).await.unwrap();
            let code = r.status().as_u16();
            (code, r.json::<Value>().await.unwrap())
        }
    };
    within("the simulated monitor's first stored point", async {
        while newest().await.is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await;

    // The table goes away behind the server's back: `SELECT 1` still answers,
    // every commit fails.
    db.execute("ALTER TABLE telemetry RENAME TO telemetry_away", "")
        .await;
    let (code, body) = within("/readyz to say the store fails", async {
        loop {
            let (code, body) = status("/readyz").await;
            if code == 503 {
                return (code, body);
            }
        }
    })
    .await;
    assert_eq!(code, 503);
    assert_eq!(body["checks"]["store"]["ok"], false, "{body}");
    assert!(
        body["checks"]["store"]["detail"]
            .as_str()
            .unwrap()
            .contains("not being stored"),
        "{body}"
    );
    let (_, health) = status("/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["store"]["ok"], false, "{health}");

    // Back again: the feed, which never reconnects, is stored again.
    db.execute("ALTER TABLE telemetry_away RENAME TO telemetry", "")
        .await;
    let before = newest().await;
    within("the feed to be stored again", async {
        while newest().await <= before {
            tokio::task::yield_now().await;
        }
    })
    .await;
    within("/readyz to be ready again", async {
        while status("/readyz").await.0 != 200 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(status("/health").await.1["status"], "ok");
    server.stop().await;
}
