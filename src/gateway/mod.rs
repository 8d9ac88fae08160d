//! The core service and the only owner of the radio. A [`Gateway`] is a cheap clone
//! handle; every front end holds one and translates its protocol into these calls.
//!
//! - Scans are shared: any number of callers scan at once over one radio scan, each
//!   with its own filter and deadline, de-duplicated per caller ([`ScanSession`]).
//! - Connect takes an id or a name prefix; unknown devices are scanned for.
//! - Each connected device has an actor task (`device.rs`) that serialises its
//!   operations; the connection limit closes the least recently used unleased link.
//! - Subscriptions fan out one radio subscription to any number of subscribers, each
//!   with a bounded buffer; a subscriber that falls behind is told how much it missed.
//! - Leases give one holder exclusive use of a device ([`Lease`]); others get `busy`.

mod config;
mod device;
mod error;
pub mod packet_log;
pub mod serde_helpers;
mod visibility;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{broadcast, oneshot};

pub use self::config::GatewayConfig;
pub use self::device::LinkState;
use self::device::{Command, DeviceHandle, DeviceShared};
pub use self::error::{GatewayError, GatewayResult};
use self::packet_log::PacketLog;
pub use self::visibility::DeviceFilter;
use crate::auth::constant_time_eq;
use crate::ble::{
    Advertisement, Backend, BackendEvent, BleError, DeviceId, DisconnectReason, Notification, ScanFilter,
    Service, Uuid, WriteKind,
};
pub(crate) use crate::sync::{lock, AbortOnDrop};

/// Counts one live thing (a task, a subscriber) for [`GatewayStats`]; the count
/// drops with the guard.
pub(crate) struct LiveCount(Arc<AtomicUsize>);

impl LiveCount {
    pub fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        LiveCount(counter.clone())
    }
}

impl Drop for LiveCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub(crate) struct Stats {
    actors: Arc<AtomicUsize>,
    forwarders: Arc<AtomicUsize>,
    subscribers: Arc<AtomicUsize>,
}

/// Live resources, for soak tests, `/readyz` and metrics: after every client has
/// gone, these return to their starting values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GatewayStats {
    /// Device actor tasks (one per open or opening link).
    pub device_tasks: usize,
    /// Notification forwarder tasks (one per open link).
    pub forwarder_tasks: usize,
    /// Characteristics with notifications enabled on the radio.
    pub radio_subscriptions: usize,
    /// Live [`Subscription`]s held by clients.
    pub subscribers: usize,
    pub leases: usize,
    pub connected: usize,
}

/// Connection lifecycle events, for front ends that report them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum GatewayEvent {
    Connected {
        id: DeviceId,
        mtu: u16,
    },
    Disconnected {
        id: DeviceId,
        reason: DisconnectReason,
        /// The gateway is trying to bring the link back.
        will_reconnect: bool,
    },
    Reconnected {
        id: DeviceId,
        mtu: u16,
    },
}

/// What the gateway knows of a device from its advertisements.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceInfo {
    pub id: DeviceId,
    pub name: Option<String>,
    pub rssi: i16,
    pub tx_power: Option<i16>,
    pub services: Vec<Uuid>,
    /// Company identifier → data; serialised as hex.
    #[serde(serialize_with = "serde_helpers::hex_values")]
    pub manufacturer_data: std::collections::BTreeMap<u16, Vec<u8>>,
    #[serde(serialize_with = "serde_helpers::hex_values")]
    pub service_data: std::collections::BTreeMap<Uuid, Vec<u8>>,
    /// Serialised as milliseconds since the Unix epoch.
    #[serde(serialize_with = "serde_helpers::unix_ms")]
    pub last_seen: SystemTime,
}

impl From<&Advertisement> for DeviceInfo {
    fn from(a: &Advertisement) -> Self {
        DeviceInfo {
            id: a.id.clone(),
            name: a.name.clone(),
            rssi: a.rssi,
            tx_power: a.tx_power,
            services: a.services.clone(),
            manufacturer_data: a.manufacturer_data.clone(),
            service_data: a.service_data.clone(),
            last_seen: SystemTime::now(),
        }
    }
}

