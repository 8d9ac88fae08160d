//! Reading a request's fields with serde, each failure worded as the control
//! protocol has always worded it (`missing deviceId`, `serviceUuid: …`, `duration
//! must be an integer from 0 to 60000`): the wire's messages, not serde's.
//!
//! Two pieces make that so. A request is deserialised through [`Json`], whose error
//! is a [`Refusal`]: serde's "missing field" and "unknown variant" come out in the
//! protocol's words. And each field is read by a function named after it (used as
//! `deserialize_with`), since a field's own error must name the field and serde
//! does not tell a field's reader its name.

use std::fmt;
use std::time::Duration;

use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, Visitor};
use serde_json::{Map, Value};

use crate::ble::{DeviceId, ScanFilter, Uuid};

/// Why a request does not read.
#[derive(Debug)]
pub enum Refusal {
    /// A `type` that names no message: the text lists those that do.
    UnknownType(String),
    /// A field missing or malformed: the text names it.
    Field(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnknownType(m) | Refusal::Field(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Refusal {}

impl de::Error for Refusal {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Refusal::Field(message.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        Refusal::Field(format!("missing {field}"))
    }

    /// Only the message enum is deserialised here, so the variant is a `type`.
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Refusal::UnknownType(format!(
            "unknown message type {variant:?}; known: {}",
            expected.join(", ")
        ))
    }
}

/// A parsed JSON value to deserialise from, with a [`Refusal`] for its errors
/// (serde_json's own deserialiser words them its way).
pub struct Json(pub Value);

impl<'de> Deserializer<'de> for Json {
    type Error = Refusal;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => visitor.visit_u64(u),
                (None, Some(i)) => visitor.visit_i64(i),
                // A float: serde_json keeps every number as one of the three.
                (None, None) => visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => visitor.visit_seq(SeqDeserializer::new(items.into_iter().map(Json))),
            Value::Object(fields) => visitor.visit_map(MapDeserializer::new(
                fields.into_iter().map(|(k, v)| (k, Json(v))),
            )),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refusal> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            value => visitor.visit_some(Json(value)),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct newtype_struct seq tuple tuple_struct
        map struct enum identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, Refusal> for Json {
    type Deserializer = Json;

    fn into_deserializer(self) -> Json {
        self
    }
}

/// Reads a field as JSON, then checks it; the check's error is the field's.
fn read<'de, D: Deserializer<'de>, T>(
    d: D,
    check: impl FnOnce(Value) -> Result<T, String>,
) -> Result<T, D::Error> {
    check(Value::deserialize(d)?).map_err(de::Error::custom)
}

/// A non-empty string, trimmed.
fn text(v: Value, name: &str) -> Result<String, String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        _ => Err(format!("{name} must be a non-empty string")),
    }
}

/// Absent (or null), or a non-empty string.
fn opt_text(v: Option<Value>, name: &str) -> Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => text(v, name).map(Some),
    }
}

fn uuid(v: Value, name: &str) -> Result<Uuid, String> {
    text(v, name)?.parse().map_err(|e| format!("{name}: {e}"))
}

/// Absent, or a whole number of milliseconds up to `max`.
fn opt_millis(v: Value, name: &str, max: u64) -> Result<Option<Duration>, String> {
    match v {
        Value::Null => Ok(None),
        v => v
            .as_u64()
            .filter(|n| *n <= max)
            .map(|ms| Some(Duration::from_millis(ms)))
            .ok_or_else(|| format!("{name} must be an integer from 0 to {max}")),
    }
}

/// Base64 as clients write it (see [`super::from_b64`]).
fn base64(v: Value, name: &str) -> Result<Vec<u8>, String> {
    match v {
        Value::String(s) => super::from_b64(&s).map_err(|e| format!("{name} is not valid base64: {e}")),
        _ => Err(format!("{name} must be a base64 string")),
    }
}

/// START_SCAN's `filters`: `name` (a prefix), `services` and `minRssi`.
fn scan_filter(v: Value) -> Result<ScanFilter, String> {
    let mut filters = match v {
        Value::Null => Map::new(),
        Value::Object(m) => m,
        _ => return Err("filters must be an object".into()),
    };
    let services = match filters.remove("services") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or("filters.services must be UUID strings")?
                    .parse::<Uuid>()
                    .map_err(|e| format!("filters.services: {e}"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("filters.services must be an array".into()),
    };
    let min_rssi = match filters.remove("minRssi") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|r| (-127..=20).contains(r))
                .ok_or("filters.minRssi must be an integer dBm from -127 to 20")? as i16,
        ),
    };
    Ok(ScanFilter {
        name_prefix: opt_text(filters.remove("name"), "name")?,
        services,
        min_rssi,
    })
}

// The readers, one per field name, for `#[serde(deserialize_with = "…")]`.

pub fn device_id<'de, D: Deserializer<'de>>(d: D) -> Result<DeviceId, D::Error> {
    read(d, |v| text(v, "deviceId").map(DeviceId::new))
}

pub fn service_uuid<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    read(d, |v| uuid(v, "serviceUuid"))
}

pub fn characteristic_uuid<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    read(d, |v| uuid(v, "characteristicUuid"))
}

pub fn descriptor_uuid<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    read(d, |v| uuid(v, "descriptorUuid"))
}

pub fn value<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    read(d, |v| base64(v, "value"))
}

pub fn with_response<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    read(d, |v| match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        _ => Err("withResponse must be true or false".into()),
    })
}

/// START_SCAN's `duration`, at most a minute.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    read(d, |v| opt_millis(v, "duration", 60_000))
}

/// CONNECT's `timeout`, at most two minutes.
pub fn timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    read(d, |v| opt_millis(v, "timeout", 120_000))
}

pub fn filters<'de, D: Deserializer<'de>>(d: D) -> Result<ScanFilter, D::Error> {
    read(d, scan_filter)
}

pub fn api_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    read(d, |v| opt_text(Some(v), "apiKey"))
}

pub fn token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    read(d, |v| opt_text(Some(v), "token"))
}

pub fn session_token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    read(d, |v| opt_text(Some(v), "sessionToken"))
}
