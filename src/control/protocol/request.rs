//! The control protocol's requests: a [`Message`] per `type`, each with its own
//! typed fields, deserialised by tag as they arrive; [`parse`] reads a text frame
//! into a [`Request`] (the `id` to echo, and the message) or says why it cannot.
//!
//! A message whose `type` is known is a [`Message`] even when its fields do not
//! read: each variant holds its [`Fields`], or the INVALID_PARAMS that names the
//! field. So authentication and scope are checked before any field is, and a BATCH
//! refuses a START_SCAN before reading it, as they always were.

use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;

use super::fields::{self, Json, Refusal};
use super::{Code, Failure};
use crate::auth::Scope;
use crate::ble::{DeviceId, ScanFilter, Uuid};

/// One parsed request.
#[derive(Debug)]
pub struct Request {
    /// Echoed in the reply; any JSON value the client chose (absent: null).
    pub id: Value,
    pub message: Message,
}

/// A request, by its `type`. Declared in the order an unknown type's error lists them.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Message {
    Authenticate(Fields<Authenticate>),
    StartScan(Fields<StartScan>),
    StopScan,
    Connect(Fields<Connect>),
    Disconnect(Fields<OnDevice>),
    GetServices(Fields<OnDevice>),
    CharacteristicRead(Fields<OnCharacteristic>),
    CharacteristicWrite(Fields<CharacteristicWrite>),
    DescriptorRead(Fields<OnDescriptor>),
    DescriptorWrite(Fields<DescriptorWrite>),
    Subscribe(Fields<OnCharacteristic>),
    Unsubscribe(Fields<OnCharacteristic>),
    Batch(Fields<Batch>),
    Ping,
    GetDevices,
}

impl Message {
    /// The scope the message needs; none for the two a connection may send before
    /// it authenticates.
    pub fn scope(&self) -> Option<Scope> {
        match self {
            Message::Authenticate(_) | Message::Ping => None,
            Message::CharacteristicWrite(_) | Message::DescriptorWrite(_) => Some(Scope::BleWrite),
            Message::StartScan(_)
            | Message::StopScan
            | Message::Connect(_)
            | Message::Disconnect(_)
            | Message::GetServices(_)
            | Message::CharacteristicRead(_)
            | Message::DescriptorRead(_)
            | Message::Subscribe(_)
            | Message::Unsubscribe(_)
            | Message::Batch(_)
            | Message::GetDevices => Some(Scope::BleRead),
        }
    }
}

/// A message's fields, or the INVALID_PARAMS that names the field that does not
/// read; looked at only once the request is authorized.
#[derive(Debug)]
pub struct Fields<T>(Result<T, Failure>);

impl<T> Fields<T> {
    pub fn get(self) -> Result<T, Failure> {
        self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Fields<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Fields(
            T::deserialize(d).map_err(|e| Failure::params(e.to_string())),
        ))
    }
}

/// AUTHENTICATE: one credential (a session token wins over the others).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authenticate {
    #[serde(default, deserialize_with = "fields::api_key")]
    pub api_key: Option<String>,
    /// A JWT.
    #[serde(default, deserialize_with = "fields::token")]
    pub token: Option<String>,
    /// One an earlier AUTHENTICATED handed out.
    #[serde(default, deserialize_with = "fields::session_token")]
    pub session_token: Option<String>,
}

/// START_SCAN.
#[derive(Debug, Deserialize)]
pub struct StartScan {
    /// How long to scan; absent, 5 s.
    #[serde(default, deserialize_with = "fields::duration")]
    pub duration: Option<Duration>,
    #[serde(default, deserialize_with = "fields::filters")]
    pub filters: ScanFilter,
}

/// CONNECT.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connect {
    /// An id, or a name prefix.
    #[serde(deserialize_with = "fields::device_id")]
    pub device_id: DeviceId,
    /// Absent, the gateway's connect timeout.
    #[serde(default, deserialize_with = "fields::timeout")]
    pub timeout: Option<Duration>,
}

/// DISCONNECT and GET_SERVICES: a device.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnDevice {
    #[serde(deserialize_with = "fields::device_id")]
    pub device_id: DeviceId,
}

/// CHARACTERISTIC_READ, SUBSCRIBE and UNSUBSCRIBE: a characteristic of a device.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnCharacteristic {
    #[serde(deserialize_with = "fields::device_id")]
    pub device_id: DeviceId,
    #[serde(deserialize_with = "fields::service_uuid")]
    pub service_uuid: Uuid,
    #[serde(deserialize_with = "fields::characteristic_uuid")]
    pub characteristic_uuid: Uuid,
}

