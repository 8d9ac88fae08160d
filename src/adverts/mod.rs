//! Advertisement decoders: what a sensor broadcasts, as named readings. Each format
//! has its own file; every decoder gives the keys and values Home Assistant's own
//! decoder gives for the same bytes (the reference tests check it), so a reading
//! means the same thing in gattway as in Home Assistant.

pub mod bthome;

use serde::Serialize;
use serde_json::Value;

use crate::ble::Advertisement;

/// Every reading an advertisement carries in a format gattway reads; none when it
/// carries none (its raw service and manufacturer data stay in the advertisement).
pub fn decode(adv: &Advertisement) -> Vec<Reading> {
    match adv.service_data.get(&bthome::SERVICE) {
        Some(data) => bthome::decode(data).unwrap_or_else(|e| {
            tracing::debug!(device = %adv.id, error = %e, "BTHome service data not read");
            Vec::new()
        }),
        None => Vec::new(),
    }
}

/// One named reading from an advertisement: `temperature` 25.06 °C.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reading {
    /// Home Assistant's key: the measurement's name, `_1`, `_2`… when a packet has
    /// several of one kind.
    pub key: String,
    /// A number, a boolean (binary sensors), text, or an event's type (`press`).
    pub value: Value,
    /// The unit, when the value has one.
    pub unit: Option<&'static str>,
}
