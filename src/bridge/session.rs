//! One bridge session: an actor task that owns the device's lease and notification
//! subscription, fans notifications out to the session's sockets, and runs the
//! session state machine with its timers:
//!
//! ```text
//!   IDLE ──open──▶ ACTIVE ──idle timeout──▶ EVICTING ──grace over──▶ IDLE (released)
//!                    ▲  │                        │
//!                    │  └──release / last socket─┼──▶ (grace) ──▶ IDLE
//!                    └──────any client message───┘
//! ```
//!
//! Every transition goes through [`SessionActor::transition`], which refuses (and
//! logs) one the machine does not allow, so a bug shows as a log line, not a zombie.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::protocol::{close, ConnectParams, ServerMessage};
use super::{reply, Bridge};
use crate::ble::DeviceId;
use crate::gateway::{Lease, Subscription, SubscriptionEvent};

/// What a socket task receives from its session.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Msg(ServerMessage),
    /// Send this message (if any), then close with code and reason.
    Close(u16, String),
}

/// Messages a socket may queue before it counts as too slow and is dropped. Larger
/// than [`COMMAND_QUEUE`]: a socket blocked on queueing a write can be owed at most
/// that many echoes, so a fast client that pipelines writes is never mistaken for
/// a slow one.
pub(crate) const SOCKET_QUEUE: usize = 256;

/// Commands a session may have waiting.
const COMMAND_QUEUE: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReleaseReason {
    /// The client sent `disconnect`.
    ClientDisconnect,
    /// The client sent `cleanup`.
    Cleanup,
    /// `force_cleanup` with this session's token (or `all_sessions`).
    ForceCleanup,
    /// `admin_cleanup`.
    Admin,
    /// Another session took the device over with `force=true`.
    Evicted {
        by: String,
    },
    Idle,
    GraceExpired,
    DeviceLost,
}

impl ReleaseReason {
    /// Whether the device's link should be closed (the session opened it). A session
    /// displaced by a take-over leaves the link to its new holder.
    fn disconnects(&self) -> bool {
        !matches!(self, ReleaseReason::Evicted { .. } | ReleaseReason::DeviceLost)
    }

    /// The close the session's sockets get.
    fn close(&self) -> Option<(Option<ServerMessage>, u16, String)> {
        match self {
            ReleaseReason::ClientDisconnect => Some((
                Some(ServerMessage::Disconnected {
                    reason: "client disconnect".into(),
                }),
                close::NORMAL,
                "disconnected".into(),
            )),
            ReleaseReason::Cleanup => Some((
                Some(ServerMessage::CleanupComplete {
                    message: "Cleanup complete".into(),
                }),
                close::NORMAL,
                "cleanup complete".into(),
            )),
            ReleaseReason::ForceCleanup | ReleaseReason::Admin => {
                Some((None, close::NORMAL, "session cleaned up".into()))
            }
            ReleaseReason::Evicted { by } => Some((
                Some(ServerMessage::error(
                    "evicted",
                    format!(
                        "Evicted: another connection took the device over with force=true (session '{by}')."
                    ),
                )),
                close::CLEANUP_IN_PROGRESS,
                "evicted by force=true".into(),
            )),
            ReleaseReason::Idle => Some((
                Some(ServerMessage::Disconnected {
                    reason: "idle timeout".into(),
                }),
                close::NORMAL,
                "idle eviction".into(),
            )),
            ReleaseReason::DeviceLost => Some((
                Some(ServerMessage::Disconnected {
                    reason: "device disconnected".into(),
                }),
                close::DEVICE_DISCONNECTED,
                "device disconnected".into(),
            )),
            ReleaseReason::GraceExpired => None,
        }
    }
}

pub(crate) enum SessionCmd {
    Attach {
        socket_id: u64,
        outgoing: mpsc::Sender<Outgoing>,
        reply: oneshot::Sender<()>,
    },
    Detach {
        socket_id: u64,
    },
    /// A client message arrived: the session is in use.
    Activity,
    /// Writes are not awaited by the socket (it keeps relaying notifications);
    /// a failure comes back to that socket as an `error` message.
    Write {
        bytes: Vec<u8>,
        socket_id: u64,
    },
    State {
        reply: oneshot::Sender<SessionState>,
    },
    Release {
        reason: ReleaseReason,
        reply: Option<oneshot::Sender<()>>,
    },
}