/// CHARACTERISTIC_WRITE.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CharacteristicWrite {
    #[serde(flatten)]
    pub characteristic: OnCharacteristic,
    #[serde(deserialize_with = "fields::value")]
    pub value: Vec<u8>,
    /// Absent, true.
    #[serde(default, deserialize_with = "fields::with_response")]
    pub with_response: Option<bool>,
}

/// DESCRIPTOR_READ: a descriptor of a device's characteristic.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnDescriptor {
    #[serde(flatten)]
    pub characteristic: OnCharacteristic,
    #[serde(deserialize_with = "fields::descriptor_uuid")]
    pub descriptor_uuid: Uuid,
}

/// DESCRIPTOR_WRITE.
#[derive(Debug, Deserialize)]
pub struct DescriptorWrite {
    #[serde(flatten)]
    pub descriptor: OnDescriptor,
    #[serde(deserialize_with = "fields::value")]
    pub value: Vec<u8>,
}

/// BATCH: requests run in order, each answered in its place.
#[derive(Debug, Deserialize)]
pub struct Batch {
    pub requests: Requests,
}

/// The most requests one BATCH holds.
pub const MAX_BATCH: usize = 100;

/// A BATCH's requests, each parsed on its own: one that does not parse is
/// answered with its error in its place, and the rest still run.
#[derive(Debug)]
pub struct Requests(pub Vec<Result<Request, (Value, Failure)>>);

impl<'de> Deserialize<'de> for Requests {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Serde asks a missing field's type for a None, so a BATCH without
        // requests is told the same as one whose requests are null.
        let requests = match Option::<Value>::deserialize(d)? {
            Some(Value::Array(requests)) => requests,
            _ => return Err(de::Error::custom("BATCH needs requests: an array of messages")),
        };
        if requests.len() > MAX_BATCH {
            return Err(de::Error::custom(format!(
                "a BATCH holds at most {MAX_BATCH} requests"
            )));
        }
        Ok(Requests(requests.into_iter().map(parse_value).collect()))
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::UnknownType(m) => Failure::new(Code::InvalidMessageType, m),
            Refusal::Field(m) => Failure::params(m),
        }
    }
}

/// Parses one text frame. Failures carry the id when one could be read.
pub fn parse(text: &str) -> Result<Request, (Value, Failure)> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        (
            Value::Null,
            Failure::new(Code::InvalidMessage, format!("not JSON: {e}")),
        )
    })?;
    parse_value(value)
}

