//! The hub's wire format (`docs/hub-protocol.md`): JSON text frames with a `type`,
//! or the same messages as CBOR (`cbor.rs`). Incoming messages parse into one flat
//! [`Incoming`] (no buffering of a tagged enum on the telemetry hot path); outgoing
//! frames are built here, serialized once (per encoding), and shared by every
//! subscriber that gets them.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::store::{CommandRecord, CommandStatus, StoredPoint};

/// Machine-readable error codes of `{"type":"error"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Not JSON, or not an object with a `type`.
    InvalidMessage,
    /// A `type` this role does not send.
    UnknownType,
    /// A required field is missing or a value is out of range.
    InvalidParams,
    NotAuthenticated,
    /// The credential expired; the connection closes (1008).
    SessionExpired,
    Forbidden,
    MessageTooLarge,
    RateLimited,
    /// No such command (or it belongs to another device).
    UnknownCommand,
    /// The command is already final.
    CommandClosed,
    /// The device has as many open commands as it may (`hub.max_open_commands`).
    CommandQueueFull,
    /// The connection has as many subscriptions as it may (`hub.max_subscriptions`).
    TooManySubscriptions,
    /// The store failed; nothing was acknowledged.
    StoreError,
    /// A newer connection for the same device took over.
    Replaced,
    /// The device was silent for too many heartbeat intervals.
    HeartbeatTimeout,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidMessage => "INVALID_MESSAGE",
            Code::UnknownType => "UNKNOWN_TYPE",
            Code::InvalidParams => "INVALID_PARAMS",
            Code::NotAuthenticated => "NOT_AUTHENTICATED",
            Code::SessionExpired => "SESSION_EXPIRED",
            Code::Forbidden => "FORBIDDEN",
            Code::MessageTooLarge => "MESSAGE_TOO_LARGE",
            Code::RateLimited => "RATE_LIMITED",
            Code::UnknownCommand => "UNKNOWN_COMMAND",
            Code::CommandClosed => "COMMAND_CLOSED",
            Code::CommandQueueFull => "COMMAND_QUEUE_FULL",
            Code::TooManySubscriptions => "TOO_MANY_SUBSCRIPTIONS",
            Code::StoreError => "STORE_ERROR",
            Code::Replaced => "REPLACED",
            Code::HeartbeatTimeout => "HEARTBEAT_TIMEOUT",
        }
    }
}

/// An error to send back, with the request id it answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn params(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidParams, message)
    }
}

impl From<crate::store::Unstorable> for Failure {
    fn from(e: crate::store::Unstorable) -> Self {
        Failure::params(e.to_string())
    }
}

impl From<crate::auth::AuthError> for Failure {
    fn from(e: crate::auth::AuthError) -> Self {
        // "Who are you" (401) or "you may not" (403), as auth itself classes it.
        let code = match e {
            crate::auth::AuthError::Expired => Code::SessionExpired,
            _ if e.http_status() == 403 => Code::Forbidden,
            _ => Code::NotAuthenticated,
        };
        Failure::new(code, e.to_string())
    }
}

/// A point as a device sends it.
#[derive(Clone, Debug, Deserialize)]
pub struct InPoint {
    pub key: String,
    pub value: Value,
    /// ms since the epoch; the hub's clock when absent.
    pub ts: Option<i64>,
}

/// Any message a device or client sends; which fields matter depends on `type`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Incoming {
    #[serde(rename = "type")]
    pub kind: String,
    /// The request id a client chooses; echoed in the answer.
    pub id: Value,
    // telemetry
    pub seq: Option<u64>,
    pub points: Option<Vec<InPoint>>,
    // command_result, cancel
    pub command_id: Option<String>,
    pub status: Option<String>,
    pub result: Option<Value>,
    pub error: Option<String>,
    // subscribe, unsubscribe, presence
    pub devices: Option<Vec<String>>,
    pub keys: Option<Vec<String>>,
    pub since: Option<i64>,
    /// subscribe: replay the stored points after this id (a client resuming).
    pub after_id: Option<i64>,
    pub subscription: Option<u64>,
    // command, history
    pub device: Option<String>,
    pub name: Option<String>,
    pub params: Option<Value>,
    pub timeout: Option<f64>,
    pub priority: Option<i32>,
    pub ttl: Option<f64>,
    pub key: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: Option<u32>,
    pub bucket: Option<Value>,
    // auth
    pub token: Option<String>,
}

