//! The machine's own radio through btleplug: BlueZ (over D-Bus) on Linux,
//! CoreBluetooth on macOS, WinRT on Windows. A device's [`DeviceId`] is its address
//! (where the platform shows one), so it stays the same across scans and restarts.
//!
//! Platform pitfalls handled here rather than above:
//! - BlueZ keeps devices it once saw in its object tree. They come back as
//!   "discovered" without an RSSI; only devices heard now (with an RSSI) are
//!   reported while scanning.
//! - A dropped link's disconnect event may never arrive. An operation that fails as
//!   "not connected" on a device believed connected is reported as a lost link, so
//!   the gateway reconnects (and re-enables notifications).
//! - Our own disconnects are told apart from lost links, so they do not trigger a
//!   reconnect.

mod power;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use btleplug::api::{Central, CentralEvent, CentralState, Manager as _, Peripheral as _};
use btleplug::platform::{Adapter, Manager, Peripheral, PeripheralId};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::{
    Advertisement, Backend, BackendEvent, BleError, BleResult, CharProps, Characteristic, Descriptor,
    DeviceId, DisconnectReason, Notification, NotificationStream, ScanFilter, Service, Uuid, WriteKind,
};
use crate::sync::{lock, AbortOnDrop};

/// What to do when there is no usable radio, per platform.
const HELP: &str = "on Linux: start bluetoothd (`sudo systemctl start bluetooth`) and make sure this user may \
use it (the `bluetooth` group); on macOS: grant this terminal Bluetooth permission (System Settings → Privacy & \
Security → Bluetooth); or run with --backend sim";

struct Shared {
    adapter: Adapter,
    events: broadcast::Sender<BackendEvent>,
    /// Our ids → the platform's peripherals. The same object is reused: BlueZ's
    /// keeps the discovered GATT tree, a fresh one would not have it.
    peripherals: Mutex<HashMap<DeviceId, Peripheral>>,
    /// Devices we asked to disconnect: their disconnect is not a lost link.
    leaving: Mutex<HashSet<DeviceId>>,
    /// Devices we believe connected (for disconnect events that never come).
    connected: Mutex<HashSet<DeviceId>>,
    scanning: AtomicBool,
}

pub struct NativeBackend {
    name: String,
    shared: Arc<Shared>,
    _events: AbortOnDrop,
}

fn adapter_error(e: btleplug::Error) -> BleError {
    BleError::AdapterUnavailable(format!("{e}; {HELP}"))
}

impl NativeBackend {
    /// Opens the adapter named `adapter` ("hci0"; the first when `None`). Fails
    /// fast, saying what to do, when there is no radio or no permission.
    pub async fn open(adapter: Option<&str>) -> BleResult<Arc<NativeBackend>> {
        let manager = Manager::new().await.map_err(adapter_error)?;
        let adapters = manager.adapters().await.map_err(adapter_error)?;
        let mut chosen = None;
        let mut names = Vec::new();
        for a in adapters {
            let info = a.adapter_info().await.unwrap_or_default();
            let wanted = adapter.is_none_or(|w| info.split_whitespace().next() == Some(w) || info == w);
            names.push(info.clone());
            if wanted && chosen.is_none() {
                chosen = Some((a, info));
            }
        }
        let Some((adapter, info)) = chosen else {
            let why = match adapter {
                Some(w) => format!("no Bluetooth adapter {w:?} (found: {names:?})"),
                None => "no Bluetooth adapter found".to_string(),
            };
            return Err(BleError::AdapterUnavailable(format!("{why}; {HELP}")));
        };
        let name = info.split_whitespace().next().unwrap_or("native").to_string();
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            adapter,
            events,
            peripherals: Mutex::new(HashMap::new()),
            leaving: Mutex::new(HashSet::new()),
            connected: Mutex::new(HashSet::new()),
            scanning: AtomicBool::new(false),
        });
        let stream = shared.adapter.events().await.map_err(adapter_error)?;
        let task = tokio::spawn(pump(Arc::downgrade(&shared), stream));
        tracing::info!(adapter = %info, "native Bluetooth adapter");
        Ok(Arc::new(NativeBackend {
            name,
            shared,
            _events: AbortOnDrop(task),
        }))
    }
}