/// The session state machine's states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionState {
    Idle,
    Active,
    Evicting,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Idle => "IDLE",
            SessionState::Active => "ACTIVE",
            SessionState::Evicting => "EVICTING",
        }
    }

    fn allows(self, to: SessionState) -> bool {
        use SessionState::*;
        matches!(
            (self, to),
            (Idle, Active) | (Active, Evicting) | (Evicting, Active) | (Active, Idle) | (Evicting, Idle)
        )
    }
}

/// The handle sockets and the registry hold.
#[derive(Clone)]
pub(crate) struct SessionHandle {
    pub id: String,
    pub device: DeviceId,
    pub token: String,
    /// The subject of the credential that opened it (`None` without credentials).
    pub owner: Option<String>,
    params: ConnectParams,
    tx: mpsc::Sender<SessionCmd>,
}

impl SessionHandle {
    /// Whether a client may resume this session: it shows the session's token, or
    /// the credential that opened it. A session id alone is a name, not a key.
    pub fn may_resume(&self, p: &ConnectParams, principal: Option<&crate::auth::Principal>) -> bool {
        let token = p
            .session_token
            .as_deref()
            .is_some_and(|t| crate::auth::constant_time_eq(t.as_bytes(), self.token.as_bytes()));
        token || self.owned_by(principal)
    }

    /// Whether the caller holds the credential that opened this session (without
    /// credentials configured, every caller is the same anonymous one).
    pub fn owned_by(&self, principal: Option<&crate::auth::Principal>) -> bool {
        self.owner.as_deref() == principal.map(|p| p.subject.as_str())
    }

    /// A resuming socket must ask for the same characteristic pair.
    pub fn params_match(&self, p: &ConnectParams) -> bool {
        self.params.service == p.service && self.params.write == p.write && self.params.notify == p.notify
    }

    /// False when the session has ended.
    pub async fn attach(&self, socket_id: u64, outgoing: mpsc::Sender<Outgoing>) -> bool {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(SessionCmd::Attach {
                socket_id,
                outgoing,
                reply: tx,
            })
            .await
            .is_ok()
            && rx.await.is_ok()
    }

    pub async fn detach(&self, socket_id: u64) {
        let _ = self.tx.send(SessionCmd::Detach { socket_id }).await;
    }

    pub fn activity(&self) {
        // Best effort: a full queue means the session is busy with commands, which
        // already count as activity.
        let _ = self.tx.try_send(SessionCmd::Activity);
    }

    /// Queues a write; `Err` only when the session has ended.
    pub async fn write(&self, bytes: Vec<u8>, socket_id: u64) -> Result<(), String> {
        self.tx
            .send(SessionCmd::Write { bytes, socket_id })
            .await
            .map_err(|_| "the session has ended".to_string())
    }

    pub async fn state(&self) -> SessionState {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(SessionCmd::State { reply: tx }).await.is_err() {
            return SessionState::Idle;
        }
        rx.await.unwrap_or(SessionState::Idle)
    }

    /// Releases the session and waits until it has let the device go.
    pub async fn release(&self, reason: ReleaseReason) {
        let (tx, rx) = oneshot::channel();
        if self
            .tx
            .send(SessionCmd::Release {
                reason,
                reply: Some(tx),
            })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(30), rx).await;
        }
    }
}

pub(crate) struct SessionSetup {
    pub id: String,
    pub device: DeviceId,
    pub device_name: String,
    pub params: ConnectParams,
    pub lease: Lease,
    pub subscription: Subscription,
    pub bridge: Bridge,
    pub owner: Option<String>,
}

pub(crate) fn spawn(setup: SessionSetup) -> SessionHandle {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let handle = SessionHandle {
        id: setup.id.clone(),
        device: setup.device.clone(),
        token: setup.lease.token().to_string(),
        owner: setup.owner.clone(),
        params: setup.params.clone(),
        tx,
    };
    let config = setup.bridge.config().clone();
    let actor = SessionActor {
        id: setup.id,
        device: setup.device,
        device_name: setup.device_name,
        params: setup.params,
        lease: Some(setup.lease),
        subscription: Some(setup.subscription),
        bridge: setup.bridge,
        rx,
        sockets: HashMap::new(),
        state: SessionState::Idle,
        last_activity: Instant::now(),
        evict_at: None,
        grace_until: None,
        idle_timeout: Duration::from_millis(config.idle_timeout_ms),
        eviction_grace: Duration::from_millis(config.eviction_grace_ms),
        session_grace: Duration::from_millis(config.session_grace_ms),
    };
    tokio::spawn(actor.run());
    handle
}