impl Incoming {
    pub fn parse(text: &str) -> Result<Incoming, (Value, Failure)> {
        match serde_json::from_str::<Incoming>(text) {
            Ok(m) => typed(m),
            Err(e) => {
                // Echo the id when the message is at least an object with one.
                let id = serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|v| v.get("id").cloned())
                    .unwrap_or(Value::Null);
                Err((id, not_a_message(e)))
            }
        }
    }

    /// A `gattway.cbor` message.
    pub fn parse_cbor(bytes: &[u8]) -> Result<Incoming, (Value, Failure)> {
        let v = super::cbor::decode(bytes).map_err(|e| (Value::Null, not_a_message(e)))?;
        let id = v.get("id").cloned().unwrap_or(Value::Null);
        match serde_json::from_value::<Incoming>(v) {
            Ok(m) => typed(m),
            Err(e) => Err((id, not_a_message(e))),
        }
    }

    pub fn required<'a, T>(&self, field: &'a Option<T>, name: &str) -> Result<&'a T, Failure> {
        field
            .as_ref()
            .ok_or_else(|| Failure::params(format!("{} needs \"{name}\"", self.kind)))
    }
}

fn typed(m: Incoming) -> Result<Incoming, (Value, Failure)> {
    if m.kind.is_empty() {
        return Err((m.id, Failure::new(Code::InvalidMessage, "missing \"type\"")));
    }
    Ok(m)
}

fn not_a_message(e: impl std::fmt::Display) -> Failure {
    Failure::new(Code::InvalidMessage, format!("not a hub message: {e}"))
}

/// A frame ready to send: serialized once as JSON, and as CBOR the first time a
/// `gattway.cbor` connection sends it; cloned cheaply.
#[derive(Clone, Debug)]
pub struct Frame(Arc<Encoded>);

#[derive(Debug)]
struct Encoded {
    /// UTF-8: every constructor builds it from a `String`.
    json: Bytes,
    cbor: OnceLock<Bytes>,
}

impl Frame {
    fn new(json: String) -> Frame {
        Frame::from_utf8(Bytes::from(json))
    }

    /// `json` must be UTF-8 JSON.
    fn from_utf8(json: Bytes) -> Frame {
        Frame(Arc::new(Encoded {
            json,
            cbor: OnceLock::new(),
        }))
    }

    /// What a queue holding the frame is charged: its JSON (the CBOR, when made,
    /// is about a third of it).
    pub fn weight(&self) -> usize {
        self.0.json.len()
    }

    /// The JSON text's bytes.
    pub fn json(&self) -> &Bytes {
        &self.0.json
    }

    /// The JSON text (checked again: for tests and logs; senders use [`Frame::json`]).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0.json).unwrap_or_default()
    }

    /// The frame in `gattway.cbor`, transcoded once for all who get it.
    pub fn cbor(&self) -> &Bytes {
        self.0.cbor.get_or_init(|| {
            // Every frame is JSON the hub wrote itself.
            let v: Value = serde_json::from_slice(&self.0.json).unwrap_or(Value::Null);
            Bytes::from(super::cbor::encode(&v))
        })
    }
}

pub fn frame(v: &Value) -> Frame {
    Frame::new(v.to_string())
}

pub fn error(id: &Value, f: &Failure) -> Frame {
    let mut v = json!({"type": "error", "code": f.code.as_str(), "message": f.message});
    if !id.is_null() {
        v["id"] = id.clone();
    }
    frame(&v)
}

/// `{"type": kind, "id": id, ...fields}`.
pub fn reply(kind: &str, id: &Value, mut fields: Value) -> Frame {
    fields["type"] = json!(kind);
    if !id.is_null() {
        fields["id"] = id.clone();
    }
    frame(&fields)
}

/// A point as subscribers and history readers see it.
#[derive(Serialize)]
pub struct OutPoint<'a> {
    pub id: i64,
    pub key: &'a str,
    pub value: &'a Value,
    pub ts: i64,
}

/// `{"type":"telemetry","device":…,"points":[…]}`; `replay` marks stored points
/// sent before live ones.
pub fn telemetry<'a>(device: &str, points: impl Iterator<Item = OutPoint<'a>>, replay: bool) -> Frame {
    #[derive(Serialize)]
    struct Out<'a, P: Serialize> {
        #[serde(rename = "type")]
        kind: &'static str,
        device: &'a str,
        points: P,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        replay: bool,
    }
    let points: Vec<OutPoint<'a>> = points.collect();
    let out = Out {
        kind: "telemetry",
        device,
        points,
        replay,
    };
    // Serializing plain structs of strings, numbers and JSON values cannot fail.
    Frame::new(serde_json::to_string(&out).unwrap_or_default())
}

/// Replayed points, one frame per run of the same device.
pub fn replay_frames(points: &[StoredPoint]) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut start = 0;
    for i in 1..=points.len() {
        if i == points.len() || points[i].device != points[start].device {
            let run = &points[start..i];
            frames.push(telemetry(
                &run[0].device,
                run.iter().map(|p| OutPoint {
                    id: p.id,
                    key: &p.key,
                    value: &p.value,
                    ts: p.ts,
                }),
                true,
            ));
            start = i;
        }
    }
    frames
}

