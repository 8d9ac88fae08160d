//! The simulated radio: in-process virtual peripherals with real GATT databases,
//! realistic timing and switchable faults. It is the embedded default (`--backend
//! sim`) and the test bed, so it behaves like a radio: devices advertise with drifting
//! RSSI and stop while connected, links take time to come up, the MTU is negotiated,
//! notifications arrive at each sensor's own rate, one device wanders out of range,
//! and tests can make connects fail, links drop and reads hang ([`SimDeviceControl`]).
//!
//! `time_scale` speeds everything up (tests use 100: a 1 s heart-rate period becomes
//! 10 ms). Delays that scale below the timer's 1 ms resolution are skipped.
//!
//! Here: the adapter (power, scanning, stalls, the world's clock) and the
//! [`Backend`] calls; one simulated peripheral in `peripheral.rs`; the built-in
//! devices in `catalog.rs`, their spec in `spec.rs`, the CS108 reader in `cs108.rs`.

pub mod catalog;
pub mod cs108;
mod generators;
mod peripheral;
mod radio;
pub mod spec;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use self::spec::{DeviceSpec, WriteAction};
use super::{
    well_known, Backend, BackendEvent, BleError, BleResult, CharProps, DeviceId, DisconnectReason,
    NotificationStream, ScanFilter, Service, Uuid, WriteKind,
};
use crate::sync::{lock, AbortOnDrop};

pub use self::peripheral::SimDeviceControl;
use self::peripheral::{pause, scaled, OpenLink, SimDevice};
pub use self::radio::SimRadio;

/// The MTU the simulated central asks for (what Android and iOS ask for).
const CENTRAL_MTU: u16 = 247;
/// Advertising interval before time scaling.
const ADV_INTERVAL_MS: u64 = 100;
/// The world never ticks faster than this, whatever the time scale, so a fast
/// simulation does not eat a core.
const MIN_TICK: Duration = Duration::from_millis(5);

/// How to build the simulated world.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Speed-up of every latency and period (1.0 = real time).
    pub time_scale: f64,
    /// Include the built-in devices.
    pub builtin: bool,
    /// Devices to add (see [`spec`]).
    pub devices: Vec<DeviceSpec>,
    /// Seed for RSSI drift and sensor values; random when absent.
    pub seed: Option<u64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            time_scale: 1.0,
            builtin: true,
            devices: Vec::new(),
            seed: None,
        }
    }
}

/// The simulated adapter.
pub struct SimBackend {
    devices: BTreeMap<DeviceId, Arc<SimDevice>>,
    /// The simulated adapter's power: off, it scans and connects nothing.
    powered: std::sync::atomic::AtomicBool,
    events: broadcast::Sender<BackendEvent>,
    scanning: Arc<std::sync::atomic::AtomicBool>,
    /// A stuck scanner ([`Stall`]): it reports scanning and hears nothing.
    stalled: Arc<std::sync::atomic::AtomicU8>,
    /// Radios ([`SimRadio`]) scanning in this world now.
    radios_scanning: std::sync::atomic::AtomicUsize,
    _world: AbortOnDrop,
}

/// How the simulated radio gets stuck, as real adapters do (BlueZ's
/// `org.bluez.Error.InProgress`): scanning on paper, hearing nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Stall {
    /// Restarting the scan unsticks it.
    Scanner = 1,
    /// Only a power cycle ([`Backend::reset`]) does.
    Adapter = 2,
}

impl SimBackend {
    /// Builds the world and starts its clock. Must run inside a tokio runtime.
    pub fn new(config: &SimConfig) -> Result<Arc<Self>, BleError> {
        if !(config.time_scale.is_finite() && config.time_scale > 0.0) {
            return Err(BleError::Other(format!(
                "sim.time_scale must be a positive number, not {}",
                config.time_scale
            )));
        }
        let mut specs = if config.builtin {
            catalog::builtin()
        } else {
            Vec::new()
        };
        specs.extend(config.devices.iter().cloned());
        let (events, _) = broadcast::channel(4096);
        let mut seeder = config.seed.map(fastrand::Rng::with_seed).unwrap_or_default();
        let started = Instant::now();
        let mut devices = BTreeMap::new();
        for spec in specs {
            spec.validate().map_err(BleError::Other)?;
            let id = DeviceId::new(&spec.address);
            if devices.contains_key(&id) {
                return Err(BleError::Other(format!(
                    "two simulated devices share address {id}"
                )));
            }
            let dev = SimDevice::new(spec, config.time_scale, started, events.clone(), seeder.u64(..))
                .map_err(BleError::Other)?;
            devices.insert(id, Arc::new(dev));
        }
        let scanning = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tick = scaled(ADV_INTERVAL_MS, config.time_scale)
            .unwrap_or(MIN_TICK)
            .max(MIN_TICK);
        let weak: Vec<Weak<SimDevice>> = devices.values().map(Arc::downgrade).collect();
        let stalled = Arc::new(std::sync::atomic::AtomicU8::new(0));
        let listening = (scanning.clone(), stalled.clone());
        let world = tokio::spawn(run_world(weak, listening, events.clone(), tick));
        Ok(Arc::new(SimBackend {
            devices,
            powered: std::sync::atomic::AtomicBool::new(true),
            events,
            scanning,
            stalled,
            radios_scanning: std::sync::atomic::AtomicUsize::new(0),
            _world: AbortOnDrop(world),
        }))
    }

