//! The hub's binary encoding, subprotocol `gattway.cbor` (docs/hub-protocol.md,
//! "Binary encoding"): the same messages as JSON, as CBOR (RFC 8949) maps in which
//! the protocol's own field names and `type` values are small integers. A
//! telemetry frame shrinks to about a third. Data a device or client chose (a
//! point's `value`, a command's `params` and `result`) is carried as it is.
//!
//! Messages are transcoded to and from the JSON the rest of the hub speaks: a
//! frame sent to many subscribers is transcoded once ([`super::protocol::Frame`]).
//! Either side may send a name as text instead of its number; a name missing from
//! the tables always goes as text. The tables only ever grow at their ends.

use ciborium::value::{Integer, Value as Cbor};
use serde_json::{Map, Number, Value as Json};

/// The subprotocol a client names in `Sec-WebSocket-Protocol`.
pub const PROTOCOL: &str = "gattway.cbor";

/// Field names by number. Append only: a number, once given, keeps its name.
const FIELDS: &[&str] = &[
    "type",         // 0
    "id",           // 1
    "ts",           // 2
    "points",       // 3
    "key",          // 4
    "value",        // 5
    "device",       // 6
    "seq",          // 7
    "command_id",   // 8
    "status",       // 9
    "result",       // 10
    "error",        // 11
    "devices",      // 12
    "keys",         // 13
    "since",        // 14
    "after_id",     // 15
    "subscription", // 16
    "name",         // 17
    "params",       // 18
    "timeout",      // 19
    "priority",     // 20
    "ttl",          // 21
    "from",         // 22
    "to",           // 23
    "limit",        // 24
    "bucket",       // 25
    "buckets",      // 26
    "token",        // 27
    "code",         // 28
    "message",      // 29
    "messages",     // 30
    "online",       // 31
    "last_seen",    // 32
    "replay",       // 33
    "missed",       // 34
    "role",         // 35
    "subject",      // 36
    "count",        // 37
    "min",          // 38
    "max",          // 39
    "avg",          // 40
];

/// `type` values by number. Append only.
const TYPES: &[&str] = &[
    "telemetry",        // 0
    "telemetry_ack",    // 1
    "command_result",   // 2
    "heartbeat",        // 3
    "heartbeat_ack",    // 4
    "command",          // 5
    "cancel",           // 6
    "subscribe",        // 7
    "subscribed",       // 8
    "replayed",         // 9
    "unsubscribe",      // 10
    "unsubscribed",     // 11
    "command_accepted", // 12
    "cancelled",        // 13
    "history",          // 14
    "presence",         // 15
    "ping",             // 16
    "pong",             // 17
    "command_status",   // 18
    "lagged",           // 19
    "error",            // 20
    "batch",            // 21
    "auth",             // 22
    "authenticated",    // 23
    "welcome",          // 24
];

/// Fields whose value is a list of the protocol's own objects (their field names
/// are numbered too); `messages` holds whole messages.
const NESTED: &[&str] = &["points", "buckets", "devices"];

/// Why a binary message is not a hub message.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CborError {
    #[error("not CBOR: {0}")]
    Syntax(String),
    #[error("a message is a CBOR map")]
    NotAMap,
    #[error("unknown field number {0}")]
    UnknownField(i128),
    #[error("unknown type number {0}")]
    UnknownType(i128),
    #[error("{0} have no JSON form; the hub carries JSON values")]
    Unsupported(&'static str),
    #[error("more than {MAX_ITEMS} CBOR items (a map counts {MAP_WEIGHT}): split the message")]
    TooManyItems,
}

/// How deep a CBOR message may nest, as serde_json allows a JSON one: the
/// encodings agree, and the data inside is held to the store's tighter
/// [`crate::store::MAX_JSON_DEPTH`] by the hub's own checks.
const MAX_NESTING: usize = 128;

/// A message read from CBOR, as the JSON the hub handles.
pub fn decode(bytes: &[u8]) -> Result<Json, CborError> {
    within_item_budget(bytes)?;
    let v: Cbor = ciborium::de::from_reader_with_recursion_limit(bytes, MAX_NESTING)
        .map_err(|e| CborError::Syntax(e.to_string()))?;
    message_from(v)
}

/// A JSON message as CBOR.
pub fn encode(message: &Json) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    // Writing a CBOR value into a Vec cannot fail: the only errors are the
    // writer's, and a Vec takes everything.
    let _ = ciborium::ser::into_writer(&message_to(message), &mut out);
    out
}

