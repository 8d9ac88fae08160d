//! One actor task per device with an open (or opening) link. It is the only code that
//! talks to the backend about that device, so operations on one device are
//! serialised while different devices run in parallel. It owns the link's lifecycle:
//! connect with retries, GATT discovery cached per connection, subscriptions (one
//! backend subscription per characteristic, fanned out to any number of subscribers
//! by a forwarder task), auto-reconnect after a drop, idle disconnect.
//!
//! Here: the actor, its commands and GATT operations; the link's lifecycle (connect,
//! recover, close) is in `link.rs`.

mod link;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot, Notify};

use super::error::{GatewayError, GatewayResult, Operation};
use super::packet_log::Direction;
use super::{lock, AbortOnDrop, Inner, LiveCount};
use crate::ble::{BleError, DeviceId, DisconnectReason, GattTree, Notification, Service, Uuid, WriteKind};
use crate::error::ErrorKind;

/// (service, characteristic).
pub(crate) type CharKey = (Uuid, Uuid);

/// Link state as other tasks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Connecting,
    Connected,
    Reconnecting,
    Disconnected,
}

impl LinkState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => LinkState::Connecting,
            1 => LinkState::Connected,
            2 => LinkState::Reconnecting,
            _ => LinkState::Disconnected,
        }
    }
}

/// What the gateway and subscribers share with one actor.
pub(crate) struct DeviceShared {
    pub id: DeviceId,
    state: AtomicU8,
    pub mtu: AtomicU16,
    /// Milliseconds since the gateway started, at the last operation: the idle clock.
    pub last_used: AtomicU64,
    /// The gateway-wide use counter at the last operation: orders devices for LRU
    /// eviction strictly, where two uses within one millisecond would tie.
    pub use_seq: AtomicU64,
    pub connected_since: Mutex<Option<SystemTime>>,
    /// Subscribers' channels by characteristic; the forwarder reads it per
    /// notification, the actor adds and sweeps entries.
    pub subs: Mutex<HashMap<CharKey, broadcast::Sender<Notification>>>,
    /// Poked when a subscriber goes away, so the actor can turn off notifications
    /// nobody listens to.
    pub housekeeping: Notify,
    /// Poked when the link drops (router event or the notification stream ending).
    pub link_lost: Notify,
}

impl DeviceShared {
    pub fn state(&self) -> LinkState {
        LinkState::from_u8(self.state.load(Ordering::Acquire))
    }

    fn set_state(&self, s: LinkState) {
        self.state.store(s as u8, Ordering::Release);
    }
}

/// A request to the actor; each carries where to send the answer.
pub(crate) enum Command {
    Connect(oneshot::Sender<GatewayResult<u16>>),
    Disconnect(Option<oneshot::Sender<GatewayResult<()>>>),
    Services(oneshot::Sender<GatewayResult<Arc<Vec<Service>>>>),
    Read {
        key: CharKey,
        reply: oneshot::Sender<GatewayResult<Bytes>>,
    },
    Write {
        key: CharKey,
        value: Bytes,
        kind: WriteKind,
        reply: oneshot::Sender<GatewayResult<()>>,
    },
    ReadDescriptor {
        key: CharKey,
        descriptor: Uuid,
        reply: oneshot::Sender<GatewayResult<Bytes>>,
    },
    WriteDescriptor {
        key: CharKey,
        descriptor: Uuid,
        value: Bytes,
        reply: oneshot::Sender<GatewayResult<()>>,
    },
    Subscribe {
        key: CharKey,
        reply: oneshot::Sender<GatewayResult<broadcast::Receiver<Notification>>>,
    },
}

/// The gateway's handle on one actor.
#[derive(Clone)]
pub(crate) struct DeviceHandle {
    pub tx: mpsc::Sender<Command>,
    pub shared: Arc<DeviceShared>,
}

/// Commands that may wait for the actor; beyond this, callers wait to enqueue.
const QUEUE: usize = 64;

