//! The embedded store: one SQLite file in WAL mode, migrated at open. Telemetry
//! goes in as multi-row inserts inside one transaction per batch; the store assigns
//! point ids itself, so they are consecutive in commit order. Every other query is
//! shared with PostgreSQL ([`super::sql`]).

mod checkpoint;
mod insert;
pub mod lock;
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

/// How long a server waits for the file's lock before it refuses: long enough
/// for a server that is stopping (a restart) to let go.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Devices whose `last_seq` is remembered between appends, at most; past it the
/// memory starts again (it is only a cache).
const LAST_SEQ_CACHE: usize = 100_000;

pub struct SqliteStore {
    pool: SqlitePool,
    /// Held for the whole append, so ids are consecutive and in commit order.
    head: Mutex<Head>,
    /// Copies the WAL into the database in the background; stops with the store.
    _checkpoints: Option<AbortOnDrop>,
    /// This server's hold on the file (none for an in-memory database). Last, so
    /// it is released after the pool.
    _lock: Option<lock::FileLock>,
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `url`.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let memory = url.contains(":memory:");
        let options = SqliteConnectOptions::from_str(url)?;
        // Taken before anything is read or written: a second server must not even
        // migrate under the first.
        let lock = match memory {
            true => None,
            false => Some(lock::FileLock::wait_for(options.get_filename(), LOCK_WAIT).await?),
        };
        let options = options
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
            head: Mutex::new(Head {
                next_id: last + 1,
                last_seq: HashMap::new(),
            }),
            _checkpoints: checkpoints,
            _lock: lock,
        })
    }
}

/// What the appends carry from one to the next.
struct Head {
    /// The id the next point gets.
    next_id: i64,
    /// Each device's stored `last_seq`, as the appends left it. This process is
    /// the file's only writer of `last_seq` (its appends, under this lock), so a
    /// remembered value is the stored one, and an append needs no read for it:
    /// one round trip fewer to SQLite's thread in every commit.
    last_seq: HashMap<String, i64>,
}

#[async_trait]
impl SqlBackend for SqliteStore {
    type Db = Sqlite;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn append(&self, batches: &[DeviceBatch]) -> StoreResult<Appended> {
        let mut head = self.head.lock().await;
        let first = head.next_id;
        let mut id = first;
        // IMMEDIATE: the write lock is taken before the read below. A deferred
        // transaction that reads first and writes second fails (SQLITE_BUSY_SNAPSHOT)
        // when another connection (the connection log, a command) wrote in between.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // The de-duplication by seq happens here, inside the transaction that
        // stores: what a device last stored is read where nothing can slip between.
        let mut last = HashMap::new();
        for device in devices_with_seq(batches) {
            let stored = match head.last_seq.get(device) {
                Some(seq) => *seq,
                None => sqlx::query_scalar("SELECT last_seq FROM devices WHERE id = ?")
                    .bind(device)
                    .fetch_optional(&mut *tx)
                    .await?
                    .unwrap_or(0),
            };
            last.insert(device, stored);
        }
        let read = last.clone();
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
        for &(device, seq) in &devices {
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
        head.next_id = id;
        if head.last_seq.len() > LAST_SEQ_CACHE {
            head.last_seq.clear();
        }
        // Only devices whose stored value was known (read, or remembered): a
        // batch without seq says nothing of what the device stored before.
        let written: HashMap<&str, i64> = devices.into_iter().collect();
        for (device, stored) in read {
            let seq = written.get(device).copied().unwrap_or(0);
            head.last_seq.insert(device.to_string(), stored.max(seq));
        }
        Ok(Appended {
            first_id: first,
            stored,
        })
    }

    async fn last_id(&self) -> StoreResult<i64> {
        Ok(self.head.lock().await.next_id - 1)
    }

    async fn first_connection_id(&self) -> StoreResult<i64> {
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM connections")
            .fetch_one(&self.pool)
            .await?;
        Ok(last + 1)
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}
