//! One simulated peripheral: its GATT database and values, advertising with
//! drifting RSSI, links with a negotiated MTU, notification generators, timing,
//! and the faults and range a test switches ([`SimDeviceControl`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::broadcast;

use super::spec::{DeviceSpec, GeneratorKind, WriteAction};
use super::{cs108, generators};
use crate::ble::{
    well_known, Advertisement, BackendEvent, BleError, BleResult, Characteristic, Descriptor, DeviceId,
    DisconnectReason, Notification, Service, Uuid,
};
use crate::sync::{lock, AbortOnDrop};

/// Faults a test switches on for one device.
#[derive(Debug, Default)]
pub(super) struct Faults {
    /// The next N connection attempts fail.
    pub(super) fail_connects: u32,
    /// The next GATT operation drops the link instead of completing.
    pub(super) drop_on_next_op: bool,
    /// The next N reads never answer.
    pub(super) hang_reads: u32,
    /// Added to every GATT operation (not scaled).
    pub(super) extra_delay: Duration,
}

/// An open link to a device; dropping it stops the device's generators and ends the
/// notification stream.
pub(super) struct OpenLink {
    pub(super) mtu: u16,
    pub(super) notify_tx: broadcast::Sender<Notification>,
    /// (service, characteristic) with notifications enabled.
    pub(super) subscribed: HashSet<(Uuid, Uuid)>,
    pub(super) _generators: Vec<AbortOnDrop>,
}

pub(super) struct DeviceState {
    pub(super) link: Option<OpenLink>,
    pub(super) values: HashMap<(Uuid, Uuid), Vec<u8>>,
    pub(super) descriptor_values: HashMap<(Uuid, Uuid, Uuid), Vec<u8>>,
    /// Current RSSI; drifts around the spec's mean.
    pub(super) rssi: f64,
    /// Set by a test to force the device in or out of range.
    pub(super) in_range_override: Option<bool>,
    /// Present on devices that speak CS108.
    pub(super) reader: Option<cs108::ReaderState>,
    pub(super) rng: fastrand::Rng,
}

pub(super) struct SimDevice {
    pub(super) id: DeviceId,
    pub(super) spec: DeviceSpec,
    pub(super) gatt: Vec<Service>,
    pub(super) time_scale: f64,
    pub(super) started: Instant,
    pub(super) events: broadcast::Sender<BackendEvent>,
    pub(super) state: Mutex<DeviceState>,
    pub(super) faults: Mutex<Faults>,
}

/// Switches faults and range on one simulated device.
#[derive(Clone)]
pub struct SimDeviceControl(pub(super) Arc<SimDevice>);

impl SimDeviceControl {
    /// The next `n` connection attempts fail.
    pub fn fail_next_connects(&self, n: u32) {
        lock(&self.0.faults).fail_connects = n;
    }

    /// The next GATT operation drops the link instead of completing.
    pub fn drop_link_on_next_op(&self) {
        lock(&self.0.faults).drop_on_next_op = true;
    }

    /// The next `n` reads never answer.
    pub fn hang_next_reads(&self, n: u32) {
        lock(&self.0.faults).hang_reads = n;
    }

    /// Every GATT operation takes this much longer.
    pub fn set_response_delay(&self, delay: Duration) {
        lock(&self.0.faults).extra_delay = delay;
    }

    /// Forces the device in or out of range (`None`: back to its own schedule).
    /// Going out of range drops an open link at the next world tick.
    pub fn set_in_range(&self, in_range: Option<bool>) {
        lock(&self.0.state).in_range_override = in_range;
    }

    /// Drops the link now, as a supervision timeout would.
    pub fn drop_link(&self) {
        self.0.drop_link(DisconnectReason::LinkLost);
    }

    pub fn is_connected(&self) -> bool {
        lock(&self.0.state).link.is_some()
    }
}

/// A delay in ms scaled by the time scale; `None` when it scales below 1 ms.
pub(super) fn scaled(ms: u64, time_scale: f64) -> Option<Duration> {
    let d = Duration::from_secs_f64(ms as f64 / 1000.0 / time_scale);
    (d >= Duration::from_millis(1)).then_some(d)
}

pub(super) async fn pause(d: Option<Duration>) {
    if let Some(d) = d {
        tokio::time::sleep(d).await;
    }
}