pub fn parse_value(value: Value) -> Result<Request, (Value, Failure)> {
    let Value::Object(mut body) = value else {
        return Err((
            Value::Null,
            Failure::new(Code::InvalidMessage, "a message is a JSON object"),
        ));
    };
    let id = body.remove("id").unwrap_or(Value::Null);
    match body.get("type") {
        Some(Value::String(_)) => {}
        Some(_) => {
            return Err((
                id,
                Failure::new(Code::InvalidMessage, "\"type\" must be a string"),
            ))
        }
        None => return Err((id, Failure::new(Code::InvalidMessage, "missing \"type\""))),
    }
    match Message::deserialize(Json(Value::Object(body))) {
        Ok(message) => Ok(Request { id, message }),
        Err(refusal) => Err((id, refusal.into())),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The request's fields, or the failure they were parsed into.
    fn fields_of(text: &str) -> Result<Message, Failure> {
        parse(text).map(|r| r.message).map_err(|(_, f)| f)
    }

    fn params_error<T: std::fmt::Debug>(fields: Fields<T>) -> String {
        let f = fields.get().expect_err("the fields do not read");
        assert_eq!(f.code, Code::InvalidParams);
        f.message
    }

    #[test]
    fn parses_requests_and_names_what_is_wrong() {
        let r = parse(r#"{"type":"PING","id":7}"#).unwrap();
        assert!(matches!(r.message, Message::Ping));
        assert_eq!(r.id, json!(7));
        assert_eq!(parse("{").unwrap_err().1.code, Code::InvalidMessage);
        assert_eq!(parse("[1]").unwrap_err().1.code, Code::InvalidMessage);
        let (id, f) = parse(r#"{"type":"FLY","id":"a"}"#).unwrap_err();
        assert_eq!((id, f.code), (json!("a"), Code::InvalidMessageType));
        let Ok(Message::CharacteristicWrite(w)) = fields_of(
            r#"{"type":"CHARACTERISTIC_WRITE","deviceId":"X","serviceUuid":"180d","characteristicUuid":"zz","value":"AQ=="}"#,
        ) else {
            panic!("a CHARACTERISTIC_WRITE");
        };
        assert!(params_error(w).starts_with("characteristicUuid: "));
        let Ok(Message::CharacteristicWrite(w)) = fields_of(
            r#"{"type":"CHARACTERISTIC_WRITE","deviceId":" X ","serviceUuid":"180d","characteristicUuid":"2a39","value":"AQ=="}"#,
        ) else {
            panic!("a CHARACTERISTIC_WRITE");
        };
        let w = w.get().unwrap();
        assert_eq!(
            (w.characteristic.device_id.as_str(), w.value, w.with_response),
            ("X", vec![1], None)
        );
        let Ok(Message::CharacteristicWrite(w)) = fields_of(
            r#"{"type":"CHARACTERISTIC_WRITE","deviceId":"X","serviceUuid":"180d","characteristicUuid":"2a39","value":"AQ"}"#,
        ) else {
            panic!("a CHARACTERISTIC_WRITE");
        };
        assert!(
            params_error(w).starts_with("value is not valid base64"),
            "unpadded base64 is refused"
        );
        let Ok(Message::StartScan(s)) = fields_of(r#"{"type":"START_SCAN","duration":-1}"#) else {
            panic!("a START_SCAN");
        };
        assert_eq!(params_error(s), "duration must be an integer from 0 to 60000");
    }

    #[test]
    fn a_field_error_reads_as_the_protocol_words_it() {
        let Ok(Message::Connect(c)) = fields_of(r#"{"type":"CONNECT"}"#) else {
            panic!("a CONNECT");
        };
        assert_eq!(params_error(c), "missing deviceId");
        let Ok(Message::GetServices(g)) = fields_of(r#"{"type":"GET_SERVICES","deviceId":" "}"#) else {
            panic!("a GET_SERVICES");
        };
        assert_eq!(params_error(g), "deviceId must be a non-empty string");
        let Ok(Message::Batch(b)) = fields_of(r#"{"type":"BATCH"}"#) else {
            panic!("a BATCH");
        };
        assert_eq!(params_error(b), "BATCH needs requests: an array of messages");
        let Ok(Message::StartScan(s)) = fields_of(r#"{"type":"START_SCAN","filters":{"minRssi":-200}}"#)
        else {
            panic!("a START_SCAN");
        };
        assert_eq!(
            params_error(s),
            "filters.minRssi must be an integer dBm from -127 to 20"
        );
        let Ok(Message::Authenticate(a)) = fields_of(r#"{"type":"AUTHENTICATE","apiKey":5}"#) else {
            panic!("an AUTHENTICATE");
        };
        assert_eq!(params_error(a), "apiKey must be a non-empty string");
        assert_eq!(
            fields_of(r#"{"type":"FLY"}"#).unwrap_err().message,
            "unknown message type \"FLY\"; known: AUTHENTICATE, START_SCAN, STOP_SCAN, CONNECT, \
             DISCONNECT, GET_SERVICES, CHARACTERISTIC_READ, CHARACTERISTIC_WRITE, DESCRIPTOR_READ, \
             DESCRIPTOR_WRITE, SUBSCRIBE, UNSUBSCRIBE, BATCH, PING, GET_DEVICES"
        );
        assert_eq!(
            fields_of(r#"{"type":7}"#).unwrap_err().message,
            "\"type\" must be a string"
        );
        // Fields a message does not have are passed over, as they always were.
        assert!(matches!(
            fields_of(r#"{"type":"STOP_SCAN","pad":[1]}"#),
            Ok(Message::StopScan)
        ));
    }

    #[test]
    fn a_batch_parses_each_request_on_its_own() {
        let Ok(Message::Batch(b)) = fields_of(
            r#"{"type":"BATCH","requests":[{"type":"PING","id":"a"},{"type":"FLY","id":"b"},{"type":"CONNECT","id":"c"}]}"#,
        ) else {
            panic!("a BATCH");
        };
        let requests = b.get().unwrap().requests.0;
        assert!(matches!(
            &requests[0],
            Ok(Request {
                message: Message::Ping,
                ..
            })
        ));
        let Err((id, f)) = &requests[1] else {
            panic!("an unknown type");
        };
        assert_eq!((id, f.code), (&json!("b"), Code::InvalidMessageType));
        assert!(matches!(
            &requests[2],
            Ok(Request {
                message: Message::Connect(_),
                ..
            })
        ));
    }

    #[test]
    fn batches_nested_as_deep_as_json_goes_parse_on_a_small_stack() {
        // serde_json reads at most 128 levels: 63 BATCHes, one inside the other.
        let mut text = r#"{"type":"PING"}"#.to_string();
        for _ in 0..63 {
            text = format!(r#"{{"type":"BATCH","requests":[{text}]}}"#);
        }
        let parsed = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || parse(&text).is_ok())
            .unwrap()
            .join()
            .unwrap();
        assert!(parsed);
    }
}
