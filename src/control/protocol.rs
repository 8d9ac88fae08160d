//! The control WebSocket's wire format (the original MCP BLE server's message set):
//! JSON objects with a `type` and a client-chosen `id` that the one reply echoes;
//! events (DEVICE_FOUND, NOTIFICATION, CONNECTED/DISCONNECTED on drops) carry no id.

use serde_json::{json, Map, Value};

use crate::auth::AuthError;
use crate::ble::{DeviceId, Uuid};
use crate::error::ErrorKind;
use crate::gateway::GatewayError;

/// Error codes of `{"type":"ERROR","id":..,"code":..,"message":..}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    InvalidApiKey,
    RateLimitExceeded,
    SessionExpired,
    InvalidToken,
    NotAuthenticated,
    InvalidMessage,
    InvalidMessageType,
    MessageTooLarge,
    QueueFull,
    ConnectionLimitReached,
    /// Every radio's connection slots are taken.
    NoFreeSlot,
    ScanAlreadyActive,
    DeviceNotFound,
    /// The device has no such service, characteristic or descriptor.
    AttributeNotFound,
    AlreadyConnected,
    NotConnected,
    InvalidParams,
    OperationFailed,
    BleNotAvailable,
    Busy,
    Forbidden,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidApiKey => "INVALID_API_KEY",
            Code::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            Code::SessionExpired => "SESSION_EXPIRED",
            Code::InvalidToken => "INVALID_TOKEN",
            Code::NotAuthenticated => "NOT_AUTHENTICATED",
            Code::InvalidMessage => "INVALID_MESSAGE",
            Code::InvalidMessageType => "INVALID_MESSAGE_TYPE",
            Code::MessageTooLarge => "MESSAGE_TOO_LARGE",
            Code::QueueFull => "QUEUE_FULL",
            Code::ConnectionLimitReached => "CONNECTION_LIMIT_REACHED",
            Code::NoFreeSlot => "NO_FREE_SLOT",
            Code::ScanAlreadyActive => "SCAN_ALREADY_ACTIVE",
            Code::DeviceNotFound => "DEVICE_NOT_FOUND",
            Code::AttributeNotFound => "ATTRIBUTE_NOT_FOUND",
            Code::AlreadyConnected => "ALREADY_CONNECTED",
            Code::NotConnected => "NOT_CONNECTED",
            Code::InvalidParams => "INVALID_PARAMS",
            Code::OperationFailed => "OPERATION_FAILED",
            Code::BleNotAvailable => "BLE_NOT_AVAILABLE",
            Code::Busy => "BUSY",
            Code::Forbidden => "FORBIDDEN",
        }
    }
}

/// A failed request: the code and a message a developer can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// The wire code of each kind of failure. Every kind named, no catch-all: a new
/// kind does not compile until it is given its code here.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::DeviceNotFound | ErrorKind::Ambiguous => Code::DeviceNotFound,
        ErrorKind::ServiceNotFound | ErrorKind::CharacteristicNotFound | ErrorKind::DescriptorNotFound => {
            Code::AttributeNotFound
        }
        ErrorKind::NotConnected => Code::NotConnected,
        ErrorKind::RadioUnavailable => Code::BleNotAvailable,
        ErrorKind::InvalidInput
        | ErrorKind::NotPermitted
        | ErrorKind::ValueTooLong
        | ErrorKind::UnknownCommand => Code::InvalidParams,
        ErrorKind::Busy => Code::Busy,
        ErrorKind::ConnectionLimit => Code::ConnectionLimitReached,
        ErrorKind::NoFreeSlot => Code::NoFreeSlot,
        ErrorKind::ConnectFailed
        | ErrorKind::LinkLost
        | ErrorKind::Timeout
        | ErrorKind::Radio
        | ErrorKind::ShuttingDown
        | ErrorKind::InvalidLease
        | ErrorKind::CommandClosed
        | ErrorKind::Store => Code::OperationFailed,
        ErrorKind::NotAuthenticated => Code::NotAuthenticated,
        ErrorKind::InvalidApiKey => Code::InvalidApiKey,
        ErrorKind::InvalidToken => Code::InvalidToken,
        ErrorKind::Expired => Code::SessionExpired,
        ErrorKind::Forbidden => Code::Forbidden,
        ErrorKind::RateLimited => Code::RateLimitExceeded,
        ErrorKind::TooLarge => Code::MessageTooLarge,
        ErrorKind::QueueFull => Code::QueueFull,
    }
}

impl From<GatewayError> for Failure {
    fn from(e: GatewayError) -> Self {
        Failure::new(code(e.kind()), e.to_string())
    }
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Self {
        Failure::new(code(e.kind()), e.to_string())
    }
}

/// One parsed request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Echoed in the reply; any JSON value the client chose (absent: null).
    pub id: Value,
    pub kind: String,
    pub body: Map<String, Value>,
}

/// The request types this server knows.
pub const TYPES: [&str; 15] = [
    "AUTHENTICATE",
    "START_SCAN",
    "STOP_SCAN",
    "CONNECT",
    "DISCONNECT",
    "GET_SERVICES",
    "CHARACTERISTIC_READ",
    "CHARACTERISTIC_WRITE",
    "DESCRIPTOR_READ",
    "DESCRIPTOR_WRITE",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "BATCH",
    "PING",
    "GET_DEVICES",
];

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
    let kind = match body.remove("type") {
        Some(Value::String(t)) => t,
        Some(_) => {
            return Err((
                id,
                Failure::new(Code::InvalidMessage, "\"type\" must be a string"),
            ))
        }
        None => return Err((id, Failure::new(Code::InvalidMessage, "missing \"type\""))),
    };
    if !TYPES.contains(&kind.as_str()) {
        return Err((
            id,
            Failure::new(
                Code::InvalidMessageType,
                format!("unknown message type {kind:?}; known: {}", TYPES.join(", ")),
            ),
        ));
    }
    Ok(Request { id, kind, body })
}

