//! How gateway types print on the wire: times as Unix milliseconds, bytes as hex;
//! and how wire numbers are read.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::ser::SerializeMap;
use serde::Serializer;

/// Milliseconds since the Unix epoch (0 for times before it).
pub fn to_unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn unix_ms<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(to_unix_ms(*t))
}

pub fn unix_ms_opt<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&to_unix_ms(*t)),
        None => s.serialize_none(),
    }
}

/// A map whose values are bytes, with the values as lowercase hex.
pub fn hex_values<K: Display, S: Serializer>(m: &BTreeMap<K, Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(m.len()))?;
    for (k, v) in m {
        map.serialize_entry(&k.to_string(), &hex::encode(v))?;
    }
    map.end()
}

/// An optional whole number that may arrive as `1500` or `1500.0` (JSON has one
/// number type; a client or generator may write either). A fraction, or a value
/// out of the target's range, is an error.
pub fn opt_whole<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::de::Error;
    use serde::Deserialize;
    let Some(v) = Option::<f64>::deserialize(d)? else {
        return Ok(None);
    };
    if v.fract() != 0.0 || v.abs() > 9.0e15 {
        return Err(D::Error::custom(format!("expected a whole number, not {v}")));
    }
    T::try_from(v as i64)
        .map(Some)
        .map_err(|_| D::Error::custom(format!("{v} is out of range")))
}