    /// Controls for one device's faults and range, for tests and demos.
    pub fn control(&self, id: &DeviceId) -> Option<SimDeviceControl> {
        self.devices.get(id).map(|d| SimDeviceControl(d.clone()))
    }

    /// Powers the simulated adapter off (every link drops, scans and connects fail)
    /// or back on, as `rfkill` or a pulled dongle would.
    pub fn set_powered(&self, on: bool) {
        self.powered.store(on, std::sync::atomic::Ordering::Release);
        if !on {
            self.scanning.store(false, std::sync::atomic::Ordering::Relaxed);
            for d in self.devices.values() {
                d.drop_link(DisconnectReason::LinkLost);
            }
        }
    }

    /// Gets the radio stuck: it keeps scanning and hears nothing, until a scan
    /// restart or a power cycle (see [`Stall`]) brings it back.
    pub fn stall(&self, how: Stall) {
        self.stalled
            .store(how as u8, std::sync::atomic::Ordering::Release);
    }

    /// A radio in this world started (`true`) or stopped scanning: the devices
    /// advertise while any radio listens.
    fn radio_scanning(&self, on: bool) {
        let before = if on {
            self.radios_scanning.fetch_add(1, Ordering::AcqRel)
        } else {
            self.radios_scanning.fetch_sub(1, Ordering::AcqRel)
        };
        let now = if on { before + 1 } else { before.saturating_sub(1) };
        self.scanning.store(now > 0, Ordering::Relaxed);
    }

    fn check_powered(&self) -> BleResult<()> {
        if self.powered.load(std::sync::atomic::Ordering::Acquire) {
            Ok(())
        } else {
            Err(BleError::AdapterUnavailable(
                "the simulated adapter is powered off".into(),
            ))
        }
    }

    /// Every simulated device's id and name.
    pub fn device_ids(&self) -> Vec<(DeviceId, String)> {
        self.devices
            .values()
            .map(|d| (d.id.clone(), d.spec.name.clone()))
            .collect()
    }

    fn device(&self, id: &DeviceId) -> BleResult<&Arc<SimDevice>> {
        self.devices
            .get(id)
            .ok_or_else(|| BleError::DeviceNotFound(id.clone()))
    }
}

/// The world's clock: RSSI drift, range changes (dropping links that go out of
/// range) and advertising while a scan runs.
async fn run_world(
    devices: Vec<Weak<SimDevice>>,
    (scanning, stalled): (
        Arc<std::sync::atomic::AtomicBool>,
        Arc<std::sync::atomic::AtomicU8>,
    ),
    events: broadcast::Sender<BackendEvent>,
    tick: Duration,
) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        // A stalled radio hears nothing; the devices advertise all the same.
        let scanning = scanning.load(Ordering::Relaxed) && stalled.load(Ordering::Acquire) == 0;
        for weak in &devices {
            let Some(dev) = weak.upgrade() else { return };
            if let Some(adv) = dev.tick(scanning) {
                // No receiver is fine: nobody is listening yet.
                let _ = events.send(BackendEvent::Advertisement(adv));
            }
        }
    }
}

#[async_trait]
impl Backend for SimBackend {
    fn name(&self) -> &str {
        "sim"
    }

    fn is_simulated(&self) -> bool {
        true
    }

    async fn adapter_status(&self) -> BleResult<()> {
        self.check_powered()
    }

    fn events(&self) -> broadcast::Receiver<BackendEvent> {
        self.events.subscribe()
    }