/// An open (or opening) link, as `connections()` reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionInfo {
    pub id: DeviceId,
    pub name: Option<String>,
    pub state: LinkState,
    pub mtu: u16,
    /// Serialised as milliseconds since the Unix epoch.
    #[serde(serialize_with = "serde_helpers::unix_ms_opt")]
    pub connected_since: Option<SystemTime>,
    pub rssi: Option<i16>,
    /// Who holds the device exclusively, if anyone.
    pub lease_holder: Option<String>,
}

/// Options for [`Gateway::connect`].
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// Overall limit, scanning included; the configured default when `None`.
    pub timeout: Option<Duration>,
    /// With a name prefix: the device must advertise one of these.
    pub services: Vec<Uuid>,
}

/// Known devices kept from advertisements; beyond this the oldest are forgotten.
const KNOWN_DEVICES_MAX: usize = 4096;

pub(crate) struct Inner {
    backend: Arc<dyn Backend>,
    config: GatewayConfig,
    started: Instant,
    use_counter: std::sync::atomic::AtomicU64,
    /// Open or opening links.
    devices: Mutex<HashMap<DeviceId, DeviceHandle>>,
    known: Mutex<HashMap<DeviceId, DeviceInfo>>,
    leases: Mutex<HashMap<DeviceId, LeaseInfo>>,
    adverts: broadcast::Sender<Advertisement>,
    events: broadcast::Sender<GatewayEvent>,
    notifications: broadcast::Sender<Notification>,
    /// Callers scanning now; the radio scans while it is above zero.
    scanners: tokio::sync::Mutex<usize>,
    stats: Arc<Stats>,
    packets: Arc<PacketLog>,
    metrics: Arc<crate::metrics::Metrics>,
    shutting_down: std::sync::atomic::AtomicBool,
    router: Mutex<Option<AbortOnDrop>>,
    lag_probe: Mutex<Option<AbortOnDrop>>,
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn next_use(&self) -> u64 {
        self.use_counter.fetch_add(1, Ordering::Relaxed)
    }

    fn emit(&self, e: GatewayEvent) {
        let _ = self.events.send(e);
    }

    fn is_leased(&self, id: &DeviceId) -> bool {
        lock(&self.leases).contains_key(id)
    }

    /// Removes an actor's map entry, if the entry is still that actor's.
    fn forget_device(&self, shared: &Arc<DeviceShared>) {
        let mut devices = lock(&self.devices);
        if devices
            .get(&shared.id)
            .is_some_and(|h| Arc::ptr_eq(&h.shared, shared))
        {
            devices.remove(&shared.id);
        }
    }
}