impl SimDevice {
    pub(super) fn new(
        spec: DeviceSpec,
        time_scale: f64,
        started: Instant,
        events: broadcast::Sender<BackendEvent>,
        seed: u64,
    ) -> Result<Self, String> {
        let mut gatt = Vec::new();
        let mut values = HashMap::new();
        let mut descriptor_values = HashMap::new();
        for s in &spec.services {
            let mut characteristics = Vec::new();
            for c in &s.characteristics {
                let props = c.props()?;
                values.insert((s.uuid, c.uuid), c.initial_value()?);
                let mut descriptors = Vec::new();
                if props.can_subscribe() {
                    descriptors.push(Descriptor {
                        uuid: well_known::CCCD,
                    });
                }
                for d in &c.descriptors {
                    descriptors.push(Descriptor { uuid: d.uuid });
                    descriptor_values.insert((s.uuid, c.uuid, d.uuid), d.initial_value()?);
                }
                characteristics.push(Characteristic {
                    uuid: c.uuid,
                    service: s.uuid,
                    props,
                    descriptors,
                    max_len: Some(c.max_len),
                });
            }
            gatt.push(Service {
                uuid: s.uuid,
                primary: true,
                characteristics,
            });
        }
        let has_reader = spec
            .services
            .iter()
            .flat_map(|s| &s.characteristics)
            .any(|c| matches!(c.on_write, WriteAction::Cs108 { .. }));
        let state = DeviceState {
            link: None,
            values,
            descriptor_values,
            rssi: spec.rssi as f64,
            in_range_override: None,
            reader: has_reader.then(|| cs108::ReaderState::new(&spec.name)),
            rng: fastrand::Rng::with_seed(seed),
        };
        Ok(SimDevice {
            id: DeviceId::new(&spec.address),
            spec,
            gatt,
            time_scale,
            started,
            events,
            state: Mutex::new(state),
            faults: Mutex::new(Faults::default()),
        })
    }

    pub(super) fn in_range(&self, state: &DeviceState) -> bool {
        if let Some(forced) = state.in_range_override {
            return forced;
        }
        match self.spec.range_cycle {
            None => true,
            Some(cycle) => {
                let period = (cycle.in_ms + cycle.out_ms).max(1) as f64;
                let elapsed_ms = self.started.elapsed().as_secs_f64() * 1000.0 * self.time_scale;
                elapsed_ms % period < cycle.in_ms as f64
            }
        }
    }

    /// One world tick: drift, range, and the advertisement to send if any.
    pub(super) fn tick(&self, scanning: bool) -> Option<Advertisement> {
        let mut st = lock(&self.state);
        let mean = self.spec.rssi as f64;
        let noise = st.rng.f64() * 4.0 - 2.0;
        st.rssi = (mean + 0.85 * (st.rssi - mean) + noise).clamp(mean - 8.0, mean + 8.0);
        let in_range = self.in_range(&st);
        if !in_range && st.link.is_some() {
            drop(st);
            self.drop_link(DisconnectReason::LinkLost);
            return None;
        }
        // Connected peripherals stop advertising; one packet in ten is lost.
        if !scanning || !in_range || st.link.is_some() || st.rng.u8(0..10) == 0 {
            return None;
        }
        Some(self.advertisement(st.rssi.round() as i16))
    }

    pub(super) fn advertisement(&self, rssi: i16) -> Advertisement {
        let (manufacturer_data, service_data) = match self.spec.adverts.len() {
            0 => self.spec.fixed_payload().decode(),
            n => {
                // The payload of the current period of the (scaled) clock.
                let period = self.spec.advert_period_ms as f64 / self.time_scale;
                let turn = (self.started.elapsed().as_secs_f64() * 1000.0 / period) as usize;
                self.spec.adverts[turn % n].decode()
            }
        };
        Advertisement {
            id: self.id.clone(),
            name: Some(self.spec.name.clone()),
            rssi,
            tx_power: self.spec.tx_power,
            services: self.spec.advertised_services.clone(),
            manufacturer_data,
            service_data,
        }
    }

    pub(super) fn drop_link(&self, reason: DisconnectReason) -> bool {
        let link = {
            let mut st = lock(&self.state);
            if let Some(r) = st.reader.as_mut() {
                r.inventory_running = false;
            }
            st.link.take()
        };
        let had_link = link.is_some();
        drop(link);
        if had_link {
            let _ = self.events.send(BackendEvent::Disconnected {
                id: self.id.clone(),
                reason,
            });
        }
        had_link
    }

