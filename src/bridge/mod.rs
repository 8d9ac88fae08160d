//! The WebSocket bridge, wire-compatible with ble-mcp-test: a web app (or its
//! Playwright suite, through the ble-mcp-test Web Bluetooth mock or `NodeBleClient`)
//! opens `ws://HOST:PORT/?service=…&write=…&notify=…` and streams bytes to and from
//! one characteristic pair of one device.
//!
//! - `protocol.rs`: query parameters, messages and close codes (the wire).
//! - `session.rs`: one actor per bridge session. It holds the device's lease (one
//!   session per device), the notification subscription, the IDLE → ACTIVE →
//!   EVICTING → IDLE state machine and the idle/grace timers, so every transition
//!   has a single owner.
//! - `socket.rs`: one task per WebSocket: parses frames, talks to its session.
//! - this file: the registry of sessions, and opening or resuming one.

pub mod protocol;
mod session;
mod socket;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use self::protocol::{close, ConnectParams, ServerMessage};
use self::session::{Outgoing, ReleaseReason, SessionHandle};
pub use self::socket::handle_socket;
use crate::auth::constant_time_eq;
use crate::ble::{DeviceId, GattTree, ScanFilter};
use crate::error::ErrorKind;
use crate::gateway::{Gateway, GatewayError};
use crate::sync::lock;

/// The `[bridge]` table of the config file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    /// An attached client silent this long gets an `eviction_warning`.
    pub idle_timeout_ms: u64,
    /// After the warning, this long for any message (a `keepalive` will do) to
    /// cancel the eviction.
    pub eviction_grace_ms: u64,
    /// After a session's last socket closes, the device stays connected this long
    /// for a socket with the same `session` to resume it.
    pub session_grace_ms: u64,
    /// Connection timeout when the client gives none.
    pub connect_timeout_ms: u64,
    /// Largest frame accepted; larger ones get an `error` and are dropped.
    pub max_frame_bytes: usize,
    /// Secret for `admin_cleanup` (empty: admin clean-up is refused).
    pub admin_token: String,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            idle_timeout_ms: 45_000,
            eviction_grace_ms: 5_000,
            session_grace_ms: 60_000,
            connect_timeout_ms: 10_000,
            max_frame_bytes: 64 * 1024,
            admin_token: String::new(),
        }
    }
}

struct Registry {
    sessions: HashMap<String, SessionHandle>,
    /// Devices whose session is being released: new clients get 4006 until it ends.
    releasing: HashSet<DeviceId>,
}

/// The bridge: shared by every bridge socket.
#[derive(Clone)]
pub struct Bridge {
    gateway: Gateway,
    config: Arc<BridgeConfig>,
    registry: Arc<Mutex<Registry>>,
}

/// Why a socket could not be given a session: sent as `error`, then the close.
pub(crate) struct OpenError {
    pub message: ServerMessage,
    pub close_code: u16,
    pub reason: String,
}

impl OpenError {
    fn new(code: &'static str, close_code: u16, text: impl Into<String>) -> Self {
        let text = text.into();
        OpenError {
            message: ServerMessage::error(code, text.clone()),
            close_code,
            reason: text,
        }
    }
}

impl Bridge {
    pub fn new(gateway: Gateway, config: BridgeConfig) -> Self {
        Bridge {
            gateway,
            config: Arc::new(config),
            registry: Arc::new(Mutex::new(Registry {
                sessions: HashMap::new(),
                releasing: HashSet::new(),
            })),
        }
    }

    pub fn config(&self) -> &BridgeConfig {
        &self.config
    }

    /// Live bridge sessions.
    pub fn session_count(&self) -> usize {
        lock(&self.registry).sessions.len()
    }

    /// Removes a released session, if the registry entry is still that session's
    /// (a client may already have opened a new session under the same id).
    fn forget(&self, session_id: &str, token: &str, device: &DeviceId) {
        let mut reg = lock(&self.registry);
        if reg.sessions.get(session_id).is_some_and(|s| s.token == token) {
            reg.sessions.remove(session_id);
        }
        reg.releasing.remove(device);
    }

    pub(crate) fn mark_releasing(&self, device: &DeviceId) {
        lock(&self.registry).releasing.insert(device.clone());
    }

