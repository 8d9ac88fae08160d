//! The embedded store: one SQLite file in WAL mode, migrated at open. Telemetry
//! goes in as multi-row inserts inside one transaction per batch; the store assigns
//! point ids itself, so they are consecutive in commit order.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;
use serde_json::Value;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use tokio::sync::Mutex;

use crate::sync::AbortOnDrop;

use super::{
    Appended, Bucket, CommandRecord, CommandStatus, CommandUpdate, ConnectionRecord, DeviceBatch,
    DeviceRecord, LogEvent, PointQuery, Store, StoreError, StoreResult, StoredPoint,
};

/// The migrations, compiled in so the binary needs no files beside it.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "hub", include_str!("../../migrations/sqlite/0001_hub.sql")),
    (
        2,
        "connection log retention",
        include_str!("../../migrations/sqlite/0002_connection_log_retention.sql"),
    ),
];

/// How often the WAL is copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Rows per INSERT statement: six parameters each, well under SQLite's 32,766.
const ROWS_PER_INSERT: usize = 128;

#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, name, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*name),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

pub struct SqliteStore {
    pool: SqlitePool,
    /// The id the next point gets. Held for the whole append, so ids are
    /// consecutive and in commit order.
    next_id: Mutex<i64>,
    /// Copies the WAL into the database in the background; stops with the store.
    _checkpoints: Option<AbortOnDrop>,
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `url`.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let memory = url.contains(":memory:");
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL loses nothing a killed process committed; only an
            // OS crash or power cut can take the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            // Checkpoints run on their own task (below), not inside a telemetry
            // commit, where they stalled acks for tens of milliseconds.
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists once per connection.
            .max_connections(if memory { 1 } else { 4 })
            .connect_with(options)
            .await?;
        Migrator::new(Embedded).await?.run(&pool).await?;
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM telemetry")
            .fetch_one(&pool)
            .await?;
        let checkpoints = (!memory).then(|| {
            let pool = pool.clone();
            AbortOnDrop(tokio::spawn(async move {
                let mut every = tokio::time::interval(CHECKPOINT_EVERY);
                loop {
                    every.tick().await;
                    if let Err(e) = checkpoint(&pool).await {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
            }))
        });
        Ok(SqliteStore {
            pool,
            next_id: Mutex::new(last + 1),
            _checkpoints: checkpoints,
        })
    }
}

/// WAL pages (4 KiB) beyond which a checkpoint makes the next writer start the
/// log from the beginning: 64 MiB.
const WAL_RESTART_PAGES: i64 = 16 * 1024;

/// Copies the WAL into the database without waiting for the writer (PASSIVE).
/// Under a steady stream of commits that never lets the log start over, so once it
/// is long a RESTART checkpoint holds the writer back for the (short) rest of the
/// copy and the log is reused from its start.
async fn checkpoint(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let passive = || async {
        let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(pool)
            .await?;
        Ok::<_, sqlx::Error>((row.try_get::<i64, _>(1)?, row.try_get::<i64, _>(2)?))
    };
    let (log_pages, _) = passive().await?;
    if log_pages > WAL_RESTART_PAGES {
        // More passive passes first, each copying what came during the one
        // before, so the RESTART that holds the writer has little left to copy.
        for _ in 0..3 {
            let (log, copied) = passive().await?;
            if log - copied < 256 {
                break;
            }
        }
        sqlx::query("PRAGMA wal_checkpoint(RESTART)")
            .execute(pool)
            .await?;
    }
    Ok(())
}

fn insert_sql(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO telemetry (id, device_id, key, ts, num, value) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?)");
    }
    sql
}

/// The numeric view of a value (what aggregates use) and its JSON text when it is
/// not a plain number.
fn encode_value(v: &Value) -> (Option<f64>, Option<String>) {
    match v {
        Value::Number(n) => (n.as_f64(), None),
        Value::Bool(b) => (Some(if *b { 1.0 } else { 0.0 }), Some(v.to_string())),
        other => (None, Some(other.to_string())),
    }
}

fn decode_value(num: Option<f64>, text: Option<&str>) -> Value {
    match (text, num) {
        (Some(t), _) => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())),
        // Whole numbers come back as integers, as they were most likely sent.
        (None, Some(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => Value::from(n as i64),
        (None, Some(n)) => serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
        (None, None) => Value::Null,
    }
}

