//! One `/hub` connection from upgrade to close: the connection limit, the
//! credential (at the upgrade or as a first `auth` message), the role (device or
//! client), the connection log, then the role's message loop.

use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::failure::{Code, Failure};
use super::frame;
use super::framed::{Framed, Read};
use super::message::Auth;
use super::{client_role, device_role};
use crate::auth::{Principal, Scope};
use crate::http::ws::{self, Connection, Deadline, Ends, Full, Ticket};
use crate::hub::Hub;
use crate::limits::TokenBucket;
use crate::metrics::Endpoint;
use crate::store::{now_ms, ConnectionRecord};

/// What the upgrade request said about the connection.
#[derive(Clone, Debug, Default)]
pub struct Hello {
    /// From a credential at the upgrade (header, `token=` or `access_token=`).
    pub principal: Option<Principal>,
    /// `role=device|client` in the query; otherwise from the credential's scopes.
    pub role: Option<String>,
    /// `device=` in the query: the device id, when the credential does not fix it.
    pub device: Option<String>,
    /// The peer address, for the connection log.
    pub remote: Option<String>,
    /// `batch=1`: a client takes live messages that queued up together as one
    /// `{"type":"batch","messages":[…]}` frame.
    pub batch: bool,
    /// The client chose the `gattway.cbor` subprotocol: messages go both ways as
    /// CBOR (binary) rather than JSON text.
    pub cbor: bool,
    /// Without a credential at the upgrade (and credentials configured), how long
    /// the connection has to send `auth`.
    pub auth_deadline: std::time::Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Role {
    Device(String),
    Client,
}

/// Runs one hub connection to its end. Not an `async fn`: the connection's state
/// is built before the future is made and run through `&mut self`, so an idle
/// connection's task holds one copy of it.
pub fn handle_socket(
    hub: Hub,
    ws: ws::Socket,
    hello: Hello,
    ticket: Result<Ticket, Full>,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send {
    let c = hub.config();
    let conn = Connection::new(
        ws,
        ws::Meter::open(hub.metrics(), Endpoint::hub),
        c.max_message_bytes,
    )
    .with_rate_limit(TokenBucket::new(c.rate_per_connection, c.burst_per_connection));
    let mut socket = Socket {
        link: Framed {
            conn,
            cbor: hello.cbor,
        },
        hub,
        hello: Some(Box::new(hello)),
        principal: None,
        ticket,
        ends: Ends::new(Deadline::None, shutdown),
    };
    async move { socket.run().await }
}

struct Socket {
    hub: Hub,
    link: Framed,
    /// What the upgrade asked, until the connection is identified; boxed so that
    /// afterwards only the principal stays in the task.
    hello: Option<Box<Hello>>,
    /// Boxed: 8 bytes in every task rather than 88, most of them for connections
    /// without a credential (and devices, which need none once identified).
    principal: Option<Box<Principal>>,
    /// A slot of `hub.max_connections` once authenticated; before, a place in
    /// the door's budget of sockets waiting to authenticate.
    ticket: Result<Ticket, Full>,
    ends: Ends,
}

impl Socket {
    /// The connection's life: opened (a boxed step, so that an idle task holds
    /// none of its state), its role's loop, then the log's close.
    async fn run(&mut self) {
        let Some(opened) = Box::pin(self.open()).await else {
            return;
        };
        let (hub, link, ends) = (&self.hub, &mut self.link, &mut self.ends);
        let (role, reason) = match opened.role {
            Role::Device(id) => {
                // One allocation of the id, shared by presence and command routing.
                let id: std::sync::Arc<str> = id.into();
                ("device", Box::pin(device_role::run(hub, link, &id, ends)).await)
            }
            Role::Client => {
                let principal = self.principal.as_deref();
                let batch = opened.batch;
                (
                    "client",
                    Box::pin(client_role::run(hub, link, principal, batch, ends)).await,
                )
            }
        };
        hub.connections().closed(opened.log_id, reason);
        tracing::info!(role, reason, "hub connection ended");
    }

    /// Takes the slot, identifies the connection and logs it; `None` when it was
    /// turned away.
    async fn open(&mut self) -> Option<Opened> {
        let (hub, link) = (&self.hub, &mut self.link);
        let full = |full: Full| Failure::new(Code::RateLimited, format!("hub connections: {full}"));
        if let Err(f) = &self.ticket {
            link.turn_away(&full(*f), 1013, "connection limit reached").await;
            return None;
        }
        let mut hello = self.hello.take()?;
        let role = match identify(hub, link, &mut hello).await {
            Ok(role) => role,
            Err(f) => {
                link.turn_away(&f, ws::POLICY, "not allowed").await;
                return None;
            }
        };
        // Authenticated now: from the waiting budget to one of the hub's slots.
        if let Err(f) = self.ticket.as_mut().map_or(Ok(()), Ticket::authenticated) {
            link.turn_away(&full(f), 1013, "connection limit reached").await;
            return None;
        }
        let (role_name, device) = match &role {
            Role::Device(d) => ("device", Some(d.clone())),
            Role::Client => ("client", None),
        };
        let log_id = hub.connections().opened(ConnectionRecord {
            id: 0,
            role: role_name.into(),
            subject: hello.principal.as_ref().map(|p| p.subject.clone()),
            device,
            remote: hello.remote.take(),
            connected_at: now_ms(),
            disconnected_at: None,
            reason: None,
        });
        tracing::info!(role = role_name, subject = ?hello.principal.as_ref().map(|p| &p.subject), "hub connection");
        // Authenticated by now: the only deadline left is the credential's expiry.
        self.ends
            .set(Deadline::of(None, hello.principal.as_ref(), Instant::now()));
        // A device is identified by now; only a client checks its principal again.
        if role == Role::Client {
            self.principal = hello.principal.take().map(Box::new);
        }
        Some(Opened {
            role,
            batch: hello.batch,
            log_id,
        })
    }
}

/// An identified connection, logged.
struct Opened {
    role: Role,
    /// A client's `batch=1`.
    batch: bool,
    /// Its row in the connection log.
    log_id: i64,
}

/// Who is connecting, and as what.
async fn identify(hub: &Hub, link: &mut Framed, hello: &mut Hello) -> Result<Role, Failure> {
    if hub.auth().enabled() && hello.principal.is_none() {
        hello.principal = Some(first_message_auth(hub, link, hello.auth_deadline).await?);
    }
    let p = hello.principal.as_ref();
    let wants = hello.role.as_deref().map(str::to_ascii_lowercase);
    let device_role = match wants.as_deref() {
        Some("device") => true,
        Some("client") => false,
        Some(other) => {
            return Err(Failure::params(format!(
                "role must be device or client, not {other:?}"
            )))
        }
        // With a credential, its scopes say; without (no auth configured), a
        // `device=` says.
        None => match p {
            Some(p) => p.has(Scope::HubDevice) && !p.has(Scope::HubClient),
            None => hello.device.is_some(),
        },
    };
    if !device_role {
        if let Some(p) = p {
            p.require(Scope::HubClient)?;
        }
        return Ok(Role::Client);
    }
    // A device credential is the one device it names; it cannot speak for another.
    let id = match (p, &hello.device) {
        (Some(p), asked) => {
            p.require(Scope::HubDevice)?;
            let own = p.device_identity()?;
            if asked.as_deref().is_some_and(|asked| asked != own) {
                return Err(crate::auth::AuthError::NotThisDevice {
                    credential: own.to_string(),
                    asked: asked.clone().unwrap_or_default(),
                }
                .into());
            }
            own.to_string()
        }
        (None, Some(d)) => d.clone(),
        (None, None) => return Err(Failure::params("a device connection needs device=ID in the URL")),
    };
    crate::hub::accept::device_id(&id)?;
    Ok(Role::Device(id))
}

/// Waits for `{"type":"auth","token":…}` as the first message.
async fn first_message_auth(
    hub: &Hub,
    link: &mut Framed,
    within: std::time::Duration,
) -> Result<Principal, Failure> {
    let missing = || {
        Failure::new(
            Code::NotAuthenticated,
            "send a credential: token=, Authorization, or an auth message first",
        )
    };
    let inbound = tokio::time::timeout(within, link.conn.recv())
        .await
        .map_err(|_| missing())?;
    let Read::Message(envelope) = link.read(inbound).await else {
        return Err(missing());
    };
    let auth = Auth::read(&envelope).ok_or_else(missing)?;
    let p = hub.auth().verify(&auth.token)?;
    let _ = link
        .send(frame::reply(
            "authenticated",
            &envelope.id,
            json!({"subject": p.subject}),
        ))
        .await;
    Ok(p)
}
