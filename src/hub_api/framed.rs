//! A hub connection's socket as the role loops use it, as mini-redis's
//! `Connection` is: metered sends of [`Frame`]s in the connection's encoding
//! (JSON text, or `gattway.cbor` binary), batched writes, typed refusals, reads
//! that answer what cannot be a message (bad JSON or CBOR, too large, too fast),
//! and what ends a connection from the server's side.

use serde_json::Value;

use super::failure::{Code, Failure};
use super::frame::{self, Frame};
use super::message::Envelope;
use crate::http::ws::{self, Closed, Connection, Inbound, Out};

/// The socket as the hub's role loops use it.
pub(super) struct Framed {
    pub conn: Connection,
    /// The client chose `gattway.cbor`: frames go as CBOR (binary).
    pub cbor: bool,
}

/// What one read from the socket gave.
pub(super) enum Read {
    Message(Box<Envelope>),
    /// Answered already (bad input, a limit); carry on.
    Refused,
    Closed,
}

impl Framed {
    pub async fn send(&mut self, frame: Frame) -> Result<(), Closed> {
        self.conn.send(encode(&frame, self.cbor)).await
    }

    /// Queues a frame without flushing: frames fed together go out in one write.
    pub async fn feed(&mut self, frame: Frame) -> Result<(), Closed> {
        self.conn.feed(encode(&frame, self.cbor)).await
    }

    pub async fn flush(&mut self) -> Result<(), Closed> {
        self.conn.flush().await
    }

    pub async fn fail(&mut self, id: &Value, f: &Failure) -> Result<(), Closed> {
        self.send(frame::error(id, f)).await
    }

    /// Turns the connection away: the error, then the close frame.
    pub async fn turn_away(&mut self, f: &Failure, code: u16, reason: &str) {
        let _ = self.fail(&Value::Null, f).await;
        self.close(code, reason).await;
    }

    pub async fn close(&mut self, code: u16, reason: &str) {
        self.conn.close(code, reason).await
    }

    /// Tells the client why the server ends the connection, and closes; returns
    /// the reason the connection log records.
    pub async fn end(&mut self, end: ws::End) -> &'static str {
        let cbor = self.cbor;
        let tell = |error: crate::auth::AuthError| encode(&frame::error(&Value::Null, &error.into()), cbor);
        self.conn.end(end, tell).await;
        match end {
            ws::End::Deadline(_) => "credential expired",
            ws::End::Shutdown => "shutdown",
        }
    }

    /// Turns what the connection read into a message, answering what cannot be one.
    pub async fn read(&mut self, inbound: Inbound) -> Read {
        let parsed = match inbound {
            Inbound::Text(t) => Envelope::parse(t),
            Inbound::Binary(b) if self.cbor => Envelope::parse_cbor(&b),
            Inbound::Closed => return Read::Closed,
            Inbound::Binary(_) => {
                let f = Failure::new(
                    Code::InvalidMessage,
                    "binary messages need the gattway.cbor subprotocol: send JSON text",
                );
                return self.refuse(&Value::Null, &f).await;
            }
            Inbound::TooLarge(len) => {
                let f = Failure::new(
                    Code::MessageTooLarge,
                    format!("{len} bytes is over the {}-byte limit", self.conn.max_bytes()),
                );
                return self.refuse(&Value::Null, &f).await;
            }
            Inbound::TooFast(m) => {
                let id = match *m {
                    Inbound::Text(t) => Envelope::parse(t).map_or(Value::Null, |m| m.id),
                    Inbound::Binary(b) => Envelope::parse_cbor(&b).map_or(Value::Null, |m| m.id),
                    _ => Value::Null,
                };
                let f = Failure::new(Code::RateLimited, "too many messages: slow down");
                return self.refuse(&id, &f).await;
            }
        };
        match parsed {
            Ok(m) => Read::Message(Box::new(m)),
            Err((id, f)) => self.refuse(&id, &f).await,
        }
    }

    async fn refuse(&mut self, id: &Value, f: &Failure) -> Read {
        match self.fail(id, f).await {
            Ok(()) => Read::Refused,
            Err(Closed) => Read::Closed,
        }
    }
}

/// A frame in the connection's encoding.
fn encode(frame: &Frame, cbor: bool) -> Out {
    match cbor {
        true => Out::Binary(frame.cbor().clone()),
        false => Out::Text(frame.json().clone()),
    }
}