fn point_row(row: &SqliteRow) -> StoreResult<StoredPoint> {
    Ok(StoredPoint {
        id: row.try_get("id")?,
        device: row.try_get("device_id")?,
        key: row.try_get("key")?,
        ts: row.try_get("ts")?,
        value: decode_value(row.try_get("num")?, row.try_get::<Option<&str>, _>("value")?),
    })
}

fn json_column(row: &SqliteRow, name: &str) -> StoreResult<Option<Value>> {
    let text: Option<&str> = row.try_get(name)?;
    text.map(|t| serde_json::from_str(t).map_err(|e| StoreError::Corrupt(format!("{name}: {e}"))))
        .transpose()
}

fn command_row(row: &SqliteRow) -> StoreResult<CommandRecord> {
    let status: &str = row.try_get("status")?;
    Ok(CommandRecord {
        id: row.try_get("id")?,
        device: row.try_get("device_id")?,
        name: row.try_get("name")?,
        params: json_column(row, "params")?.unwrap_or(Value::Null),
        priority: row.try_get("priority")?,
        status: CommandStatus::parse(status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?,
        result: json_column(row, "result")?,
        error: row.try_get("error")?,
        issued_by: row.try_get("issued_by")?,
        timeout_ms: row.try_get("timeout_ms")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        expires_at: row.try_get("expires_at")?,
        deadline: row.try_get("deadline")?,
    })
}

fn device_row(row: &SqliteRow) -> StoreResult<DeviceRecord> {
    Ok(DeviceRecord {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        last_seq: row.try_get::<i64, _>("last_seq")?.max(0) as u64,
        online: row.try_get("online")?,
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
    })
}

fn connection_row(row: &SqliteRow) -> StoreResult<ConnectionRecord> {
    Ok(ConnectionRecord {
        id: row.try_get("id")?,
        role: row.try_get("role")?,
        subject: row.try_get("subject")?,
        device: row.try_get("device_id")?,
        remote: row.try_get("remote")?,
        connected_at: row.try_get("connected_at")?,
        disconnected_at: row.try_get("disconnected_at")?,
        reason: row.try_get("reason")?,
    })
}

/// `WHERE` clauses for a point query, appended to `qb`.
fn push_filters<'a>(qb: &mut QueryBuilder<'a, Sqlite>, q: &'a PointQuery) {
    qb.push(" WHERE 1=1");
    for (column, values) in [("device_id", &q.devices), ("key", &q.keys)] {
        if !values.is_empty() {
            qb.push(format!(" AND {column} IN ("));
            let mut list = qb.separated(",");
            for v in values {
                list.push_bind(v.as_str());
            }
            qb.push(")");
        }
    }
    if let Some(from) = q.from {
        qb.push(" AND ts >= ").push_bind(from);
    }
    if let Some(to) = q.to {
        qb.push(" AND ts < ").push_bind(to);
    }
    if let Some(after) = q.after_id {
        qb.push(" AND id > ").push_bind(after);
    }
    if let Some(up_to) = q.up_to_id {
        qb.push(" AND id <= ").push_bind(up_to);
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn append_telemetry(&self, batches: &[DeviceBatch]) -> StoreResult<Appended> {
        static FULL: OnceLock<String> = OnceLock::new();
        let full = FULL.get_or_init(|| insert_sql(ROWS_PER_INSERT));
        let mut next_id = self.next_id.lock().await;
        let first = *next_id;
        let mut id = first;
        // IMMEDIATE: the write lock is taken before the read below. A deferred
        // transaction that reads first and writes second fails (SQLITE_BUSY_SNAPSHOT)
        // when another connection (the connection log, a command) wrote in between.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // The de-duplication by seq happens here, inside the transaction that
        // stores: what a device last stored is read where nothing can slip between.
        let mut last: HashMap<&str, i64> = HashMap::new();
        for b in batches.iter().filter(|b| b.seq.is_some()) {
            let device = b.device.as_ref();
            if !last.contains_key(device) {
                let stored: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM devices WHERE id = ?")
                    .bind(device)
                    .fetch_optional(&mut *tx)
                    .await?;
                last.insert(device, stored.unwrap_or(0));
            }
        }
        let stored: Vec<bool> = batches
            .iter()
            .map(|b| match b.seq {
                None => true,
                Some(seq) => {
                    let high = last.entry(b.device.as_ref()).or_insert(0);
                    let fresh = seq as i64 > *high;
                    *high = (*high).max(seq as i64);
                    fresh
                }
            })
            .collect();
        let rows: Vec<(&str, &super::Point)> = batches
            .iter()
            .zip(&stored)
            .filter(|(_, kept)| **kept)
            .flat_map(|(b, _)| b.points.iter().map(|p| (b.device.as_ref(), p)))
            .collect();
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let partial;
            let sql = if chunk.len() == ROWS_PER_INSERT {
                full.as_str()
            } else {
                partial = insert_sql(chunk.len());
                partial.as_str()
            };
            let mut query = sqlx::query(sql);
            for (device, p) in chunk {
                let (num, text) = encode_value(&p.value);
                query = query
                    .bind(id)
                    .bind(*device)
                    .bind(p.key.as_str())
                    .bind(p.ts)
                    .bind(num)
                    .bind(text);
                id += 1;
            }
            query.execute(&mut *tx).await?;
        }
        // One row per device: its highest seq in this batch and when it was seen.
        let mut seen: HashMap<&str, (i64, i64)> = HashMap::new();
        for (b, _) in batches.iter().zip(&stored).filter(|(_, kept)| **kept) {
            let last_ts = b.points.iter().map(|p| p.ts).max().unwrap_or(0);
            let entry = seen.entry(b.device.as_ref()).or_insert((0, 0));
            entry.0 = entry.0.max(b.seq.unwrap_or(0) as i64);
            entry.1 = entry.1.max(last_ts);
        }
        let now = super::now_ms();
        for (device, (seq, _)) in seen {
            sqlx::query(
                "INSERT INTO devices (id, kind, last_seq, online, first_seen, last_seen) \
                 VALUES (?, 'network', ?, TRUE, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET last_seq = MAX(devices.last_seq, excluded.last_seq), \
                 last_seen = excluded.last_seen",
            )
            .bind(device)
            .bind(seq)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        *next_id = id;
        Ok(Appended {
            first_id: first,
            stored,
        })
    }

    async fn last_point_id(&self) -> StoreResult<i64> {
        Ok(*self.next_id.lock().await - 1)
    }

    async fn points(&self, q: &PointQuery) -> StoreResult<Vec<StoredPoint>> {
        let mut qb = QueryBuilder::new("SELECT id, device_id, key, ts, num, value FROM telemetry");
        push_filters(&mut qb, q);
        qb.push(if q.newest_first {
            " ORDER BY ts DESC, id DESC"
        } else {
            " ORDER BY id"
        });
        qb.push(" LIMIT ").push_bind(q.limit as i64);
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter().map(point_row).collect()
    }

    async fn buckets(&self, q: &PointQuery, bucket_ms: i64) -> StoreResult<Vec<Bucket>> {
        let bucket_ms = bucket_ms.max(1);
        let mut qb = QueryBuilder::new("SELECT key, (ts / ");
        qb.push_bind(bucket_ms)
            .push(") * ")
            .push_bind(bucket_ms)
            .push(" AS b, COUNT(num) AS n, MIN(num) AS lo, MAX(num) AS hi, AVG(num) AS mean FROM telemetry");
        push_filters(&mut qb, q);
        // Newest first is read back to front, so the key order flips with it.
        qb.push(" GROUP BY key, b ORDER BY ");
        qb.push(if q.newest_first {
            "b DESC, key DESC"
        } else {
            "b, key"
        });
        qb.push(" LIMIT ").push_bind(q.limit as i64);
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(Bucket {
                    key: r.try_get("key")?,
                    ts: r.try_get("b")?,
                    count: r.try_get("n")?,
                    min: r.try_get("lo")?,
                    max: r.try_get("hi")?,
                    avg: r.try_get("mean")?,
                })
            })
            .collect()
    }

    async fn delete_points_before(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM telemetry WHERE ts < ?")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn device(&self, id: &str) -> StoreResult<Option<DeviceRecord>> {
        let row = sqlx::query("SELECT * FROM devices WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device_row).transpose()
    }

    async fn devices(&self) -> StoreResult<Vec<DeviceRecord>> {
        let rows = sqlx::query("SELECT * FROM devices ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(device_row).collect()
    }

    async fn all_offline(&self) -> StoreResult<()> {
        sqlx::query("UPDATE devices SET online = FALSE WHERE online")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_command(&self, c: &CommandRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO commands (id, device_id, name, params, priority, status, result, error, issued_by, \
             timeout_ms, created_at, updated_at, expires_at, deadline) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(&c.device)
        .bind(&c.name)
        .bind(c.params.to_string())
        .bind(c.priority)
        .bind(c.status.as_str())
        .bind(c.result.as_ref().map(Value::to_string))
        .bind(&c.error)
        .bind(&c.issued_by)
        .bind(c.timeout_ms)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(c.expires_at)
        .bind(c.deadline)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO command_events (command_id, status, at) VALUES (?, ?, ?)")
            .bind(&c.id)
            .bind(c.status.as_str())
            .bind(c.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_command(&self, id: &str, u: &CommandUpdate) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE commands SET status = ?, result = COALESCE(?, result), error = COALESCE(?, error), \
             deadline = ?, updated_at = ? WHERE id = ?",
        )
        .bind(u.status.as_str())
        .bind(u.result.as_ref().map(Value::to_string))
        .bind(&u.error)
        .bind(u.deadline)
        .bind(u.at)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO command_events (command_id, status, at) VALUES (?, ?, ?)")
            .bind(id)
            .bind(u.status.as_str())
            .bind(u.at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn command(&self, id: &str) -> StoreResult<Option<CommandRecord>> {
        let row = sqlx::query("SELECT * FROM commands WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(command_row).transpose()
    }

    async fn commands(&self, device: &str, limit: u32) -> StoreResult<Vec<CommandRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM commands WHERE device_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
        )
        .bind(device)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(command_row).collect()
    }

    async fn open_commands(&self) -> StoreResult<Vec<CommandRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM commands WHERE status IN ('queued', 'sent', 'delivered') ORDER BY created_at, rowid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(command_row).collect()
    }

    async fn command_events(&self, id: &str) -> StoreResult<Vec<(CommandStatus, i64)>> {
        let rows =
            sqlx::query("SELECT status, at FROM command_events WHERE command_id = ? ORDER BY at, rowid")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let s: &str = r.try_get("status")?;
                let status =
                    CommandStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("status {s}")))?;
                Ok((status, r.try_get("at")?))
            })
            .collect()
    }

    async fn write_log(&self, events: &[LogEvent]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for e in events {
            match e {
                LogEvent::Opened(c) => {
                    // A connection that ended before it was written arrives whole.
                    sqlx::query(
                        "INSERT INTO connections \
                         (id, role, subject, device_id, remote, connected_at, disconnected_at, reason) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(c.id)
                    .bind(&c.role)
                    .bind(&c.subject)
                    .bind(&c.device)
                    .bind(&c.remote)
                    .bind(c.connected_at)
                    .bind(c.disconnected_at)
                    .bind(&c.reason)
                    .execute(&mut *tx)
                    .await?;
                }
                LogEvent::Closed { id, at, reason } => {
                    sqlx::query("UPDATE connections SET disconnected_at = ?, reason = ? WHERE id = ?")
                        .bind(at)
                        .bind(reason)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                LogEvent::Presence {
                    device,
                    kind,
                    online,
                    at,
                } => {
                    sqlx::query(
                        "INSERT INTO devices (id, kind, last_seq, online, first_seen, last_seen) \
                         VALUES (?, ?, 0, ?, ?, ?) \
                         ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, online = excluded.online, \
                         last_seen = excluded.last_seen",
                    )
                    .bind(device)
                    .bind(*kind)
                    .bind(online)
                    .bind(at)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn last_connection_id(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM connections")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn delete_connections_before(&self, before: i64) -> StoreResult<u64> {
        let done =
            sqlx::query("DELETE FROM connections WHERE connected_at < ? AND disconnected_at IS NOT NULL")
                .bind(before)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    async fn connections(&self, limit: u32) -> StoreResult<Vec<ConnectionRecord>> {
        let rows = sqlx::query("SELECT * FROM connections ORDER BY id DESC LIMIT ?")
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(connection_row).collect()
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Point;
    use serde_json::json;

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
        for (status, at) in [(CommandStatus::Sent, 11), (CommandStatus::Succeeded, 12)] {
            let u = CommandUpdate {
                status,
                result: (status == CommandStatus::Succeeded).then(|| json!({"ok": true})),
                error: None,
                deadline: Some(40),
                at,
            };
            s.update_command("c1", &u).await.unwrap();
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
}
