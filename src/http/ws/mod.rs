//! The WebSocket connection layer every WebSocket front end (`/ws`, `/hub`, the
//! bridge) stands on, so a fix made here holds for all three. `Host` and `Origin`
//! were checked by the guard before any route ran, and a credential at the upgrade
//! by `check_upgrade`; from the upgrade on:
//!
//! - [`Upgrade`] (`upgrade.rs`): the handshake: limits (read buffer, largest
//!   message *and* frame), permessage-deflate (RFC 7692) as `[websocket]`
//!   (`config.rs`) allows, the subprotocol, the connection's task;
//! - [`Connection`] (`connection.rs`): the socket as a front end holds it: metered
//!   sends, reads sorted into what a protocol answers (too large, too fast, not
//!   text), the per-connection rate limit, the close frame;
//! - [`Ends`] (`deadline.rs`): what ends a connection from the server's side: an
//!   authentication deadline, a credential's expiry, the server shutting down;
//! - [`Meter`] (`meter.rs`): the endpoint's gauge and message counters;
//! - [`Slots`] (`admission.rs`): a front end's connection slots, held only by
//!   connections that authenticated; those still to authenticate wait in the
//!   door's own budget.
//!
//! The sockets are yawc's: tungstenite, under axum, cannot compress.
//!
//! A front end builds its connection's state before the task's future is made and
//! runs it through `&mut self`, so an idle connection's task holds one copy of it
//! (an `async fn`'s arguments would be kept twice).

mod admission;
mod config;
mod connection;
mod deadline;
mod meter;
mod upgrade;

use yawc::close::CloseCode;
use yawc::Frame;

pub use self::admission::{Full, Slots, Ticket, Waiting};
pub use self::config::WebSocketConfig;
pub use self::connection::{Closed, Connection, Inbound, Out};
pub use self::deadline::{Deadline, End, Ends};
pub use self::meter::Meter;
pub use self::upgrade::{chosen_protocol, Limits, Request, Socket, Upgrade};

/// Close code: the policy was violated (no credential in time, or it expired).
pub const POLICY: u16 = 1008;

/// A close frame; the reason is cut to fit the protocol's 123 bytes.
pub fn close(code: u16, reason: &str) -> Frame {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Frame::close(CloseCode::from(code), &reason[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_frame_carries_its_code_and_fits() {
        let frame = close(1008, &"é".repeat(100));
        assert!(frame.payload().len() <= 125);
        assert_eq!(frame.close_code().map(u16::from), Some(1008));
    }
}