/// The handle every front end holds. Clones share one gateway.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl Gateway {
    /// Starts the gateway over a backend. Must run inside a tokio runtime.
    pub fn new(backend: Arc<dyn Backend>, config: GatewayConfig) -> Result<Self, GatewayError> {
        config.validate().map_err(GatewayError::InvalidInput)?;
        let packets = Arc::new(PacketLog::new(config.packet_log_size));
        let inner = Arc::new(Inner {
            backend: backend.clone(),
            adverts: broadcast::channel(1024).0,
            events: broadcast::channel(256).0,
            notifications: broadcast::channel(config.subscriber_buffer).0,
            config,
            started: Instant::now(),
            use_counter: std::sync::atomic::AtomicU64::new(0),
            devices: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
            leases: Mutex::new(HashMap::new()),
            scanners: tokio::sync::Mutex::new(0),
            stats: Arc::new(Stats::default()),
            packets,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            router: Mutex::new(None),
            lag_probe: Mutex::new(None),
        });
        let router = tokio::spawn(route_backend_events(Arc::downgrade(&inner), backend.events()));
        *lock(&inner.router) = Some(AbortOnDrop(router));
        *lock(&inner.lag_probe) = Some(crate::metrics::Metrics::spawn_lag_probe(inner.metrics.clone()));
        Ok(Gateway { inner })
    }

    pub fn backend_name(&self) -> &str {
        self.inner.backend.name()
    }

    /// Whether the radio is present and powered.
    pub async fn adapter_status(&self) -> GatewayResult<()> {
        Ok(self.inner.backend.adapter_status().await?)
    }

    /// True when the radio is the simulator.
    pub fn is_simulated(&self) -> bool {
        self.inner.backend.is_simulated()
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// Connection lifecycle events.
    pub fn events(&self) -> broadcast::Receiver<GatewayEvent> {
        self.inner.events.subscribe()
    }

    /// Every notification of every device (for the packet log and the hub). Bounded:
    /// a consumer that falls behind gets `Lagged`.
    pub fn all_notifications(&self) -> broadcast::Receiver<Notification> {
        self.inner.notifications.subscribe()
    }

    /// The metrics registry every layer records into.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.inner.metrics
    }

    /// Prometheus text for `/metrics`.
    pub fn render_metrics(&self) -> String {
        let totals = self.inner.packets.totals();
        self.inner.metrics.render(
            totals.bytes_transmitted + totals.bytes_received,
            self.stats().connected,
        )
    }

    /// Every value written to or notified by any device, bounded.
    pub fn packet_log(&self) -> &PacketLog {
        &self.inner.packets
    }

    /// Seconds since the gateway started.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// The advertised name of a device heard so far.
    pub fn name_of(&self, id: &DeviceId) -> Option<String> {
        lock(&self.inner.known).get(id).and_then(|d| d.name.clone())
    }

    /// Devices heard so far, strongest first.
    pub fn known_devices(&self) -> Vec<DeviceInfo> {
        let mut v: Vec<DeviceInfo> = lock(&self.inner.known).values().cloned().collect();
        v.sort_by(|a, b| b.rssi.cmp(&a.rssi).then_with(|| a.id.cmp(&b.id)));
        v
    }

    /// Starts a scan; it ends at `duration` or when the session is dropped.
    pub async fn scan(&self, filter: ScanFilter, duration: Duration) -> GatewayResult<ScanSession> {
        self.ensure_running()?;
        // Subscribe before the radio starts so no early advertisement is missed.
        let rx = self.inner.adverts.subscribe();
        {
            let mut n = self.inner.scanners.lock().await;
            if *n == 0 {
                self.inner.backend.start_scan(&filter).await?;
            }
            *n += 1;
        }
        Ok(ScanSession {
            rx,
            filter,
            started: tokio::time::Instant::now(),
            metrics: self.inner.metrics.clone(),
            deadline: tokio::time::Instant::now() + duration,
            seen: HashMap::new(),
            _guard: ScanGuard(Arc::downgrade(&self.inner)),
        })
    }

    fn ensure_running(&self) -> GatewayResult<()> {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            Err(GatewayError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    /// Finds the device `target` names: an id, or a name prefix that matches one
    /// device (scanning for it when nothing known matches).
    pub async fn resolve(
        &self,
        target: &str,
        services: &[Uuid],
        timeout: Duration,
    ) -> GatewayResult<DeviceId> {
        let target = target.trim();
        if target.is_empty() {
            return Err(GatewayError::InvalidInput("device id or name is empty".into()));
        }
        let as_id = DeviceId::new(target);
        if lock(&self.inner.devices).contains_key(&as_id) || lock(&self.inner.known).contains_key(&as_id) {
            return Ok(as_id);
        }
        let matches = |d: &DeviceInfo| {
            d.name.as_deref().is_some_and(|n| n.starts_with(target))
                && (services.is_empty() || services.iter().any(|s| d.services.contains(s)))
        };
        let mut candidates: Vec<DeviceInfo> = lock(&self.inner.known)
            .values()
            .filter(|d| matches(d))
            .cloned()
            .collect();
        match candidates.len() {
            1 => return Ok(candidates.remove(0).id),
            0 => {}
            _ => {
                candidates.sort_by(|a, b| a.id.cmp(&b.id));
                return Err(GatewayError::Ambiguous {
                    prefix: target.to_string(),
                    candidates: candidates
                        .iter()
                        .map(|d| format!("{} ({})", d.name.as_deref().unwrap_or("?"), d.id))
                        .collect(),
                });
            }
        }
        let mut scan = self.scan(ScanFilter::default(), timeout).await?;
        while let Some(found) = scan.next().await {
            if found.id == as_id || matches(&found) {
                return Ok(found.id);
            }
        }
        Err(BleError::DeviceNotFound(as_id).into())
    }

    /// Connects to a device by id or name prefix, with retries; returns at once when
    /// it is connected already.
    pub async fn connect(&self, target: &str, opts: ConnectOptions) -> GatewayResult<ConnectionInfo> {
        self.connect_as(target, opts, None).await
    }

    /// Connects and records the connection metrics.
    async fn connect_as(
        &self,
        target: &str,
        opts: ConnectOptions,
        token: Option<&str>,
    ) -> GatewayResult<ConnectionInfo> {
        let started = std::time::Instant::now();
        let result = self.connect_inner(target, opts, token).await;
        let m = &self.inner.metrics;
        match &result {
            Ok(_) => {
                m.connection_success.inc();
                m.connection_time.observe(started.elapsed().as_secs_f64());
            }
            // Refusals that never reached the radio are not connection failures.
            Err(GatewayError::Busy { .. } | GatewayError::ShuttingDown | GatewayError::InvalidInput(_)) => {}
            Err(_) => {
                m.connection_failure.inc();
            }
        }
        result
    }

    async fn connect_inner(
        &self,
        target: &str,
        opts: ConnectOptions,
        token: Option<&str>,
    ) -> GatewayResult<ConnectionInfo> {
        self.ensure_running()?;
        let timeout = opts.timeout.unwrap_or(self.inner.config.connect_timeout());
        let started = tokio::time::Instant::now();
        let id = self.resolve(target, &opts.services, timeout).await?;
        self.check_lease(&id, token)?;
        // Budget for the link itself: what resolution left, but at least one
        // attempt's worth, plus the retries' back-off.
        let remaining = timeout
            .saturating_sub(started.elapsed())
            .max(self.inner.config.connect_timeout());
        let limit = remaining + self.retry_budget();
        // An actor that just exited may drop our request; one fresh actor is enough.
        for _ in 0..2 {
            let handle = self.actor_for(&id).await?;
            let (tx, rx) = oneshot::channel();
            if handle.tx.send(Command::Connect(tx)).await.is_err() {
                continue;
            }
            match tokio::time::timeout(limit, rx).await {
                Ok(Ok(result)) => {
                    result?;
                    return Ok(self.connection_info(&handle));
                }
                Ok(Err(_)) => continue,
                Err(_) => {
                    return Err(GatewayError::Timeout {
                        id,
                        operation: "connect",
                        after: limit,
                    })
                }
            }
        }
        Err(BleError::NotConnected(id).into())
    }

    fn retry_budget(&self) -> Duration {
        let c = &self.inner.config;
        (1..=c.connect_retries)
            .map(|a| c.backoff(a).mul_f64(1.34) + c.connect_timeout())
            .sum()
    }

    /// The actor for `id`, spawning one (and making room under the connection
    /// limit) when there is none.
    async fn actor_for(&self, id: &DeviceId) -> GatewayResult<DeviceHandle> {
        let evicted = {
            let mut devices = lock(&self.inner.devices);
            if let Some(h) = devices.get(id) {
                return Ok(h.clone());
            }
            let evicted = if devices.len() >= self.inner.config.max_connections {
                let leases = lock(&self.inner.leases);
                let lru = devices
                    .values()
                    .filter(|h| !leases.contains_key(&h.shared.id))
                    .min_by_key(|h| h.shared.use_seq.load(Ordering::Relaxed))
                    .map(|h| h.shared.id.clone());
                match lru {
                    Some(victim) => devices.remove(&victim),
                    None => return Err(GatewayError::ConnectionLimit(self.inner.config.max_connections)),
                }
            } else {
                None
            };
            devices.insert(id.clone(), device::spawn(&self.inner, id.clone()));
            evicted
        };
        if let Some(victim) = evicted {
            tracing::info!(device = %victim.shared.id, for_device = %id, "connection limit reached: closing least recently used link");
            let (tx, rx) = oneshot::channel();
            if victim.tx.send(Command::Disconnect(Some(tx))).await.is_ok() {
                let _ = tokio::time::timeout(self.inner.config.op_timeout(), rx).await;
            }
        }
        lock(&self.inner.devices)
            .get(id)
            .cloned()
            .ok_or_else(|| BleError::NotConnected(id.clone()).into())
    }

    fn connection_info(&self, h: &DeviceHandle) -> ConnectionInfo {
        let id = h.shared.id.clone();
        let known = lock(&self.inner.known).get(&id).cloned();
        ConnectionInfo {
            name: known.as_ref().and_then(|k| k.name.clone()),
            rssi: known.map(|k| k.rssi),
            state: h.shared.state(),
            mtu: h.shared.mtu.load(Ordering::Relaxed),
            connected_since: *lock(&h.shared.connected_since),
            lease_holder: lock(&self.inner.leases).get(&id).map(|l| l.holder.clone()),
            id,
        }
    }

    /// Open and opening links.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let handles: Vec<DeviceHandle> = lock(&self.inner.devices).values().cloned().collect();
        let mut v: Vec<ConnectionInfo> = handles.iter().map(|h| self.connection_info(h)).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Operations on one device, as an unleased caller.
    pub fn device(&self, id: &DeviceId) -> DeviceRef<'_> {
        DeviceRef {
            gateway: self,
            id: id.clone(),
            token: None,
        }
    }

    /// Takes `id` for exclusive use. With `force`, an existing holder loses it.
    pub fn lease(&self, id: &DeviceId, holder: &str, force: bool) -> GatewayResult<Lease> {
        self.ensure_running()?;
        let mut leases = lock(&self.inner.leases);
        if let Some(existing) = leases.get(id) {
            if !force {
                return Err(GatewayError::Busy {
                    id: id.clone(),
                    holder: existing.holder.clone(),
                });
            }
            tracing::info!(device = %id, previous = %existing.holder, new = holder, "lease taken over");
        }
        let info = LeaseInfo {
            token: uuid::Uuid::new_v4().to_string(),
            holder: holder.to_string(),
            since: SystemTime::now(),
        };
        leases.insert(id.clone(), info.clone());
        Ok(Lease {
            gateway: self.clone(),
            id: id.clone(),
            info,
        })
    }

    /// Who holds `id`, if anyone.
    pub fn lease_of(&self, id: &DeviceId) -> Option<LeaseInfo> {
        lock(&self.inner.leases).get(id).cloned()
    }

    /// Ends the lease with this token wherever it is (forced clean-up by a client
    /// that lost its handle); returns the device it was on.
    pub fn revoke_lease(&self, token: &str) -> GatewayResult<DeviceId> {
        let mut leases = lock(&self.inner.leases);
        let id = leases
            .iter()
            .find(|(_, l)| constant_time_eq(l.token.as_bytes(), token.as_bytes()))
            .map(|(id, _)| id.clone())
            .ok_or(GatewayError::InvalidLease)?;
        leases.remove(&id);
        Ok(id)
    }

    fn check_lease(&self, id: &DeviceId, token: Option<&str>) -> GatewayResult<()> {
        match lock(&self.inner.leases).get(id) {
            None => Ok(()),
            Some(l) if token.is_some_and(|t| constant_time_eq(t.as_bytes(), l.token.as_bytes())) => Ok(()),
            Some(l) => Err(GatewayError::Busy {
                id: id.clone(),
                holder: l.holder.clone(),
            }),
        }
    }

    /// Live resources; see [`GatewayStats`].
    pub fn stats(&self) -> GatewayStats {
        let devices: Vec<DeviceHandle> = lock(&self.inner.devices).values().cloned().collect();
        GatewayStats {
            device_tasks: self.inner.stats.actors.load(Ordering::Relaxed),
            forwarder_tasks: self.inner.stats.forwarders.load(Ordering::Relaxed),
            radio_subscriptions: devices.iter().map(|h| lock(&h.shared.subs).len()).sum(),
            subscribers: self.inner.stats.subscribers.load(Ordering::Relaxed),
            leases: lock(&self.inner.leases).len(),
            connected: devices
                .iter()
                .filter(|h| h.shared.state() == LinkState::Connected)
                .count(),
        }
    }

    /// Disconnects everything and refuses new work. Waits up to the operation timeout.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
        let handles: Vec<DeviceHandle> = lock(&self.inner.devices).drain().map(|(_, h)| h).collect();
        let waits = handles.into_iter().map(|h| async move {
            let (tx, rx) = oneshot::channel();
            if h.tx.send(Command::Disconnect(Some(tx))).await.is_ok() {
                let _ = rx.await;
            }
        });
        let _ = tokio::time::timeout(self.inner.config.op_timeout(), futures::future::join_all(waits)).await;
        let mut n = self.inner.scanners.lock().await;
        if *n > 0 {
            let _ = self.inner.backend.stop_scan().await;
            *n = 0;
        }
        tracing::debug!("gateway stopped");
    }

    /// Sends a command to a connected device's actor and waits for the answer.
    async fn call<T>(
        &self,
        id: &DeviceId,
        token: Option<&str>,
        operation: &'static str,
        make: impl FnOnce(oneshot::Sender<GatewayResult<T>>) -> Command,
    ) -> GatewayResult<T> {
        self.ensure_running()?;
        self.check_lease(id, token)?;
        let handle = lock(&self.inner.devices)
            .get(id)
            .cloned()
            .ok_or_else(|| GatewayError::Ble(BleError::NotConnected(id.clone())))?;
        let (tx, rx) = oneshot::channel();
        // The actor applies the operation timeout to the radio; this one also
        // covers the wait in its queue.
        let limit = self.inner.config.op_timeout() * 2;
        let work = async {
            handle
                .tx
                .send(make(tx))
                .await
                .map_err(|_| GatewayError::Ble(BleError::NotConnected(id.clone())))?;
            rx.await
                .map_err(|_| GatewayError::Ble(BleError::NotConnected(id.clone())))?
        };
        tokio::time::timeout(limit, work)
            .await
            .map_err(|_| GatewayError::Timeout {
                id: id.clone(),
                operation,
                after: limit,
            })?
    }
}

