//! The SQLite store against an in-memory database.

use super::*;
use crate::store::{
    CommandRecord, CommandStatus, CommandUpdate, ConnectionRecord, LogEvent, Point, PointQuery, Store,
};
use serde_json::{json, Value};

fn batch(device: &str, seq: u64, points: &[(&str, Value, i64)]) -> DeviceBatch {
    DeviceBatch {
        device: device.into(),
        seq: Some(seq),
        points: points
            .iter()
            .map(|(k, v, ts)| Point {
                key: k.to_string(),
                value: v.clone(),
                ts: *ts,
            })
            .collect(),
    }
}

#[test]
fn batches_go_in_as_chunks_of_the_eight_prepared_sizes() {
    let lens = |n: usize| insert_chunks(&vec![0u8; n]).map(<[u8]>::len).collect::<Vec<_>>();
    assert_eq!(lens(0), Vec::<usize>::new());
    assert_eq!(lens(1), [1]);
    assert_eq!(lens(100), [64, 32, 4]);
    assert_eq!(lens(128), [128]);
    assert_eq!(lens(300), [128, 128, 32, 8, 4]);
    // Every length up to three full chunks is covered, by statements that exist.
    for n in 0..=3 * insert::ROWS_PER_INSERT {
        let chunks = lens(n);
        assert_eq!(chunks.iter().sum::<usize>(), n);
        for len in chunks {
            assert_eq!(insert_sql(len).matches('(').count(), 1 + len, "{len} rows");
        }
    }
}

#[tokio::test]
async fn points_keep_their_values_ids_and_the_device_seq() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    let first = s
        .append_telemetry(&[
            batch(
                "d1",
                7,
                &[
                    ("temp", json!(21.5), 1000),
                    ("on", json!(true), 1000),
                    ("n", json!(3), 1001),
                ],
            ),
            batch(
                "d2",
                1,
                &[("label", json!("hi"), 1002), ("obj", json!({"a": [1]}), 1003)],
            ),
        ])
        .await
        .unwrap()
        .first_id;
    assert_eq!(first, 1);
    assert_eq!(s.last_point_id().await.unwrap(), 5);
    let all = s
        .points(&PointQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let values: Vec<_> = all.iter().map(|p| (p.id, p.value.clone())).collect();
    assert_eq!(
        values,
        vec![
            (1, json!(21.5)),
            (2, json!(true)),
            (3, json!(3)),
            (4, json!("hi")),
            (5, json!({"a": [1]}))
        ]
    );
    assert_eq!(s.device("d1").await.unwrap().unwrap().last_seq, 7);
    // A seq at or below the stored one is a retry: skipped, not stored twice,
    // and it never moves the seq back. In one commit, the second of two
    // batches with the same seq is the retry.
    let again = s
        .append_telemetry(&[
            batch("d1", 3, &[("temp", json!(1), 2000)]),
            batch("d1", 8, &[("temp", json!(2), 2001)]),
            batch("d1", 8, &[("temp", json!(2), 2001)]),
        ])
        .await
        .unwrap();
    assert_eq!(again.stored, vec![false, true, false]);
    assert_eq!(again.first_id, 6);
    assert_eq!(s.last_point_id().await.unwrap(), 6, "one point stored");
    assert_eq!(s.device("d1").await.unwrap().unwrap().last_seq, 8);
}

#[tokio::test]
async fn many_points_span_several_statements_with_consecutive_ids() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    let points: Vec<_> = (0..300).map(|i| ("k", json!(i), i as i64)).collect();
    let first = s
        .append_telemetry(&[batch("d", 1, &points)])
        .await
        .unwrap()
        .first_id;
    let second = s
        .append_telemetry(&[batch("d", 2, &points[..5])])
        .await
        .unwrap()
        .first_id;
    assert_eq!((first, second), (1, 301));
    let q = PointQuery {
        after_id: Some(100),
        up_to_id: Some(110),
        limit: 100,
        ..Default::default()
    };
    let page = s.points(&q).await.unwrap();
    assert_eq!(
        page.iter().map(|p| p.id).collect::<Vec<_>>(),
        (101..=110).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn buckets_aggregate_numbers_and_retention_deletes_old_points() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    let points: Vec<_> = (0..10).map(|i| ("t", json!(i), i as i64 * 100)).collect();
    s.append_telemetry(&[batch("d", 1, &points)]).await.unwrap();
    let q = PointQuery {
        devices: vec!["d".into()],
        keys: vec!["t".into()],
        limit: 10,
        ..Default::default()
    };
    let b = s.buckets(&q, 500).await.unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(
        (b[0].ts, b[0].count, b[0].min, b[0].max, b[0].avg),
        (0, 5, Some(0.0), Some(4.0), Some(2.0))
    );
    assert_eq!(b[1].ts, 500);
    // Without a key, each key has its own buckets.
    s.append_telemetry(&[batch("d", 2, &[("h", json!(7), 0)])])
        .await
        .unwrap();
    let every = PointQuery {
        keys: vec![],
        ..q.clone()
    };
    let b = s.buckets(&every, 500).await.unwrap();
    assert_eq!(
        b.iter()
            .map(|b| (b.key.as_str(), b.ts, b.count))
            .collect::<Vec<_>>(),
        [("h", 0, 1), ("t", 0, 5), ("t", 500, 5)]
    );
    assert_eq!(s.delete_points_before(500).await.unwrap(), 6);
    assert_eq!(s.points(&q).await.unwrap().len(), 5);
}

