//! The embedded store: one SQLite file in WAL mode, migrated at open. Telemetry
//! goes in as multi-row inserts inside one transaction per batch; the store assigns
//! point ids itself, so they are consecutive in commit order.

mod checkpoint;
mod migrations;
mod sql;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, SqlitePool};
use tokio::sync::Mutex;

use crate::sync::AbortOnDrop;

use migrations::Embedded;
use sql::{
    command_row, connection_row, device_row, encode_value, insert_chunks, insert_sql, point_row, push_filters,
};

use super::{
    Appended, Bucket, CommandRecord, CommandStatus, CommandUpdate, ConnectionRecord, DeviceBatch,
    DeviceRecord, LogEvent, PointQuery, Store, StoreError, StoreResult, StoredPoint,
};

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
        let checkpoints = (!memory).then(|| checkpoint::spawn(pool.clone()));
        Ok(SqliteStore {
            pool,
            next_id: Mutex::new(last + 1),
            _checkpoints: checkpoints,
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn append_telemetry(&self, batches: &[DeviceBatch]) -> StoreResult<Appended> {
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
        for chunk in insert_chunks(&rows) {
            let mut query = sqlx::query(insert_sql(chunk.len()));
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