pub fn presence(device: &str, online: bool, last_seen: i64) -> Frame {
    frame(&json!({"type": "presence", "device": device, "online": online, "last_seen": last_seen}))
}

pub fn command_status(c: &CommandRecord) -> Frame {
    let mut v = json!({
        "type": "command_status",
        "command_id": c.id,
        "device": c.device,
        "name": c.name,
        "status": c.status,
    });
    if let Some(r) = &c.result {
        v["result"] = r.clone();
    }
    if let Some(e) = &c.error {
        v["error"] = json!(e);
    }
    frame(&v)
}

/// The command as the device receives it.
pub fn command_to_device(c: &CommandRecord) -> Frame {
    frame(&json!({
        "type": "command",
        "command_id": c.id,
        "name": c.name,
        "params": c.params,
        "timeout": c.timeout_ms as f64 / 1000.0,
    }))
}

pub fn cancel_to_device(command_id: &str) -> Frame {
    frame(&json!({"type": "cancel", "command_id": command_id}))
}

/// Several frames as one: `{"type":"batch","messages":[…]}`. The frames are JSON
/// already, so they are joined, not parsed again.
pub fn batch(frames: &[Frame]) -> Frame {
    let len = frames.iter().map(|f| f.json().len() + 1).sum::<usize>() + 32;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(br#"{"type":"batch","messages":["#);
    for (i, f) in frames.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(f.json());
    }
    out.extend_from_slice(b"]}");
    // JSON text joined with ASCII: still UTF-8.
    Frame::from_utf8(Bytes::from(out))
}

pub fn lagged(missed: u64) -> Frame {
    frame(&json!({"type": "lagged", "missed": missed}))
}

/// Whether a status string a device sends is one it may report.
pub fn device_status(s: &str) -> Option<CommandStatus> {
    match CommandStatus::parse(s)? {
        c @ (CommandStatus::Delivered | CommandStatus::Succeeded | CommandStatus::Failed) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_the_id_of_a_bad_message_and_rejects_no_type() {
        let (id, f) = Incoming::parse(r#"{"id": 4, "points": 3, "type": "telemetry"}"#).unwrap_err();
        assert_eq!((id, f.code), (json!(4), Code::InvalidMessage));
        let (_, f) = Incoming::parse(r#"{"id": 1}"#).unwrap_err();
        assert_eq!(f.code, Code::InvalidMessage);
        let (_, f) = Incoming::parse("[]").unwrap_err();
        assert_eq!(f.code, Code::InvalidMessage);
        let m =
            Incoming::parse(r#"{"type":"telemetry","seq":7,"points":[{"key":"t","value":21.5}]}"#).unwrap();
        assert_eq!((m.seq, m.points.unwrap()[0].ts), (Some(7), None));
    }

    #[test]
    fn replay_frames_group_runs_of_one_device() {
        let p = |id, device: &str| StoredPoint {
            id,
            device: device.into(),
            key: "k".into(),
            value: json!(id),
            ts: id,
        };
        let frames = replay_frames(&[p(1, "a"), p(2, "a"), p(3, "b"), p(4, "a")]);
        let v: Vec<Value> = frames
            .iter()
            .map(|f| serde_json::from_str(f.as_str()).unwrap())
            .collect();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0]["points"].as_array().unwrap().len(), 2);
        assert_eq!(
            (v[1]["device"].clone(), v[1]["replay"].clone()),
            (json!("b"), json!(true))
        );
    }

    #[test]
    fn a_batch_is_valid_json_holding_the_frames_in_order() {
        let frames = [frame(&json!({"n": 1})), frame(&json!({"n": 2}))];
        let v: Value = serde_json::from_str(batch(&frames).as_str()).unwrap();
        assert_eq!(v, json!({"type": "batch", "messages": [{"n": 1}, {"n": 2}]}));
    }

    #[test]
    fn no_input_panics_the_parser() {
        let mut rng = fastrand::Rng::with_seed(6);
        let pieces = [
            "{",
            "}",
            "[",
            "]",
            "\"type\"",
            ":",
            ",",
            "\"telemetry\"",
            "\"points\"",
            "1e999",
            "-1",
            "null",
            "\"\\u0000\"",
            "{\"key\":1}",
            "\"seq\"",
            "18446744073709551616",
        ];
        for _ in 0..20_000 {
            let s: String = (0..rng.usize(0..12))
                .map(|_| pieces[rng.usize(..pieces.len())])
                .collect();
            let _ = Incoming::parse(&s);
        }
    }
}
