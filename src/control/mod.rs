//! The control WebSocket at `/ws`: full BLE control for web apps (scan, connect,
//! read, write, subscribe, batch), with the original MCP BLE server's message set
//! (`docs/control-protocol.md`). One task per connection; requests are answered in
//! order while events keep flowing; every request is authenticated (when
//! credentials are configured), scoped and rate-limited.
//!
//! - `protocol.rs`: wire shapes, strict parsing, error codes.
//! - `scan.rs`, `device.rs`, `gatt.rs`: one file per message family.
//! - `rest.rs`: the same operations over REST at `/api/v1`, with OpenAPI.

mod device;
mod gatt;
pub mod protocol;
pub mod rest;
mod scan;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use self::protocol::{event, reply, Code, Failure, Request};
use crate::auth::{AuthError, Authenticator, Principal, Scope};
use crate::ble::{DeviceId, Uuid};
use crate::gateway::{Gateway, GatewayEvent};
use crate::http::limit::RateLimit;
use crate::http::ws;
use crate::limits::TokenBucket;
use crate::metrics::Endpoint;
use crate::sync::{lock, AbortOnDrop};

/// The `[control]` table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// Open control connections at once; more get CONNECTION_LIMIT_REACHED.
    pub max_connections: usize,
    /// Requests a second one connection may make, sustained.
    pub rate_per_connection: f64,
    pub burst_per_connection: f64,
    /// Requests a second one principal may make over all its connections.
    pub rate_per_principal: f64,
    pub burst_per_principal: f64,
    /// Larger messages get MESSAGE_TOO_LARGE.
    pub max_message_bytes: usize,
    /// Events a connection may have waiting before they are dropped (QUEUE_FULL).
    pub queue: usize,
    /// Lifetime of the session tokens AUTHENTICATED hands out.
    pub session_ttl_secs: u64,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            max_connections: 64,
            rate_per_connection: 50.0,
            burst_per_connection: 100.0,
            rate_per_principal: 200.0,
            burst_per_principal: 400.0,
            max_message_bytes: 64 * 1024,
            queue: 1024,
            session_ttl_secs: 3600,
        }
    }
}

struct Inner {
    gateway: Gateway,
    auth: Arc<Authenticator>,
    config: ControlConfig,
    slots: Arc<Semaphore>,
    /// Session token → the principal it stands for, whose `expires_at` is when the
    /// token expires (never after the credential it was issued for).
    sessions: Mutex<HashMap<String, Principal>>,
    /// One bucket per credential over all its connections (and its REST calls).
    per_principal: RateLimit,
}

/// The control endpoint's shared state.
#[derive(Clone)]
pub struct Control(Arc<Inner>);

impl Control {
    pub fn new(gateway: Gateway, auth: Arc<Authenticator>, config: ControlConfig) -> Self {
        let per_principal = RateLimit::new(config.rate_per_principal, config.burst_per_principal);
        Control(Arc::new(Inner {
            slots: Arc::new(Semaphore::new(config.max_connections)),
            gateway,
            auth,
            config,
            sessions: Mutex::new(HashMap::new()),
            per_principal,
        }))
    }

    pub fn config(&self) -> &ControlConfig {
        &self.0.config
    }

    /// Takes one request from a principal's rate-limit bucket; false when empty.
    pub fn take_principal_token(&self, subject: &str) -> bool {
        self.0.per_principal.take(subject)
    }

    /// A connection slot, or `None` when the limit is reached.
    pub fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.0.slots.clone().try_acquire_owned().ok()
    }
}

/// A connection's send queue: replies and events as JSON.
pub(crate) type Outbox = crate::outbox::Outbox<Value>;

pub(crate) struct ScanTask {
    pub task: AbortOnDrop,
    pub stop: Arc<Notify>,
}

/// One connection's state.
pub(crate) struct Conn {
    control: Control,
    pub gateway: Gateway,
    pub principal: Option<Principal>,
    pub out: Outbox,
    pub scan: Option<ScanTask>,
    pub subs: HashMap<(DeviceId, Uuid, Uuid), AbortOnDrop>,
    limiter: TokenBucket,
}

impl Conn {
    /// The device allow-list of the principal admits this device.
    pub fn check_device(&self, id: &DeviceId) -> Result<(), Failure> {
        let name = self.gateway.name_of(id);
        Ok(crate::auth::check_device(
            self.principal.as_ref(),
            id,
            name.as_deref(),
        )?)
    }

    fn auth_required(&self) -> bool {
        self.control.0.auth.enabled()
    }

    /// Whether this connection may be sent events: with credentials configured,
    /// only once it has authenticated.
    fn authenticated(&self) -> bool {
        !self.auth_required() || self.principal.is_some()
    }

    /// Checks authentication, expiry and the scope a request type needs.
    fn authorize(&self, kind: &str) -> Result<(), Failure> {
        if !self.auth_required() || matches!(kind, "AUTHENTICATE" | "PING") {
            return Ok(());
        }
        let p = self.principal.as_ref().ok_or(AuthError::NotAuthenticated)?;
        if p.expired() {
            return Err(AuthError::Expired.into());
        }
        let scope = match kind {
            "CHARACTERISTIC_WRITE" => Scope::BleWrite,
            _ => Scope::BleRead,
        };
        p.require(scope)?;
        Ok(())
    }