/// Reads the backend's events: advertisements to the known-device table and to
/// scanners; link drops to the device's actor.
async fn route_backend_events(inner: Weak<Inner>, mut rx: broadcast::Receiver<BackendEvent>) {
    loop {
        let event = match rx.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "gateway fell behind the adapter's events");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        match event {
            BackendEvent::Advertisement(adv) => {
                {
                    let mut known = lock(&inner.known);
                    if known.len() >= KNOWN_DEVICES_MAX && !known.contains_key(&adv.id) {
                        if let Some(oldest) = known.values().min_by_key(|d| d.last_seen).map(|d| d.id.clone())
                        {
                            known.remove(&oldest);
                        }
                    }
                    known.insert(adv.id.clone(), DeviceInfo::from(&adv));
                }
                let _ = inner.adverts.send(adv);
            }
            BackendEvent::Disconnected { id, reason } => {
                let handle = lock(&inner.devices).get(&id).cloned();
                if let (Some(h), DisconnectReason::LinkLost) = (handle, reason) {
                    h.shared.link_lost.notify_one();
                }
            }
            BackendEvent::Connected(_) => {}
        }
    }
}

/// A running scan. `next()` yields each matching device once, as first heard;
/// [`ScanSession::results`] gives the latest of each.
pub struct ScanSession {
    rx: broadcast::Receiver<Advertisement>,
    filter: ScanFilter,
    started: tokio::time::Instant,
    metrics: Arc<crate::metrics::Metrics>,
    deadline: tokio::time::Instant,
    seen: HashMap<DeviceId, DeviceInfo>,
    _guard: ScanGuard,
}

