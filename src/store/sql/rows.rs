//! What the stores' rows mean, for SQLite and PostgreSQL alike: values in and out
//! of their two columns, rows into records, and the point queries' SQL.

use serde_json::Value;
use sqlx::query::Query;
use sqlx::{ColumnIndex, Database, Decode, Encode, Row, Type};

use crate::store::{
    Bucket, CommandRecord, CommandStatus, ConnectionRecord, DeviceRecord, PointQuery, StoreError,
    StoreResult, StoredPoint,
};

/// A value as its two columns: `num` for numbers (and booleans as 0/1, which
/// aggregates use), `value` JSON for everything that is not a plain number. A
/// whole number past 2^53, which a double cannot hold exactly, keeps its exact
/// JSON beside the double, and is read back from it.
pub(crate) fn encode_value(v: &Value) -> (Option<f64>, Option<String>) {
    const EXACT: u64 = 1 << 53;
    match v {
        Value::Number(n)
            if n.as_u64().is_some_and(|u| u > EXACT) || n.as_i64().is_some_and(|i| i < -(EXACT as i64)) =>
        {
            (n.as_f64(), Some(v.to_string()))
        }
        Value::Number(n) => (n.as_f64(), None),
        Value::Bool(b) => (Some(if *b { 1.0 } else { 0.0 }), Some(v.to_string())),
        other => (None, Some(other.to_string())),
    }
}

pub(crate) fn decode_value(num: Option<f64>, text: Option<&str>) -> Value {
    match (text, num) {
        (Some(t), _) => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())),
        // Whole numbers come back as integers, as they were most likely sent.
        (None, Some(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => Value::from(n as i64),
        (None, Some(n)) => serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
        (None, None) => Value::Null,
    }
}

/// Rows of either database read into the store's records. The column types they
/// need are stated once, here.
pub(crate) trait Records: Send + Sync {
    fn point(&self) -> StoreResult<StoredPoint>;
    fn command(&self) -> StoreResult<CommandRecord>;
    fn device(&self) -> StoreResult<DeviceRecord>;
    fn connection(&self) -> StoreResult<ConnectionRecord>;
    fn bucket(&self) -> StoreResult<Bucket>;
    /// A row of `command_events`: a status and when.
    fn command_event(&self) -> StoreResult<(CommandStatus, i64)>;
    /// A command row's id and status alone, when the rest does not read.
    fn command_key(&self) -> Option<(String, CommandStatus)>;
}

impl<R> Records for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
{
    fn point(&self) -> StoreResult<StoredPoint> {
        Ok(StoredPoint {
            id: self.try_get("id")?,
            device: self.try_get("device_id")?,
            key: self.try_get("key")?,
            ts: self.try_get("ts")?,
            value: decode_value(self.try_get("num")?, self.try_get::<Option<&str>, _>("value")?),
        })
    }

    fn command(&self) -> StoreResult<CommandRecord> {
        let status: &str = self.try_get("status")?;
        let json = |name: &str| -> StoreResult<Option<Value>> {
            let text: Option<&str> = self.try_get(name)?;
            text.map(|t| serde_json::from_str(t).map_err(|e| StoreError::Corrupt(format!("{name}: {e}"))))
                .transpose()
        };
        Ok(CommandRecord {
            id: self.try_get("id")?,
            device: self.try_get("device_id")?,
            name: self.try_get("name")?,
            params: json("params")?.unwrap_or(Value::Null),
            priority: self.try_get("priority")?,
            status: CommandStatus::parse(status)
                .ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?,
            result: json("result")?,
            error: self.try_get("error")?,
            issued_by: self.try_get("issued_by")?,
            timeout_ms: self.try_get("timeout_ms")?,
            created_at: self.try_get("created_at")?,
            updated_at: self.try_get("updated_at")?,
            expires_at: self.try_get("expires_at")?,
            deadline: self.try_get("deadline")?,
        })
    }

    fn device(&self) -> StoreResult<DeviceRecord> {
        Ok(DeviceRecord {
            id: self.try_get("id")?,
            kind: self.try_get("kind")?,
            last_seq: self.try_get::<i64, _>("last_seq")?.max(0) as u64,
            online: self.try_get("online")?,
            first_seen: self.try_get("first_seen")?,
            last_seen: self.try_get("last_seen")?,
        })
    }

