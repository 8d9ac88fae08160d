//! The handshake every WebSocket front end goes through: the limits (read buffer,
//! largest message and frame), permessage-deflate as `[websocket]` allows it, the
//! subprotocol a front end chose, and the task that runs the connection.

use std::future::Future;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use yawc::{CompressionLevel, DeflateOptions, DeflatePool, HttpStream, IncomingUpgrade, Options};

use super::WebSocketConfig;

/// The upgrade request as a route extracts it (a plain GET is refused with 400).
pub type Request = IncomingUpgrade;

/// An upgraded socket.
pub type Socket = yawc::WebSocket<HttpStream>;

/// Initial read buffer of every WebSocket, held by every idle one. At 128 bytes
/// a small request is one read; larger messages grow the buffer for as long as
/// they take, and it shrinks back after (ingest unchanged, BENCHMARKS.md).
const READ_BUFFER: usize = 128;

/// Compressors kept for reuse when no context is taken over between messages
/// (each ~200 KB of deflate state: made once, not per message).
const DEFLATE_POOL: usize = 64;

/// One front end's limits for its sockets.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest message (and frame) read, after inflating; past it the socket
    /// closes with 1009 before the message is buffered whole.
    pub max_message: usize,
    /// Bytes of frames gathered before a write is forced (a flush writes what is
    /// there); 0: every frame is written at once.
    pub write_buffer: usize,
}

/// Accepts upgrades with the server's `[websocket]` settings.
#[derive(Clone, Debug)]
pub struct Upgrade {
    deflate: Option<DeflateOptions>,
    /// `websocket.fragment_timeout_ms`.
    fragment_timeout: std::time::Duration,
}

impl Default for Upgrade {
    fn default() -> Self {
        Upgrade::new(&WebSocketConfig::default())
    }
}

impl Upgrade {
    pub fn new(config: &WebSocketConfig) -> Upgrade {
        let deflate = config.deflate.then(|| {
            let mut d = DeflateOptions::low_latency();
            d.level = CompressionLevel::new(config.deflate_level);
            d.compression_threshold = config.deflate_threshold;
            d.server_no_context_takeover = !config.server_context_takeover;
            d.client_no_context_takeover = !config.client_context_takeover;
            if !config.server_context_takeover || !config.client_context_takeover {
                d.pool = Some(DeflatePool::new(DEFLATE_POOL));
            }
            d
        });
        Upgrade {
            deflate,
            fragment_timeout: std::time::Duration::from_millis(config.fragment_timeout_ms.max(1)),
        }
    }

    /// Answers the handshake and runs `run(socket)` once it completes.
    /// `protocol`: the subprotocol the front end chose from the client's offer
    /// ([`chosen_protocol`]).
    pub fn accept<R, F>(
        &self,
        request: Request,
        limits: Limits,
        protocol: Option<&'static str>,
        run: R,
    ) -> Response
    where
        R: FnOnce(Socket) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        // yawc refuses a message of exactly its limit; ours is inclusive.
        let max = limits.max_message.saturating_add(1);
        let mut options = Options::default()
            .with_limits(max, max)
            .with_read_buffer_capacity(READ_BUFFER)
            .with_write_buffer_capacity(0)
            .with_backpressure_boundary(limits.write_buffer)
            .with_fragment_timeout(self.fragment_timeout);
        options.compression = self.deflate.clone();
        let (response, socket) = match request.upgrade(options) {
            Ok(r) => r,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        };
        // The connection runs in a task of its own, spawned once the handshake is
        // done: a task that awaited both would keep room for the handshake's
        // future beside the connection's for the socket's whole life.
        tokio::spawn(async move {
            if let Ok(socket) = socket.await {
                tokio::spawn(run(socket));
            }
        });
        let mut response = response.map(axum::body::Body::new);
        if let Some(p) = protocol {
            response
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
        }
        response
    }
}

/// The first subprotocol of `supported` the client offered in
/// `Sec-WebSocket-Protocol`; none offered (or none known): the front end's default.
pub fn chosen_protocol(headers: &HeaderMap, supported: &[&'static str]) -> Option<&'static str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|offered| {
            supported
                .iter()
                .copied()
                .find(|s| s.eq_ignore_ascii_case(offered))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_known_offered_protocol_is_chosen() {
        let mut h = HeaderMap::new();
        assert_eq!(chosen_protocol(&h, &["gattway.cbor"]), None);
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("mqtt, gattway.cbor"),
        );
        assert_eq!(chosen_protocol(&h, &["gattway.cbor"]), Some("gattway.cbor"));
        assert_eq!(chosen_protocol(&h, &["json"]), None);
    }
}
