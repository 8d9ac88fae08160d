//! One `/ws` connection from upgrade to close: the connection limit (a slot once
//! authenticated, a place among those waiting before), the authentication deadline, then requests answered in order while the connection's
//! queued events and link changes keep flowing.

use std::collections::HashMap;
use std::future::Future;

use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::protocol::{self, event, Code, Failure};
use super::{Conn, Control, Outbox};
use crate::auth::{AuthError, Principal};
use crate::gateway::GatewayEvent;
use crate::http::ws::{self, Closed, Connection, Deadline, Ends, Full, Inbound, Ticket};
use crate::limits::TokenBucket;
use crate::metrics::Endpoint;

/// Runs one control connection to its end. Not an `async fn`: the connection's
/// state is built before the future is made and run through `&mut self`, so an
/// idle connection's task holds one copy of it.
pub fn handle_socket(
    control: Control,
    ws: ws::Socket,
    principal: Option<Principal>,
    ticket: Result<Ticket, Full>,
    auth_deadline: std::time::Duration,
    shutdown: CancellationToken,
) -> impl Future<Output = ()> + Send {
    let gateway = control.0.gateway.clone();
    let c = control.config();
    let conn = Connection::new(
        ws,
        ws::Meter::open(gateway.metrics(), Endpoint::control),
        c.max_message_bytes,
    )
    .with_rate_limit(TokenBucket::new(c.rate_per_connection, c.burst_per_connection));
    let auth_within = control.0.auth.enabled().then_some(auth_deadline);
    let ends = Ends::new(
        Deadline::of(auth_within, principal.as_ref(), Instant::now()),
        shutdown,
    );
    // Link changes arrive on the connection's own task: a second task per
    // connection would cost every idle connection its memory.
    let link_events = gateway.events();
    let mut socket = Socket {
        state: Conn {
            out: Outbox::new(c.queue),
            control,
            gateway,
            principal,
            scan: None,
            subs: HashMap::new(),
        },
        conn,
        ends,
        link_events,
        ticket,
    };
    async move { socket.run().await }
}

struct Socket {
    conn: Connection,
    state: Conn,
    ends: Ends,
    link_events: broadcast::Receiver<GatewayEvent>,
    /// The connection's slot, or its place among those waiting to authenticate;
    /// why it was turned away when it has neither.
    ticket: Result<Ticket, Full>,
}

