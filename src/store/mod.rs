//! Where the hub keeps what must survive a restart: telemetry points, commands and
//! their status history, the devices it has seen, and the connection log.
//!
//! - [`Store`]: the one trait the hub uses. SQLite ([`sqlite`]) is the embedded
//!   default; PostgreSQL ([`postgres`]) serves a cluster, several instances sharing
//!   one database. Both run the same queries ([`sql`]) on schemas that mirror each
//!   other column for column (`migrations/`); only the telemetry append differs.
//! - [`writer`]: batched telemetry writes (group commit): many devices' points in
//!   one transaction, each sender told when its points are durable.
//! - [`storable`]: what the store can keep and read back (JSON depth, NUL in
//!   text), which the hub checks at its door.

pub mod postgres;
pub mod sql;
pub mod sqlite;
pub mod storable;
pub mod writer;

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::storable::{check_json, check_text, Unstorable, MAX_JSON_DEPTH};
pub use self::writer::{Committed, TelemetryWriter};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(sqlx::Error),
    /// No connection could be had: the database is down or unreachable.
    #[error("the database is unreachable (no connection within the pool's timeout): {0}")]
    Unreachable(sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DATABASE")]
    UnsupportedUrl(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("the telemetry writer has stopped")]
    WriterStopped,
    /// Another server holds the SQLite file.
    #[error(transparent)]
    Locked(#[from] sqlite::lock::LockError),
}

impl StoreError {
    /// What kind of failure this is, for front ends to turn into their wire code:
    /// every one a store failure, after which nothing was acknowledged.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            StoreError::Database(_)
            | StoreError::Unreachable(_)
            | StoreError::Migrate(_)
            | StoreError::UnsupportedUrl(_)
            | StoreError::Corrupt(_)
            | StoreError::WriterStopped
            | StoreError::Locked(_) => crate::error::ErrorKind::Store,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                StoreError::Unreachable(e)
            }
            e => StoreError::Database(e),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One telemetry value at one time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub key: String,
    /// A number, bool, string or any JSON.
    pub value: Value,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
}

/// Points from one device, as one `telemetry` message brought them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceBatch {
    pub device: Arc<str>,
    /// The device's sequence number for this message, stored as the device's
    /// `last_seq` so a retry after a restart is recognised.
    pub seq: Option<u64>,
    pub points: Vec<Point>,
}

impl DeviceBatch {
    /// About what the batch holds in memory, in bytes: what a queue of batches
    /// is bounded by.
    pub fn weight(&self) -> usize {
        const POINT: usize = std::mem::size_of::<Point>();
        self.device.len()
            + self
                .points
                .iter()
                .map(|p| POINT + p.key.len() + storable::json_weight(&p.value))
                .sum::<usize>()
    }
}

/// What [`Store::append_telemetry`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Appended {
    /// The first stored point's id; the rest follow in order.
    pub first_id: i64,
    /// For each batch given: stored (true), or skipped as a retry (false).
    pub stored: Vec<bool>,
}

/// A stored point; `id` is its place in commit order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredPoint {
    pub id: i64,
    pub device: String,
    pub key: String,
    pub value: Value,
    pub ts: i64,
}

/// Which points a query wants. Empty lists mean "all".
#[derive(Clone, Debug, Default)]
pub struct PointQuery {
    pub devices: Vec<String>,
    pub keys: Vec<String>,
    /// Inclusive, ms since the epoch.
    pub from: Option<i64>,
    /// Exclusive, ms since the epoch.
    pub to: Option<i64>,
    /// Only points committed after this id (paging).
    pub after_id: Option<i64>,
    /// Only points committed up to this id (a replay's end).
    pub up_to_id: Option<i64>,
    pub limit: u32,
    /// Newest first (history) instead of commit order (replay).
    pub newest_first: bool,
}

/// One time bucket of one key's numeric series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bucket {
    pub key: String,
    /// Start of the bucket, ms since the epoch.
    pub ts: i64,
    pub count: i64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub avg: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceRecord {
    pub id: String,
    pub kind: String,
    pub last_seq: u64,
    pub online: bool,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// A command's life, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub id: String,
    pub device: String,
    pub name: String,
    pub params: Value,
    pub priority: i32,
    pub status: CommandStatus,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub issued_by: Option<String>,
    pub timeout_ms: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    pub deadline: Option<i64>,
}

/// Where a command is in its life. `queued`, `sent` and `delivered` are open; the
/// rest are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Stored, waiting for the device (offline or busy).
    Queued,
    /// Handed to the device's connection.
    Sent,
    /// The device said it has it.
    Delivered,
    Succeeded,
    Failed,
    /// Sent, but no final result came within its timeout.
    TimedOut,
    /// Still queued when its time to live ran out.
    Expired,
    Cancelled,
}