#[tokio::test]
async fn a_command_keeps_its_status_history() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    let c = CommandRecord {
        id: "c1".into(),
        device: "d".into(),
        name: "reboot".into(),
        params: json!({"delay": 1}),
        priority: 5,
        status: CommandStatus::Queued,
        result: None,
        error: None,
        issued_by: Some("ops".into()),
        timeout_ms: 30_000,
        created_at: 10,
        updated_at: 10,
        expires_at: 1000,
        deadline: None,
    };
    s.insert_command(&c).await.unwrap();
    assert_eq!(s.open_commands().await.unwrap(), vec![c.clone()]);
    for (from, status, at) in [
        (CommandStatus::Queued, CommandStatus::Sent, 11),
        (CommandStatus::Sent, CommandStatus::Succeeded, 12),
    ] {
        let u = CommandUpdate {
            from,
            status,
            result: (status == CommandStatus::Succeeded).then(|| json!({"ok": true})),
            error: None,
            deadline: Some(40),
            at,
        };
        assert!(s.update_command("c1", &u).await.unwrap());
        assert!(
            !s.update_command("c1", &u).await.unwrap(),
            "applied once: the command is no longer {from:?}"
        );
    }
    let done = s.command("c1").await.unwrap().unwrap();
    assert_eq!(done.status, CommandStatus::Succeeded);
    assert_eq!(done.result, Some(json!({"ok": true})));
    assert!(s.open_commands().await.unwrap().is_empty());
    assert_eq!(
        s.command_events("c1").await.unwrap(),
        vec![
            (CommandStatus::Queued, 10),
            (CommandStatus::Sent, 11),
            (CommandStatus::Succeeded, 12)
        ]
    );
}

#[tokio::test]
async fn the_connection_log_keeps_open_connections_and_forgets_old_ended_ones() {
    let s = SqliteStore::open("sqlite::memory:").await.unwrap();
    let record = |id: i64, at: i64, ended: Option<i64>| ConnectionRecord {
        id,
        role: "device".into(),
        subject: None,
        device: Some(format!("d{id}")),
        remote: None,
        connected_at: at,
        disconnected_at: ended,
        reason: ended.map(|_| "closed".into()),
    };
    s.write_log(&[
        // Ended before it was written: one row, whole.
        LogEvent::Opened(record(1, 1_000, Some(1_500))),
        LogEvent::Opened(record(2, 2_000, None)),
        LogEvent::Opened(record(3, 9_000, Some(9_100))),
    ])
    .await
    .unwrap();
    let all = s.connections(10).await.unwrap();
    assert_eq!(
        all.iter().find(|c| c.id == 1).unwrap().reason.as_deref(),
        Some("closed")
    );
    assert_eq!(
        s.delete_connections_before(5_000).await.unwrap(),
        1,
        "only the ended old one"
    );
    let left: Vec<i64> = s.connections(10).await.unwrap().iter().map(|c| c.id).collect();
    assert_eq!(left, vec![3, 2], "the open one stays however old");
}

/// The remembered `last_seq` is the stored one: after a restart, a batch without
/// seq does not make an old seq look new.
#[tokio::test]
async fn a_remembered_last_seq_still_refuses_a_retry_after_a_batch_without_seq() {
    let path = std::env::temp_dir().join(format!("gattway-unit-{}.db", uuid::Uuid::new_v4()));
    let url = format!("sqlite://{}", path.display());
    let with_seq = |seq| batch("d", seq, &[("k", json!(seq), 1)]);
    let without = DeviceBatch {
        seq: None,
        ..batch("d", 0, &[("k", json!(0), 1)])
    };
    let before = SqliteStore::open(&url).await.unwrap();
    assert_eq!(
        before.append_telemetry(&[with_seq(50)]).await.unwrap().stored,
        [true]
    );
    drop(before);
    // A new process: nothing remembered yet.
    let s = SqliteStore::open(&url).await.unwrap();
    assert_eq!(s.append_telemetry(&[without]).await.unwrap().stored, [true]);
    assert_eq!(
        s.append_telemetry(&[with_seq(10), with_seq(51)])
            .await
            .unwrap()
            .stored,
        [false, true],
        "10 is a retry of something stored; 51 is new"
    );
    assert_eq!(s.device("d").await.unwrap().unwrap().last_seq, 51);
    drop(s);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