pub(crate) fn spawn(inner: &Arc<Inner>, id: DeviceId) -> DeviceHandle {
    let (tx, rx) = mpsc::channel(QUEUE);
    let shared = Arc::new(DeviceShared {
        id: id.clone(),
        state: AtomicU8::new(LinkState::Connecting as u8),
        mtu: AtomicU16::new(23),
        last_used: AtomicU64::new(inner.now_ms()),
        use_seq: AtomicU64::new(inner.next_use()),
        connected_since: Mutex::new(None),
        subs: Mutex::new(HashMap::new()),
        housekeeping: Notify::new(),
        link_lost: Notify::new(),
    });
    let actor = Actor {
        id,
        inner: Arc::downgrade(inner),
        // Until a link is made, the first radio; each link goes through the radio
        // that routing picks then.
        backend: inner.radios.list[0].backend.clone(),
        radio: None,
        failed: Vec::new(),
        config: inner.config.clone(),
        shared: shared.clone(),
        rx,
        services: None,
        forwarder: None,
        global: inner.notifications.clone(),
        packets: inner.packets.clone(),
        metrics: inner.metrics.clone(),
        _task: LiveCount::new(&inner.stats.actors),
        stats: inner.stats.clone(),
    };
    tokio::spawn(actor.run());
    DeviceHandle { tx, shared }
}

struct Actor {
    id: DeviceId,
    /// Weak: the gateway owns the actors, not the other way round; when the last
    /// `Gateway` goes, the command channel closes and the actor disconnects.
    inner: Weak<Inner>,
    /// The radio of the current (or last) link, and its index.
    backend: Arc<dyn crate::ble::Backend>,
    radio: Option<usize>,
    /// Radios that failed to link the device in the current connect or reconnect.
    failed: Vec<usize>,
    config: super::GatewayConfig,
    shared: Arc<DeviceShared>,
    rx: mpsc::Receiver<Command>,
    /// Discovery result, valid for the current link only.
    services: Option<Arc<Vec<Service>>>,
    /// Copies the backend's notifications to subscribers; lives as long as the link.
    forwarder: Option<AbortOnDrop>,
    /// Every notification of every device, for gateway-wide consumers.
    global: broadcast::Sender<Notification>,
    packets: Arc<super::packet_log::PacketLog>,
    metrics: Arc<crate::metrics::Metrics>,
    _task: LiveCount,
    stats: Arc<super::Stats>,
}

