//! The SQL the store runs and what its rows mean: the telemetry INSERTs, values
//! in and out of their two columns, rows into records, and point-query filters.

use std::sync::OnceLock;

use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use crate::store::{
    CommandRecord, CommandStatus, ConnectionRecord, DeviceRecord, PointQuery, StoreError, StoreResult,
    StoredPoint,
};

/// Rows per INSERT statement: six parameters each, well under SQLite's 32,766. A
/// power of two: see [`insert_sql`].
pub(super) const ROWS_PER_INSERT: usize = 128;

/// The INSERT for `rows` rows, `rows` a power of two up to [`ROWS_PER_INSERT`].
///
/// A batch goes in as chunks of those sizes only (100 rows: 64 + 32 + 4), so each
/// pooled connection caches at most eight compiled INSERTs. One statement per batch
/// size meant up to a hundred cached per connection (sqlx's statement cache), each
/// compiled for up to 127 rows: the server's memory grew with every new batch size a
/// busy store saw (benches/churn.rs).
pub(super) fn insert_sql(rows: usize) -> &'static str {
    const SIZES: usize = ROWS_PER_INSERT.trailing_zeros() as usize + 1;
    static SQL: OnceLock<[String; SIZES]> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        std::array::from_fn(|power| {
            let mut sql = String::from("INSERT INTO telemetry (id, device_id, key, ts, num, value) VALUES ");
            for i in 0..1usize << power {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str("(?,?,?,?,?,?)");
            }
            sql
        })
    });
    debug_assert!(rows.is_power_of_two() && rows <= ROWS_PER_INSERT);
    &all[rows.trailing_zeros() as usize]
}

/// Splits `rows` into chunks whose lengths [`insert_sql`] has a statement for:
/// full chunks first, then the rest by falling powers of two.
pub(super) fn insert_chunks<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        // The largest power of two not above what is left, capped at a full chunk.
        let len = ROWS_PER_INSERT.min(1 << rows.len().ilog2());
        let (chunk, rest) = rows.split_at(len);
        rows = rest;
        Some(chunk)
    })
}

/// not a plain number.
pub(super) fn encode_value(v: &Value) -> (Option<f64>, Option<String>) {
    match v {
        Value::Number(n) => (n.as_f64(), None),
        Value::Bool(b) => (Some(if *b { 1.0 } else { 0.0 }), Some(v.to_string())),
        other => (None, Some(other.to_string())),
    }
}

pub(super) fn decode_value(num: Option<f64>, text: Option<&str>) -> Value {
    match (text, num) {
        (Some(t), _) => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())),
        // Whole numbers come back as integers, as they were most likely sent.
        (None, Some(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => Value::from(n as i64),
        (None, Some(n)) => serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
        (None, None) => Value::Null,
    }
}

pub(super) fn point_row(row: &SqliteRow) -> StoreResult<StoredPoint> {
    Ok(StoredPoint {
        id: row.try_get("id")?,
        device: row.try_get("device_id")?,
        key: row.try_get("key")?,
        ts: row.try_get("ts")?,
        value: decode_value(row.try_get("num")?, row.try_get::<Option<&str>, _>("value")?),
    })
}

pub(super) fn json_column(row: &SqliteRow, name: &str) -> StoreResult<Option<Value>> {
    let text: Option<&str> = row.try_get(name)?;
    text.map(|t| serde_json::from_str(t).map_err(|e| StoreError::Corrupt(format!("{name}: {e}"))))
        .transpose()
}

pub(super) fn command_row(row: &SqliteRow) -> StoreResult<CommandRecord> {
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

pub(super) fn device_row(row: &SqliteRow) -> StoreResult<DeviceRecord> {
    Ok(DeviceRecord {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        last_seq: row.try_get::<i64, _>("last_seq")?.max(0) as u64,
        online: row.try_get("online")?,
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
    })
}

pub(super) fn connection_row(row: &SqliteRow) -> StoreResult<ConnectionRecord> {
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
pub(super) fn push_filters<'a>(qb: &mut QueryBuilder<'a, Sqlite>, q: &'a PointQuery) {
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
