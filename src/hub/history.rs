//! Stored telemetry of one device, as both `/hub`'s `history` message and REST's
//! `GET /devices/{id}/telemetry` answer it: the newest `limit` points (or buckets)
//! in range, oldest first.

use serde_json::{json, Value};

use super::protocol::{Code, Failure};
use super::Hub;
use crate::store::PointQuery;

/// Points (or buckets) one answer holds by default, and at most.
const DEFAULT_LIMIT: u32 = 1000;
const MAX_LIMIT: u32 = 10_000;

/// What a history request asks for.
pub struct HistoryRequest {
    pub device: String,
    /// One key; every key when absent.
    pub key: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: Option<u32>,
    /// Bucket width: milliseconds (a number or digits) or a duration like "1m".
    pub bucket: Option<Value>,
}

fn bucket_ms(v: &Value) -> Result<i64, Failure> {
    let ms = match v {
        Value::Number(n) => n.as_f64().map(|f| f as i64),
        Value::String(s) => s
            .parse::<i64>()
            .ok()
            .or_else(|| humantime::parse_duration(s).ok().map(|d| d.as_millis() as i64)),
        _ => None,
    };
    ms.filter(|ms| *ms > 0)
        .ok_or_else(|| Failure::params("bucket is milliseconds or a duration like \"1m\""))
}

/// `{"device", "key", "points": [...]}`, or with a bucket `{"device", "key",
/// "bucket", "buckets": [...]}`.
pub async fn answer(hub: &Hub, req: HistoryRequest) -> Result<Value, Failure> {
    let limit = match req.limit.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => n,
        n => return Err(Failure::params(format!("limit is 1 to {MAX_LIMIT}, not {n}"))),
    };
    let query = PointQuery {
        devices: vec![req.device.clone()],
        keys: req.key.iter().cloned().collect(),
        from: req.from,
        to: req.to,
        limit,
        newest_first: true,
        ..Default::default()
    };
    let store_error = |e: crate::store::StoreError| Failure::new(Code::StoreError, e.to_string());
    let mut answer = json!({"device": req.device, "key": req.key});
    if let Some(bucket) = &req.bucket {
        let width = bucket_ms(bucket)?;
        let mut buckets = hub.store().buckets(&query, width).await.map_err(store_error)?;
        buckets.reverse();
        answer["bucket"] = json!(width);
        answer["buckets"] = json!(buckets);
    } else {
        let mut points = hub.store().points(&query).await.map_err(store_error)?;
        points.reverse();
        let points: Vec<Value> = points
            .iter()
            .map(|p| json!({"id": p.id, "key": p.key, "value": p.value, "ts": p.ts}))
            .collect();
        answer["points"] = json!(points);
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_widths_are_ms_or_durations() {
        assert_eq!(bucket_ms(&json!(500)).unwrap(), 500);
        assert_eq!(bucket_ms(&json!("500")).unwrap(), 500);
        assert_eq!(bucket_ms(&json!("1m")).unwrap(), 60_000);
        for bad in [json!("soon"), json!(0), json!("-5"), json!(null)] {
            assert_eq!(bucket_ms(&bad).unwrap_err().code, Code::InvalidParams, "{bad}");
        }
    }
}