    fn rate_limited(&mut self) -> bool {
        let conn_ok = self.limiter.take();
        let principal_ok = match &self.principal {
            None => true,
            Some(p) => self.control.take_principal_token(&p.subject),
        };
        !(conn_ok && principal_ok)
    }

    fn authenticate(&mut self, req: &Request) -> Result<Option<Value>, Failure> {
        let inner = &self.control.0;
        let principal = if let Some(session) = req.opt_str("sessionToken")? {
            let mut sessions = lock(&inner.sessions);
            match sessions.get(session) {
                Some(p) if !p.expired() => p.clone(),
                Some(_) => {
                    sessions.remove(session);
                    return Err(AuthError::Expired.into());
                }
                None => return Err(AuthError::InvalidToken("unknown session token".into()).into()),
            }
        } else {
            let credential = req
                .opt_str("apiKey")?
                .or(req.opt_str("token")?)
                .ok_or_else(|| Failure::params("AUTHENTICATE needs apiKey, token (JWT) or sessionToken"))?;
            inner.auth.verify(credential)?
        };
        let ttl_end = jsonwebtoken::get_current_timestamp() + inner.config.session_ttl_secs;
        let expires_at = principal.expires_at.map_or(ttl_end, |exp| exp.min(ttl_end));
        let token = uuid::Uuid::new_v4().to_string();
        {
            let mut sessions = lock(&inner.sessions);
            sessions.retain(|_, p| !p.expired());
            let session = Principal {
                expires_at: Some(expires_at),
                ..principal.clone()
            };
            sessions.insert(token.clone(), session);
        }
        let scopes: Vec<&str> = principal.scopes.iter().map(|s| s.as_str()).collect();
        let out = reply(
            "AUTHENTICATED",
            &req.id,
            json!({"subject": principal.subject, "scopes": scopes, "sessionToken": token, "expiresAt": expires_at * 1000}),
        );
        self.principal = Some(principal);
        Ok(Some(out))
    }

    /// Answers one request; `None` when the reply comes later (START_SCAN).
    async fn dispatch(&mut self, req: Request) -> Value {
        let result = match self.authorize(&req.kind) {
            Err(f) => Err(f),
            Ok(()) => match req.kind.as_str() {
                "AUTHENTICATE" => self.authenticate(&req),
                "PING" => Ok(Some(reply(
                    "PONG",
                    &req.id,
                    json!({"timestamp": crate::gateway::serde_helpers::to_unix_ms(std::time::SystemTime::now())}),
                ))),
                "START_SCAN" => scan::start(self, &req).await,
                "STOP_SCAN" => scan::stop(self, &req),
                "GET_DEVICES" => scan::devices(self, &req),
                "CONNECT" => device::connect(self, &req).await,
                "DISCONNECT" => device::disconnect(self, &req).await,
                "GET_SERVICES" => device::services(self, &req).await,
                "CHARACTERISTIC_READ" => gatt::read(self, &req).await,
                "CHARACTERISTIC_WRITE" => gatt::write(self, &req).await,
                "SUBSCRIBE" => gatt::subscribe(self, &req).await,
                "UNSUBSCRIBE" => gatt::unsubscribe(self, &req),
                "BATCH" => Box::pin(self.batch(&req)).await,
                other => Err(Failure::new(
                    Code::InvalidMessageType,
                    format!("unknown message type {other:?}"),
                )),
            },
        };
        match result {
            Ok(Some(v)) => v,
            Ok(None) => Value::Null,
            Err(f) => protocol::error(&req.id, &f),
        }
    }

    /// Runs the requests in order; the reply lists their replies in the same order.
    async fn batch(&mut self, req: &Request) -> Result<Option<Value>, Failure> {
        let Some(Value::Array(requests)) = req.body.get("requests") else {
            return Err(Failure::params("BATCH needs requests: an array of messages"));
        };
        if requests.len() > 100 {
            return Err(Failure::params("a BATCH holds at most 100 requests"));
        }
        let mut results = Vec::with_capacity(requests.len());
        for r in requests.clone() {
            let result = match protocol::parse_value(r) {
                Err((id, f)) => protocol::error(&id, &f),
                Ok(sub) if matches!(sub.kind.as_str(), "BATCH" | "START_SCAN") => protocol::error(
                    &sub.id,
                    &Failure::params(format!("{} cannot be batched", sub.kind)),
                ),
                Ok(sub) => self.dispatch(sub).await,
            };
            results.push(result);
        }
        Ok(Some(reply("BATCH_RESULT", &req.id, json!({"results": results}))))
    }
}