    /// Attaches a socket to its session: resumes `params.session` when it is alive,
    /// otherwise finds the device, takes its lease, connects and subscribes.
    pub(crate) async fn open(
        &self,
        params: &ConnectParams,
        principal: Option<&crate::auth::Principal>,
        socket_id: u64,
        outgoing: mpsc::Sender<Outgoing>,
    ) -> Result<SessionHandle, OpenError> {
        if let Some(sid) = &params.session {
            let existing = lock(&self.registry).sessions.get(sid).cloned();
            if let Some(handle) = existing {
                if !handle.may_resume(params, principal) {
                    tracing::warn!(session = %sid, "bridge resume refused: neither the session's token nor its credential");
                    return Err(OpenError::new(
                        "session_in_use",
                        1008,
                        format!("Session '{sid}' belongs to another client: resume it with session_token=<the token of its connected message>"),
                    ));
                }
                let allowed = crate::auth::admits(
                    principal,
                    &handle.device,
                    self.gateway.name_of(&handle.device).as_deref(),
                );
                if allowed && handle.params_match(params) && handle.attach(socket_id, outgoing.clone()).await
                {
                    tracing::info!(session = %sid, device = %handle.device, "bridge session resumed");
                    return Ok(handle);
                }
            }
        }
        let session_id = params
            .session
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let timeout = Duration::from_millis(params.timeout_ms.unwrap_or(self.config.connect_timeout_ms));
        let device = self.find_device(params, timeout).await?;
        let name = self.gateway.name_of(&device);
        if let Err(e) = crate::auth::check_device(principal, &device, name.as_deref()) {
            return Err(OpenError::new("forbidden", 1008, e.to_string()));
        }
        if lock(&self.registry).releasing.contains(&device) {
            return Err(OpenError::new(
                "cleanup_in_progress",
                close::CLEANUP_IN_PROGRESS,
                format!("Clean-up in progress on {device}: the previous session is releasing it. Retry in a moment."),
            ));
        }
        let holder = format!("bridge session '{session_id}'");
        let lease = match self.gateway.lease(&device, &holder, params.force) {
            Ok(l) => l,
            Err(GatewayError::Busy { holder: other, .. }) => {
                // The blocking session's id, for its own client only: ble-mcp-test
                // clients use it to clean up after themselves.
                let blocking = lock(&self.registry)
                    .sessions
                    .values()
                    .find(|s| s.device == device)
                    .filter(|s| s.owned_by(principal))
                    .map(|s| s.id.clone());
                let shown = match &blocking {
                    Some(_) => other.clone(),
                    None => "another client".to_string(),
                };
                let text = format!(
                    "Device is busy: {device} is in use by {shown}. Connect with force=true to take it over."
                );
                return Err(OpenError {
                    message: ServerMessage::Error {
                        error: text.clone(),
                        code: "busy",
                        blocking_session_id: blocking,
                        device: Some(device.to_string()),
                    },
                    close_code: close::BUSY,
                    reason: "device busy".into(),
                });
            }
            Err(e) => {
                return Err(OpenError::new(
                    "gateway_error",
                    close::GATT_CONNECTION_FAILED,
                    e.to_string(),
                ))
            }
        };
        // A forced take-over: the displaced session stops, without touching the link.
        let displaced: Vec<SessionHandle> = lock(&self.registry)
            .sessions
            .values()
            .filter(|s| s.device == device && s.id != session_id)
            .cloned()
            .collect();
        for old in displaced {
            let _ = outgoing
                .send(Outgoing::Msg(ServerMessage::Warning {
                    warning: format!(
                        "Took {device} over from session '{}' (force=true); that session has been ended.",
                        old.id
                    ),
                }))
                .await;
            old.release(ReleaseReason::Evicted {
                by: session_id.clone(),
            })
            .await;
        }
        let info = lease.connect(Some(timeout)).await.map_err(connect_error)?;
        let tree = lease.device().services().await.map_err(connect_error)?;
        if tree.find_service(params.service).is_none() {
            return Err(OpenError::new(
                "service_not_found",
                close::SERVICE_NOT_FOUND,
                format!("Service {} not found on {device}", params.service.short()),
            ));
        }
        for (role, c) in [("write", params.write), ("notify", params.notify)] {
            if tree.find_characteristic(params.service, c).is_none() {
                return Err(OpenError::new(
                    "characteristic_not_found",
                    close::CHARACTERISTICS_NOT_FOUND,
                    format!(
                        "Characteristics not found: {role} characteristic {} is not in service {}",
                        c.short(),
                        params.service.short()
                    ),
                ));
            }
        }
        let subscription = lease
            .device()
            .subscribe(params.service, params.notify)
            .await
            .map_err(connect_error)?;
        let name = info.name.clone().unwrap_or_else(|| device.to_string());
        let handle = session::spawn(session::SessionSetup {
            id: session_id.clone(),
            device: device.clone(),
            device_name: name,
            params: params.clone(),
            lease,
            subscription,
            bridge: self.clone(),
            owner: principal.map(|p| p.subject.clone()),
        });
        lock(&self.registry)
            .sessions
            .insert(session_id.clone(), handle.clone());
        if !handle.attach(socket_id, outgoing).await {
            return Err(OpenError::new(
                "session_ended",
                close::DEVICE_DISCONNECTED,
                "The session ended while it was being set up",
            ));
        }
        tracing::info!(session = %session_id, %device, client_version = ?params.client_version, "bridge session opened");
        Ok(handle)
    }

