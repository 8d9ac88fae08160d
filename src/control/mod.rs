//! The control WebSocket at `/ws`: full BLE control for web apps (scan, connect,
//! read, write, subscribe, batch), with the original MCP BLE server's message set
//! (`docs/control-protocol.md`). One task per connection; requests are answered in
//! order while events keep flowing; every request is authenticated (when
//! credentials are configured), scoped and rate-limited.
//!
//! - `protocol.rs`: wire shapes, strict parsing, error codes.
//! - `scan.rs`, `connection.rs` (connect, disconnect, the GATT tree), `gatt.rs`:
//!   one file per message family.
//! - `rest/`: the same operations over REST at `/api/v1`, with OpenAPI.

mod connection;
mod gatt;
pub mod protocol;
pub mod rest;
mod scan;
mod sessions;
mod socket;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Notify;

pub use self::socket::handle_socket;

use self::protocol::{reply, Authenticate, Batch, Failure, Message, Request};
use crate::auth::{AuthError, Authenticator, Principal};
use crate::ble::{DeviceId, Uuid};
use crate::gateway::Gateway;
use crate::http::limit::RateLimit;
use crate::sync::{lock, AbortOnDrop};

/// The `[control]` table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// Open control connections at once; more get CONNECTION_LIMIT_REACHED. Only
    /// connections that authenticated hold one (those still to authenticate wait
    /// in `http.max_unauthenticated_websockets`).
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
    /// Session tokens one credential holds at once; minting one more forgets its
    /// oldest (any credential may send AUTHENTICATE as fast as it likes).
    pub max_sessions_per_principal: usize,
    /// Session tokens kept over all credentials; past it, the oldest is forgotten.
    pub max_sessions: usize,
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
            max_sessions_per_principal: 64,
            max_sessions: 10_000,
        }
    }
}

struct Inner {
    gateway: Gateway,
    auth: Arc<Authenticator>,
    config: ControlConfig,
    slots: crate::http::ws::Slots,
    /// The session tokens handed out, bounded per credential and in all.
    sessions: Mutex<sessions::Sessions>,
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
            slots: crate::http::ws::Slots::new(config.max_connections),
            sessions: Mutex::new(sessions::Sessions::new(
                config.max_sessions_per_principal,
                config.max_sessions,
            )),
            gateway,
            auth,
            config,
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

    /// A new connection's ticket: a slot when it is authenticated already (or
    /// credentials are off), else a place in the door's `waiting` budget.
    pub fn admit(
        &self,
        waiting: &crate::http::ws::Waiting,
        authenticated: bool,
    ) -> Result<crate::http::ws::Ticket, crate::http::ws::Full> {
        let authenticated = authenticated || !self.0.auth.enabled();
        self.0.slots.admit(waiting, authenticated)
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

    /// Checks authentication, expiry and the scope a message needs.
    fn authorize(&self, message: &Message) -> Result<(), Failure> {
        let Some(scope) = message.scope().filter(|_| self.auth_required()) else {
            return Ok(());
        };
        let p = self.principal.as_ref().ok_or(AuthError::NotAuthenticated)?;
        if p.expired() {
            return Err(AuthError::Expired.into());
        }
        p.require(scope)?;
        Ok(())
    }

    /// The credential's bucket over all its connections is empty (the connection's
    /// own is checked as the message is read).
    fn principal_rate_limited(&self) -> bool {
        self.principal
            .as_ref()
            .is_some_and(|p| !self.control.take_principal_token(&p.subject))
    }

    fn authenticate(&mut self, id: &Value, with: Authenticate) -> Result<Option<Value>, Failure> {
        let inner = &self.control.0;
        let principal = if let Some(session) = &with.session_token {
            lock(&inner.sessions).get(session)?
        } else {
            let credential = (with.api_key.as_deref())
                .or(with.token.as_deref())
                .ok_or_else(|| Failure::params("AUTHENTICATE needs apiKey, token (JWT) or sessionToken"))?;
            inner.auth.verify(credential)?
        };
        let ttl_end = jsonwebtoken::get_current_timestamp() + inner.config.session_ttl_secs;
        let expires_at = principal.expires_at.map_or(ttl_end, |exp| exp.min(ttl_end));
        let session = Principal {
            expires_at: Some(expires_at),
            ..principal.clone()
        };
        let token = lock(&inner.sessions).mint(session);
        let scopes: Vec<&str> = principal.scopes.iter().map(|s| s.as_str()).collect();
        let out = reply(
            "AUTHENTICATED",
            id,
            json!({"subject": principal.subject, "scopes": scopes, "sessionToken": token, "expiresAt": expires_at * 1000}),
        );
        self.principal = Some(principal);
        Ok(Some(out))
    }

    /// Answers one request; `Value::Null` when the reply comes later (START_SCAN).
    async fn dispatch(&mut self, req: Request) -> Value {
        let Request { id, message } = req;
        let result = match self.authorize(&message) {
            Err(f) => Err(f),
            Ok(()) => self.apply(&id, message).await,
        };
        match result {
            Ok(Some(v)) => v,
            Ok(None) => Value::Null,
            Err(f) => protocol::error(&id, &f),
        }
    }

    /// What an authorized message does; `None` when its reply comes later.
    async fn apply(&mut self, id: &Value, message: Message) -> Result<Option<Value>, Failure> {
        match message {
            Message::Authenticate(with) => self.authenticate(id, with.get()?),
            Message::Ping => Ok(Some(reply(
                "PONG",
                id,
                json!({"timestamp": crate::gateway::serde_helpers::to_unix_ms(std::time::SystemTime::now())}),
            ))),
            Message::StartScan(scan) => scan::start(self, id, scan).await,
            Message::StopScan => scan::stop(self, id),
            Message::GetDevices => scan::devices(self, id),
            Message::Connect(to) => connection::connect(self, id, to.get()?).await,
            Message::Disconnect(from) => connection::disconnect(self, id, from.get()?).await,
            Message::GetServices(of) => connection::services(self, id, of.get()?).await,
            Message::CharacteristicRead(at) => gatt::read(self, id, at.get()?).await,
            Message::CharacteristicWrite(w) => gatt::write(self, id, w.get()?).await,
            Message::DescriptorRead(at) => gatt::read_descriptor(self, id, at.get()?).await,
            Message::DescriptorWrite(w) => gatt::write_descriptor(self, id, w.get()?).await,
            Message::Subscribe(at) => gatt::subscribe(self, id, at.get()?).await,
            Message::Unsubscribe(at) => gatt::unsubscribe(self, id, at.get()?),
            Message::Batch(batch) => Box::pin(self.batch(id, batch.get()?)).await,
        }
    }

    /// Runs the requests in order; the reply lists their replies in the same order.
    async fn batch(&mut self, id: &Value, batch: Batch) -> Result<Option<Value>, Failure> {
        let mut results = Vec::with_capacity(batch.requests.0.len());
        for parsed in batch.requests.0 {
            let result = match parsed {
                Err((id, f)) => protocol::error(&id, &f),
                Ok(sub) => match sub.message {
                    // A BATCH's reply lists every reply: none may come later.
                    Message::Batch(_) => unbatchable(&sub.id, "BATCH"),
                    Message::StartScan(_) => unbatchable(&sub.id, "START_SCAN"),
                    _ => self.dispatch(sub).await,
                },
            };
            results.push(result);
        }
        Ok(Some(reply("BATCH_RESULT", id, json!({"results": results}))))
    }
}

fn unbatchable(id: &Value, kind: &str) -> Value {
    protocol::error(id, &Failure::params(format!("{kind} cannot be batched")))
}