impl ScanSession {
    /// The next newly found device, or `None` when the scan's time is up.
    pub async fn next(&mut self) -> Option<DeviceInfo> {
        loop {
            let adv = match tokio::time::timeout_at(self.deadline, self.rx.recv()).await {
                Err(_) => return None,
                Ok(Ok(adv)) => adv,
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            };
            if !self.filter.matches(&adv) {
                continue;
            }
            let info = DeviceInfo::from(&adv);
            if self.seen.insert(adv.id.clone(), info.clone()).is_none() {
                self.metrics.devices_found.inc();
                self.metrics
                    .discovery_time
                    .observe(self.started.elapsed().as_secs_f64());
                return Some(info);
            }
        }
    }

    /// Runs the scan to its end and returns every device found, strongest first.
    pub async fn collect(mut self) -> Vec<DeviceInfo> {
        while self.next().await.is_some() {}
        self.results()
    }

    /// Devices found so far (latest advertisement of each), strongest first.
    pub fn results(&self) -> Vec<DeviceInfo> {
        let mut v: Vec<DeviceInfo> = self.seen.values().cloned().collect();
        v.sort_by(|a, b| b.rssi.cmp(&a.rssi).then_with(|| a.id.cmp(&b.id)));
        v
    }
}

/// Stops the radio scan when the last scanner goes.
struct ScanGuard(Weak<Inner>);