/// Our id for a platform peripheral: its address, or the platform id where the
/// address is hidden (macOS).
fn device_id(peripheral: &Peripheral) -> DeviceId {
    let address = peripheral.address();
    if address == btleplug::api::BDAddr::default() {
        DeviceId::new(peripheral.id().to_string())
    } else {
        DeviceId::new(address.to_string())
    }
}

/// Turns the platform's events into ours.
async fn pump(
    shared: std::sync::Weak<Shared>,
    mut stream: std::pin::Pin<Box<dyn futures::Stream<Item = CentralEvent> + Send>>,
) {
    while let Some(event) = stream.next().await {
        let Some(shared) = shared.upgrade() else { return };
        match event {
            CentralEvent::DeviceDiscovered(pid)
            | CentralEvent::DeviceUpdated(pid)
            | CentralEvent::RssiUpdate { id: pid, .. }
            | CentralEvent::ManufacturerDataAdvertisement { id: pid, .. }
            | CentralEvent::ServiceDataAdvertisement { id: pid, .. }
            | CentralEvent::ServicesAdvertisement { id: pid, .. } => {
                if shared.scanning.load(Ordering::Relaxed) {
                    if let Some(adv) = advertisement(&shared, &pid).await {
                        let _ = shared.events.send(BackendEvent::Advertisement(adv));
                    }
                }
            }
            CentralEvent::DeviceConnected(pid) => {
                if let Ok(p) = shared.adapter.peripheral(&pid).await {
                    let _ = shared.events.send(BackendEvent::Connected(device_id(&p)));
                }
            }
            CentralEvent::DeviceDisconnected(pid) => {
                if let Ok(p) = shared.adapter.peripheral(&pid).await {
                    shared.gone(&device_id(&p));
                }
            }
            CentralEvent::StateUpdate(state) => {
                tracing::info!(?state, "Bluetooth adapter state changed");
            }
            CentralEvent::DeviceServicesModified(_) => {}
        }
    }
}

/// A device as heard now; `None` for one only remembered (no RSSI: BlueZ's cache).
async fn advertisement(shared: &Shared, pid: &PeripheralId) -> Option<Advertisement> {
    let p = shared.adapter.peripheral(pid).await.ok()?;
    let props = p.properties().await.ok()??;
    let rssi = props.rssi?;
    let id = device_id(&p);
    lock(&shared.peripherals).entry(id.clone()).or_insert(p);
    Some(Advertisement {
        id,
        name: props.local_name.or(props.advertisement_name),
        rssi,
        tx_power: props.tx_power_level,
        services: props
            .services
            .iter()
            .map(|u| Uuid::from_u128(u.as_u128()))
            .collect(),
        manufacturer_data: props.manufacturer_data.into_iter().collect::<BTreeMap<_, _>>(),
        service_data: props
            .service_data
            .into_iter()
            .map(|(u, v)| (Uuid::from_u128(u.as_u128()), v))
            .collect(),
    })
}

impl Shared {
    /// A link went down: ours, or lost. Reported once.
    fn gone(&self, id: &DeviceId) {
        if !lock(&self.connected).remove(id) {
            return;
        }
        let reason = if lock(&self.leaving).remove(id) {
            DisconnectReason::Requested
        } else {
            DisconnectReason::LinkLost
        };
        let _ = self.events.send(BackendEvent::Disconnected {
            id: id.clone(),
            reason,
        });
    }

    async fn peripheral(&self, id: &DeviceId) -> BleResult<Peripheral> {
        if let Some(p) = lock(&self.peripherals).get(id) {
            return Ok(p.clone());
        }
        // Not heard in this process yet: the platform may still know it.
        let all = self.adapter.peripherals().await.map_err(adapter_error)?;
        let found = all.into_iter().find(|p| &device_id(p) == id);
        match found {
            Some(p) => Ok(lock(&self.peripherals).entry(id.clone()).or_insert(p).clone()),
            None => Err(BleError::DeviceNotFound(id.clone())),
        }
    }

