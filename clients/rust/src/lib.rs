//! gattway's hub client on tokio (`/hub`, docs/hub-protocol.md): one WebSocket per
//! role that reconnects by itself (exponential back-off with jitter) and picks up
//! where it stopped.
//!
//! - [`HubDevice`]: telemetry batched, queued offline by priority (bounded), each
//!   point's future resolved once the hub has stored it, nothing stored twice.
//! - [`HubClient`]: subscriptions resumed from the last point id seen, requests
//!   answered by id.
//! - [`ControlClient`]: the control API (`/ws`: scan, connect, read, write,
//!   subscribe), connected and subscribed again after a reconnect.
//!
//! The same behaviour as the JavaScript client in `clients/js/`.

mod client;
mod control;
mod device;
mod link;

pub use client::{ClientEvent, Filter, HubClient, Point};
pub use control::{Characteristic, ControlClient, ControlEvent};
pub use device::{DeviceEvent, HubDevice, Limits};
pub use link::{Backoff, Options, State};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Dropped from a full offline queue (the oldest of the lowest priority go).
    #[error("dropped: the offline queue is full")]
    Dropped,
    #[error("the client was closed")]
    Closed,
    /// The server answered with an error message (the hub's `error`, the
    /// control socket's `ERROR`).
    #[error("the server refused: {0}")]
    Hub(serde_json::Value),
}
