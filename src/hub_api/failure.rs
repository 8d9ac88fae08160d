//! The hub's wire errors: the codes of `{"type":"error"}` (`docs/hub-protocol.md`)
//! and the one mapping from a kind of failure to its code.

use crate::auth::AuthError;
use crate::error::ErrorKind;
use crate::hub::HubError;
use crate::store::StoreError;

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

impl Code {
    /// The code for a kind of failure: the one place the hub's wire names them.
    pub fn of(kind: ErrorKind) -> Code {
        match kind {
            ErrorKind::InvalidInput => Code::InvalidParams,
            ErrorKind::NotAuthenticated | ErrorKind::InvalidApiKey | ErrorKind::InvalidToken => {
                Code::NotAuthenticated
            }
            ErrorKind::Expired => Code::SessionExpired,
            ErrorKind::Forbidden => Code::Forbidden,
            ErrorKind::RateLimited => Code::RateLimited,
            ErrorKind::TooLarge => Code::MessageTooLarge,
            ErrorKind::QueueFull => Code::CommandQueueFull,
            ErrorKind::UnknownCommand => Code::UnknownCommand,
            ErrorKind::CommandClosed => Code::CommandClosed,
            ErrorKind::Store => Code::StoreError,
            // No `/hub` message reaches a radio: a command that becomes a BLE
            // write reports through its status. Should one ever surface here, it
            // is the caller's request that could not be carried out.
            ErrorKind::DeviceNotFound
            | ErrorKind::Ambiguous
            | ErrorKind::ServiceNotFound
            | ErrorKind::CharacteristicNotFound
            | ErrorKind::DescriptorNotFound
            | ErrorKind::NotPermitted
            | ErrorKind::ValueTooLong
            | ErrorKind::NotConnected
            | ErrorKind::Busy
            | ErrorKind::ConnectionLimit
            | ErrorKind::NoFreeSlot
            | ErrorKind::RadioUnavailable
            | ErrorKind::ConnectFailed
            | ErrorKind::LinkLost
            | ErrorKind::Timeout
            | ErrorKind::ShuttingDown
            | ErrorKind::InvalidLease
            | ErrorKind::Radio => Code::InvalidParams,
        }
    }
}

impl From<HubError> for Failure {
    fn from(e: HubError) -> Self {
        Failure::new(Code::of(e.kind()), e.to_string())
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::new(Code::of(e.kind()), e.to_string())
    }
}

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Self {
        Failure::new(Code::of(e.kind()), e.to_string())
    }
}
