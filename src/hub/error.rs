//! The hub's errors, typed: what a device, a client or a feed asked for that the
//! hub refused, and why. Each names its [`ErrorKind`]; the front ends (`/hub`, its
//! REST, MQTT) turn the kind into their own code.

use crate::auth::AuthError;
use crate::error::ErrorKind;
use crate::store::{StoreError, Unstorable};

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum HubError {
    /// A value out of the hub's bounds (a device id, a key, a limit, a duration).
    #[error("{0}")]
    Invalid(String),
    /// A value the store could not keep or read back.
    #[error(transparent)]
    Unstorable(#[from] Unstorable),
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The device's commands are BLE writes, which the credential may not make.
    #[error("commands to {0} become BLE writes: they need the ble:write scope")]
    NeedsBleWrite(String),
    #[error("{device} has {open} open commands, the most it may have: wait for some to finish")]
    CommandQueueFull { device: String, open: usize },
    /// No such open command (for this device, when a device asks).
    #[error("{0}")]
    UnknownCommand(String),
    /// The command is final already, or moved on elsewhere.
    #[error("{0}")]
    CommandClosed(String),
    /// The store failed, or the task that writes to it stopped: nothing was
    /// acknowledged. A string, not the [`StoreError`]: errors are cloned to every
    /// waiter.
    #[error("{0}")]
    Store(String),
}

impl HubError {
    pub fn invalid(message: impl Into<String>) -> Self {
        HubError::Invalid(message.into())
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            HubError::Invalid(_) | HubError::Unstorable(_) => ErrorKind::InvalidInput,
            HubError::Auth(e) => e.kind(),
            HubError::NeedsBleWrite(_) => ErrorKind::Forbidden,
            HubError::CommandQueueFull { .. } => ErrorKind::QueueFull,
            HubError::UnknownCommand(_) => ErrorKind::UnknownCommand,
            HubError::CommandClosed(_) => ErrorKind::CommandClosed,
            HubError::Store(_) => ErrorKind::Store,
        }
    }
}

impl From<StoreError> for HubError {
    fn from(e: StoreError) -> Self {
        HubError::Store(e.to_string())
    }
}
