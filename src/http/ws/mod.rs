//! The WebSocket connection layer every WebSocket front end (`/ws`, `/hub`, the
//! bridge) stands on, so a fix made here holds for all three. `Host` and `Origin`
//! were checked by the guard before any route ran, and a credential at the upgrade
//! by `check_upgrade`; from the upgrade on:
//!
//! - [`upgrade`]: the limits (read buffer, largest message *and* frame);
//! - [`Connection`] (`connection.rs`): the socket as a front end holds it: metered
//!   sends, reads sorted into what a protocol answers (too large, too fast, binary),
//!   the per-connection rate limit, the close frame;
//! - [`Ends`] (`deadline.rs`): what ends a connection from the server's side: an
//!   authentication deadline, a credential's expiry, the server shutting down;
//! - [`Meter`] (`meter.rs`): the endpoint's gauge and message counters.
//!
//! A front end builds its connection's state before the task's future is made and
//! runs it through `&mut self`, so an idle connection's task holds one copy of it
//! (an `async fn`'s arguments would be kept twice).

mod connection;
mod deadline;
mod meter;

use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};

pub use self::connection::{Closed, Connection, Inbound};
pub use self::deadline::{Deadline, End, Ends};
pub use self::meter::Meter;

/// Initial read buffer of every WebSocket, and the most one read takes from the
/// socket. tungstenite's default (128 KiB) is held by every idle connection; at 256
/// bytes a typical request or telemetry batch is one or two reads, and larger
/// messages still arrive (the buffer grows for them).
const READ_BUFFER: usize = 256;

/// Close code: the policy was violated (no credential in time, or it expired).
pub const POLICY: u16 = 1008;

/// Sets an upgrade's limits: the read buffer, and the largest message and frame it
/// takes (tungstenite's own frame limit is 16 MiB, whatever the message limit
/// says). Past `max` the socket closes with 1009. `write_buffer`: bytes of frames
/// gathered before a write (0: each frame is written at once).
pub fn upgrade(ws: WebSocketUpgrade, max: usize, write_buffer: usize) -> WebSocketUpgrade {
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(write_buffer)
}

/// A close frame; the reason is cut to fit the protocol's 123 bytes.
pub fn close(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_reason_fits_the_frame() {
        let Message::Close(Some(frame)) = close(1008, &"é".repeat(100)) else {
            panic!("a close frame")
        };
        assert!(frame.reason.len() <= 123);
    }
}
