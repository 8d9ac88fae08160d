//! Plain data that crosses the radio boundary: device ids, advertisements, the GATT
//! tree, notifications and connection events. Every layer above reuses these.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Uuid;

/// A device's stable identity (a MAC address on Linux and Windows, a UUID on macOS,
/// the configured address on the simulator). Cheap to clone: notifications carry it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(Arc<str>);

impl DeviceId {
    pub fn new(id: impl AsRef<str>) -> Self {
        DeviceId(Arc::from(id.as_ref()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The MAC address this id is (`C0:FF:EE:00:00:06`: six pairs of hex digits),
    /// most significant byte first; `None` for other ids (macOS gives UUIDs).
    pub fn mac(&self) -> Option<[u8; 6]> {
        let mut mac = [0u8; 6];
        let mut parts = self.0.split(':');
        for byte in &mut mac {
            let part = parts.next()?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(mac)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.0)
    }
}

impl AsRef<str> for DeviceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for DeviceId {
    fn from(s: &str) -> Self {
        DeviceId::new(s)
    }
}

/// GATT characteristic properties (Core Spec Vol 3, Part G, 3.3.1.1).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CharProps(u8);

impl CharProps {
    pub const BROADCAST: CharProps = CharProps(0x01);
    pub const READ: CharProps = CharProps(0x02);
    pub const WRITE_WITHOUT_RESPONSE: CharProps = CharProps(0x04);
    pub const WRITE: CharProps = CharProps(0x08);
    pub const NOTIFY: CharProps = CharProps(0x10);
    pub const INDICATE: CharProps = CharProps(0x20);

    const NAMES: [(CharProps, &'static str); 6] = [
        (Self::BROADCAST, "broadcast"),
        (Self::READ, "read"),
        (Self::WRITE_WITHOUT_RESPONSE, "write_without_response"),
        (Self::WRITE, "write"),
        (Self::NOTIFY, "notify"),
        (Self::INDICATE, "indicate"),
    ];

    pub const fn empty() -> Self {
        CharProps(0)
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn from_bits(bits: u8) -> Self {
        CharProps(bits)
    }

    pub const fn union(self, other: CharProps) -> Self {
        CharProps(self.0 | other.0)
    }

    pub const fn contains(self, other: CharProps) -> bool {
        self.0 & other.0 == other.0
    }

    /// Notify or indicate: a client can subscribe.
    pub const fn can_subscribe(self) -> bool {
        self.0 & (Self::NOTIFY.0 | Self::INDICATE.0) != 0
    }

    /// Lowercase snake_case names, as front ends print them.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(p, _)| self.contains(*p))
            .map(|(_, n)| *n)
            .collect()
    }

    /// Parses one property name (`read`, `write`, `write_without_response` or
    /// `write-without-response`, `notify`, `indicate`, `broadcast`).
    pub fn from_name(name: &str) -> Option<CharProps> {
        let norm = name.trim().to_ascii_lowercase().replace('-', "_");
        Self::NAMES.iter().find(|(_, n)| *n == norm).map(|(p, _)| *p)
    }
}

impl std::ops::BitOr for CharProps {
    type Output = CharProps;
    fn bitor(self, rhs: CharProps) -> CharProps {
        self.union(rhs)
    }
}

impl fmt::Debug for CharProps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CharProps({})", self.names().join("|"))
    }
}

/// One advertisement (or scan response) heard from a device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Advertisement {
    pub id: DeviceId,
    pub name: Option<String>,
    pub rssi: i16,
    pub tx_power: Option<i16>,
    pub services: Vec<Uuid>,
    /// Company identifier → data.
    pub manufacturer_data: BTreeMap<u16, Vec<u8>>,
    pub service_data: BTreeMap<Uuid, Vec<u8>>,
}

impl Advertisement {
    /// The data a sensor speaks in (service data, then manufacturer data, in one
    /// run): what tells one of its packets from the next, as it repeats each.
    pub fn payload(&self) -> Vec<u8> {
        (self.service_data.values())
            .chain(self.manufacturer_data.values())
            .flatten()
            .copied()
            .collect()
    }
}

/// What a scan is looking for. Empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanFilter {
    /// Case-sensitive prefix of the advertised name.
    pub name_prefix: Option<String>,
    /// The device must advertise at least one of these services.
    pub services: Vec<Uuid>,
    /// Advertisements weaker than this are ignored.
    pub min_rssi: Option<i16>,
}

impl ScanFilter {
    pub fn matches(&self, adv: &Advertisement) -> bool {
        if let Some(prefix) = &self.name_prefix {
            if !adv
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(prefix.as_str()))
            {
                return false;
            }
        }
        if !self.services.is_empty() && !self.services.iter().any(|s| adv.services.contains(s)) {
            return false;
        }
        self.min_rssi.is_none_or(|min| adv.rssi >= min)
    }
}

/// A descriptor in the GATT tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    pub uuid: Uuid,
}

/// A characteristic in the GATT tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Characteristic {
    pub uuid: Uuid,
    pub service: Uuid,
    pub props: CharProps,
    pub descriptors: Vec<Descriptor>,
    /// Longest value the device accepts, when it says (the simulator does; real
    /// devices report it only by rejecting a write, 512 bytes by the spec at most).
    pub max_len: Option<usize>,
}

/// A service in the GATT tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub uuid: Uuid,
    pub primary: bool,
    pub characteristics: Vec<Characteristic>,
}

/// Finding things in a discovered GATT tree.
pub trait GattTree {
    fn find_service(&self, service: Uuid) -> Option<&Service>;
    fn find_characteristic(&self, service: Uuid, characteristic: Uuid) -> Option<&Characteristic>;
}

impl GattTree for [Service] {
    fn find_service(&self, service: Uuid) -> Option<&Service> {
        self.iter().find(|s| s.uuid == service)
    }

    fn find_characteristic(&self, service: Uuid, characteristic: Uuid) -> Option<&Characteristic> {
        self.find_service(service)?
            .characteristics
            .iter()
            .find(|c| c.uuid == characteristic)
    }
}

/// Whether a write asks the device for an acknowledgement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    WithResponse,
    WithoutResponse,
}

impl WriteKind {
    /// The property a characteristic needs for this kind of write.
    pub fn required_prop(self) -> CharProps {
        match self {
            WriteKind::WithResponse => CharProps::WRITE,
            WriteKind::WithoutResponse => CharProps::WRITE_WITHOUT_RESPONSE,
        }
    }
}

/// A value a device pushed (notification or indication).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub device: DeviceId,
    pub service: Uuid,
    pub characteristic: Uuid,
    pub value: Bytes,
    pub at: SystemTime,
}

/// Why a link went down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    /// We asked for it.
    Requested,
    /// The link dropped (out of range, supervision timeout, the device reset).
    LinkLost,
}

/// Events from an adapter, in the order the adapter saw them.
#[derive(Clone, Debug)]
pub enum BackendEvent {
    Advertisement(Advertisement),
    Connected(DeviceId),
    Disconnected { id: DeviceId, reason: DisconnectReason },
}
