//! The `[websocket]` table: how every WebSocket (`/ws`, `/hub`, the bridge) talks on
//! the wire: whether it compresses (permessage-deflate, RFC 7692), from what size,
//! at what level, and whether the deflate window is kept between messages.

use serde::{Deserialize, Serialize};

/// The `[websocket]` table. Defaults were chosen on the hub's benchmark
/// (BENCHMARKS.md, "The wire").
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Accept permessage-deflate when a client offers it (browsers always do).
    /// Off: every message goes as it is.
    pub deflate: bool,
    /// Messages shorter than this many bytes are sent uncompressed: deflating a
    /// small frame costs CPU and saves few bytes.
    pub deflate_threshold: usize,
    /// zlib level, 1 (fastest) to 9 (smallest).
    pub deflate_level: u32,
    /// Keep the server's deflate window from one message to the next. On: later
    /// messages refer back to earlier ones and shrink far more (the hub's frames
    /// repeat their keys: 70 % fewer bytes rather than 12 %), for ~170 KB of
    /// compressor state in each connection that has been sent a compressed
    /// message. Off: each message is compressed alone with compressors from a
    /// pool, each reset after every message, which costs far more CPU.
    pub server_context_takeover: bool,
    /// Let clients keep their window between messages (the server then keeps an
    /// inflater per connection). Off: clients are asked to compress each message
    /// alone.
    pub client_context_takeover: bool,
    /// Time a client has to send every fragment of a fragmented message, from its
    /// first; a fragment that arrives later closes the socket (1002), so a message
    /// trickled a fragment at a time cannot hold its buffer for ever.
    pub fragment_timeout_ms: u64,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            deflate: true,
            deflate_threshold: 64,
            deflate_level: 1,
            server_context_takeover: true,
            client_context_takeover: true,
            fragment_timeout_ms: 10_000,
        }
    }
}

impl WebSocketConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=9).contains(&self.deflate_level) {
            return Err(format!(
                "websocket.deflate_level must be 1 to 9, not {}",
                self.deflate_level
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_outside_zlibs_range_is_refused() {
        let c = WebSocketConfig {
            deflate_level: 0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("deflate_level"));
        assert!(WebSocketConfig::default().validate().is_ok());
    }
}