/// Typed access to a request's fields, each failure an INVALID_PARAMS naming the field.
impl Request {
    pub fn str_field(&self, name: &str) -> Result<&str, Failure> {
        match self.body.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
            Some(_) => Err(Failure::params(format!("{name} must be a non-empty string"))),
            None => Err(Failure::params(format!("missing {name}"))),
        }
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, Failure> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.str_field(name).map(Some),
        }
    }

    pub fn device(&self) -> Result<DeviceId, Failure> {
        self.str_field("deviceId").map(DeviceId::new)
    }

    pub fn uuid(&self, name: &str) -> Result<Uuid, Failure> {
        self.str_field(name)?
            .parse()
            .map_err(|e| Failure::params(format!("{name}: {e}")))
    }

    /// A non-negative integer field, bounded.
    pub fn opt_u64(&self, name: &str, max: u64) -> Result<Option<u64>, Failure> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| *n <= max)
                .map(Some)
                .ok_or_else(|| Failure::params(format!("{name} must be an integer from 0 to {max}"))),
        }
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, Failure> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Failure::params(format!("{name} must be true or false"))),
        }
    }

    /// A base64 `value` (see [`from_b64`]).
    pub fn base64(&self, name: &str) -> Result<Vec<u8>, Failure> {
        let s = match self.body.get(name) {
            Some(Value::String(s)) => s,
            Some(_) => return Err(Failure::params(format!("{name} must be a base64 string"))),
            None => return Err(Failure::params(format!("missing {name}"))),
        };
        from_b64(s).map_err(|e| Failure::params(format!("{name} is not valid base64: {e}")))
    }
}

/// Decodes base64 as clients write it: the standard alphabet, padded, with any
/// bits past the last byte ignored (`"AB=="` is `[0x00]`), as browsers' `atob`,
/// Python and OpenAPI's pattern for the field take it.
pub fn from_b64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
    use base64::{alphabet, Engine};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(s)
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A reply: `{"type": kind, "id": id, ...fields}`.
pub fn reply(kind: &str, id: &Value, fields: Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!(kind));
    out.insert("id".into(), id.clone());
    if let Value::Object(f) = fields {
        out.extend(f);
    }
    Value::Object(out)
}

/// An event: `{"type": kind, ...fields}` with no id.
pub fn event(kind: &str, fields: Value) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!(kind));
    if let Value::Object(f) = fields {
        out.extend(f);
    }
    Value::Object(out)
}

pub fn error(id: &Value, f: &Failure) -> Value {
    json!({"type": "ERROR", "id": id, "code": f.code.as_str(), "message": f.message})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_ignores_bits_past_the_last_byte_but_needs_its_padding() {
        assert_eq!(from_b64("AQ==").unwrap(), [1]);
        // Not canonical (the last symbol carries bits no byte uses): still [0x00],
        // as atob and Python read it. A REST write with this was refused (schemathesis).
        assert_eq!(from_b64("AB==").unwrap(), [0]);
        assert_eq!(from_b64("u9DLb9boCNC/oPgRVby1+qk06F==").unwrap().len(), 19);
        for bad in ["AQ", "A===", "A*==", "AQ==AQ=="] {
            assert!(from_b64(bad).is_err(), "{bad}");
        }
        assert_eq!(from_b64(&b64(&[1, 2, 3, 250])).unwrap(), [1, 2, 3, 250]);
    }

    #[test]
    fn parses_requests_and_names_what_is_wrong() {
        let r = parse(r#"{"type":"PING","id":7}"#).unwrap();
        assert_eq!((r.kind.as_str(), r.id.clone()), ("PING", json!(7)));
        assert_eq!(parse("{").unwrap_err().1.code, Code::InvalidMessage);
        assert_eq!(parse("[1]").unwrap_err().1.code, Code::InvalidMessage);
        let (id, f) = parse(r#"{"type":"FLY","id":"a"}"#).unwrap_err();
        assert_eq!((id, f.code), (json!("a"), Code::InvalidMessageType));
        let r = parse(r#"{"type":"CHARACTERISTIC_WRITE","deviceId":"X","serviceUuid":"180d","characteristicUuid":"zz","value":"AQ=="}"#).unwrap();
        assert_eq!(
            r.uuid("characteristicUuid").unwrap_err().code,
            Code::InvalidParams
        );
        assert_eq!(r.base64("value").unwrap(), vec![1]);
        let bad = parse(r#"{"type":"CHARACTERISTIC_WRITE","value":"AQ"}"#).unwrap();
        assert!(bad.base64("value").is_err(), "unpadded base64 is refused");
        let bad = parse(r#"{"type":"START_SCAN","duration":-1}"#).unwrap();
        assert!(bad.opt_u64("duration", 60_000).is_err());
    }

    #[test]
    fn arbitrary_input_never_panics() {
        // A cheap property test: random bytes and random JSON-ish strings.
        let mut rng = fastrand::Rng::with_seed(1);
        let pieces = [
            "{",
            "}",
            "[",
            "]",
            "\"type\"",
            ":",
            ",",
            "\"PING\"",
            "\"id\"",
            "1",
            "null",
            "\"\\u0000\"",
            "true",
            "\"BATCH\"",
            "\"requests\"",
        ];
        for _ in 0..20_000 {
            let len = rng.usize(0..24);
            let s: String = (0..len).map(|_| pieces[rng.usize(0..pieces.len())]).collect();
            let _ = parse(&s);
            let bytes: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }
    }
}
