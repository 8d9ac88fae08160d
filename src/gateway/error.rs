//! The gateway's errors: the radio's, plus what the gateway itself decides (leases,
//! limits, timeouts). Front ends turn these into their wire errors via [`GatewayError::code`].

use std::time::Duration;

use crate::ble::{BleError, DeviceId};

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
        operation: &'static str,
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
    /// A stable, machine-readable code for wire errors and metrics labels.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::Ble(e) => match e {
                BleError::DeviceNotFound(_) => "device_not_found",
                BleError::NotConnected(_) => "not_connected",
                BleError::ServiceNotFound(_) => "service_not_found",
                BleError::CharacteristicNotFound { .. } => "characteristic_not_found",
                BleError::DescriptorNotFound { .. } => "descriptor_not_found",
                BleError::NotPermitted { .. } => "not_permitted",
                BleError::ValueTooLong { .. } => "value_too_long",
                BleError::ConnectFailed { .. } => "connect_failed",
                BleError::LinkLost(_) => "link_lost",
                BleError::Timeout { .. } => "timeout",
                BleError::AdapterUnavailable(_) => "adapter_unavailable",
                BleError::Other(_) => "backend_error",
            },
            GatewayError::Busy { .. } => "busy",
            GatewayError::ConnectionLimit(_) => "connection_limit",
            GatewayError::NoFreeSlot { .. } => "no_free_slot",
            GatewayError::Ambiguous { .. } => "ambiguous",
            GatewayError::Timeout { .. } => "timeout",
            GatewayError::ConnectFailed { .. } => "connect_failed",
            GatewayError::ShuttingDown => "shutting_down",
            GatewayError::InvalidLease => "invalid_lease",
            GatewayError::InvalidInput(_) => "invalid_input",
        }
    }
}

pub type GatewayResult<T> = Result<T, GatewayError>;
