//! What the hub sends (`docs/hub-protocol.md`): JSON text frames with a `type`,
//! or the same messages as CBOR (`cbor.rs`). The core's events become frames here,
//! each serialized once (per encoding) and shared by every subscriber that gets
//! it ([`of_event`]).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};

use super::failure::Failure;
use crate::hub::commands::Delivery;
use crate::hub::{Event, Happened, StatusReport};
use crate::store::{CommandRecord, StoredPoint};

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

/// The frame of an event, encoded the first time any connection sends it and
/// shared from then on.
pub fn of_event(event: &Event) -> Frame {
    event.encoded(|happened| match happened {
        Happened::Telemetry {
            device,
            points,
            replay,
        } => telemetry(device, points, *replay),
        Happened::Presence {
            device,
            online,
            last_seen,
        } => presence(device, *online, *last_seen),
        Happened::CommandStatus(record) => command_status(record),
    })
}

/// What a device's queue holds, as the device receives it.
pub fn of_delivery(delivery: &Delivery) -> Frame {
    match delivery {
        Delivery::Command(c) => command_to_device(c),
        Delivery::Cancel(id) => cancel_to_device(id),
    }
}

/// `{"type":"telemetry","device":…,"points":[…]}`; `replay` marks stored points
/// sent before live ones.
fn telemetry<P: Serialize>(device: &str, points: &[P], replay: bool) -> Frame {
    #[derive(Serialize)]
    struct Out<'a, P: Serialize> {
        #[serde(rename = "type")]
        kind: &'static str,
        device: &'a str,
        points: &'a [P],
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        replay: bool,
    }
    let out = Out {
        kind: "telemetry",
        device,
        points,
        replay,
    };
    // Serializing plain structs of strings, numbers and JSON values cannot fail.
    Frame::new(serde_json::to_string(&out).unwrap_or_default())
}

/// A stored point as subscribers see it, borrowed: a replay serializes pages
/// of them straight from the store's rows.
#[derive(Serialize)]
struct ReplayedPoint<'a> {
    id: i64,
    key: &'a str,
    value: &'a Value,
    ts: i64,
}

/// Replayed points, one frame per run of the same device.
pub fn replay_frames(points: &[StoredPoint]) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut start = 0;
    for i in 1..=points.len() {
        if i == points.len() || points[i].device != points[start].device {
            let run: Vec<ReplayedPoint> = points[start..i]
                .iter()
                .map(|p| ReplayedPoint {
                    id: p.id,
                    key: &p.key,
                    value: &p.value,
                    ts: p.ts,
                })
                .collect();
            frames.push(telemetry(&points[start].device, &run, true));
            start = i;
        }
    }
    frames
}

fn presence(device: &str, online: bool, last_seen: i64) -> Frame {
    frame(&json!({"type": "presence", "device": device, "online": online, "last_seen": last_seen}))
}

fn command_status(c: &CommandRecord) -> Frame {
    reply("command_status", &Value::Null, json!(StatusReport::from(c)))
}

/// The command as the device receives it.
fn command_to_device(c: &CommandRecord) -> Frame {
    frame(&json!({
        "type": "command",
        "command_id": c.id,
        "name": c.name,
        "params": c.params,
        "timeout": c.timeout_ms as f64 / 1000.0,
    }))
}

fn cancel_to_device(command_id: &str) -> Frame {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