impl Drop for ScanGuard {
    fn drop(&mut self) {
        let Some(inner) = self.0.upgrade() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let mut n = inner.scanners.lock().await;
            *n = n.saturating_sub(1);
            if *n == 0 {
                if let Err(e) = inner.backend.stop_scan().await {
                    tracing::warn!(error = %e, "stopping the scan failed");
                }
            }
        });
    }
}

/// Who holds a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaseInfo {
    /// The secret that proves holding; clients use it for forced clean-up.
    #[serde(skip)]
    pub token: String,
    pub holder: String,
    #[serde(serialize_with = "serde_helpers::unix_ms")]
    pub since: SystemTime,
}

/// Exclusive use of one device. Operations through [`Lease::device`] pass; others
/// get `busy`. Dropping the lease releases it (the link stays open).
pub struct Lease {
    gateway: Gateway,
    id: DeviceId,
    info: LeaseInfo,
}

impl Lease {
    pub fn id(&self) -> &DeviceId {
        &self.id
    }

    pub fn token(&self) -> &str {
        &self.info.token
    }

    pub fn holder(&self) -> &str {
        &self.info.holder
    }

    /// Whether this lease still holds (a forced take-over or revoke ends it).
    pub fn is_valid(&self) -> bool {
        self.gateway
            .lease_of(&self.id)
            .is_some_and(|l| l.token == self.info.token)
    }