impl CommandStatus {
    pub const ALL: [CommandStatus; 8] = [
        CommandStatus::Queued,
        CommandStatus::Sent,
        CommandStatus::Delivered,
        CommandStatus::Succeeded,
        CommandStatus::Failed,
        CommandStatus::TimedOut,
        CommandStatus::Expired,
        CommandStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Queued => "queued",
            CommandStatus::Sent => "sent",
            CommandStatus::Delivered => "delivered",
            CommandStatus::Succeeded => "succeeded",
            CommandStatus::Failed => "failed",
            CommandStatus::TimedOut => "timed_out",
            CommandStatus::Expired => "expired",
            CommandStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<CommandStatus> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        !matches!(
            self,
            CommandStatus::Queued | CommandStatus::Sent | CommandStatus::Delivered
        )
    }
}

/// A status change of a command.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandUpdate {
    /// The status it changes from: the change is made only if the command still
    /// has it (instances of a cluster may race for a command).
    pub from: CommandStatus,
    pub status: CommandStatus,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub deadline: Option<i64>,
    pub at: i64,
}

/// One hub connection, for the connection log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionRecord {
    pub id: i64,
    pub role: String,
    pub subject: Option<String>,
    pub device: Option<String>,
    pub remote: Option<String>,
    pub connected_at: i64,
    pub disconnected_at: Option<i64>,
    pub reason: Option<String>,
}

/// Bookkeeping the hub writes in the background, batched: the connection log and
/// devices coming and going.
#[derive(Clone, Debug, PartialEq)]
pub enum LogEvent {
    Opened(ConnectionRecord),
    Closed {
        id: i64,
        at: i64,
        reason: String,
    },
    /// A device came online or went offline (created when new).
    Presence {
        device: String,
        kind: &'static str,
        online: bool,
        at: i64,
    },
}

/// The hub's storage. Every method is one short transaction; telemetry arrives in
/// batches from [`TelemetryWriter`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores the batches in one transaction and records each device's seq. A batch
    /// whose seq is not above its device's stored `last_seq` (read inside the same
    /// transaction) is a retry of something stored: it is skipped, not stored
    /// twice. The stored batches' points get consecutive ids in the order given.
    async fn append_telemetry(&self, batches: &[DeviceBatch]) -> StoreResult<Appended>;
    /// The highest id stored (0 when empty).
    async fn last_point_id(&self) -> StoreResult<i64>;
    async fn points(&self, query: &PointQuery) -> StoreResult<Vec<StoredPoint>>;
    /// Numeric points grouped into buckets of `bucket_ms`, per key (each key the
    /// query names, or every key).
    async fn buckets(&self, query: &PointQuery, bucket_ms: i64) -> StoreResult<Vec<Bucket>>;
    /// Deletes points older than `before` (ms); returns how many.
    async fn delete_points_before(&self, before: i64) -> StoreResult<u64>;

    async fn device(&self, id: &str) -> StoreResult<Option<DeviceRecord>>;
    async fn devices(&self) -> StoreResult<Vec<DeviceRecord>>;
    /// Marks every device offline (at start-up: no connection survives a restart).
    async fn all_offline(&self) -> StoreResult<()>;

    async fn insert_command(&self, command: &CommandRecord) -> StoreResult<()>;
    /// Applies a status change if the command is still `update.from`; false (and
    /// nothing written) when it is not.
    async fn update_command(&self, id: &str, update: &CommandUpdate) -> StoreResult<bool>;
    async fn command(&self, id: &str) -> StoreResult<Option<CommandRecord>>;
    /// The device's commands, newest first.
    async fn commands(&self, device: &str, limit: u32) -> StoreResult<Vec<CommandRecord>>;
    /// Commands that are queued, sent or delivered, oldest first.
    async fn open_commands(&self) -> StoreResult<Vec<CommandRecord>>;
    /// The open commands of one device, oldest first.
    async fn open_commands_of(&self, device: &str) -> StoreResult<Vec<CommandRecord>>;
    /// The statuses a command went through, oldest first, with their times.
    async fn command_events(&self, id: &str) -> StoreResult<Vec<(CommandStatus, i64)>>;

    /// Writes connection-log and presence events in one transaction. Connection
    /// records carry their id.
    async fn write_log(&self, events: &[LogEvent]) -> StoreResult<()>;
    /// The first connection-log id this process may hand out; it counts up from
    /// there. Ids continue after a restart, and instances sharing a database
    /// never hand out the same one.
    async fn first_connection_id(&self) -> StoreResult<i64>;
    /// The newest connections first.
    async fn connections(&self, limit: u32) -> StoreResult<Vec<ConnectionRecord>>;
    /// Deletes ended connections that began before `before` (ms); how many.
    async fn delete_connections_before(&self, before: i64) -> StoreResult<u64>;

    /// Answers when the database does (readiness).
    async fn ping(&self) -> StoreResult<()>;
}

/// Opens the store a database URL names (`sqlite://PATH`, `sqlite::memory:`,
/// `postgres://…` or `postgresql://…`).
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(crate::redact::url(url)))
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