    /// Which device the parameters name: `deviceId`, else a name prefix, else the
    /// first device advertising the service.
    async fn find_device(&self, params: &ConnectParams, timeout: Duration) -> Result<DeviceId, OpenError> {
        let not_found = |what: String| {
            OpenError::new(
                "device_not_found",
                close::DEVICE_NOT_FOUND,
                format!("Device not found: no {what} within {} ms", timeout.as_millis()),
            )
        };
        if let Some(target) = params.device_id.as_deref().or(params.device_name.as_deref()) {
            return self
                .gateway
                .resolve(target, &[], timeout)
                .await
                .map_err(|e| match e.kind() {
                    ErrorKind::DeviceNotFound => not_found(format!("device matching {target:?}")),
                    _ => OpenError::new("device_not_found", close::DEVICE_NOT_FOUND, e.to_string()),
                });
        }
        let filter = ScanFilter {
            services: vec![params.service],
            ..Default::default()
        };
        if let Some(known) = self
            .gateway
            .known_devices()
            .into_iter()
            .find(|d| d.services.contains(&params.service))
        {
            return Ok(known.id);
        }
        let mut scan = self
            .gateway
            .scan(filter, timeout)
            .await
            .map_err(|e| OpenError::new("device_not_found", close::DEVICE_NOT_FOUND, e.to_string()))?;
        match scan.next().await {
            Some(d) => Ok(d.id),
            None => Err(not_found(format!(
                "device advertising service {}",
                params.service.short()
            ))),
        }
    }

    /// The session holding this token, compared in constant time.
    pub(crate) fn find_by_token(&self, token: &str) -> Option<SessionHandle> {
        lock(&self.registry)
            .sessions
            .values()
            .find(|s| constant_time_eq(s.token.as_bytes(), token.as_bytes()))
            .cloned()
    }

    /// Releases every session on a device (or on every device).
    pub(crate) async fn release_all(&self, device: Option<&DeviceId>, reason: ReleaseReason) -> usize {
        let sessions: Vec<SessionHandle> = lock(&self.registry)
            .sessions
            .values()
            .filter(|s| device.is_none_or(|d| &s.device == d))
            .cloned()
            .collect();
        let n = sessions.len();
        for s in &sessions {
            self.mark_releasing(&s.device);
        }
        for s in sessions {
            s.release(reason.clone()).await;
        }
        n
    }

    pub(crate) fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    pub(crate) fn admin_token_matches(&self, given: Option<&str>) -> bool {
        let expected = self.config.admin_token.trim();
        !expected.is_empty() && given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes()))
    }
}

/// The bridge's open error for a failed connect, GATT listing or subscription, by
/// the kind of failure.
fn connect_error(e: GatewayError) -> OpenError {
    let (code, close_code) = match e.kind() {
        ErrorKind::DeviceNotFound | ErrorKind::Ambiguous => ("device_not_found", close::DEVICE_NOT_FOUND),
        ErrorKind::ServiceNotFound => ("service_not_found", close::SERVICE_NOT_FOUND),
        ErrorKind::CharacteristicNotFound | ErrorKind::NotPermitted => {
            ("characteristic_not_found", close::CHARACTERISTICS_NOT_FOUND)
        }
        // The bridge's wire has one code for every other failure.
        _ => ("gatt_connection_failed", close::GATT_CONNECTION_FAILED),
    };
    OpenError::new(code, close_code, format!("GATT connection failed: {e}"))
}

/// A oneshot reply that is fine to lose (the asker went away).
pub(crate) fn reply<T>(tx: Option<oneshot::Sender<T>>, v: T) {
    if let Some(tx) = tx {
        let _ = tx.send(v);
    }
}