fn message_to(m: &Json) -> Cbor {
    let Json::Object(fields) = m else {
        return data_to(m);
    };
    // `type` first, so a reader can dispatch on the map's first entry.
    let kind = fields.get_key_value("type");
    let rest = fields.iter().filter(|(name, _)| *name != "type");
    let map = kind
        .into_iter()
        .chain(rest)
        .map(|(name, v)| {
            let value = match (name.as_str(), v) {
                ("type", Json::String(t)) => number_or_text(TYPES, t),
                ("messages", Json::Array(items)) => Cbor::Array(items.iter().map(message_to).collect()),
                (n, Json::Array(items)) if NESTED.contains(&n) => {
                    Cbor::Array(items.iter().map(object_to).collect())
                }
                _ => data_to(v),
            };
            (number_or_text(FIELDS, name), value)
        })
        .collect();
    Cbor::Map(map)
}

/// One of the protocol's objects inside a message (a point, a bucket).
fn object_to(o: &Json) -> Cbor {
    match o {
        Json::Object(fields) => Cbor::Map(
            fields
                .iter()
                .map(|(name, v)| (number_or_text(FIELDS, name), data_to(v)))
                .collect(),
        ),
        other => data_to(other),
    }
}

fn number_or_text(table: &[&str], name: &str) -> Cbor {
    match table.iter().position(|n| *n == name) {
        Some(i) => Cbor::Integer(Integer::from(i as u64)),
        None => Cbor::Text(name.to_owned()),
    }
}