impl Actor {
    async fn run(mut self) {
        loop {
            let idle = self.idle_deadline();
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    None => {
                        self.close(DisconnectReason::Requested).await;
                        break;
                    }
                    Some(cmd) => {
                        if !self.handle(cmd).await {
                            break;
                        }
                        // A link that never came up (or was given up) leaves
                        // nothing to serve once the queue is drained.
                        if self.shared.state() == LinkState::Disconnected && self.rx.is_empty() {
                            break;
                        }
                    }
                },
                _ = self.shared.housekeeping.notified() => self.sweep_subscriptions().await,
                _ = self.shared.link_lost.notified() => {
                    if !self.recover().await {
                        break;
                    }
                }
                _ = sleep_until_opt(idle) => {
                    if self.is_idle() {
                        tracing::info!(device = %self.id, "closing idle link");
                        self.close(DisconnectReason::Requested).await;
                        break;
                    }
                    // In use by a subscriber or a lease: count idleness from now.
                    self.touch();
                }
            }
        }
        self.shared.set_state(LinkState::Disconnected);
        if let Some(inner) = self.inner.upgrade() {
            inner.forget_device(&self.shared);
        }
    }

    fn touch(&self) {
        if let Some(inner) = self.inner.upgrade() {
            self.shared.last_used.store(inner.now_ms(), Ordering::Relaxed);
            self.shared.use_seq.store(inner.next_use(), Ordering::Relaxed);
        }
    }

    fn idle_deadline(&self) -> Option<tokio::time::Instant> {
        let idle = self.config.idle_timeout()?;
        let inner = self.inner.upgrade()?;
        let used = self.shared.last_used.load(Ordering::Relaxed);
        let since = Duration::from_millis(inner.now_ms().saturating_sub(used));
        Some(tokio::time::Instant::now() + idle.saturating_sub(since))
    }

    fn is_idle(&self) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return true;
        };
        let Some(idle) = self.config.idle_timeout() else {
            return false;
        };
        let used = self.shared.last_used.load(Ordering::Relaxed);
        let quiet = Duration::from_millis(inner.now_ms().saturating_sub(used)) >= idle;
        quiet && lock(&self.shared.subs).is_empty() && !inner.is_leased(&self.id)
    }

    /// Handles one command; false when the actor should stop.
    async fn handle(&mut self, cmd: Command) -> bool {
        self.touch();
        match cmd {
            Command::Connect(reply) => {
                let _ = reply.send(self.connect().await);
            }
            Command::Disconnect(reply) => {
                self.close(DisconnectReason::Requested).await;
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
                return false;
            }
            Command::Services(reply) => {
                let _ = reply.send(self.services().await);
            }
            Command::Read { key, reply } => {
                let r = self.read(key).await;
                let _ = reply.send(r);
            }
            Command::Write {
                key,
                value,
                kind,
                reply,
            } => {
                let r = self.write(key, value, kind).await;
                let _ = reply.send(r);
            }
            Command::ReadDescriptor {
                key,
                descriptor,
                reply,
            } => {
                let r = self.read_descriptor(key, descriptor).await;
                let _ = reply.send(r);
            }
            Command::WriteDescriptor {
                key,
                descriptor,
                value,
                reply,
            } => {
                let r = self.write_descriptor(key, descriptor, value).await;
                let _ = reply.send(r);
            }
            Command::Subscribe { key, reply } => {
                let r = self.subscribe(key).await;
                let _ = reply.send(r);
            }
        }
        true
    }

    /// Runs one backend call under the operation timeout, and notices a link that
    /// died under it even if the backend never says so.
    async fn timed<T>(
        &self,
        operation: Operation,
        limit: Duration,
        fut: impl std::future::Future<Output = Result<T, BleError>>,
    ) -> GatewayResult<T> {
        let started = std::time::Instant::now();
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(v)) => {
                if operation.is_transfer() {
                    self.metrics
                        .transfer_latency
                        .observe(started.elapsed().as_secs_f64());
                }
                Ok(v)
            }
            Ok(Err(e)) => {
                if matches!(e.kind(), ErrorKind::LinkLost | ErrorKind::NotConnected) {
                    self.shared.link_lost.notify_one();
                }
                Err(e.into())
            }
            Err(_) => Err(GatewayError::Timeout {
                id: self.id.clone(),
                operation,
                after: limit,
            }),
        }
    }

    fn ensure_connected(&self) -> GatewayResult<()> {
        match self.shared.state() {
            LinkState::Connected => Ok(()),
            _ => Err(BleError::NotConnected(self.id.clone()).into()),
        }
    }

    async fn services(&mut self) -> GatewayResult<Arc<Vec<Service>>> {
        self.ensure_connected()?;
        if let Some(s) = &self.services {
            return Ok(s.clone());
        }
        let backend = self.backend.clone();
        let services = Arc::new(
            self.timed(
                Operation::Discover,
                self.config.op_timeout(),
                backend.discover(&self.id),
            )
            .await?,
        );
        self.services = Some(services.clone());
        Ok(services)
    }

    /// Looks a characteristic up in the cached tree, so that bad input fails the
    /// same way on every backend, before any radio traffic.
    async fn characteristic(
        &mut self,
        (service, characteristic): CharKey,
    ) -> GatewayResult<crate::ble::Characteristic> {
        let tree = self.services().await?;
        if tree.find_service(service).is_none() {
            return Err(BleError::ServiceNotFound(service).into());
        }
        tree.find_characteristic(service, characteristic)
            .cloned()
            .ok_or_else(|| {
                BleError::CharacteristicNotFound {
                    service,
                    characteristic,
                }
                .into()
            })
    }

    async fn read(&mut self, key: CharKey) -> GatewayResult<Bytes> {
        let c = self.characteristic(key).await?;
        if !c.props.contains(crate::ble::CharProps::READ) {
            return Err(BleError::NotPermitted {
                characteristic: key.1,
                operation: "read",
            }
            .into());
        }
        let backend = self.backend.clone();
        self.timed(
            Operation::Read,
            self.config.op_timeout(),
            backend.read(&self.id, key.0, key.1),
        )
        .await
    }

    async fn write(&mut self, key: CharKey, value: Bytes, kind: WriteKind) -> GatewayResult<()> {
        let c = self.characteristic(key).await?;
        if !c.props.contains(kind.required_prop()) {
            return Err(BleError::NotPermitted {
                characteristic: key.1,
                operation: match kind {
                    WriteKind::WithResponse => "write",
                    WriteKind::WithoutResponse => "write without response",
                },
            }
            .into());
        }
        if let Some(max) = c.max_len {
            if value.len() > max {
                return Err(BleError::ValueTooLong {
                    characteristic: key.1,
                    len: value.len(),
                    max,
                }
                .into());
            }
        }
        let backend = self.backend.clone();
        // A write command travels in one ATT packet: longer values go as several.
        let chunk = match kind {
            WriteKind::WithoutResponse => (self.shared.mtu.load(Ordering::Relaxed) as usize)
                .saturating_sub(3)
                .max(20),
            WriteKind::WithResponse => value.len().max(1),
        };
        for part in value.chunks(chunk) {
            self.packets
                .record(Direction::Tx, &self.id, key.0, key.1, value.slice_ref(part));
            self.timed(
                Operation::Write,
                self.config.op_timeout(),
                backend.write(&self.id, key.0, key.1, part, kind),
            )
            .await?;
        }
        if value.is_empty() {
            self.timed(
                Operation::Write,
                self.config.op_timeout(),
                backend.write(&self.id, key.0, key.1, &[], kind),
            )
            .await?;
        }
        Ok(())
    }

    async fn descriptor_check(&mut self, key: CharKey, descriptor: Uuid) -> GatewayResult<()> {
        let c = self.characteristic(key).await?;
        if c.descriptors.iter().any(|d| d.uuid == descriptor) {
            Ok(())
        } else {
            Err(BleError::DescriptorNotFound {
                characteristic: key.1,
                descriptor,
            }
            .into())
        }
    }

    async fn read_descriptor(&mut self, key: CharKey, descriptor: Uuid) -> GatewayResult<Bytes> {
        self.descriptor_check(key, descriptor).await?;
        let backend = self.backend.clone();
        self.timed(
            Operation::ReadDescriptor,
            self.config.op_timeout(),
            backend.read_descriptor(&self.id, key.0, key.1, descriptor),
        )
        .await
    }

    async fn write_descriptor(&mut self, key: CharKey, descriptor: Uuid, value: Bytes) -> GatewayResult<()> {
        self.descriptor_check(key, descriptor).await?;
        let backend = self.backend.clone();
        self.timed(
            Operation::WriteDescriptor,
            self.config.op_timeout(),
            backend.write_descriptor(&self.id, key.0, key.1, descriptor, &value),
        )
        .await
    }

    async fn subscribe(&mut self, key: CharKey) -> GatewayResult<broadcast::Receiver<Notification>> {
        if let Some(tx) = lock(&self.shared.subs).get(&key) {
            return Ok(tx.subscribe());
        }
        let c = self.characteristic(key).await?;
        if !c.props.can_subscribe() {
            return Err(BleError::NotPermitted {
                characteristic: key.1,
                operation: "notify",
            }
            .into());
        }
        let backend = self.backend.clone();
        self.timed(
            Operation::Subscribe,
            self.config.op_timeout(),
            backend.subscribe(&self.id, key.0, key.1),
        )
        .await?;
        let (tx, rx) = broadcast::channel(self.config.subscriber_buffer);
        lock(&self.shared.subs).insert(key, tx);
        Ok(rx)
    }

    /// Turns off notifications that no subscriber listens to any more.
    async fn sweep_subscriptions(&mut self) {
        let abandoned: Vec<CharKey> = {
            let mut subs = lock(&self.shared.subs);
            let keys: Vec<CharKey> = subs
                .iter()
                .filter(|(_, tx)| tx.receiver_count() == 0)
                .map(|(k, _)| *k)
                .collect();
            for k in &keys {
                subs.remove(k);
            }
            keys
        };
        if self.shared.state() != LinkState::Connected {
            return;
        }
        let backend = self.backend.clone();
        for (service, characteristic) in abandoned {
            if let Err(e) = self
                .timed(
                    Operation::Unsubscribe,
                    self.config.op_timeout(),
                    backend.unsubscribe(&self.id, service, characteristic),
                )
                .await
            {
                tracing::debug!(device = %self.id, %characteristic, error = %e, "unsubscribe failed");
            }
        }
        self.touch();
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
