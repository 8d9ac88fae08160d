//! What the hub takes in from devices and clients, checked once whichever way it
//! came (`/hub` JSON and CBOR, REST, MQTT): a device id, a telemetry message's
//! points. Commands are checked where they become records
//! ([`super::CommandRequest`]). The BLE and advertisement feeds build their points
//! from configured keys and decoded values, not from what a caller sent. Besides the
//! hub's own bounds, everything here holds to what the store can keep and read
//! back ([`crate::store::storable`]), so nothing is acknowledged that a later read,
//! or the next start, would choke on.

use serde::Deserialize;
use serde_json::Value;

use super::error::HubError;
use crate::store::{check_json, check_text, Point};

/// A point as a device sends it.
#[derive(Clone, Debug, Deserialize)]
pub struct InPoint {
    pub key: String,
    pub value: Value,
    /// ms since the epoch; the hub's clock when absent.
    pub ts: Option<i64>,
}

/// Longest device id.
pub const MAX_DEVICE_ID: usize = 200;
/// Longest telemetry key.
pub const MAX_KEY: usize = 200;

/// A device id the hub will store and route by.
pub fn device_id(id: &str) -> Result<(), HubError> {
    if id.is_empty() || id.len() > MAX_DEVICE_ID {
        return Err(HubError::invalid(format!(
            "a device id is 1 to {MAX_DEVICE_ID} characters"
        )));
    }
    Ok(check_text("a device id", id)?)
}

/// A telemetry message's points as the store gets them: at least one, each key
/// bounded and storable, each value storable; `now` stands in for a missing `ts`.
pub fn points(points: Vec<InPoint>, now: i64) -> Result<Vec<Point>, HubError> {
    if points.is_empty() {
        return Err(HubError::invalid("telemetry needs at least one point"));
    }
    points
        .into_iter()
        .map(|p| {
            if p.key.is_empty() || p.key.len() > MAX_KEY {
                return Err(HubError::invalid(format!("a key is 1 to {MAX_KEY} bytes")));
            }
            check_text("a key", &p.key)?;
            check_json("a point's value", &p.value)?;
            Ok(Point {
                key: p.key,
                value: p.value,
                ts: p.ts.unwrap_or(now),
            })
        })
        .collect()
}