/// Runs one control connection to its end.
pub async fn handle_socket(
    control: Control,
    mut ws: WebSocket,
    principal: Option<Principal>,
    slot: Option<OwnedSemaphorePermit>,
    auth_deadline: std::time::Duration,
    shutdown: CancellationToken,
) {
    let Some(_slot) = slot else {
        let f = Failure::new(
            Code::ConnectionLimitReached,
            format!("at most {} control connections", control.config().max_connections),
        );
        let _ = send(&mut ws, &protocol::error(&Value::Null, &f)).await;
        let _ = ws
            .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                code: 1013,
                reason: "connection limit reached".into(),
            })))
            .await;
        return;
    };
    let gateway = control.0.gateway.clone();
    let meter = ws::Meter::open(gateway.metrics(), Endpoint::control);
    let (received, sent) = (&meter.received, &meter.sent);
    let opened = tokio::time::Instant::now();
    let outbox = Outbox::new(control.config().queue);
    let c = control.config().clone();
    let mut conn = Conn {
        control: control.clone(),
        gateway: gateway.clone(),
        principal,
        out: outbox.clone(),
        scan: None,
        subs: HashMap::new(),
        limiter: TokenBucket::new(c.rate_per_connection, c.burst_per_connection),
    };
    // Link changes arrive on the connection's own task: a second task per
    // connection would cost every idle connection its memory.
    let mut link_events = gateway.events();
    let max = c.max_message_bytes;
    loop {
        let deadline = ws::Deadline::of(
            conn.auth_required().then_some(auth_deadline),
            conn.principal.as_ref(),
            opened,
        );
        tokio::select! {
            biased;
            v = outbox.next() => {
                sent.inc();
                if send(&mut ws, &v).await.is_err() { break; }
                let n = outbox.take_lost();
                if n > 0 {
                    let f = Failure::new(Code::QueueFull, format!("{n} events were dropped: this client reads slower than they arrive"));
                    if send(&mut ws, &protocol::error(&Value::Null, &f)).await.is_err() { break; }
                }
            }
            frame = ws.recv() => {
                // Boxed: the state of handling a frame exists only while one is handled,
                // not in every idle connection's task.
                let io = Io { ws: &mut ws, outbox: &outbox, sent };
                if !Box::pin(on_frame(&mut conn, io, frame, received, max)).await {
                    break;
                }
            }
            link = link_events.recv() => match link {
                Ok(e) if !conn.authenticated() => drop(e),
                Ok(e) => {
                    if let Some(v) = link_event(&e, &conn) {
                        sent.inc();
                        if send(&mut ws, &v).await.is_err() { break; }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => conn.out.lost(n),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            passed = deadline.passed() => {
                let error = passed.error();
                let _ = send(&mut ws, &protocol::error(&Value::Null, &error.clone().into())).await;
                let _ = ws.send(ws::close(ws::POLICY, &error.to_string())).await;
                break;
            }
            _ = shutdown.cancelled() => {
                let _ = ws.send(ws::close(1001, "server shutting down")).await;
                break;
            }
        }
    }
}

/// What `on_frame` writes to.
struct Io<'a> {
    ws: &'a mut WebSocket,
    outbox: &'a Outbox,
    sent: &'a prometheus_client::metrics::counter::Counter,
}

impl Io<'_> {
    async fn send(&mut self, v: &Value) -> Result<(), axum::Error> {
        self.sent.inc();
        send(self.ws, v).await
    }
}

/// Handles one client frame; false when the connection should end.
async fn on_frame(
    conn: &mut Conn,
    mut io: Io<'_>,
    frame: Option<Result<Message, axum::Error>>,
    received: &prometheus_client::metrics::counter::Counter,
    max: usize,
) -> bool {
    let text = match frame {
        Some(Ok(Message::Text(t))) => t.to_string(),
        Some(Ok(Message::Binary(_))) => {
            let f = Failure::new(
                Code::InvalidMessage,
                "binary frames are not supported: send JSON text",
            );
            return io.send(&protocol::error(&Value::Null, &f)).await.is_ok();
        }
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => return true,
        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return false,
    };
    received.inc();
    let answer = if text.len() > max {
        protocol::error(
            &Value::Null,
            &Failure::new(
                Code::MessageTooLarge,
                format!("{} bytes is over the {max}-byte limit", text.len()),
            ),
        )
    } else if conn.rate_limited() {
        conn.gateway.metrics().rate_limited.inc();
        let id = protocol::parse(&text).map(|r| r.id).unwrap_or(Value::Null);
        protocol::error(
            &id,
            &Failure::new(Code::RateLimitExceeded, "too many requests: slow down"),
        )
    } else {
        match protocol::parse(&text) {
            Err((id, f)) => protocol::error(&id, &f),
            Ok(req) => {
                // Keep events flowing while a long request (CONNECT) runs.
                let outbox = io.outbox.clone();
                let mut work = Box::pin(conn.dispatch(req));
                loop {
                    tokio::select! {
                        done = &mut work => break done,
                        v = outbox.next() => {
                            let _ = io.send(&v).await;
                        }
                    }
                }
            }
        }
    };
    answer.is_null() || io.send(&answer).await.is_ok()
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

async fn send(ws: &mut WebSocket, v: &Value) -> Result<(), axum::Error> {
    ws.send(Message::Text(v.to_string().into())).await
}