    async fn start_scan(&self, _filter: &ScanFilter) -> BleResult<()> {
        self.check_powered()?;
        // A fresh scan unsticks a stuck scanner, not a stuck adapter.
        let scanner = Stall::Scanner as u8;
        let _ = self
            .stalled
            .compare_exchange(scanner, 0, Ordering::AcqRel, Ordering::Acquire);
        self.scanning.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn reset(&self) -> BleResult<()> {
        self.set_powered(false);
        self.stalled.store(0, Ordering::Release);
        self.set_powered(true);
        Ok(())
    }

    async fn stop_scan(&self) -> BleResult<()> {
        self.scanning.store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn connect(&self, id: &DeviceId) -> BleResult<u16> {
        self.check_powered()?;
        let dev = self.device(id)?;
        if let Some(mtu) = dev.connected_mtu() {
            return Ok(mtu);
        }
        let jitter = 0.8 + lock(&dev.state).rng.f64() * 0.4;
        let latency = scaled(
            (dev.spec.connect_latency_ms as f64 * jitter) as u64,
            dev.time_scale,
        );
        let fail = {
            let mut f = lock(&dev.faults);
            let fail = f.fail_connects > 0;
            f.fail_connects = f.fail_connects.saturating_sub(1);
            fail
        };
        pause(latency).await;
        if fail {
            return Err(BleError::ConnectFailed {
                id: id.clone(),
                reason: "connection failed to be established (0x3e, injected fault)".into(),
            });
        }
        let mtu = {
            let mut st = lock(&dev.state);
            if !dev.in_range(&st) {
                return Err(BleError::ConnectFailed {
                    id: id.clone(),
                    reason: "no answer from the device: it is out of range".into(),
                });
            }
            if let Some(link) = &st.link {
                return Ok(link.mtu);
            }
            let mtu = dev.spec.mtu.min(CENTRAL_MTU);
            let (notify_tx, _) = broadcast::channel(1024);
            st.link = Some(OpenLink {
                mtu,
                notify_tx,
                subscribed: HashSet::new(),
                _generators: dev.spawn_generators(),
            });
            mtu
        };
        let _ = self.events.send(BackendEvent::Connected(id.clone()));
        Ok(mtu)
    }

    async fn disconnect(&self, id: &DeviceId) -> BleResult<()> {
        let dev = self.device(id)?;
        // A slow device is slow to tear its link down too.
        let delay = lock(&dev.faults).extra_delay;
        if !delay.is_zero() && dev.connected_mtu().is_some() {
            tokio::time::sleep(delay).await;
        }
        dev.drop_link(DisconnectReason::Requested);
        Ok(())
    }

    async fn is_connected(&self, id: &DeviceId) -> bool {
        self.devices.get(id).is_some_and(|d| d.connected_mtu().is_some())
    }

    async fn discover(&self, id: &DeviceId) -> BleResult<Vec<Service>> {
        let dev = self.device(id)?;
        // One round trip per service, plus the primary-service discovery itself.
        dev.round_trip(1 + dev.gatt.len() as u32).await?;
        Ok(dev.gatt.clone())
    }

    async fn read(&self, id: &DeviceId, service: Uuid, characteristic: Uuid) -> BleResult<Bytes> {
        let dev = self.device(id)?;
        let c = dev.characteristic(service, characteristic)?;
        if !c.props.contains(CharProps::READ) {
            return Err(BleError::NotPermitted {
                characteristic,
                operation: "read",
            });
        }
        let hang = {
            let mut f = lock(&dev.faults);
            let hang = f.hang_reads > 0;
            f.hang_reads = f.hang_reads.saturating_sub(1);
            hang
        };
        if hang {
            std::future::pending::<()>().await;
        }
        dev.round_trip(1).await?;
        let st = lock(&dev.state);
        Ok(Bytes::from(
            st.values
                .get(&(service, characteristic))
                .cloned()
                .unwrap_or_default(),
        ))
    }

    async fn write(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        value: &[u8],
        kind: WriteKind,
    ) -> BleResult<()> {
        let dev = self.device(id)?;
        let c = dev.characteristic(service, characteristic)?;
        if !c.props.contains(kind.required_prop()) {
            return Err(BleError::NotPermitted {
                characteristic,
                operation: match kind {
                    WriteKind::WithResponse => "write",
                    WriteKind::WithoutResponse => "write without response",
                },
            });
        }
        let max = match (kind, dev.connected_mtu()) {
            // A write command must fit in one ATT packet.
            (WriteKind::WithoutResponse, Some(mtu)) => (mtu as usize - 3).min(c.max_len.unwrap_or(512)),
            _ => c.max_len.unwrap_or(512),
        };
        if value.len() > max {
            return Err(BleError::ValueTooLong {
                characteristic,
                len: value.len(),
                max,
            });
        }
        dev.round_trip(1).await?;
        let mut st = lock(&dev.state);
        st.values.insert((service, characteristic), value.to_vec());
        match dev.write_action(service, characteristic) {
            WriteAction::Store => {}
            WriteAction::Echo { to } => {
                st.values.insert((service, to), value.to_vec());
                dev.notify(&st, service, to, value.to_vec());
            }
            WriteAction::Cs108 { to } => {
                let answers = st.reader.as_mut().map(|r| r.handle(value)).unwrap_or_default();
                for frame in answers {
                    dev.notify(&st, service, to, frame);
                }
            }
        }
        Ok(())
    }

    async fn read_descriptor(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        descriptor: Uuid,
    ) -> BleResult<Bytes> {
        let dev = self.device(id)?;
        let c = dev.characteristic(service, characteristic)?;
        if !c.descriptors.iter().any(|d| d.uuid == descriptor) {
            return Err(BleError::DescriptorNotFound {
                characteristic,
                descriptor,
            });
        }
        dev.round_trip(1).await?;
        let st = lock(&dev.state);
        if descriptor == well_known::CCCD {
            let on = st
                .link
                .as_ref()
                .is_some_and(|l| l.subscribed.contains(&(service, characteristic)));
            return Ok(Bytes::from_static(if on { &[0x01, 0x00] } else { &[0x00, 0x00] }));
        }
        Ok(Bytes::from(
            st.descriptor_values
                .get(&(service, characteristic, descriptor))
                .cloned()
                .unwrap_or_default(),
        ))
    }

    async fn write_descriptor(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        descriptor: Uuid,
        value: &[u8],
    ) -> BleResult<()> {
        let dev = self.device(id)?;
        let c = dev.characteristic(service, characteristic)?;
        if !c.descriptors.iter().any(|d| d.uuid == descriptor) {
            return Err(BleError::DescriptorNotFound {
                characteristic,
                descriptor,
            });
        }
        if descriptor == well_known::CCCD {
            let enable = match value {
                [0, 0] => false,
                [1 | 2, 0] => true,
                _ => {
                    return Err(BleError::Other(
                        "the Client Characteristic Configuration takes 0000, 0100 or 0200".into(),
                    ))
                }
            };
            return if enable {
                self.subscribe(id, service, characteristic).await
            } else {
                self.unsubscribe(id, service, characteristic).await
            };
        }
        dev.round_trip(1).await?;
        lock(&dev.state)
            .descriptor_values
            .insert((service, characteristic, descriptor), value.to_vec());
        Ok(())
    }

    async fn subscribe(&self, id: &DeviceId, service: Uuid, characteristic: Uuid) -> BleResult<()> {
        let dev = self.device(id)?;
        let c = dev.characteristic(service, characteristic)?;
        if !c.props.can_subscribe() {
            return Err(BleError::NotPermitted {
                characteristic,
                operation: "notify",
            });
        }
        dev.round_trip(1).await?;
        let mut st = lock(&dev.state);
        let link = st.link.as_mut().ok_or_else(|| BleError::LinkLost(id.clone()))?;
        link.subscribed.insert((service, characteristic));
        Ok(())
    }

    async fn unsubscribe(&self, id: &DeviceId, service: Uuid, characteristic: Uuid) -> BleResult<()> {
        let dev = self.device(id)?;
        dev.characteristic(service, characteristic)?;
        dev.round_trip(1).await?;
        let mut st = lock(&dev.state);
        if let Some(link) = st.link.as_mut() {
            link.subscribed.remove(&(service, characteristic));
        }
        Ok(())
    }

    async fn notifications(&self, id: &DeviceId) -> BleResult<NotificationStream> {
        let dev = self.device(id)?;
        let st = lock(&dev.state);
        let link = st
            .link
            .as_ref()
            .ok_or_else(|| BleError::NotConnected(id.clone()))?;
        let rx = link.notify_tx.subscribe();
        // A consumer that falls 1024 behind the radio loses the oldest, as an
        // adapter's own queue would.
        Ok(BroadcastStream::new(rx)
            .filter_map(|n| async move { n.ok() })
            .boxed())
    }

    async fn rssi(&self, id: &DeviceId) -> Option<i16> {
        self.devices.get(id).map(|d| lock(&d.state).rssi.round() as i16)
    }
}
