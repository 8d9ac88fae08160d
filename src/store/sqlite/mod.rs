//! The embedded store: one SQLite file in WAL mode, migrated at open. Telemetry
//! goes in as multi-row inserts inside one transaction per batch; the store assigns
//! point ids itself, so they are consecutive in commit order. Every other query is
//! shared with PostgreSQL ([`super::sql`]).

mod checkpoint;
mod insert;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{Sqlite, SqlitePool};
use tokio::sync::Mutex;

use crate::sync::AbortOnDrop;

use super::sql::append::{devices_with_seq, plan, Plan};
use super::sql::migrations::Embedded;
use super::sql::rows::encode_value;
use super::sql::SqlBackend;
use super::{Appended, DeviceBatch, StoreResult};
use insert::{insert_chunks, insert_sql};

const MIGRATIONS: Embedded = Embedded(&[
    (1, "hub", include_str!("../../../migrations/sqlite/0001_hub.sql")),
    (
        2,
        "connection log retention",
        include_str!("../../../migrations/sqlite/0002_connection_log_retention.sql"),
    ),
]);

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
        Migrator::new(MIGRATIONS).await?.run(&pool).await?;
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
impl SqlBackend for SqliteStore {
    type Db = Sqlite;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn append(&self, batches: &[DeviceBatch]) -> StoreResult<Appended> {
        let mut next_id = self.next_id.lock().await;
        let first = *next_id;
        let mut id = first;
        // IMMEDIATE: the write lock is taken before the read below. A deferred
        // transaction that reads first and writes second fails (SQLITE_BUSY_SNAPSHOT)
        // when another connection (the connection log, a command) wrote in between.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // The de-duplication by seq happens here, inside the transaction that
        // stores: what a device last stored is read where nothing can slip between.
        let mut last = HashMap::new();
        for device in devices_with_seq(batches) {
            let stored: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM devices WHERE id = ?")
                .bind(device)
                .fetch_optional(&mut *tx)
                .await?;
            last.insert(device, stored.unwrap_or(0));
        }
        let Plan {
            stored,
            rows,
            devices,
        } = plan(batches, last);
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
        let now = super::now_ms();
        for (device, seq) in devices {
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

    async fn last_id(&self) -> StoreResult<i64> {
        Ok(*self.next_id.lock().await - 1)
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}
