//! A hub connection's socket as the role loops use it: metered sends, batched
//! writes, typed refusals, reads that answer what cannot be a message (bad JSON,
//! too large, too fast), and what ends a connection from the server's side.

use serde_json::Value;

use super::protocol::{self, Code, Failure, Frame, Incoming};
use crate::http::ws::{self, Closed, Connection, Inbound};

/// The socket as the hub's role loops use it.
pub(super) struct Link {
    pub conn: Connection,
}

/// What one read from the socket gave.
pub(super) enum Read {
    Message(Box<Incoming>),
    /// Answered already (bad input, a limit); carry on.
    Refused,
    Closed,
}

impl Link {
    pub async fn send(&mut self, frame: Frame) -> Result<(), Closed> {
        self.conn.send(frame).await
    }

    /// Queues a frame without flushing: frames fed together go out in one write.
    pub async fn feed(&mut self, frame: Frame) -> Result<(), Closed> {
        self.conn.feed(frame).await
    }

    pub async fn flush(&mut self) -> Result<(), Closed> {
        self.conn.flush().await
    }

    pub async fn fail(&mut self, id: &Value, f: &Failure) -> Result<(), Closed> {
        self.send(protocol::error(id, f)).await
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
        let tell = |error: crate::auth::AuthError| protocol::error(&Value::Null, &error.into());
        self.conn.end(end, tell).await;
        match end {
            ws::End::Deadline(_) => "credential expired",
            ws::End::Shutdown => "shutdown",
        }
    }

    /// Turns what the connection read into a message, answering what cannot be one.
    pub async fn read(&mut self, inbound: Inbound) -> Read {
        let text = match inbound {
            Inbound::Text(t) => t,
            Inbound::Closed => return Read::Closed,
            Inbound::Binary(_) => {
                let f = Failure::new(
                    Code::InvalidMessage,
                    "binary frames are not supported: send JSON text",
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
            Inbound::TooFast(t) => {
                let id = Incoming::parse(t.as_str()).map_or(Value::Null, |m| m.id);
                let f = Failure::new(Code::RateLimited, "too many messages: slow down");
                return self.refuse(&id, &f).await;
            }
        };
        match Incoming::parse(text.as_str()) {
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
