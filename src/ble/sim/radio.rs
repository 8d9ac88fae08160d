//! Several radios in one simulated world: each [`SimRadio`] hears the same devices
//! as the others, from its own distance (an RSSI offset in dB), and has its own
//! power, scanning, stalls and links. That is what a house with a dongle and a few
//! Bluetooth proxies looks like, and what routing, failover and the watchdog are
//! tested against. A device has one link at a time, through one radio.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::broadcast;

use super::{SimBackend, Stall};
use crate::ble::{
    Backend, BackendEvent, BleError, BleResult, DeviceId, DisconnectReason, NotificationStream, ScanFilter,
    Service, Uuid, WriteKind,
};
use crate::sync::{lock, AbortOnDrop};

/// One radio's view of the simulated world.
pub struct SimRadio {
    shared: Arc<RadioShared>,
    _pump: AbortOnDrop,
}

struct RadioShared {
    name: String,
    world: Arc<SimBackend>,
    /// Added to every RSSI this radio hears: how far it is from the devices.
    rssi_offset: i16,
    powered: AtomicBool,
    scanning: AtomicBool,
    /// A [`Stall`] as u8; 0 when it hears.
    stalled: AtomicU8,
    /// Devices linked through this radio.
    links: Mutex<HashSet<DeviceId>>,
    events: broadcast::Sender<BackendEvent>,
}

impl SimBackend {
    /// A radio in this world, named `name`, hearing every device `rssi_offset` dB
    /// louder (positive) or fainter (negative) than the world's own RSSI.
    pub fn radio(self: &Arc<Self>, name: &str, rssi_offset: i16) -> Arc<SimRadio> {
        let shared = Arc::new(RadioShared {
            name: name.to_string(),
            world: self.clone(),
            rssi_offset,
            powered: AtomicBool::new(true),
            scanning: AtomicBool::new(false),
            stalled: AtomicU8::new(0),
            links: Mutex::new(HashSet::new()),
            events: broadcast::channel(4096).0,
        });
        let pump = tokio::spawn(pump(Arc::downgrade(&shared), self.events.subscribe()));
        Arc::new(SimRadio {
            shared,
            _pump: AbortOnDrop(pump),
        })
    }
}

/// Passes on what this radio would hear of the world: adverts while it scans, and
/// its own links' events.
async fn pump(radio: Weak<RadioShared>, mut world: broadcast::Receiver<BackendEvent>) {
    loop {
        let event = match world.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(radio) = radio.upgrade() else { return };
        let event = match event {
            BackendEvent::Advertisement(mut adv) => {
                if !radio.hears() {
                    continue;
                }
                adv.rssi = adv.rssi.saturating_add(radio.rssi_offset);
                BackendEvent::Advertisement(adv)
            }
            BackendEvent::Disconnected { id, reason } => {
                if !lock(&radio.links).remove(&id) {
                    continue;
                }
                BackendEvent::Disconnected { id, reason }
            }
            BackendEvent::Connected(id) if lock(&radio.links).contains(&id) => BackendEvent::Connected(id),
            BackendEvent::Connected(_) => continue,
        };
        let _ = radio.events.send(event);
    }
}

impl RadioShared {
    fn hears(&self) -> bool {
        self.powered.load(Ordering::Acquire)
            && self.scanning.load(Ordering::Relaxed)
            && self.stalled.load(Ordering::Acquire) == 0
    }

    fn check_powered(&self) -> BleResult<()> {
        if self.powered.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(BleError::AdapterUnavailable(format!(
                "the simulated radio {} is powered off",
                self.name
            )))
        }
    }

    /// The device, if it is linked through this radio.
    fn ours(&self, id: &DeviceId) -> BleResult<()> {
        self.check_powered()?;
        if lock(&self.links).contains(id) {
            Ok(())
        } else {
            Err(BleError::NotConnected(id.clone()))
        }
    }

    /// This radio's part in keeping the world advertising: the world scans while
    /// any radio does.
    fn set_scanning(&self, on: bool) {
        if self.scanning.swap(on, Ordering::AcqRel) != on {
            self.world.radio_scanning(on);
        }
    }
}

impl SimRadio {
    /// Powers this radio off (its links drop, it hears and connects nothing) or on.
    pub fn set_powered(&self, on: bool) {
        let r = &self.shared;
        r.powered.store(on, Ordering::Release);
        if !on {
            r.set_scanning(false);
            let linked: Vec<DeviceId> = lock(&r.links).iter().cloned().collect();
            for id in linked {
                if let Some(dev) = r.world.devices.get(&id) {
                    dev.drop_link(DisconnectReason::LinkLost);
                }
            }
        }
    }

