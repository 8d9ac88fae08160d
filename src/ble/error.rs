//! The radio layer's errors. Every backend maps its platform errors onto these.

use std::time::Duration;

use super::{DeviceId, Uuid};
use crate::error::ErrorKind;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BleError {
    #[error("device {0} not found: it is not advertising or is out of range")]
    DeviceNotFound(DeviceId),
    #[error("device {0} is not connected")]
    NotConnected(DeviceId),
    #[error("service {0} not found on the device")]
    ServiceNotFound(Uuid),
    #[error("characteristic {characteristic} not found in service {service}")]
    CharacteristicNotFound { service: Uuid, characteristic: Uuid },
    #[error("descriptor {descriptor} not found on characteristic {characteristic}")]
    DescriptorNotFound { characteristic: Uuid, descriptor: Uuid },
    #[error("characteristic {characteristic} does not permit {operation}")]
    NotPermitted {
        characteristic: Uuid,
        operation: &'static str,
    },
    #[error("value of {len} bytes is longer than the {max} bytes characteristic {characteristic} accepts")]
    ValueTooLong {
        characteristic: Uuid,
        len: usize,
        max: usize,
    },
    #[error("connection to {id} failed: {reason}")]
    ConnectFailed { id: DeviceId, reason: String },
    #[error("link to {0} was lost during the operation")]
    LinkLost(DeviceId),
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        operation: &'static str,
        after: Duration,
    },
    #[error("Bluetooth adapter unavailable: {0}")]
    AdapterUnavailable(String),
    #[error("{0}")]
    Other(String),
}

impl BleError {
    /// What kind of failure this is, for front ends to turn into their wire code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BleError::DeviceNotFound(_) => ErrorKind::DeviceNotFound,
            BleError::NotConnected(_) => ErrorKind::NotConnected,
            BleError::ServiceNotFound(_) => ErrorKind::ServiceNotFound,
            BleError::CharacteristicNotFound { .. } => ErrorKind::CharacteristicNotFound,
            BleError::DescriptorNotFound { .. } => ErrorKind::DescriptorNotFound,
            BleError::NotPermitted { .. } => ErrorKind::NotPermitted,
            BleError::ValueTooLong { .. } => ErrorKind::ValueTooLong,
            BleError::ConnectFailed { .. } => ErrorKind::ConnectFailed,
            BleError::LinkLost(_) => ErrorKind::LinkLost,
            BleError::Timeout { .. } => ErrorKind::Timeout,
            BleError::AdapterUnavailable(_) => ErrorKind::RadioUnavailable,
            BleError::Other(_) => ErrorKind::Radio,
        }
    }
}

pub type BleResult<T> = Result<T, BleError>;
