//! One WebSocket connection as every front end holds it, as mini-redis has one
//! `Connection`: metered sends, reads sorted into what a protocol must answer
//! (too large, too fast, binary) or act on, and the close frame. The front ends
//! differ only in their messages: each turns an [`Inbound`] refusal into its own
//! wire error.

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures::SinkExt;

use super::{End, Meter};
use crate::auth::AuthError;
use crate::limits::TokenBucket;

/// The socket is gone: a send failed or the client closed. Nothing more can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// What one read from the client gave.
pub enum Inbound {
    /// A text message within the limits.
    Text(Utf8Bytes),
    /// A text or binary message over the connection's message limit (its length).
    TooLarge(usize),
    /// Over the connection's message rate; the text, so the answer can carry its id.
    TooFast(Utf8Bytes),
    /// A binary message (its length): every gattway protocol is JSON text.
    Binary(usize),
    /// The client closed, or the socket failed.
    Closed,
}

pub struct Connection {
    ws: WebSocket,
    meter: Meter,
    /// Messages a second the client may send, if limited.
    limiter: Option<TokenBucket>,
    /// Largest message handled; larger ones are refused (the socket stays open up
    /// to the upgrade's hard limit).
    max_bytes: usize,
}

impl Connection {
    pub fn new(ws: WebSocket, meter: Meter, max_bytes: usize) -> Connection {
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
    /// of a `select!` wins.
    pub async fn recv(&mut self) -> Inbound {
        loop {
            let text = match self.ws.recv().await {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Binary(b))) => {
                    self.meter.received.inc();
                    return if b.len() > self.max_bytes {
                        Inbound::TooLarge(b.len())
                    } else {
                        Inbound::Binary(b.len())
                    };
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => return Inbound::Closed,
            };
            self.meter.received.inc();
            if text.len() > self.max_bytes {
                return Inbound::TooLarge(text.len());
            }
            if self.limiter.as_mut().is_some_and(|l| !l.take()) {
                return Inbound::TooFast(text);
            }
            return Inbound::Text(text);
        }
    }

    /// The largest message handled.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Sends one text message and flushes.
    pub async fn send(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), Closed> {
        self.meter.sent.inc();
        self.ws.send(Message::Text(text.into())).await.map_err(|_| Closed)
    }

    /// Queues a text message without flushing: messages fed together go out in one
    /// write (up to the upgrade's write buffer).
    pub async fn feed(&mut self, text: impl Into<Utf8Bytes>) -> Result<(), Closed> {
        self.meter.sent.inc();
        self.ws.feed(Message::Text(text.into())).await.map_err(|_| Closed)
    }

    pub async fn flush(&mut self) -> Result<(), Closed> {
        self.ws.flush().await.map_err(|_| Closed)
    }

    /// Ends the connection from the server's side: for a passed deadline, the
    /// protocol's error (`tell` words it) and close code 1008; at shutdown, 1001.
    pub async fn end(&mut self, end: End, tell: impl FnOnce(AuthError) -> Utf8Bytes) {
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
