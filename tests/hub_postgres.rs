//! The hub's test suites (`tests/suites/`) on the cluster's store: PostgreSQL, a
//! database of its own per test on the server `./test.sh` starts.

mod common;
#[path = "suites/hub/mod.rs"]
mod hub;
#[path = "suites/hub_crash.rs"]
mod hub_crash;

/// A fresh database for one test.
fn store() -> common::TempDb {
    common::TempDb::postgres()
}

/// Two stores on one database, as two instances of a cluster are: their appends
/// take turns, so point ids are consecutive and a reader following the commit
/// order never sees a later id before an earlier one; and a device's retry that
/// reaches the other instance is recognised by its seq, not stored twice.
#[tokio::test]
async fn two_instances_appending_at_once_keep_commit_order_and_seq_de_duplication() {
    use gattway::store::{DeviceBatch, Point, PointQuery};
    let db = store();
    let (a, b) = (
        gattway::store::open(&db.url()).await.unwrap(),
        gattway::store::open(&db.url()).await.unwrap(),
    );
    const BATCHES: u64 = 150;
    let batch = |device: &str, seq: u64| DeviceBatch {
        device: device.into(),
        seq: Some(seq),
        points: (0..3)
            .map(|k| Point {
                key: format!("k{k}"),
                value: serde_json::json!(seq),
                ts: seq as i64,
            })
            .collect(),
    };
    // Each instance has a device of its own, and both get every batch of a
    // device whose connection moved between them mid-stream.
    let writer = |store: std::sync::Arc<dyn gattway::store::Store>, own: &'static str| async move {
        for seq in 1..=BATCHES {
            store
                .append_telemetry(&[batch(own, seq), batch("roamer", seq)])
                .await
                .unwrap();
        }
    };
    // A reader follows the commit order as a live subscriber's replay does.
    let reader = {
        let store = gattway::store::open(&db.url()).await.unwrap();
        tokio::spawn(async move {
            let mut last = 0;
            while last < 3 * 3 * BATCHES as i64 {
                let query = PointQuery {
                    after_id: Some(last),
                    limit: 10_000,
                    ..Default::default()
                };
                for p in store.points(&query).await.unwrap() {
                    assert_eq!(p.id, last + 1, "ids seen in commit order, no gap");
                    last = p.id;
                }
            }
            last
        })
    };
    tokio::join!(writer(a.clone(), "left"), writer(b.clone(), "right"));
    let seen = common::within("the reader to see every point", reader)
        .await
        .unwrap();
    assert_eq!(
        seen,
        3 * 3 * BATCHES as i64,
        "own devices' points and roamer's once"
    );
    assert_eq!(a.last_point_id().await.unwrap(), seen);
    let roamer = b.device("roamer").await.unwrap().expect("roamer stored");
    assert_eq!(roamer.last_seq, BATCHES);
    let stored = a
        .points(&PointQuery {
            devices: vec!["roamer".into()],
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len() as u64, 3 * BATCHES, "each roamer batch stored once");
}

/// `?sslmode=require` is honoured: the store's connections are TLS (rustls). The
/// server `./test.sh` starts is Debian's, with TLS on its snakeoil certificate.
#[tokio::test]
async fn sslmode_require_connects_over_tls() {
    let db = store();
    let url = format!("{}?sslmode=require", db.url());
    let store = gattway::store::open(&url).await.expect("TLS connection");
    store.ping().await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let tls: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(tls, "the connection is encrypted");
}
