//! One WebSocket connection as every front end holds it, as mini-redis has one
//! `Connection`: metered sends, reads sorted into what a protocol must answer
//! (too large, too fast, binary) or act on, and the close frame. The front ends
//! differ only in their messages: each turns an [`Inbound`] refusal into its own
//! wire error.

use bytes::Bytes;
use futures::SinkExt;
use yawc::{Frame, OpCode};

use super::{End, Meter, Socket};
use crate::auth::AuthError;
use crate::limits::TokenBucket;

/// Close code: a text message was not UTF-8.
const INVALID_PAYLOAD: u16 = 1007;

/// The socket is gone: a send failed or the client closed. Nothing more can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// What one read from the client gave.
pub enum Inbound {
    /// A text message within the limits.
    Text(String),
    /// A binary message within the limits (only the hub's `gattway.cbor` speaks
    /// binary; the other protocols refuse it).
    Binary(Bytes),
    /// A text or binary message over the connection's message limit (its length).
    TooLarge(usize),
    /// Over the connection's message rate; the message, so the answer can carry
    /// its id.
    TooFast(Box<Inbound>),
    /// The client closed, or the socket failed.
    Closed,
}

impl Inbound {
    /// The text of a text message (for a rate-limited one too).
    pub fn text(&self) -> Option<&str> {
        match self {
            Inbound::Text(t) => Some(t),
            Inbound::TooFast(m) => m.text(),
            _ => None,
        }
    }
}

/// A message to send: text for the JSON protocols, binary for `gattway.cbor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// UTF-8 JSON (every constructor of this variant passes text).
    Text(Bytes),
    Binary(Bytes),
}

impl From<String> for Out {
    fn from(s: String) -> Out {
        Out::Text(Bytes::from(s))
    }
}

impl From<Out> for Frame {
    fn from(out: Out) -> Frame {
        match out {
            Out::Text(b) => Frame::text(b),
            Out::Binary(b) => Frame::binary(b),
        }
    }
}

pub struct Connection {
    ws: Socket,
    meter: Meter,
    /// Messages a second the client may send, if limited.
    limiter: Option<TokenBucket>,
    /// Largest message handled; larger ones are refused (the socket stays open up
    /// to the upgrade's hard limit).
    max_bytes: usize,
}

impl Connection {
    pub fn new(ws: Socket, meter: Meter, max_bytes: usize) -> Connection {
        Connection {
            ws,
            meter,
            limiter: None,
            max_bytes,
        }
    }

    /// Limits the client's message rate.
    pub fn with_rate_limit(mut self, limiter: TokenBucket) -> Connection {
        self.limiter = Some(limiter);
        self
    }

    /// The next message from the client; pings and pongs are answered by the
    /// socket itself and skipped. Cancel-safe: nothing is lost if another branch
    /// of a `select!` wins. A text message that is not UTF-8 closes the
    /// connection (1007), as RFC 6455 asks; a fragment that comes after
    /// `websocket.fragment_timeout_ms` from its message's first closes it (1008).
    pub async fn recv(&mut self) -> Inbound {
        loop {
            let (opcode, _, payload) = match self.ws.next_frame().await {
                Ok(frame) => frame.into_parts(),
                Err(yawc::WebSocketError::FragmentTimeout) => {
                    self.close(super::POLICY, "a fragmented message took too long")
                        .await;
                    return Inbound::Closed;
                }
                Err(_) => return Inbound::Closed,
            };
            let len = payload.len();
            let message = match opcode {
                OpCode::Text => match String::from_utf8(Vec::from(payload)) {
                    Ok(text) => Inbound::Text(text),
                    Err(_) => {
                        self.close(INVALID_PAYLOAD, "text messages must be UTF-8").await;
                        return Inbound::Closed;
                    }
                },
                OpCode::Binary => Inbound::Binary(payload),
                OpCode::Close => return Inbound::Closed,
                _ => continue,
            };
            self.meter.received.inc();
            if len > self.max_bytes {
                return Inbound::TooLarge(len);
            }
            if self.limiter.as_mut().is_some_and(|l| !l.take()) {
                return Inbound::TooFast(Box::new(message));
            }
            return message;
        }
    }

    /// The largest message handled.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Sends one message and flushes.
    pub async fn send(&mut self, message: impl Into<Out>) -> Result<(), Closed> {
        self.meter.sent.inc();
        self.ws
            .send(Frame::from(message.into()))
            .await
            .map_err(|_| Closed)
    }

    /// Queues a message without flushing: messages fed together go out in one
    /// write (up to the upgrade's write buffer).
    pub async fn feed(&mut self, message: impl Into<Out>) -> Result<(), Closed> {
        self.meter.sent.inc();
        self.ws
            .feed(Frame::from(message.into()))
            .await
            .map_err(|_| Closed)
    }

    pub async fn flush(&mut self) -> Result<(), Closed> {
        self.ws.flush().await.map_err(|_| Closed)
    }

    /// Ends the connection from the server's side: for a passed deadline, the
    /// protocol's error (`tell` words it) and close code 1008; at shutdown, 1001.
    pub async fn end(&mut self, end: End, tell: impl FnOnce(AuthError) -> Out) {
        match end {
            End::Deadline(deadline) => {
                let error = deadline.error();
                let reason = error.to_string();
                let _ = self.send(tell(error)).await;
                self.close(super::POLICY, &reason).await;
            }
            End::Shutdown => self.close(1001, "server shutting down").await,
        }
    }

    /// Sends the close frame; the reason is cut to fit the protocol's 123 bytes.
    pub async fn close(&mut self, code: u16, reason: &str) {
        let _ = self.ws.send(super::close(code, reason)).await;
    }
}
