//! The radio: one trait for a Bluetooth LE adapter ([`Backend`]) and the plain data
//! types every layer above reuses. Backends live beside it, one folder each, selected
//! in one place ([`open_backend`]): `sim/` (virtual devices, the embedded default and
//! the test bed) and `native/` (btleplug: BlueZ, CoreBluetooth, WinRT).

pub mod ad;
pub mod crc;
pub mod decode;
pub mod error;
pub mod esphome;
pub mod names;
pub mod native;
mod open;
pub mod sim;
pub mod types;
pub mod uuid;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use tokio::sync::broadcast;

pub use error::{BleError, BleResult};
pub use names::well_known;
pub use open::{open_backend, open_radios, BackendKind, RadioConfig, RadioKind};
pub use types::{
    Advertisement, BackendEvent, CharProps, Characteristic, Descriptor, DeviceId, DisconnectReason, GattTree,
    Notification, ScanFilter, Service, WriteKind,
};
pub use uuid::{Uuid, UuidParseError};

/// Notifications of one connected device, as the adapter delivers them.
pub type NotificationStream = Pin<Box<dyn Stream<Item = Notification> + Send>>;

/// One Bluetooth LE adapter (a radio). The gateway owns every backend and is the only
/// caller; front ends never see one. Methods take `&self`: a backend serialises what
/// its platform needs serialised, and the gateway serialises per device.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A short name for logs and `/readyz` ("sim", "hci0").
    fn name(&self) -> &str;

    /// True for simulated radios: safety defaults (assistant writes) depend on it.
    fn is_simulated(&self) -> bool {
        false
    }

    /// What kind of radio this is, for operators (`GET /api/v1/radios`).
    fn kind(&self) -> &'static str {
        if self.is_simulated() {
            "sim"
        } else {
            "native"
        }
    }

    /// Whether the adapter is present and powered (for `/readyz`).
    async fn adapter_status(&self) -> BleResult<()> {
        Ok(())
    }

    /// Events: advertisements while scanning, connects, and disconnects (including
    /// the ones nobody asked for).
    fn events(&self) -> broadcast::Receiver<BackendEvent>;

    /// Power-cycles the adapter: the watchdog's last resort for a radio that stays
    /// deaf after its scan was restarted. Links drop; scanning must be started again.
    async fn reset(&self) -> BleResult<()>;

    /// Starts reporting advertisements. The filter is a hint a platform may apply in
    /// hardware; the gateway filters again.
    async fn start_scan(&self, filter: &ScanFilter) -> BleResult<()>;
    async fn stop_scan(&self) -> BleResult<()>;

    /// Opens a link. Returns the negotiated ATT MTU.
    async fn connect(&self, id: &DeviceId) -> BleResult<u16>;
    async fn disconnect(&self, id: &DeviceId) -> BleResult<()>;
    async fn is_connected(&self, id: &DeviceId) -> bool;

    /// Discovers the whole GATT tree.
    async fn discover(&self, id: &DeviceId) -> BleResult<Vec<Service>>;

    async fn read(&self, id: &DeviceId, service: Uuid, characteristic: Uuid) -> BleResult<Bytes>;
    async fn write(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        value: &[u8],
        kind: WriteKind,
    ) -> BleResult<()>;
    async fn read_descriptor(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        descriptor: Uuid,
    ) -> BleResult<Bytes>;
    async fn write_descriptor(
        &self,
        id: &DeviceId,
        service: Uuid,
        characteristic: Uuid,
        descriptor: Uuid,
        value: &[u8],
    ) -> BleResult<()>;

    /// Enables notifications (or indications) of a characteristic.
    async fn subscribe(&self, id: &DeviceId, service: Uuid, characteristic: Uuid) -> BleResult<()>;
    async fn unsubscribe(&self, id: &DeviceId, service: Uuid, characteristic: Uuid) -> BleResult<()>;

    /// The stream of notifications of a connected device; it ends when the link does.
    async fn notifications(&self, id: &DeviceId) -> BleResult<NotificationStream>;

    /// The latest RSSI of a device, connected or advertising, when known.
    async fn rssi(&self, id: &DeviceId) -> Option<i16>;
}
