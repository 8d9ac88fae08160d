//! The WebSocket connection layer every WebSocket front end (`/ws`, `/hub`, the
//! bridge) stands on, so a fix made here holds for all three:
//!
//! - [`upgrade`]: the upgrade's limits (read buffer, largest message *and* frame).
//!   `Host` and `Origin` were checked by the guard before any route ran, and the
//!   credential at the upgrade by `check_upgrade`.
//! - [`Deadline`]: a connection without a credential must authenticate in-band
//!   within `http.auth_deadline_ms`; one with a credential that expires (a JWT, a
//!   session token) is closed when it does.
//! - [`Meter`]: the endpoint's open-connections gauge and message counters; the
//!   gauge goes down when the meter is dropped, however the connection ends.
//! - [`close`]: the close frame, its reason cut to the protocol's 123 bytes.
//!
//! Slots (a semaphore per front end), the outbox (`crate::outbox`) and graceful
//! shutdown (the server's `CancellationToken`) are the other parts each
//! connection task holds.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

use crate::auth::{AuthError, Principal};
use crate::metrics::{Direction, Endpoint, EndpointLabels, MessageLabels, Metrics};

/// Initial read buffer of every WebSocket. tungstenite's default (128 KiB) is held
/// by every idle connection; messages larger than this still arrive, the buffer
/// grows for them.
const READ_BUFFER: usize = 512;

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

/// Why a connection must end though its client did nothing wrong on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// Nothing to wait for: credentials are off, or the credential never expires.
    None,
    /// Not authenticated yet; it must be by then.
    Authenticate(Instant),
    /// Authenticated with a credential that expires then.
    Expires(Instant),
}

impl Deadline {
    /// The deadline of a connection opened at `opened`, now holding `principal`;
    /// `authenticate_within` when credentials are required, `None` when they are off.
    pub fn of(
        authenticate_within: Option<Duration>,
        principal: Option<&Principal>,
        opened: Instant,
    ) -> Deadline {
        match (principal, authenticate_within) {
            (None, Some(within)) => Deadline::Authenticate(opened + within),
            (None, None) => Deadline::None,
            (Some(p), _) => match p.time_left() {
                Some(left) => Deadline::Expires(Instant::now() + left),
                None => Deadline::None,
            },
        }
    }

    /// Resolves when the deadline passes; never when there is none.
    pub async fn passed(self) -> Deadline {
        match self {
            Deadline::None => std::future::pending().await,
            Deadline::Authenticate(at) | Deadline::Expires(at) => tokio::time::sleep_until(at).await,
        }
        self
    }

    /// What to tell the client before closing with [`POLICY`]; each front end
    /// turns it into its own wire error.
    pub fn error(self) -> AuthError {
        match self {
            Deadline::Expires(_) => AuthError::Expired,
            _ => AuthError::NotAuthenticated,
        }
    }
}

/// A connection's place in the metrics: the gauge of open connections (down
/// again when dropped) and the message counters.
pub struct Meter {
    gauge: Gauge,
    pub sent: Counter,
    pub received: Counter,
}

impl Meter {
    pub fn open(metrics: &Metrics, endpoint: Endpoint) -> Meter {
        let gauge = metrics
            .ws_connections
            .get_or_create(&EndpointLabels { endpoint })
            .clone();
        gauge.inc();
        let counter = |direction| {
            metrics
                .messages
                .get_or_create(&MessageLabels { endpoint, direction })
                .clone()
        };
        Meter {
            gauge,
            sent: counter(Direction::sent),
            received: counter(Direction::received),
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.gauge.dec();
    }
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
    use crate::auth::DeviceAllowList;

    fn principal(expires_in: Option<u64>) -> Principal {
        Principal {
            subject: "p".into(),
            scopes: Default::default(),
            devices: DeviceAllowList::any(),
            expires_at: expires_in.map(|s| jsonwebtoken::get_current_timestamp() + s),
        }
    }

    #[test]
    fn deadlines_follow_the_credential() {
        let now = Instant::now();
        let ten = Some(Duration::from_secs(10));
        assert_eq!(Deadline::of(None, None, now), Deadline::None);
        assert_eq!(
            Deadline::of(ten, None, now),
            Deadline::Authenticate(now + Duration::from_secs(10))
        );
        assert_eq!(Deadline::of(ten, Some(&principal(None)), now), Deadline::None);
        assert!(matches!(
            Deadline::of(ten, Some(&principal(Some(60))), now),
            Deadline::Expires(at) if at > now + Duration::from_secs(50)
        ));
    }

    #[test]
    fn a_close_reason_fits_the_frame() {
        let Message::Close(Some(frame)) = close(1008, &"é".repeat(100)) else {
            panic!("a close frame")
        };
        assert!(frame.reason.len() <= 123);
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    #[tokio::test]
    async fn an_authentication_deadline_waits() {
        let d = Deadline::of(Some(Duration::from_secs(10)), None, Instant::now());
        let r = tokio::time::timeout(Duration::from_millis(200), d.passed()).await;
        assert!(r.is_err(), "{d:?} passed at once");
    }
}
