//! The core service and the only owner of the radio. A [`Gateway`] is a cheap clone
//! handle; every front end holds one and translates its protocol into these calls.
//!
//! - Scans are shared: any number of callers scan at once over one radio scan, each
//!   with its own filter and deadline, de-duplicated per caller ([`ScanSession`]).
//! - Connect takes an id or a name prefix; unknown devices are scanned for.
//! - Each connected device has an actor task (`device/`) that serialises its
//!   operations; the connection limit closes the least recently used unleased link.
//! - Subscriptions fan out one radio subscription to any number of subscribers, each
//!   with a bounded buffer; a subscriber that falls behind is told how much it missed.
//! - Leases give one holder exclusive use of a device ([`Lease`]); others get `busy`.
//!
//! Here: the handle and its shared state. Beside it, one job a file: `radios.rs`
//! (the set of radios and routing), `scan.rs`, `connect.rs`, `device/` (the
//! per-device actor; `link.rs` its link's lifecycle), `device_ref.rs` (operations on
//! a device), `lease.rs`, `backend_events.rs` (each radio's events routed),
//! `watchdog.rs`, `radio_status.rs` (each radio's state for operators), `info.rs`
//! (what the gateway reports), `packet_log.rs`, `config.rs`, `error.rs`.

mod backend_events;
mod config;
mod connect;
mod device;
mod device_ref;
mod error;
mod info;
mod lease;
pub mod packet_log;
mod radio_status;
mod radios;
mod scan;
pub mod serde_helpers;
mod visibility;
mod watchdog;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, oneshot};

pub use self::config::GatewayConfig;
pub use self::device::LinkState;
use self::device::{Command, DeviceHandle, DeviceShared};
pub use self::device_ref::{DeviceRef, Subscription, SubscriptionEvent};
pub use self::error::{GatewayError, GatewayResult, Operation};
pub use self::info::{ConnectOptions, ConnectionInfo, DeviceInfo, GatewayEvent, GatewayStats, Heard};
pub(crate) use self::info::{LiveCount, Stats};
pub use self::lease::{Lease, LeaseInfo};
use self::packet_log::PacketLog;
pub use self::radio_status::{RadioState, RadioStatus};
pub use self::radios::RadioSpec;
use self::radios::Radios;
pub use self::scan::ScanSession;
pub use self::visibility::DeviceFilter;
use crate::ble::{Backend, DeviceId, Notification};
use crate::metrics::Metrics;
pub(crate) use crate::sync::{lock, AbortOnDrop};

pub(crate) struct Inner {
    /// The radios, and which carries each link.
    radios: Radios,
    config: GatewayConfig,
    started: Instant,
    use_counter: std::sync::atomic::AtomicU64,
    /// Open or opening links.
    devices: Mutex<HashMap<DeviceId, DeviceHandle>>,
    known: Mutex<HashMap<DeviceId, DeviceInfo>>,
    leases: Mutex<HashMap<DeviceId, LeaseInfo>>,
    /// Advertisements as scanners see them (see [`Heard`]).
    adverts: broadcast::Sender<Arc<Heard>>,
    events: broadcast::Sender<GatewayEvent>,
    notifications: broadcast::Sender<Notification>,
    /// Callers scanning now; the radio scans while it is above zero.
    scanners: tokio::sync::Mutex<usize>,
    stats: Arc<Stats>,
    packets: Arc<PacketLog>,
    metrics: Arc<Metrics>,
    shutting_down: std::sync::atomic::AtomicBool,
    /// One task per radio, reading its events.
    router: Mutex<Vec<AbortOnDrop>>,
    lag_probe: Mutex<Option<AbortOnDrop>>,
    watchdog: Mutex<Option<AbortOnDrop>>,
    /// What decoding adverts needs: keys, counters.
    advert_keys: Mutex<Arc<crate::adverts::Keys>>,
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
    /// Starts the gateway over one radio, with `gateway.max_connections` slots,
    /// recording into `metrics` (the process's registry, which the hub and the
    /// front ends record into too). Must run inside a tokio runtime.
    pub fn new(
        backend: Arc<dyn Backend>,
        config: GatewayConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, GatewayError> {
        let radio = RadioSpec {
            name: backend.name().to_string(),
            slots: config.max_connections,
            backend,
        };
        Self::with_radios(vec![radio], config, metrics)
    }

    /// Starts the gateway over several radios (`[[radios]]`), recording into
    /// `metrics`. Must run inside a tokio runtime.
    pub fn with_radios(
        radios: Vec<RadioSpec>,
        config: GatewayConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, GatewayError> {
        config.validate().map_err(GatewayError::InvalidInput)?;
        radios::validate(&radios).map_err(GatewayError::InvalidInput)?;
        let packets = Arc::new(PacketLog::new(config.packet_log_size));
        let inner = Arc::new(Inner {
            radios: Radios::new(radios, config.radio_hysteresis_db),
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
            metrics,
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            router: Mutex::new(Vec::new()),
            lag_probe: Mutex::new(None),
            watchdog: Mutex::new(None),
            advert_keys: Mutex::new(Arc::new(crate::adverts::Keys::default())),
        });
        *lock(&inner.router) = (0..inner.radios.list.len())
            .map(|i| {
                let events = inner.radios.list[i].backend.events();
                let route = backend_events::route_backend_events(Arc::downgrade(&inner), i, events);
                AbortOnDrop(tokio::spawn(route))
            })
            .collect();
        *lock(&inner.lag_probe) = Some(Metrics::spawn_lag_probe(inner.metrics.clone()));
        *lock(&inner.watchdog) = watchdog::spawn(Arc::downgrade(&inner), &inner.config);
        Ok(Gateway { inner })
    }

    /// Sets the keys encrypted adverts are read with (`[[bthome.keys]]`).
    pub fn set_advert_keys(&self, keys: crate::adverts::Keys) {
        *lock(&self.inner.advert_keys) = Arc::new(keys);
    }

    /// The radios' names, comma-separated.
    pub fn backend_name(&self) -> String {
        let names: Vec<&str> = self.inner.radios.list.iter().map(|r| r.name.as_str()).collect();
        names.join(",")
    }

    /// Whether some radio is present and powered; with none, the first one's error.
    pub async fn adapter_status(&self) -> GatewayResult<()> {
        let mut first_error = None;
        for r in &self.inner.radios.list {
            match r.backend.adapter_status().await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.map_or_else(|| GatewayError::InvalidInput("no radio".into()), Into::into))
    }

    /// True when every radio is simulated.
    pub fn is_simulated(&self) -> bool {
        self.inner.radios.list.iter().all(|r| r.backend.is_simulated())
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

    /// The metrics registry every layer records into (the one it was given).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Prometheus text for `/metrics`.
    pub async fn render_metrics(&self) -> String {
        for r in self.radios().await {
            let age = r.last_advert_age_ms.map(|ms| ms as f64 / 1000.0);
            let slots = (r.slots_used, r.slots_free);
            let up = r.state == RadioState::Ok;
            self.inner.metrics.set_radio(&r.name, up, r.scanning, slots, age);
        }
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

    fn ensure_running(&self) -> GatewayResult<()> {
        if self.inner.shutting_down.load(Ordering::Acquire) {
            Err(GatewayError::ShuttingDown)
        } else {
            Ok(())
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
            for r in &self.inner.radios.list {
                let _ = r.backend.stop_scan().await;
            }
            *n = 0;
        }
        tracing::debug!("gateway stopped");
    }
}
