//! Stored telemetry of one device, as both `/hub`'s `history` message and REST's
//! `GET /devices/{id}/telemetry` answer it: the newest `limit` points (or buckets)
//! in range, oldest first.

use serde::Serialize;
use serde_json::Value;

use super::error::HubError;
use super::event::PublishedPoint;
use super::Hub;
use crate::store::{Bucket, PointQuery};

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

/// What a history request gets: the points, or the buckets.
#[derive(Debug, Serialize)]
pub struct HistoryAnswer {
    pub device: String,
    pub key: Option<String>,
    #[serde(flatten)]
    pub rows: HistoryRows,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum HistoryRows {
    Points {
        points: Vec<PublishedPoint>,
    },
    /// `bucket` is the width in ms.
    Buckets {
        bucket: i64,
        buckets: Vec<Bucket>,
    },
}

fn bucket_ms(v: &Value) -> Result<i64, HubError> {
    let ms = match v {
        Value::Number(n) => n.as_f64().map(|f| f as i64),
        Value::String(s) => s
            .parse::<i64>()
            .ok()
            .or_else(|| humantime::parse_duration(s).ok().map(|d| d.as_millis() as i64)),
        _ => None,
    };
    ms.filter(|ms| *ms > 0)
        .ok_or_else(|| HubError::invalid("bucket is milliseconds or a duration like \"1m\""))
}

/// The newest `limit` points (or buckets) in range, oldest first.
pub async fn answer(hub: &Hub, req: HistoryRequest) -> Result<HistoryAnswer, HubError> {
    let limit = match req.limit.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => n,
        n => return Err(HubError::invalid(format!("limit is 1 to {MAX_LIMIT}, not {n}"))),
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
    let rows = match &req.bucket {
        Some(bucket) => {
            let width = bucket_ms(bucket)?;
            let mut buckets = hub.store().buckets(&query, width).await?;
            buckets.reverse();
            HistoryRows::Buckets {
                bucket: width,
                buckets,
            }
        }
        None => {
            let mut points = hub.store().points(&query).await?;
            points.reverse();
            HistoryRows::Points {
                points: points.iter().map(PublishedPoint::from).collect(),
            }
        }
    };
    Ok(HistoryAnswer {
        device: req.device,
        key: req.key,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bucket_widths_are_ms_or_durations() {
        assert_eq!(bucket_ms(&json!(500)).unwrap(), 500);
        assert_eq!(bucket_ms(&json!("500")).unwrap(), 500);
        assert_eq!(bucket_ms(&json!("1m")).unwrap(), 60_000);
        for bad in [json!("soon"), json!(0), json!("-5"), json!(null)] {
            assert!(matches!(bucket_ms(&bad), Err(HubError::Invalid(_))), "{bad}");
        }
    }
}