    /// Gets this radio stuck (see [`Stall`]).
    pub fn stall(&self, how: Stall) {
        self.shared.stalled.store(how as u8, Ordering::Release);
    }
}

#[async_trait]
impl Backend for SimRadio {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn is_simulated(&self) -> bool {
        true
    }

    async fn adapter_status(&self) -> BleResult<()> {
        self.shared.check_powered()
    }

    fn events(&self) -> broadcast::Receiver<BackendEvent> {
        self.shared.events.subscribe()
    }

    async fn reset(&self) -> BleResult<()> {
        self.set_powered(false);
        self.shared.stalled.store(0, Ordering::Release);
        self.set_powered(true);
        Ok(())
    }

    async fn start_scan(&self, _filter: &ScanFilter) -> BleResult<()> {
        let r = &self.shared;
        r.check_powered()?;
        let scanner = Stall::Scanner as u8;
        let _ = r
            .stalled
            .compare_exchange(scanner, 0, Ordering::AcqRel, Ordering::Acquire);
        r.set_scanning(true);
        Ok(())
    }

    async fn stop_scan(&self) -> BleResult<()> {
        self.shared.set_scanning(false);
        Ok(())
    }

    async fn connect(&self, id: &DeviceId) -> BleResult<u16> {
        let r = &self.shared;
        r.check_powered()?;
        if lock(&r.links).contains(id) {
            return r.world.connect(id).await;
        }
        // One link per device: a device linked through another radio does not
        // advertise, so this one cannot reach it.
        if r.world.is_connected(id).await {
            return Err(BleError::ConnectFailed {
                id: id.clone(),
                reason: format!(
                    "not advertising (linked through another radio); {} cannot reach it",
                    r.name
                ),
            });
        }
        lock(&r.links).insert(id.clone());
        let mtu = r.world.connect(id).await;
        if mtu.is_err() {
            lock(&r.links).remove(id);
        }
        mtu
    }

    async fn disconnect(&self, id: &DeviceId) -> BleResult<()> {
        if !lock(&self.shared.links).contains(id) {
            return Ok(());
        }
        self.shared.world.disconnect(id).await
    }

    async fn is_connected(&self, id: &DeviceId) -> bool {
        self.shared.ours(id).is_ok() && self.shared.world.is_connected(id).await
    }

    async fn discover(&self, id: &DeviceId) -> BleResult<Vec<Service>> {
        self.shared.ours(id)?;
        self.shared.world.discover(id).await
    }

    async fn read(&self, id: &DeviceId, service: Uuid, characteristic: Uuid) -> BleResult<Bytes> {
        self.shared.ours(id)?;
        self.shared.world.read(id, service, characteristic).await
    }

    async fn write(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        value: &[u8],
        kind: WriteKind,
    ) -> BleResult<()> {
        self.shared.ours(id)?;
        self.shared
            .world
            .write(id, service, characteristic, value, kind)
            .await
    }

    async fn read_descriptor(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        descriptor: Uuid,
    ) -> BleResult<Bytes> {
        self.shared.ours(id)?;
        let world = &self.shared.world;
        world
            .read_descriptor(id, service, characteristic, descriptor)
            .await
    }

    async fn write_descriptor(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        descriptor: Uuid,
        value: &[u8],
    ) -> BleResult<()> {
        self.shared.ours(id)?;
        let world = &self.shared.world;
        world
            .write_descriptor(id, service, characteristic, descriptor, value)
            .await
    }

    async fn subscribe(&self, id: &DeviceId, service: Uuid, characteristic: Uuid) -> BleResult<()> {
        self.shared.ours(id)?;
        self.shared.world.subscribe(id, service, characteristic).await
    }

    async fn unsubscribe(&self, id: &DeviceId, service: Uuid, characteristic: Uuid) -> BleResult<()> {
        self.shared.ours(id)?;
        self.shared.world.unsubscribe(id, service, characteristic).await
    }

    async fn notifications(&self, id: &DeviceId) -> BleResult<NotificationStream> {
        self.shared.ours(id)?;
        self.shared.world.notifications(id).await
    }

    async fn rssi(&self, id: &DeviceId) -> Option<i16> {
        self.shared.ours(id).ok()?;
        let rssi = self.shared.world.rssi(id).await?;
        Some(rssi.saturating_add(self.shared.rssi_offset))
    }
}