    pub(super) fn characteristic(&self, service: Uuid, characteristic: Uuid) -> BleResult<&Characteristic> {
        let svc = self
            .gatt
            .iter()
            .find(|s| s.uuid == service)
            .ok_or(BleError::ServiceNotFound(service))?;
        svc.characteristics
            .iter()
            .find(|c| c.uuid == characteristic)
            .ok_or(BleError::CharacteristicNotFound {
                service,
                characteristic,
            })
    }

    pub(super) fn write_action(&self, service: Uuid, characteristic: Uuid) -> WriteAction {
        self.spec
            .services
            .iter()
            .find(|s| s.uuid == service)
            .and_then(|s| s.characteristics.iter().find(|c| c.uuid == characteristic))
            .map(|c| c.on_write.clone())
            .unwrap_or_default()
    }

    pub(super) fn op_latency(&self) -> Option<Duration> {
        scaled(self.spec.op_latency_ms, self.time_scale)
    }

    /// Waits out one GATT round trip, applying faults; fails if the link is not up
    /// (or goes down meanwhile).
    pub(super) async fn round_trip(&self, round_trips: u32) -> BleResult<()> {
        let extra = {
            let mut f = lock(&self.faults);
            if lock(&self.state).link.is_none() {
                return Err(BleError::NotConnected(self.id.clone()));
            }
            if std::mem::take(&mut f.drop_on_next_op) {
                drop(f);
                self.drop_link(DisconnectReason::LinkLost);
                return Err(BleError::LinkLost(self.id.clone()));
            }
            f.extra_delay
        };
        pause(self.op_latency().map(|d| d * round_trips)).await;
        if !extra.is_zero() {
            tokio::time::sleep(extra).await;
        }
        if lock(&self.state).link.is_none() {
            return Err(BleError::LinkLost(self.id.clone()));
        }
        Ok(())
    }

    /// Sends a notification if the client enabled them on that characteristic.
    pub(super) fn notify(&self, st: &DeviceState, service: Uuid, characteristic: Uuid, value: Vec<u8>) {
        if let Some(link) = &st.link {
            if link.subscribed.contains(&(service, characteristic)) {
                let _ = link.notify_tx.send(Notification {
                    device: self.id.clone(),
                    service,
                    characteristic,
                    value: Bytes::from(value),
                    at: SystemTime::now(),
                });
            }
        }
    }

    /// Produces the next generated value of one characteristic.
    pub(super) fn generate(&self, service: Uuid, characteristic: Uuid, kind: GeneratorKind) {
        let mut st = lock(&self.state);
        if st.link.is_none() {
            return;
        }
        let key = (service, characteristic);
        let value = if kind == GeneratorKind::Cs108Inventory {
            let rssi = (st.rssi + 100.0).clamp(0.0, 127.0) as u8;
            match st.reader.as_mut().and_then(|r| r.next_tag_report(rssi)) {
                Some(frame) => frame,
                None => return,
            }
        } else {
            let st = &mut *st;
            let current = st.values.get(&key).map(Vec::as_slice).unwrap_or(&[]);
            let next = generators::next_value(kind, current, &mut st.rng);
            st.values.insert(key, next.clone());
            next
        };
        self.notify(&st, service, characteristic, value);
    }

    pub(super) fn spawn_generators(self: &Arc<Self>) -> Vec<AbortOnDrop> {
        let mut tasks = Vec::new();
        for s in &self.spec.services {
            for c in &s.characteristics {
                let Some(g) = &c.generator else { continue };
                let period = scaled(g.period_ms, self.time_scale).unwrap_or(Duration::from_millis(1));
                let (weak, svc, chr, kind) = (Arc::downgrade(self), s.uuid, c.uuid, g.kind);
                tasks.push(AbortOnDrop(tokio::spawn(async move {
                    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        interval.tick().await;
                        let Some(dev) = weak.upgrade() else { return };
                        dev.generate(svc, chr, kind);
                    }
                })));
            }
        }
        tasks
    }

    pub(super) fn connected_mtu(&self) -> Option<u16> {
        lock(&self.state).link.as_ref().map(|l| l.mtu)
    }
}