    /// Maps an operation's error; "not connected" on a device we thought connected
    /// is a link lost whose event never came.
    fn op_error(&self, id: &DeviceId, e: btleplug::Error) -> BleError {
        match e {
            btleplug::Error::NotConnected => {
                self.gone(id);
                BleError::LinkLost(id.clone())
            }
            btleplug::Error::DeviceNotFound => BleError::DeviceNotFound(id.clone()),
            btleplug::Error::TimedOut(after) => BleError::Timeout {
                operation: "Bluetooth operation",
                after,
            },
            btleplug::Error::PermissionDenied => {
                BleError::AdapterUnavailable(format!("permission denied; {HELP}"))
            }
            // BlueZ's own "not connected" arrives as a D-Bus error name.
            other
                if other
                    .to_string()
                    .to_ascii_lowercase()
                    .replace(' ', "")
                    .contains("notconnected") =>
            {
                self.gone(id);
                BleError::LinkLost(id.clone())
            }
            other => BleError::Other(other.to_string()),
        }
    }
}

fn find_characteristic(
    p: &Peripheral,
    service: Uuid,
    characteristic: Uuid,
) -> BleResult<btleplug::api::Characteristic> {
    let (s, c) = (service.as_uuid(), characteristic.as_uuid());
    if !p.services().iter().any(|x| x.uuid == s) {
        return Err(BleError::ServiceNotFound(service));
    }
    p.characteristics()
        .into_iter()
        .find(|x| x.uuid == c && x.service_uuid == s)
        .ok_or(BleError::CharacteristicNotFound {
            service,
            characteristic,
        })
}

fn find_descriptor(
    p: &Peripheral,
    service: Uuid,
    characteristic: Uuid,
    descriptor: Uuid,
) -> BleResult<btleplug::api::Descriptor> {
    let c = find_characteristic(p, service, characteristic)?;
    c.descriptors
        .into_iter()
        .find(|d| d.uuid == descriptor.as_uuid())
        .ok_or(BleError::DescriptorNotFound {
            characteristic,
            descriptor,
        })
}

#[async_trait]
impl Backend for NativeBackend {
    fn name(&self) -> &str {
        &self.name
    }

    async fn adapter_status(&self) -> BleResult<()> {
        match self.shared.adapter.adapter_state().await.map_err(adapter_error)? {
            CentralState::PoweredOn => Ok(()),
            state => Err(BleError::AdapterUnavailable(format!(
                "the Bluetooth adapter is {state:?}: switch it on"
            ))),
        }
    }

    fn events(&self) -> broadcast::Receiver<BackendEvent> {
        self.shared.events.subscribe()
    }

    async fn start_scan(&self, filter: &ScanFilter) -> BleResult<()> {
        self.adapter_status().await?;
        let platform = btleplug::api::ScanFilter {
            services: filter.services.iter().map(|u| u.as_uuid()).collect(),
        };
        self.shared.scanning.store(true, Ordering::Relaxed);
        self.shared
            .adapter
            .start_scan(platform)
            .await
            .map_err(adapter_error)?;
        // Devices heard just before the scan started are reported again now.
        let shared = &self.shared;
        for p in shared.adapter.peripherals().await.unwrap_or_default() {
            if let Some(adv) = advertisement(shared, &p.id()).await {
                let _ = shared.events.send(BackendEvent::Advertisement(adv));
            }
        }
        Ok(())
    }

    async fn stop_scan(&self) -> BleResult<()> {
        self.shared.scanning.store(false, Ordering::Relaxed);
        self.shared.adapter.stop_scan().await.map_err(adapter_error)
    }

    async fn reset(&self) -> BleResult<()> {
        self.shared.scanning.store(false, Ordering::Relaxed);
        power::power_cycle(&self.name).await
    }

    async fn connect(&self, id: &DeviceId) -> BleResult<u16> {
        let p = self.shared.peripheral(id).await?;
        if !p.is_connected().await.unwrap_or(false) {
            p.connect().await.map_err(|e| BleError::ConnectFailed {
                id: id.clone(),
                reason: e.to_string(),
            })?;
        }
        lock(&self.shared.connected).insert(id.clone());
        lock(&self.shared.leaving).remove(id);
        p.discover_services()
            .await
            .map_err(|e| self.shared.op_error(id, e))?;
        Ok(p.mtu())
    }

    async fn disconnect(&self, id: &DeviceId) -> BleResult<()> {
        let p = self.shared.peripheral(id).await?;
        lock(&self.shared.leaving).insert(id.clone());
        let result = p.disconnect().await;
        // The platform's event may never come: the link is down either way.
        self.shared.gone(id);
        match result {
            Ok(()) | Err(btleplug::Error::NotConnected) => Ok(()),
            Err(e) => Err(self.shared.op_error(id, e)),
        }
    }