impl Socket {
    async fn run(&mut self) {
        if let Err(full) = self.ticket {
            self.turn_away(full).await;
            return;
        }
        loop {
            tokio::select! {
                biased;
                v = self.state.out.next() => {
                    if Box::pin(self.send_queued(v)).await.is_err() { break; }
                }
                inbound = self.conn.recv() => {
                    // Boxed: the state of handling a message exists only while one
                    // is handled, not in every idle connection's task.
                    if Box::pin(self.on_inbound(inbound)).await.is_err() { break; }
                }
                link = self.link_events.recv() => match link {
                    Ok(e) if !self.state.authenticated() => drop(e),
                    Ok(e) => {
                        if let Some(v) = link_event(&e, &self.state) {
                            if Box::pin(self.send(&v)).await.is_err() { break; }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => self.state.out.lost(n),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                end = self.ends.wait() => {
                    let tell = |error: AuthError| protocol::error(&Value::Null, &error.into()).to_string().into();
                    self.conn.end(end, tell).await;
                    break;
                }
            }
        }
    }

    /// CONNECTION_LIMIT_REACHED, then close (1013: try again later).
    async fn turn_away(&mut self, full: Full) {
        let f = Failure::new(
            Code::ConnectionLimitReached,
            format!("control connections: {full}"),
        );
        let _ = self.send(&protocol::error(&Value::Null, &f)).await;
        self.conn.close(1013, "connection limit reached").await;
    }

    async fn send(&mut self, v: &Value) -> Result<(), Closed> {
        self.conn.send(v.to_string()).await
    }

    /// An event from the queue, then word of any that were dropped.
    async fn send_queued(&mut self, v: Value) -> Result<(), Closed> {
        self.send(&v).await?;
        let n = self.state.out.take_lost();
        if n > 0 {
            let f = Failure::new(
                Code::QueueFull,
                format!("{n} events were dropped: this client reads slower than they arrive"),
            );
            self.send(&protocol::error(&Value::Null, &f)).await?;
        }
        Ok(())
    }

    /// Answers one client message.
    async fn on_inbound(&mut self, inbound: Inbound) -> Result<(), Closed> {
        let max = self.conn.max_bytes();
        let text = match inbound {
            Inbound::Text(t) => t,
            Inbound::Closed => return Err(Closed),
            Inbound::Binary(_) => {
                let f = Failure::new(
                    Code::InvalidMessage,
                    "binary frames are not supported: send JSON text",
                );
                return self.send(&protocol::error(&Value::Null, &f)).await;
            }
            Inbound::TooLarge(len) => {
                let f = Failure::new(
                    Code::MessageTooLarge,
                    format!("{len} bytes is over the {max}-byte limit"),
                );
                return self.send(&protocol::error(&Value::Null, &f)).await;
            }
            Inbound::TooFast(m) => return self.refuse_too_fast(m.text().unwrap_or_default()).await,
        };
        if self.state.principal_rate_limited() {
            return self.refuse_too_fast(&text).await;
        }
        let answer = match protocol::parse(&text) {
            Err((id, f)) => protocol::error(&id, &f),
            Ok(req) => {
                let had = self.state.principal.as_ref().map(|p| p.expires_at);
                // Keep events flowing while a long request (CONNECT) runs.
                let out = self.state.out.clone();
                let mut work = Box::pin(self.state.dispatch(req));
                let answer = loop {
                    tokio::select! {
                        done = &mut work => break done,
                        v = out.next() => {
                            let _ = self.conn.send(v.to_string()).await;
                        }
                    }
                };
                drop(work);
                // AUTHENTICATE changed the credential: its deadline replaces the old,
                // and the connection now needs a slot of its own.
                if self.state.principal.as_ref().map(|p| p.expires_at) != had {
                    let p = self.state.principal.as_ref();
                    self.ends.set(Deadline::of(None, p, Instant::now()));
                    if let Err(full) = self.ticket.as_mut().map_or(Ok(()), Ticket::authenticated) {
                        self.turn_away(full).await;
                        return Err(Closed);
                    }
                }
                answer
            }
        };
        if answer.is_null() {
            return Ok(());
        }
        self.send(&answer).await
    }

    async fn refuse_too_fast(&mut self, text: &str) -> Result<(), Closed> {
        self.state.gateway.metrics().rate_limited.inc();
        let id = protocol::parse(text).map(|r| r.id).unwrap_or(Value::Null);
        let f = Failure::new(Code::RateLimitExceeded, "too many requests: slow down");
        self.send(&protocol::error(&id, &f)).await
    }
}

/// A link change as a CONNECTED / DISCONNECTED event, if this connection may see the device.
fn link_event(e: &GatewayEvent, conn: &Conn) -> Option<Value> {
    let (kind, id, mut fields) = match e {
        GatewayEvent::Connected { id, mtu } => ("CONNECTED", id, json!({"mtu": mtu})),
        GatewayEvent::Reconnected { id, mtu } => ("CONNECTED", id, json!({"mtu": mtu, "reconnected": true})),
        GatewayEvent::Disconnected {
            id,
            reason,
            will_reconnect,
        } => (
            "DISCONNECTED",
            id,
            json!({"reason": reason, "willReconnect": will_reconnect}),
        ),
    };
    let name = conn.gateway.name_of(id);
    if !crate::auth::admits(conn.principal.as_ref(), id, name.as_deref()) {
        return None;
    }
    fields["deviceId"] = json!(id);
    Some(event(kind, fields))
}