struct SessionActor {
    id: String,
    device: DeviceId,
    device_name: String,
    params: ConnectParams,
    /// The device's lease; `None` once released.
    lease: Option<Lease>,
    subscription: Option<Subscription>,
    bridge: Bridge,
    rx: mpsc::Receiver<SessionCmd>,
    sockets: HashMap<u64, mpsc::Sender<Outgoing>>,
    state: SessionState,
    last_activity: Instant,
    /// While EVICTING: when the eviction happens.
    evict_at: Option<Instant>,
    /// While no socket is attached: when the device is released.
    grace_until: Option<Instant>,
    idle_timeout: Duration,
    eviction_grace: Duration,
    session_grace: Duration,
}

impl SessionActor {
    async fn run(mut self) {
        self.transition(SessionState::Active);
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => {
                        if !self.handle(cmd).await {
                            break;
                        }
                    }
                    None => {
                        self.release(ReleaseReason::GraceExpired).await;
                        break;
                    }
                },
                event = recv_opt(&mut self.subscription) => match event {
                    Some(SubscriptionEvent::Notification(n)) => self.broadcast(ServerMessage::Data { data: n.value.to_vec() }),
                    Some(SubscriptionEvent::Lagged(k)) => self.broadcast(ServerMessage::Warning {
                        warning: format!("{k} notifications were dropped: the bridge fell behind the device"),
                    }),
                    None => {
                        self.release(ReleaseReason::DeviceLost).await;
                        break;
                    }
                },
                _ = sleep_until_opt(deadline) => {
                    if !self.on_deadline().await {
                        break;
                    }
                }
            }
        }
    }

    /// Refuses and logs a transition the state machine does not allow.
    fn transition(&mut self, to: SessionState) -> bool {
        if self.state.allows(to) {
            tracing::debug!(session = %self.id, from = self.state.as_str(), to = to.as_str(), "bridge session state");
            self.state = to;
            true
        } else {
            tracing::warn!(session = %self.id, from = self.state.as_str(), to = to.as_str(), "refused bridge session transition");
            false
        }
    }

    fn next_deadline(&self) -> Option<tokio::time::Instant> {
        let at = match self.state {
            SessionState::Evicting => self.evict_at,
            SessionState::Active if self.sockets.is_empty() => self.grace_until,
            SessionState::Active => Some(self.last_activity + self.idle_timeout),
            SessionState::Idle => None,
        };
        at.map(tokio::time::Instant::from_std)
    }

    /// A timer fired; false when the session is over.
    async fn on_deadline(&mut self) -> bool {
        let now = Instant::now();
        match self.state {
            SessionState::Active if self.sockets.is_empty() => {
                if self.grace_until.is_some_and(|g| now >= g) {
                    tracing::info!(session = %self.id, device = %self.device, "bridge session grace period over: releasing");
                    self.release(ReleaseReason::GraceExpired).await;
                    return false;
                }
            }
            SessionState::Active => {
                if now >= self.last_activity + self.idle_timeout && self.transition(SessionState::Evicting) {
                    self.evict_at = Some(now + self.eviction_grace);
                    self.broadcast(ServerMessage::EvictionWarning {
                        grace_period_ms: self.eviction_grace.as_millis() as u64,
                        reason: format!(
                            "idle for {} ms: send any message (e.g. keepalive) within the grace period to stay connected",
                            self.idle_timeout.as_millis()
                        ),
                    });
                }
            }
            SessionState::Evicting => {
                if self.evict_at.is_some_and(|e| now >= e) {
                    tracing::info!(session = %self.id, device = %self.device, "evicting idle bridge session");
                    self.release(ReleaseReason::Idle).await;
                    return false;
                }
            }
            SessionState::Idle => {}
        }
        true
    }

    /// Handles one command; false when the session is over.
    async fn handle(&mut self, cmd: SessionCmd) -> bool {
        match cmd {
            SessionCmd::Attach {
                socket_id,
                outgoing,
                reply: done,
            } => {
                let token = self
                    .lease
                    .as_ref()
                    .map(|l| l.token().to_string())
                    .unwrap_or_default();
                let _ = outgoing.try_send(Outgoing::Msg(ServerMessage::Connected {
                    device: self.device_name.clone(),
                    token,
                }));
                self.sockets.insert(socket_id, outgoing);
                self.grace_until = None;
                self.touch();
                let _ = done.send(());
            }
            SessionCmd::Detach { socket_id } => {
                self.sockets.remove(&socket_id);
                if self.sockets.is_empty() {
                    self.grace_until = Some(Instant::now() + self.session_grace);
                    if self.state == SessionState::Evicting {
                        self.transition(SessionState::Active);
                    }
                    tracing::debug!(session = %self.id, grace = ?self.session_grace, "last socket gone: holding the device for resumption");
                }
            }
            SessionCmd::Activity => self.touch(),
            SessionCmd::Write { bytes, socket_id } => {
                self.touch();
                let result = match &self.lease {
                    Some(lease) => {
                        let kind = self.write_kind(lease).await;
                        lease
                            .device()
                            .write(self.params.service, self.params.write, bytes, kind)
                            .await
                            .map_err(|e| e.to_string())
                    }
                    None => Err("the session has released its device".into()),
                };
                if let (Err(e), Some(tx)) = (result, self.sockets.get(&socket_id)) {
                    let _ = tx.try_send(Outgoing::Msg(ServerMessage::error(
                        "write_failed",
                        format!("Write failed: {e}"),
                    )));
                }
            }
            SessionCmd::State { reply: done } => {
                let _ = done.send(self.state);
            }
            SessionCmd::Release { reason, reply: done } => {
                self.release(reason).await;
                reply(done, ());
                return false;
            }
        }
        true
    }

    /// Write with response when the characteristic allows it (the reader's 9900
    /// does), else without.
    async fn write_kind(&self, lease: &Lease) -> crate::ble::WriteKind {
        use crate::ble::{CharProps, GattTree, WriteKind};
        match lease.device().services().await {
            Ok(tree) => match tree.find_characteristic(self.params.service, self.params.write) {
                Some(c) if !c.props.contains(CharProps::WRITE) => WriteKind::WithoutResponse,
                _ => WriteKind::WithResponse,
            },
            Err(_) => WriteKind::WithResponse,
        }
    }

    fn touch(&mut self) {
        self.last_activity = Instant::now();
        if self.state == SessionState::Evicting && self.transition(SessionState::Active) {
            self.evict_at = None;
            tracing::debug!(session = %self.id, "activity during the grace period: eviction cancelled");
        }
    }

    /// Sends to every socket; a socket whose queue is full is too slow and is dropped
    /// (its task sees the channel close and tells the client why).
    fn broadcast(&mut self, msg: ServerMessage) {
        let mut slow = Vec::new();
        for (id, tx) in &self.sockets {
            if tx.try_send(Outgoing::Msg(msg.clone())).is_err() {
                slow.push(*id);
            }
        }
        for id in slow {
            tracing::warn!(session = %self.id, socket = id, "bridge client too slow: dropping its socket");
            self.sockets.remove(&id);
        }
        if self.sockets.is_empty() && self.grace_until.is_none() {
            self.grace_until = Some(Instant::now() + self.session_grace);
        }
    }

    /// Lets the device go, then tells the sockets: the subscription and the lease
    /// are dropped and the link closed (when this session opened it) before any
    /// client hears the session is over, so a client that saw its close can connect
    /// again at once instead of finding a clean-up in progress.
    async fn release(&mut self, reason: ReleaseReason) {
        self.bridge.mark_releasing(&self.device);
        self.subscription = None;
        let token = self
            .lease
            .as_ref()
            .map(|l| l.token().to_string())
            .unwrap_or_default();
        if let Some(lease) = self.lease.take() {
            if reason.disconnects() && lease.is_valid() {
                if let Err(e) = lease.device().disconnect().await {
                    tracing::debug!(session = %self.id, error = %e, "disconnect on release");
                }
            }
        }
        self.bridge.forget(&self.id, &token, &self.device);
        if let Some((msg, code, text)) = reason.close() {
            for tx in self.sockets.values() {
                if let Some(m) = &msg {
                    let _ = tx.send(Outgoing::Msg(m.clone())).await;
                }
                let _ = tx.send(Outgoing::Close(code, text.clone())).await;
            }
        }
        self.sockets.clear();
        self.transition(SessionState::Idle);
        tracing::info!(session = %self.id, device = %self.device, ?reason, "bridge session released");
    }
}

async fn recv_opt(sub: &mut Option<Subscription>) -> Option<SubscriptionEvent> {
    match sub {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
