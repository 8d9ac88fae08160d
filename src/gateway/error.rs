//! The gateway's errors: the radio's, plus what the gateway itself decides (leases,
//! limits, timeouts). Front ends turn these into their wire errors by their
//! [`ErrorKind`] (`kind()`).

use std::time::Duration;

use crate::ble::{BleError, DeviceId};
use crate::error::ErrorKind;

/// What the gateway asked of a device's radio, as a timeout names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Connect,
    Discover,
    /// Opening the link's notification stream.
    Notifications,
    Subscribe,
    Unsubscribe,
    Read,
    Write,
    ReadDescriptor,
    WriteDescriptor,
}

impl Operation {
    /// The operation's name in messages ("read descriptor on … timed out").
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Connect => "connect",
            Operation::Discover => "discover",
            Operation::Notifications => "notifications",
            Operation::Subscribe => "subscribe",
            Operation::Unsubscribe => "unsubscribe",
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::ReadDescriptor => "read descriptor",
            Operation::WriteDescriptor => "write descriptor",
        }
    }

    /// A value read or written: its round trip is a transfer's latency.
    pub fn is_transfer(self) -> bool {
        match self {
            Operation::Read | Operation::Write | Operation::ReadDescriptor | Operation::WriteDescriptor => {
                true
            }
            Operation::Connect
            | Operation::Discover
            | Operation::Notifications
            | Operation::Subscribe
            | Operation::Unsubscribe => false,
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Ble(#[from] BleError),
    #[error("device {id} is busy: it is leased by {holder}")]
    Busy { id: DeviceId, holder: String },
    #[error("connection limit of {0} reached and every connected device is leased")]
    ConnectionLimit(usize),
    #[error("name prefix {prefix:?} matches several devices ({}); give the device id", candidates.join(", "))]
    Ambiguous { prefix: String, candidates: Vec<String> },
    #[error("{operation} on {id} timed out after {after:?}")]
    Timeout {
        id: DeviceId,
        operation: Operation,
        after: Duration,
    },
    #[error("connecting to {id} failed after {attempts} attempt(s): {last}")]
    ConnectFailed {
        id: DeviceId,
        attempts: u32,
        last: BleError,
    },
    #[error("no radio has a free connection slot for {id} ({radios} radio(s), all full or failing): close a link or try again later")]
    NoFreeSlot { id: DeviceId, radios: usize },
    #[error("the gateway is shutting down")]
    ShuttingDown,
    #[error("no lease with that token")]
    InvalidLease,
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl GatewayError {
    /// What kind of failure this is, for front ends to turn into their wire code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            GatewayError::Ble(e) => e.kind(),
            GatewayError::Busy { .. } => ErrorKind::Busy,
            GatewayError::ConnectionLimit(_) => ErrorKind::ConnectionLimit,
            GatewayError::NoFreeSlot { .. } => ErrorKind::NoFreeSlot,
            GatewayError::Ambiguous { .. } => ErrorKind::Ambiguous,
            GatewayError::Timeout { .. } => ErrorKind::Timeout,
            GatewayError::ConnectFailed { .. } => ErrorKind::ConnectFailed,
            GatewayError::ShuttingDown => ErrorKind::ShuttingDown,
            GatewayError::InvalidLease => ErrorKind::InvalidLease,
            GatewayError::InvalidInput(_) => ErrorKind::InvalidInput,
        }
    }

    /// The kind's stable name, for logs and tests.
    pub fn code(&self) -> &'static str {
        self.kind().as_str()
    }
}

pub type GatewayResult<T> = Result<T, GatewayError>;
