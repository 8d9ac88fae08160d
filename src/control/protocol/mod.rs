//! The control WebSocket's wire format (the original MCP BLE server's message set):
//! JSON objects with a `type` and a client-chosen `id` that the one reply echoes;
//! events (DEVICE_FOUND, NOTIFICATION, CONNECTED/DISCONNECTED on drops) carry no id.
//!
//! Here: error codes and how each kind of failure maps to one, replies, events and
//! base64. `request.rs` holds the requests ([`Message`], [`parse`]); `fields.rs`
//! reads their fields and words what is wrong with them.

mod fields;
mod request;

use serde_json::{json, Map, Value};

pub use self::request::{
    parse, parse_value, Authenticate, Batch, CharacteristicWrite, Connect, DescriptorWrite, Fields, Message,
    OnCharacteristic, OnDescriptor, OnDevice, Request, Requests, StartScan, MAX_BATCH,
};

use crate::auth::AuthError;
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
}