    async fn is_connected(&self, id: &DeviceId) -> bool {
        match self.shared.peripheral(id).await {
            Ok(p) => p.is_connected().await.unwrap_or(false),
            Err(_) => false,
        }
    }

    async fn discover(&self, id: &DeviceId) -> BleResult<Vec<Service>> {
        let p = self.shared.peripheral(id).await?;
        if p.services().is_empty() {
            p.discover_services()
                .await
                .map_err(|e| self.shared.op_error(id, e))?;
        }
        Ok(p.services()
            .into_iter()
            .map(|s| {
                let service = Uuid::from_u128(s.uuid.as_u128());
                Service {
                    uuid: service,
                    primary: s.primary,
                    characteristics: s
                        .characteristics
                        .into_iter()
                        .map(|c| Characteristic {
                            uuid: Uuid::from_u128(c.uuid.as_u128()),
                            service,
                            props: CharProps::from_bits(c.properties.bits() & 0x3F),
                            descriptors: c
                                .descriptors
                                .into_iter()
                                .map(|d| Descriptor {
                                    uuid: Uuid::from_u128(d.uuid.as_u128()),
                                })
                                .collect(),
                            max_len: None,
                        })
                        .collect(),
                }
            })
            .collect())
    }

    async fn read(&self, id: &DeviceId, service: Uuid, characteristic: Uuid) -> BleResult<Bytes> {
        let p = self.shared.peripheral(id).await?;
        let c = find_characteristic(&p, service, characteristic)?;
        let v = p.read(&c).await.map_err(|e| self.shared.op_error(id, e))?;
        Ok(Bytes::from(v))
    }

    async fn write(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        value: &[u8],
        kind: WriteKind,
    ) -> BleResult<()> {
        let p = self.shared.peripheral(id).await?;
        let c = find_characteristic(&p, service, characteristic)?;
        let kind = match kind {
            WriteKind::WithResponse => btleplug::api::WriteType::WithResponse,
            WriteKind::WithoutResponse => btleplug::api::WriteType::WithoutResponse,
        };
        p.write(&c, value, kind)
            .await
            .map_err(|e| self.shared.op_error(id, e))
    }

    async fn read_descriptor(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        descriptor: Uuid,
    ) -> BleResult<Bytes> {
        let p = self.shared.peripheral(id).await?;
        let d = find_descriptor(&p, service, characteristic, descriptor)?;
        let v = p
            .read_descriptor(&d)
            .await
            .map_err(|e| self.shared.op_error(id, e))?;
        Ok(Bytes::from(v))
    }

    async fn write_descriptor(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        descriptor: Uuid,
        value: &[u8],
    ) -> BleResult<()> {
        let p = self.shared.peripheral(id).await?;
        let d = find_descriptor(&p, service, characteristic, descriptor)?;
        p.write_descriptor(&d, value)
            .await
            .map_err(|e| self.shared.op_error(id, e))
    }

    async fn subscribe(&self, id: &DeviceId, service: Uuid, characteristic: Uuid) -> BleResult<()> {
        let p = self.shared.peripheral(id).await?;
        let c = find_characteristic(&p, service, characteristic)?;
        p.subscribe(&c).await.map_err(|e| self.shared.op_error(id, e))
    }

    async fn unsubscribe(&self, id: &DeviceId, service: Uuid, characteristic: Uuid) -> BleResult<()> {
        let p = self.shared.peripheral(id).await?;
        let c = find_characteristic(&p, service, characteristic)?;
        p.unsubscribe(&c).await.map_err(|e| self.shared.op_error(id, e))
    }

    async fn notifications(&self, id: &DeviceId) -> BleResult<NotificationStream> {
        let p = self.shared.peripheral(id).await?;
        let stream = p.notifications().await.map_err(|e| self.shared.op_error(id, e))?;
        let device = id.clone();
        Ok(Box::pin(stream.map(move |n| Notification {
            device: device.clone(),
            service: Uuid::from_u128(n.service_uuid.as_u128()),
            characteristic: Uuid::from_u128(n.uuid.as_u128()),
            value: Bytes::from(n.value),
            at: SystemTime::now(),
        })))
    }

    async fn rssi(&self, id: &DeviceId) -> Option<i16> {
        let p = self.shared.peripheral(id).await.ok()?;
        p.properties().await.ok()??.rssi
    }
}
