//! What the SQLite and PostgreSQL stores share: every query but the telemetry
//! append, written once. The statements use `$N` placeholders, which SQLite takes
//! as well, and SQL both databases run the same way.
//!
//! A store is a [`SqlBackend`]: its pool, and its own telemetry append (where the
//! two differ: how ids are handed out in commit order, and how rows go in in bulk).
//! Every such backend is a [`Store`] through the one implementation below.

pub(crate) mod append;
pub(crate) mod migrations;
pub(crate) mod rows;

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

use self::rows::{buckets_query, points_query, Records};
use super::{
    Appended, Bucket, CommandRecord, CommandStatus, CommandUpdate, ConnectionRecord, DeviceBatch,
    DeviceRecord, LogEvent, PointQuery, Store, StoreResult, StoredPoint,
};

/// What a quarantined command's `error` says.
const UNREADABLE: &str = "unreadable when loaded (quarantined): the stored row could not be read back";

/// A database the hub's queries run on, and how it appends telemetry.
#[async_trait]
pub trait SqlBackend: Send + Sync + 'static {
    type Db: Database;

    fn pool(&self) -> &Pool<Self::Db>;

    /// [`Store::append_telemetry`], the part each database does its own way.
    async fn append(&self, batches: &[DeviceBatch]) -> StoreResult<Appended>;

    /// [`Store::last_point_id`].
    async fn last_id(&self) -> StoreResult<i64>;

    /// [`Store::first_connection_id`]: one process per SQLite file, several per
    /// PostgreSQL database.
    async fn first_connection_id(&self) -> StoreResult<i64>;

    /// How many rows a statement changed (each driver has its own result type).
    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;
}

