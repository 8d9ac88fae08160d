//! What devices and clients send (`docs/hub-protocol.md`), typed: a
//! [`DeviceMessage`] or a [`ClientMessage`], each variant with its own fields.
//!
//! A message is read in two steps. Its [`Envelope`] (the `type` and the `id` its
//! answer echoes) is read first, skipping everything else; the variant its `type`
//! names then reads its own fields. Serde's internally tagged enums would buffer
//! every message (a telemetry message's points included) into an intermediate
//! tree before choosing the variant; this reads the text twice instead, the first
//! time without building anything.
//!
//! What is not a message at all (not JSON or CBOR, not an object, no `type`) is
//! `INVALID_MESSAGE`; a `type` the role does not send, `UNKNOWN_TYPE`; a field
//! missing or of the wrong shape, `INVALID_PARAMS`.

use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::Deserialize;
use serde_json::Value;

use super::failure::{Code, Failure};
use crate::hub::accept::InPoint;
use crate::hub::CommandRequest;
use crate::store::CommandStatus;

/// A message read up to its `type`, holding the rest to be read by the variant.
pub struct Envelope {
    /// The request id a client chooses; echoed in the answer.
    pub id: Value,
    kind: String,
    body: Body,
}

enum Body {
    Json(String),
    Cbor(Value),
}

/// The part of a JSON message read first.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    id: Value,
}

impl Envelope {
    /// A JSON text message.
    pub fn parse(text: String) -> Result<Envelope, (Value, Failure)> {
        match serde_json::from_str::<Head>(&text) {
            Ok(Head { kind, id }) => typed(kind, id, Body::Json(text)),
            Err(e) => {
                // Echo the id when the message is at least an object with one.
                let id = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("id").cloned())
                    .unwrap_or(Value::Null);
                Err((id, not_a_message(e)))
            }
        }
    }

    /// A `gattway.cbor` message.
    pub fn parse_cbor(bytes: &[u8]) -> Result<Envelope, (Value, Failure)> {
        let v = super::cbor::decode(bytes).map_err(|e| (Value::Null, not_a_message(e)))?;
        let id = v.get("id").cloned().unwrap_or(Value::Null);
        let kind = match v.get("type") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err((id, not_a_message("\"type\" must be a string"))),
        };
        typed(kind, id, Body::Cbor(v))
    }

    /// The message's `type` as one of `T`'s, a unit enum named as on the wire.
    fn tag<T: DeserializeOwned>(&self) -> Option<T> {
        let kind: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            self.kind.as_str().into_deserializer();
        T::deserialize(kind).ok()
    }

    /// The variant's own fields.
    fn fields<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        let read = match &self.body {
            Body::Json(text) => serde_json::from_str::<T>(text),
            Body::Cbor(v) => T::deserialize(v),
        };
        read.map_err(|e| Failure::params(format!("{}: {e}", self.kind)))
    }

    fn unknown(&self, role_sends: &str) -> Failure {
        Failure::new(Code::UnknownType, format!("{role_sends}, not {:?}", self.kind))
    }
}

fn typed(kind: Option<String>, id: Value, body: Body) -> Result<Envelope, (Value, Failure)> {
    match kind {
        Some(kind) if !kind.is_empty() => Ok(Envelope { id, kind, body }),
        _ => Err((id, Failure::new(Code::InvalidMessage, "missing \"type\""))),
    }
}

fn not_a_message(e: impl std::fmt::Display) -> Failure {
    Failure::new(Code::InvalidMessage, format!("not a hub message: {e}"))
}