/// JSON data as CBOR, names untouched.
fn data_to(v: &Json) -> Cbor {
    match v {
        Json::Null => Cbor::Null,
        Json::Bool(b) => Cbor::Bool(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Cbor::Integer(Integer::from(u)),
            (_, Some(i)) => Cbor::Integer(Integer::from(i)),
            // Neither integer form: a float (serde_json holds nothing else).
            _ => Cbor::Float(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Cbor::Text(s.clone()),
        Json::Array(items) => Cbor::Array(items.iter().map(data_to).collect()),
        Json::Object(fields) => Cbor::Map(
            fields
                .iter()
                .map(|(k, v)| (Cbor::Text(k.clone()), data_to(v)))
                .collect(),
        ),
    }
}

fn message_from(v: Cbor) -> Result<Json, CborError> {
    let Cbor::Map(entries) = v else {
        return Err(CborError::NotAMap);
    };
    let mut out = Map::new();
    for (k, v) in entries {
        let name = name_from(FIELDS, k, CborError::UnknownField)?;
        let value = match (name.as_str(), v) {
            ("type", Cbor::Integer(i)) => {
                Json::String(name_from(TYPES, Cbor::Integer(i), CborError::UnknownType)?)
            }
            ("messages", Cbor::Array(items)) => {
                Json::Array(items.into_iter().map(message_from).collect::<Result<_, _>>()?)
            }
            (n, Cbor::Array(items)) if NESTED.contains(&n) => {
                Json::Array(items.into_iter().map(object_from).collect::<Result<_, _>>()?)
            }
            (_, v) => data_from(v)?,
        };
        out.insert(name, value);
    }
    Ok(Json::Object(out))
}

fn object_from(v: Cbor) -> Result<Json, CborError> {
    let Cbor::Map(entries) = v else {
        return data_from(v);
    };
    let mut out = Map::new();
    for (k, v) in entries {
        out.insert(name_from(FIELDS, k, CborError::UnknownField)?, data_from(v)?);
    }
    Ok(Json::Object(out))
}

/// A name given by number (looked up in `table`) or as text.
fn name_from(table: &[&str], k: Cbor, unknown: fn(i128) -> CborError) -> Result<String, CborError> {
    match k {
        Cbor::Text(s) => Ok(s),
        Cbor::Integer(i) => {
            let i = i128::from(i);
            usize::try_from(i)
                .ok()
                .and_then(|i| table.get(i))
                .map(|n| (*n).to_owned())
                .ok_or(unknown(i))
        }
        _ => Err(CborError::Unsupported("map keys other than text and numbers")),
    }
}

/// CBOR data as JSON: map keys must be text, as JSON's are.
fn data_from(v: Cbor) -> Result<Json, CborError> {
    Ok(match v {
        Cbor::Null => Json::Null,
        Cbor::Bool(b) => Json::Bool(b),
        Cbor::Integer(i) => {
            let i = i128::from(i);
            if let Ok(u) = u64::try_from(i) {
                Json::Number(u.into())
            } else if let Ok(s) = i64::try_from(i) {
                Json::Number(s.into())
            } else {
                return Err(CborError::Unsupported("integers beyond 64 bits"));
            }
        }
        Cbor::Float(f) => {
            Json::Number(Number::from_f64(f).ok_or(CborError::Unsupported("NaN and infinities"))?)
        }
        Cbor::Text(s) => Json::String(s),
        Cbor::Array(items) => Json::Array(items.into_iter().map(data_from).collect::<Result<_, _>>()?),
        Cbor::Map(entries) => {
            let mut out = Map::new();
            for (k, v) in entries {
                let Cbor::Text(k) = k else {
                    return Err(CborError::Unsupported("map keys other than text in data"));
                };
                out.insert(k, data_from(v)?);
            }
            Json::Object(out)
        }
        Cbor::Bytes(_) => return Err(CborError::Unsupported("byte strings")),
        Cbor::Tag(..) => return Err(CborError::Unsupported("tagged values")),
        _ => return Err(CborError::Unsupported("this CBOR type")),
    })
}

/// Items one message may hold, counted before any is built. Decoding costs memory
/// per item, not per byte: a null is one byte on the wire and some 64 in the
/// values built from it (CBOR's, then JSON's), so 1 MiB of nulls (a deflated
/// frame of 1 KiB) would cost tens of MiB before the sender is even
/// authenticated. At most this many items, the decoded message costs a few MiB
/// whatever its shape; a telemetry batch of ~10,000 points fits.
const MAX_ITEMS: usize = 1 << 17;
/// What a map counts for: JSON makes a tree node (hundreds of bytes) of each.
const MAP_WEIGHT: usize = 8;
/// Containers open at once in the count; deeper is refused, as ciborium refuses it.
const MAX_SCAN_DEPTH: usize = 256;

/// Counts the message's items from their headers alone (no value is built, text
/// and byte strings are skipped) and refuses one over [`MAX_ITEMS`].
fn within_item_budget(bytes: &[u8]) -> Result<(), CborError> {
    use ciborium_ll::{Decoder, Header};
    let syntax = |what: &str| CborError::Syntax(what.to_string());
    let mut decoder = Decoder::from(bytes);
    // Items still to come in each open container; `None`: until its break.
    let mut open: Vec<Option<u64>> = Vec::new();
    let mut cost = 0usize;
    loop {
        let header = decoder
            .pull()
            .map_err(|_| syntax("malformed or truncated CBOR"))?;
        cost += match header {
            Header::Map(Some(n)) if n > 0 => 1 + MAP_WEIGHT,
            Header::Map(None) => 1 + MAP_WEIGHT,
            _ => 1,
        };
        if cost > MAX_ITEMS {
            return Err(CborError::TooManyItems);
        }
        // Whether this header completes an item of the container around it.
        let complete = match header {
            Header::Bytes(Some(len)) | Header::Text(Some(len)) => {
                skip(&mut decoder, len).map_err(|_| syntax("a string runs past the message"))?;
                true
            }
            Header::Array(Some(0)) | Header::Map(Some(0)) => true,
            Header::Array(Some(n)) => open_container(&mut open, Some(n as u64))?,
            Header::Map(Some(n)) => open_container(&mut open, Some((n as u64).saturating_mul(2)))?,
            Header::Array(None) | Header::Map(None) | Header::Bytes(None) | Header::Text(None) => {
                open_container(&mut open, None)?
            }
            Header::Tag(_) => open_container(&mut open, Some(1))?,
            Header::Break => match open.pop() {
                Some(None) => true,
                _ => return Err(syntax("a break outside an indefinite-length item")),
            },
            Header::Positive(_) | Header::Negative(_) | Header::Float(_) | Header::Simple(_) => true,
        };
        if complete && close_completed(&mut open) {
            return Ok(());
        }
    }
}

/// Opens a container: never completes its parent's item by itself.
fn open_container(open: &mut Vec<Option<u64>>, items: Option<u64>) -> Result<bool, CborError> {
    if open.len() >= MAX_SCAN_DEPTH {
        return Err(CborError::Syntax("nested too deep".into()));
    }
    open.push(items);
    Ok(false)
}

/// One item of the innermost container is complete; closes every container
/// that thereby completes. True when the outermost item is complete.
fn close_completed(open: &mut Vec<Option<u64>>) -> bool {
    loop {
        match open.last_mut() {
            None => return true,
            Some(None) => return false,
            Some(Some(left)) => {
                *left -= 1;
                if *left > 0 {
                    return false;
                }
                open.pop();
            }
        }
    }
}

/// Skips `len` bytes of a string's body.
fn skip(decoder: &mut ciborium_ll::Decoder<&[u8]>, mut len: usize) -> Result<(), ()> {
    use ciborium_io::Read;
    let mut buf = [0u8; 256];
    while len > 0 {
        let n = len.min(buf.len());
        decoder.read_exact(&mut buf[..n]).map_err(|_| ())?;
        len -= n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_message_survives_the_round_trip() {
        let m = json!({
            "type": "telemetry", "device": "dev-1", "replay": true,
            "points": [{"id": 42, "key": "temp", "value": {"c": 21.5, "raw": [1, -2]}, "ts": 1763800000000u64}],
            "custom": null,
        });
        assert_eq!(decode(&encode(&m)).unwrap(), m);
        let b = json!({"type": "batch", "messages": [m.clone(), {"type": "lagged", "missed": 3}]});
        assert_eq!(decode(&encode(&b)).unwrap(), b);
    }

    #[test]
    fn type_comes_first() {
        let bytes = encode(&json!({"device": "d", "points": [], "type": "telemetry"}));
        assert_eq!(bytes[..3], [0xa3, 0x00, 0x00]);
    }

    #[test]
    fn telemetry_is_well_under_half_its_json() {
        let m = json!({"type": "telemetry", "device": "sensor-0001",
            "points": [{"id": 123456, "key": "temperature", "value": 21.5, "ts": 1763800000000u64}]});
        let (cbor, json) = (encode(&m).len(), m.to_string().len());
        assert!(cbor * 10 <= json * 5, "{cbor} bytes of CBOR for {json} of JSON");
    }

    #[test]
    fn names_are_numbers_and_text_is_accepted_too() {
        let bytes = encode(&json!({"type": "ping", "id": 7}));
        // A map of two: {0: 16, 1: 7}.
        assert_eq!(bytes, [0xa2, 0x00, 0x10, 0x01, 0x07]);
        let mut text = Vec::new();
        ciborium::ser::into_writer(
            &Cbor::Map(vec![(Cbor::Text("type".into()), Cbor::Text("ping".into()))]),
            &mut text,
        )
        .unwrap();
        assert_eq!(decode(&text).unwrap(), json!({"type": "ping"}));
    }

    #[test]
    fn what_json_cannot_hold_is_a_typed_error() {
        let enc = |v: Cbor| {
            let mut b = Vec::new();
            ciborium::ser::into_writer(&v, &mut b).unwrap();
            b
        };
        let at = |k: u64, v: Cbor| enc(Cbor::Map(vec![(Cbor::Integer(k.into()), v)]));
        assert!(decode(&[0xff]).unwrap_err().to_string().starts_with("not CBOR"));
        assert_eq!(decode(&enc(Cbor::Array(vec![]))), Err(CborError::NotAMap));
        assert_eq!(decode(&at(999, Cbor::Null)), Err(CborError::UnknownField(999)));
        assert_eq!(
            decode(&at(0, Cbor::Integer(999.into()))),
            Err(CborError::UnknownType(999))
        );
        assert!(matches!(
            decode(&at(5, Cbor::Bytes(vec![1]))),
            Err(CborError::Unsupported(_))
        ));
        assert!(matches!(
            decode(&at(5, Cbor::Float(f64::NAN))),
            Err(CborError::Unsupported(_))
        ));
    }

    #[test]
    fn items_are_counted_before_any_is_built() {
        // {5: [null; n]}, definite and indefinite.
        let nulls = |n: usize, definite: bool| {
            let mut b = vec![0xa1, 0x05];
            if definite {
                b.extend_from_slice(&[0x9a]);
                b.extend_from_slice(&(n as u32).to_be_bytes());
            } else {
                b.push(0x9f);
            }
            b.extend(vec![0xf6; n]);
            if !definite {
                b.push(0xff);
            }
            b
        };
        for definite in [true, false] {
            assert_eq!(decode(&nulls(1 << 20, definite)), Err(CborError::TooManyItems));
            assert!(decode(&nulls(1000, definite)).is_ok());
        }
        // A message with strings, tags and nested maps scans to its end.
        let m = json!({"type": "telemetry", "points": [{"key": "t", "value": {"a": [1, "x", null]}}]});
        assert_eq!(decode(&encode(&m)).unwrap(), m);
        // Truncated: the scan says so.
        let whole = encode(&m);
        assert!(matches!(
            decode(&whole[..whole.len() - 1]),
            Err(CborError::Syntax(_))
        ));
        // Deep nesting is refused before the stack grows.
        let mut deep = vec![0xa1, 0x05];
        deep.extend(vec![0x81; 100_000]);
        deep.push(0xf6);
        assert!(matches!(decode(&deep), Err(CborError::Syntax(_))));
    }
}