    fn connection(&self) -> StoreResult<ConnectionRecord> {
        Ok(ConnectionRecord {
            id: self.try_get("id")?,
            role: self.try_get("role")?,
            subject: self.try_get("subject")?,
            device: self.try_get("device_id")?,
            remote: self.try_get("remote")?,
            connected_at: self.try_get("connected_at")?,
            disconnected_at: self.try_get("disconnected_at")?,
            reason: self.try_get("reason")?,
        })
    }

    fn bucket(&self) -> StoreResult<Bucket> {
        Ok(Bucket {
            key: self.try_get("key")?,
            ts: self.try_get("b")?,
            count: self.try_get("n")?,
            min: self.try_get("lo")?,
            max: self.try_get("hi")?,
            avg: self.try_get("mean")?,
        })
    }

    fn command_key(&self) -> Option<(String, CommandStatus)> {
        let id: String = self.try_get("id").ok()?;
        let status: &str = self.try_get("status").ok()?;
        Some((id, CommandStatus::parse(status)?))
    }

    fn command_event(&self) -> StoreResult<(CommandStatus, i64)> {
        let s: &str = self.try_get("status")?;
        let status = CommandStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("status {s}")))?;
        Ok((status, self.try_get("at")?))
    }
}

/// A statement built at run time, with its parameters in `$N` order.
pub(crate) struct Select<'a> {
    pub sql: String,
    pub params: Vec<Param<'a>>,
}

#[derive(Clone, Copy)]
pub(crate) enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

impl<'a> Select<'a> {
    fn new(sql: &str) -> Self {
        Select {
            sql: sql.to_string(),
            params: Vec::new(),
        }
    }

    fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `param`.
    fn bind(&mut self, param: Param<'a>) -> &mut Self {
        self.params.push(param);
        let n = self.params.len();
        self.sql.push_str(&format!("${n}"));
        self
    }

    /// The statement with its parameters bound, for either database.
    pub(crate) fn query<DB>(&self) -> Query<'_, DB, DB::Arguments<'_>>
    where
        DB: Database,
        for<'q> &'q str: Encode<'q, DB> + Type<DB>,
        for<'q> i64: Encode<'q, DB> + Type<DB>,
    {
        self.params
            .iter()
            .fold(sqlx::query(&self.sql), |query, param| match param {
                Param::Text(t) => query.bind(*t),
                Param::Int(i) => query.bind(*i),
            })
    }
}

/// The SELECT for a point query: history newest first, or replay in commit order.
pub(crate) fn points_query(q: &PointQuery) -> Select<'_> {
    let mut select = Select::new("SELECT id, device_id, key, ts, num, value FROM telemetry");
    push_filters(&mut select, q);
    select.push(if q.newest_first {
        " ORDER BY ts DESC, id DESC"
    } else {
        " ORDER BY id"
    });
    select.push(" LIMIT ").bind(Param::Int(q.limit as i64));
    select
}

/// The SELECT for numeric points in buckets of `bucket_ms`, per key.
pub(crate) fn buckets_query(q: &PointQuery, bucket_ms: i64) -> Select<'_> {
    let bucket_ms = Param::Int(bucket_ms.max(1));
    let mut select = Select::new("SELECT key, (ts / ");
    select
        .bind(bucket_ms)
        .push(") * ")
        .bind(bucket_ms)
        .push(" AS b, COUNT(num) AS n, MIN(num) AS lo, MAX(num) AS hi, AVG(num) AS mean FROM telemetry");
    push_filters(&mut select, q);
    // Newest first is read back to front, so the key order flips with it.
    select.push(" GROUP BY key, b ORDER BY ");
    select.push(if q.newest_first {
        "b DESC, key DESC"
    } else {
        "b, key"
    });
    select.push(" LIMIT ").bind(Param::Int(q.limit as i64));
    select
}

/// `WHERE` clauses for a point query.
fn push_filters<'a>(select: &mut Select<'a>, q: &'a PointQuery) {
    select.push(" WHERE 1=1");
    for (column, values) in [("device_id", &q.devices), ("key", &q.keys)] {
        if !values.is_empty() {
            select.push(&format!(" AND {column} IN ("));
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    select.push(",");
                }
                select.bind(Param::Text(v));
            }
            select.push(")");
        }
    }
    for (clause, value) in [
        (" AND ts >= ", q.from),
        (" AND ts < ", q.to),
        (" AND id > ", q.after_id),
        (" AND id <= ", q.up_to_id),
    ] {
        if let Some(v) = value {
            select.push(clause).bind(Param::Int(v));
        }
    }
}