/// What a device sends.
#[derive(Debug)]
pub enum DeviceMessage {
    Telemetry(Telemetry),
    CommandResult(CommandResult),
    Heartbeat,
    Ping,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum DeviceType {
    Telemetry,
    CommandResult,
    Heartbeat,
    Ping,
}

#[derive(Debug, Deserialize)]
pub struct Telemetry {
    /// The device's sequence number, when it numbers its messages.
    #[serde(default)]
    pub seq: Option<u64>,
    pub points: Vec<InPoint>,
}

#[derive(Debug, Deserialize)]
pub struct CommandResult {
    pub command_id: String,
    pub status: String,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<String>,
}

impl CommandResult {
    /// The status, if it is one a device may report.
    pub fn reported(&self) -> Result<CommandStatus, Failure> {
        match CommandStatus::parse(&self.status) {
            Some(c @ (CommandStatus::Delivered | CommandStatus::Succeeded | CommandStatus::Failed)) => Ok(c),
            _ => Err(Failure::params(format!(
                "status {:?}: a device reports delivered, succeeded or failed",
                self.status
            ))),
        }
    }
}

impl DeviceMessage {
    pub fn read(envelope: &Envelope) -> Result<DeviceMessage, Failure> {
        let unknown = || envelope.unknown("a device sends telemetry, command_result or heartbeat");
        Ok(match envelope.tag().ok_or_else(unknown)? {
            DeviceType::Telemetry => DeviceMessage::Telemetry(envelope.fields()?),
            DeviceType::CommandResult => DeviceMessage::CommandResult(envelope.fields()?),
            DeviceType::Heartbeat => DeviceMessage::Heartbeat,
            DeviceType::Ping => DeviceMessage::Ping,
        })
    }
}

/// What a client sends.
#[derive(Debug)]
pub enum ClientMessage {
    Subscribe(Subscribe),
    Unsubscribe(Unsubscribe),
    Command(Command),
    Cancel(Cancel),
    History(History),
    Presence(Presence),
    Ping,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ClientType {
    Subscribe,
    Unsubscribe,
    Command,
    Cancel,
    History,
    Presence,
    Ping,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Subscribe {
    /// Device ids; all (within the credential's list) when absent or `["*"]`.
    pub devices: Option<Vec<String>>,
    pub keys: Option<Vec<String>>,
    /// Replay the stored points from this time (ms) first.
    pub since: Option<i64>,
    /// Replay the stored points after this id (a client resuming).
    pub after_id: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Unsubscribe {
    /// One subscription; every one of the connection's when absent.
    pub subscription: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct Command {
    pub device: String,
    pub name: String,
    #[serde(default)]
    pub params: Option<Value>,
    /// Seconds from `sent` to a final result.
    #[serde(default)]
    pub timeout: Option<f64>,
    #[serde(default)]
    pub priority: Option<i32>,
    /// Seconds it may wait `queued`.
    #[serde(default)]
    pub ttl: Option<f64>,
}

impl From<Command> for CommandRequest {
    fn from(m: Command) -> Self {
        CommandRequest {
            device: m.device,
            name: m.name,
            params: m.params,
            timeout: m.timeout,
            priority: m.priority,
            ttl: m.ttl,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Cancel {
    pub command_id: String,
}

#[derive(Debug, Deserialize)]
pub struct History {
    pub device: String,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub from: Option<i64>,
    #[serde(default)]
    pub to: Option<i64>,
    #[serde(default)]
    pub limit: Option<u32>,
    /// Milliseconds, or a duration like "1m".
    #[serde(default)]
    pub bucket: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Presence {
    /// Every known device when absent.
    pub devices: Option<Vec<String>>,
}

impl ClientMessage {
    pub fn read(envelope: &Envelope) -> Result<ClientMessage, Failure> {
        let unknown = || {
            envelope
                .unknown("a client sends subscribe, unsubscribe, command, cancel, history, presence or ping")
        };
        Ok(match envelope.tag().ok_or_else(unknown)? {
            ClientType::Subscribe => ClientMessage::Subscribe(envelope.fields()?),
            ClientType::Unsubscribe => ClientMessage::Unsubscribe(envelope.fields()?),
            ClientType::Command => ClientMessage::Command(envelope.fields()?),
            ClientType::Cancel => ClientMessage::Cancel(envelope.fields()?),
            ClientType::History => ClientMessage::History(envelope.fields()?),
            ClientType::Presence => ClientMessage::Presence(envelope.fields()?),
            ClientType::Ping => ClientMessage::Ping,
        })
    }
}

/// The first message of a connection that brought no credential to the upgrade.
#[derive(Debug, Deserialize)]
pub struct Auth {
    pub token: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum AuthType {
    Auth,
}

impl Auth {
    /// `None` when the message is not an `auth` with a token.
    pub fn read(envelope: &Envelope) -> Option<Auth> {
        let AuthType::Auth = envelope.tag()?;
        envelope.fields().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn device(text: &str) -> Result<DeviceMessage, Code> {
        let envelope = Envelope::parse(text.to_string()).map_err(|(_, f)| f.code)?;
        DeviceMessage::read(&envelope).map_err(|f| f.code)
    }

    #[test]
    fn not_a_message_unknown_type_and_bad_fields_are_three_errors() {
        let (id, f) = Envelope::parse(r#"{"id": 4, "type": 5}"#.into()).err().unwrap();
        assert_eq!((id, f.code), (json!(4), Code::InvalidMessage));
        for not_one in [r#"{"id": 1}"#, "[]", "{", r#"{"type": ""}"#] {
            assert_eq!(device(not_one).unwrap_err(), Code::InvalidMessage, "{not_one}");
        }
        assert_eq!(device(r#"{"type": "subscribe"}"#).unwrap_err(), Code::UnknownType);
        for bad in [
            r#"{"type": "telemetry", "seq": 1}"#,
            r#"{"type": "telemetry", "points": 3}"#,
            r#"{"type": "command_result", "status": "failed"}"#,
        ] {
            assert_eq!(device(bad).unwrap_err(), Code::InvalidParams, "{bad}");
        }
        let Ok(DeviceMessage::Telemetry(t)) =
            device(r#"{"points":[{"key":"t","value":21.5}],"type":"telemetry","seq":7}"#)
        else {
            panic!("telemetry");
        };
        assert_eq!((t.seq, t.points[0].ts), (Some(7), None));
    }

    #[test]
    fn cbor_messages_read_as_json_ones_do() {
        let v = json!({"type": "cancel", "id": 9, "command_id": "c1"});
        let envelope = Envelope::parse_cbor(&crate::hub_api::cbor::encode(&v)).unwrap();
        assert_eq!(envelope.id, json!(9));
        let Ok(ClientMessage::Cancel(c)) = ClientMessage::read(&envelope) else {
            panic!("cancel");
        };
        assert_eq!(c.command_id, "c1");
        let auth = Envelope::parse(r#"{"type":"auth","token":"t"}"#.into()).unwrap();
        assert_eq!(Auth::read(&auth).map(|a| a.token), Some("t".into()));
    }
}
