//! A hub connection's socket as the role loops use it: metered sends, batched
//! writes, typed refusals, reads that answer what cannot be a message (bad JSON,
//! too large, too fast), and what ends a connection from the server's side.

use axum::extract::ws::{Message, WebSocket};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::protocol::{self, Code, Failure, Frame, Incoming};
use crate::http::ws;
use crate::limits::TokenBucket;

/// The socket with its metrics and rate limit.
pub(super) struct Link {
    pub ws: WebSocket,
    pub meter: ws::Meter,
    pub limiter: TokenBucket,
    pub max_bytes: usize,
}

/// What one read from the socket gave.
pub(super) enum Read {
    Message(Box<Incoming>),
    /// Answered already (bad input, a limit); carry on.
    Refused,
    Closed,
}

impl Link {
    pub async fn send(&mut self, frame: Frame) -> Result<(), axum::Error> {
        self.meter.sent.inc();
        self.ws.send(Message::Text(frame)).await
    }

    /// Queues a frame without flushing: frames fed together go out in one write.
    pub async fn feed(&mut self, frame: Frame) -> Result<(), axum::Error> {
        use futures::SinkExt;
        self.meter.sent.inc();
        self.ws.feed(Message::Text(frame)).await
    }

    pub async fn flush(&mut self) -> Result<(), axum::Error> {
        use futures::SinkExt;
        self.ws.flush().await
    }

    pub async fn fail(&mut self, id: &Value, f: &Failure) -> Result<(), axum::Error> {
        self.send(protocol::error(id, f)).await
    }

    pub async fn close(&mut self, code: u16, reason: &str) {
        let _ = self.ws.send(ws::close(code, reason)).await;
    }

    /// Tells the client why its deadline ended the connection, and closes.
    pub async fn expire(&mut self, deadline: ws::Deadline) {
        let error = deadline.error();
        let _ = self.fail(&Value::Null, &error.clone().into()).await;
        self.close(ws::POLICY, &error.to_string()).await;
    }

    /// Turns a received frame into a message, answering what cannot be one.
    pub async fn read(&mut self, frame: Option<Result<Message, axum::Error>>) -> Read {
        let text = match frame {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Binary(_))) => {
                let f = Failure::new(
                    Code::InvalidMessage,
                    "binary frames are not supported: send JSON text",
                );
                return self.refuse(&Value::Null, &f).await;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => return Read::Refused,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Read::Closed,
        };
        self.meter.received.inc();
        if text.len() > self.max_bytes {
            let f = Failure::new(
                Code::MessageTooLarge,
                format!("{} bytes is over the {}-byte limit", text.len(), self.max_bytes),
            );
            return self.refuse(&Value::Null, &f).await;
        }
        let parsed = Incoming::parse(text.as_str());
        if !self.limiter.take() {
            let id = parsed.as_ref().map_or(Value::Null, |m| m.id.clone());
            return self
                .refuse(
                    &id,
                    &Failure::new(Code::RateLimited, "too many messages: slow down"),
                )
                .await;
        }
        match parsed {
            Ok(m) => Read::Message(Box::new(m)),
            Err((id, f)) => self.refuse(&id, &f).await,
        }
    }

    async fn refuse(&mut self, id: &Value, f: &Failure) -> Read {
        match self.fail(id, f).await {
            Ok(()) => Read::Refused,
            Err(_) => Read::Closed,
        }
    }
}

/// What ends a connection from the server's side: its credential expiring, or
/// the server shutting down.
pub(super) struct Ends {
    pub expiry: ws::Deadline,
    pub shutdown: CancellationToken,
}
