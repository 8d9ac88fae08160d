//! How the bench's devices and subscribers speak to the hub: JSON text, JSON with
//! permessage-deflate, or `gattway.cbor`, all over yawc's client on a stream that
//! counts the bytes on the wire.

use std::sync::Arc;

use gattway::hub_api::cbor;
use yawc::{Frame, OpCode, Options, WebSocket};

#[path = "../support/counting.rs"]
mod counting;

pub use counting::{Counting, WireBytes};

pub type Socket = WebSocket<Counting>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    Json,
    /// JSON with permessage-deflate, as the server's defaults agree to it.
    Deflate,
    /// JSON with permessage-deflate, the server compressing each message alone
    /// (`websocket.server_context_takeover = false`).
    DeflateAlone,
    Cbor,
    /// `gattway.cbor` inside permessage-deflate.
    CborDeflate,
}

impl Wire {
    pub const ALL: [Wire; 5] = [
        Wire::Json,
        Wire::Deflate,
        Wire::DeflateAlone,
        Wire::Cbor,
        Wire::CborDeflate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Wire::Json => "JSON",
            Wire::Deflate => "JSON + deflate",
            Wire::DeflateAlone => "JSON + deflate, no server context takeover",
            Wire::Cbor => "CBOR",
            Wire::CborDeflate => "CBOR + deflate",
        }
    }

    /// `GATTWAY_BENCH_WIRE`: `json` (default), `deflate`, `deflate-alone`, `cbor`,
    /// `cbor+deflate`.
    pub fn from_env() -> Wire {
        match std::env::var("GATTWAY_BENCH_WIRE").as_deref() {
            Ok("deflate") => Wire::Deflate,
            Ok("deflate-alone") => Wire::DeflateAlone,
            Ok("cbor") => Wire::Cbor,
            Ok("cbor+deflate") => Wire::CborDeflate,
            _ => Wire::Json,
        }
    }

    fn cbor(self) -> bool {
        matches!(self, Wire::Cbor | Wire::CborDeflate)
    }

    pub async fn connect(self, addr: &str, path: &str, bytes: Arc<WireBytes>) -> Socket {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let url = url::Url::parse(&format!("ws://{addr}{path}")).expect("url");
        let mut options = Options::default().with_limits(1 << 24, 1 << 24);
        if matches!(self, Wire::Deflate | Wire::DeflateAlone | Wire::CborDeflate) {
            options = options.with_low_latency_compression();
        }
        let mut request = yawc::HttpRequestBuilder::new();
        if self.cbor() {
            request = request.header("sec-websocket-protocol", cbor::PROTOCOL);
        }
        WebSocket::handshake_with_request(url, Counting::new(tcp, bytes), options, request)
            .await
            .expect("handshake")
    }

    /// What the server is started with for this wire.
    pub fn server_env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Wire::DeflateAlone => &[("GATTWAY_WEBSOCKET_SERVER_CONTEXT_TAKEOVER", "false")],
            _ => &[],
        }
    }

    /// A message (JSON text) as this wire sends it.
    pub fn frame(self, json: String) -> Frame {
        if self.cbor() {
            let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
            Frame::binary(cbor::encode(&v))
        } else {
            Frame::text(json)
        }
    }
}

/// What a received message is, as far as the bench cares.
pub enum Kind {
    Telemetry,
    Ack,
    Lagged,
    Other,
}

/// Sorts a message without decoding it whole: JSON telemetry starts with its type
/// (other JSON frames have their keys sorted); CBOR maps (fewer than 24 entries)
/// have `type` as their first entry.
pub fn kind(frame: &Frame) -> Kind {
    let p = frame.payload();
    let has = |needle: &[u8]| p.windows(needle.len()).any(|w| w == needle);
    match frame.opcode() {
        OpCode::Text if p.starts_with(br#"{"type":"telemetry","#) => Kind::Telemetry,
        OpCode::Text if has(br#""type":"telemetry_ack""#) => Kind::Ack,
        OpCode::Text if has(br#""type":"lagged""#) => Kind::Lagged,
        OpCode::Binary if p.get(1..3) == Some(&[0x00, 0x00]) => Kind::Telemetry,
        OpCode::Binary if p.get(1..3) == Some(&[0x00, 0x01]) => Kind::Ack,
        OpCode::Binary if p.get(1..3) == Some(&[0x00, 0x13]) => Kind::Lagged,
        _ => Kind::Other,
    }
}

/// The first point's value in a telemetry message.
pub fn first_value(frame: &Frame) -> Option<u64> {
    match frame.opcode() {
        OpCode::Text => {
            let text = std::str::from_utf8(frame.payload()).ok()?;
            let at = text.find("\"value\":")? + 8;
            let digits: String = text[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        }
        _ => cbor::decode(frame.payload()).ok()?["points"][0]["value"].as_u64(),
    }
}