#[async_trait]
impl<B> Store for B
where
    B: SqlBackend,
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    for<'q> <B::Db as Database>::Arguments<'q>: IntoArguments<'q, B::Db>,
    <B::Db as Database>::Row: Records,
    usize: ColumnIndex<<B::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Decode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> i32: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Type<B::Db>,
{
    async fn append_telemetry(&self, batches: &[DeviceBatch]) -> StoreResult<Appended> {
        self.append(batches).await
    }

    async fn last_point_id(&self) -> StoreResult<i64> {
        self.last_id().await
    }

    async fn points(&self, q: &PointQuery) -> StoreResult<Vec<StoredPoint>> {
        let select = points_query(q);
        let rows = select.query::<B::Db>().fetch_all(self.pool()).await?;
        Ok(readable(&rows, "telemetry", Records::point)
            .map(|(_, p)| p)
            .collect())
    }

    async fn buckets(&self, q: &PointQuery, bucket_ms: i64) -> StoreResult<Vec<Bucket>> {
        let select = buckets_query(q, bucket_ms);
        let rows = select.query::<B::Db>().fetch_all(self.pool()).await?;
        rows.iter().map(Records::bucket).collect()
    }

    async fn delete_points_before(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM telemetry WHERE ts < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(B::rows_affected(&done))
    }

    async fn device(&self, id: &str) -> StoreResult<Option<DeviceRecord>> {
        let row = sqlx::query("SELECT * FROM devices WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(Records::device).transpose()
    }

    async fn devices(&self) -> StoreResult<Vec<DeviceRecord>> {
        let rows = sqlx::query("SELECT * FROM devices ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        Ok(readable(&rows, "devices", Records::device)
            .map(|(_, d)| d)
            .collect())
    }

    async fn all_offline(&self) -> StoreResult<()> {
        sqlx::query("UPDATE devices SET online = FALSE WHERE online")
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn insert_command(&self, c: &CommandRecord) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO commands (id, device_id, name, params, priority, status, result, error, issued_by, \
             timeout_ms, created_at, updated_at, expires_at, deadline) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(c.id.as_str())
        .bind(c.device.as_str())
        .bind(c.name.as_str())
        .bind(c.params.to_string())
        .bind(c.priority)
        .bind(c.status.as_str())
        .bind(c.result.as_ref().map(Value::to_string))
        .bind(c.error.as_deref())
        .bind(c.issued_by.as_deref())
        .bind(c.timeout_ms)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(c.expires_at)
        .bind(c.deadline)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO command_events (command_id, status, at) VALUES ($1, $2, $3)")
            .bind(c.id.as_str())
            .bind(c.status.as_str())
            .bind(c.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_command(&self, id: &str, u: &CommandUpdate) -> StoreResult<bool> {
        let mut tx = self.pool().begin().await?;
        let done = sqlx::query(
            "UPDATE commands SET status = $1, result = COALESCE($2, result), error = COALESCE($3, error), \
             deadline = $4, updated_at = $5 WHERE id = $6 AND status = $7",
        )
        .bind(u.status.as_str())
        .bind(u.result.as_ref().map(Value::to_string))
        .bind(u.error.as_deref())
        .bind(u.deadline)
        .bind(u.at)
        .bind(id)
        .bind(u.from.as_str())
        .execute(&mut *tx)
        .await?;
        if B::rows_affected(&done) == 0 {
            return Ok(false);
        }
        sqlx::query("INSERT INTO command_events (command_id, status, at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(u.status.as_str())
            .bind(u.at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn command(&self, id: &str) -> StoreResult<Option<CommandRecord>> {
        let row = sqlx::query("SELECT * FROM commands WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(Records::command).transpose()
    }

    // `rowid` orders what was written in the same millisecond: SQLite's own, and a
    // serial column of that name in PostgreSQL's schema.
    async fn commands(&self, device: &str, limit: u32) -> StoreResult<Vec<CommandRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM commands WHERE device_id = $1 ORDER BY created_at DESC, rowid DESC LIMIT $2",
        )
        .bind(device)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        Ok(readable(&rows, "commands", Records::command)
            .map(|(_, c)| c)
            .collect())
    }

    async fn open_commands(&self) -> StoreResult<Vec<CommandRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM commands WHERE status IN ('queued', 'sent', 'delivered') ORDER BY created_at, rowid",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(quarantine_unreadable(self, &rows).await)
    }

    async fn open_commands_of(&self, device: &str) -> StoreResult<Vec<CommandRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM commands WHERE device_id = $1 AND status IN ('queued', 'sent', 'delivered') \
             ORDER BY created_at, rowid",
        )
        .bind(device)
        .fetch_all(self.pool())
        .await?;
        Ok(quarantine_unreadable(self, &rows).await)
    }

    async fn command_events(&self, id: &str) -> StoreResult<Vec<(CommandStatus, i64)>> {
        let rows =
            sqlx::query("SELECT status, at FROM command_events WHERE command_id = $1 ORDER BY at, rowid")
                .bind(id)
                .fetch_all(self.pool())
                .await?;
        Ok(readable(&rows, "command_events", Records::command_event)
            .map(|(_, e)| e)
            .collect())
    }

    async fn write_log(&self, events: &[LogEvent]) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        for e in events {
            match e {
                LogEvent::Opened(c) => {
                    // A connection that ended before it was written arrives whole.
                    sqlx::query(
                        "INSERT INTO connections \
                         (id, role, subject, device_id, remote, connected_at, disconnected_at, reason) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(c.id)
                    .bind(c.role.as_str())
                    .bind(c.subject.as_deref())
                    .bind(c.device.as_deref())
                    .bind(c.remote.as_deref())
                    .bind(c.connected_at)
                    .bind(c.disconnected_at)
                    .bind(c.reason.as_deref())
                    .execute(&mut *tx)
                    .await?;
                }
                LogEvent::Closed { id, at, reason } => {
                    sqlx::query("UPDATE connections SET disconnected_at = $1, reason = $2 WHERE id = $3")
                        .bind(*at)
                        .bind(reason.as_str())
                        .bind(*id)
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
                         VALUES ($1, $2, 0, $3, $4, $4) \
                         ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, online = excluded.online, \
                         last_seen = excluded.last_seen",
                    )
                    .bind(device.as_str())
                    .bind(*kind)
                    .bind(*online)
                    .bind(*at)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn first_connection_id(&self) -> StoreResult<i64> {
        self.first_connection_id().await
    }

    async fn connections(&self, limit: u32) -> StoreResult<Vec<ConnectionRecord>> {
        // By time: ids from instances sharing a database are unique, not ordered.
        let rows = sqlx::query("SELECT * FROM connections ORDER BY connected_at DESC, id DESC LIMIT $1")
            .bind(limit as i64)
            .fetch_all(self.pool())
            .await?;
        Ok(readable(&rows, "connections", Records::connection)
            .map(|(_, c)| c)
            .collect())
    }

    async fn delete_connections_before(&self, before: i64) -> StoreResult<u64> {
        let done =
            sqlx::query("DELETE FROM connections WHERE connected_at < $1 AND disconnected_at IS NOT NULL")
                .bind(before)
                .execute(self.pool())
                .await?;
        Ok(B::rows_affected(&done))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }
}

/// The open commands that read back; one that does not is logged and marked
/// `failed` with the reason ([`UNREADABLE`]), so that it is neither loaded at the
/// next start nor able to stop it.
async fn quarantine_unreadable<R: Records>(store: &dyn Store, rows: &[R]) -> Vec<CommandRecord> {
    let mut open = Vec::with_capacity(rows.len());
    for row in rows {
        let e = match row.command() {
            Ok(c) => {
                open.push(c);
                continue;
            }
            Err(e) => e,
        };
        let Some((id, from)) = row.command_key() else {
            tracing::error!(error = %e, "an open command's row is unreadable, its id too: passed over");
            continue;
        };
        tracing::error!(command = %id, error = %e, "an open command's row is unreadable: marked failed");
        let update = CommandUpdate {
            from,
            status: CommandStatus::Failed,
            result: None,
            error: Some(UNREADABLE.into()),
            deadline: None,
            at: super::now_ms(),
        };
        if let Err(e) = store.update_command(&id, &update).await {
            tracing::error!(command = %id, error = %e, "an unreadable command could not be marked failed");
        }
    }
    open
}

/// The rows that read as records, each with its row; one that does not (written
/// by hand, or by an older version with looser checks) is logged and passed over,
/// so one bad row never hides the rest.
fn readable<'r, R: sqlx::Row, T>(
    rows: &'r [R],
    table: &'static str,
    read: impl Fn(&R) -> StoreResult<T> + 'r,
) -> impl Iterator<Item = (&'r R, T)> + 'r {
    rows.iter().filter_map(move |row| match read(row) {
        Ok(record) => Some((row, record)),
        Err(e) => {
            tracing::warn!(table, error = %e, "an unreadable row was passed over");
            None
        }
    })
}