    pub fn device(&self) -> DeviceRef<'_> {
        DeviceRef {
            gateway: &self.gateway,
            id: self.id.clone(),
            token: Some(&self.info.token),
        }
    }

    /// Connects the leased device (a lease can be taken before the link is up).
    pub async fn connect(&self, timeout: Option<Duration>) -> GatewayResult<ConnectionInfo> {
        self.gateway
            .connect_as(
                self.id.as_str(),
                ConnectOptions {
                    timeout,
                    services: Vec::new(),
                },
                Some(&self.info.token),
            )
            .await
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut leases = lock(&self.gateway.inner.leases);
        if leases.get(&self.id).is_some_and(|l| l.token == self.info.token) {
            leases.remove(&self.id);
        }
    }
}

/// Operations on one connected device, with or without a lease.
pub struct DeviceRef<'a> {
    gateway: &'a Gateway,
    id: DeviceId,
    token: Option<&'a str>,
}

impl DeviceRef<'_> {
    pub fn id(&self) -> &DeviceId {
        &self.id
    }

    /// The GATT tree, discovered once per connection.
    pub async fn services(&self) -> GatewayResult<Arc<Vec<Service>>> {
        self.gateway
            .call(&self.id, self.token, "discover", Command::Services)
            .await
    }

    pub async fn read(&self, service: Uuid, characteristic: Uuid) -> GatewayResult<Bytes> {
        self.gateway
            .call(&self.id, self.token, "read", |reply| Command::Read {
                key: (service, characteristic),
                reply,
            })
            .await
    }

    /// Writes a value; without response, values longer than the MTU allows go as
    /// several writes.
    pub async fn write(
        &self,
        service: Uuid,
        characteristic: Uuid,
        value: impl Into<Bytes>,
        kind: WriteKind,
    ) -> GatewayResult<()> {
        let value = value.into();
        self.gateway
            .call(&self.id, self.token, "write", |reply| Command::Write {
                key: (service, characteristic),
                value,
                kind,
                reply,
            })
            .await
    }

    pub async fn read_descriptor(
        &self,
        service: Uuid,
        characteristic: Uuid,
        descriptor: Uuid,
    ) -> GatewayResult<Bytes> {
        self.gateway
            .call(&self.id, self.token, "read descriptor", |reply| {
                Command::ReadDescriptor {
                    key: (service, characteristic),
                    descriptor,
                    reply,
                }
            })
            .await
    }

    pub async fn write_descriptor(
        &self,
        service: Uuid,
        characteristic: Uuid,
        descriptor: Uuid,
        value: impl Into<Bytes>,
    ) -> GatewayResult<()> {
        let value = value.into();
        self.gateway
            .call(&self.id, self.token, "write descriptor", |reply| {
                Command::WriteDescriptor {
                    key: (service, characteristic),
                    descriptor,
                    value,
                    reply,
                }
            })
            .await
    }

    /// Subscribes to notifications; the radio subscription is shared by every
    /// subscriber of the characteristic and turned off after the last one goes.
    pub async fn subscribe(&self, service: Uuid, characteristic: Uuid) -> GatewayResult<Subscription> {
        let rx = self
            .gateway
            .call(&self.id, self.token, "subscribe", |reply| Command::Subscribe {
                key: (service, characteristic),
                reply,
            })
            .await?;
        let shared = lock(&self.gateway.inner.devices)
            .get(&self.id)
            .map(|h| h.shared.clone());
        Ok(Subscription {
            rx,
            shared: shared.as_ref().map(Arc::downgrade).unwrap_or_default(),
            _count: LiveCount::new(&self.gateway.inner.stats.subscribers),
        })
    }

    /// Closes the link; the device's subscriptions end.
    pub async fn disconnect(&self) -> GatewayResult<()> {
        self.gateway.check_lease(&self.id, self.token)?;
        let handle = lock(&self.gateway.inner.devices).remove(&self.id);
        let Some(handle) = handle else {
            return Err(BleError::NotConnected(self.id.clone()).into());
        };
        let (tx, rx) = oneshot::channel();
        if handle.tx.send(Command::Disconnect(Some(tx))).await.is_ok() {
            let _ = tokio::time::timeout(self.gateway.inner.config.op_timeout(), rx).await;
        }
        Ok(())
    }
}

/// What a subscriber receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubscriptionEvent {
    Notification(Notification),
    /// The subscriber fell behind and this many notifications were dropped for it.
    Lagged(u64),
}

/// Notifications of one characteristic for one subscriber. Ends (`None`) when the
/// device is disconnected for good; dropping it unsubscribes.
pub struct Subscription {
    rx: broadcast::Receiver<Notification>,
    shared: Weak<DeviceShared>,
    _count: LiveCount,
}

impl Subscription {
    pub async fn recv(&mut self) -> Option<SubscriptionEvent> {
        match self.rx.recv().await {
            Ok(n) => Some(SubscriptionEvent::Notification(n)),
            Err(broadcast::error::RecvError::Lagged(k)) => Some(SubscriptionEvent::Lagged(k)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            // Let the receiver go first so the sweep sees the lower count.
            let (_, closed) = broadcast::channel::<Notification>(1);
            drop(std::mem::replace(&mut self.rx, closed));
            shared.housekeeping.notify_one();
        }
    }
}
