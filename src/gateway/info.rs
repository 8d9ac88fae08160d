//! What the gateway reports: connection lifecycle events, what it knows of a
//! device and of a link, connect options, and its live-resource counts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::serde_helpers;
use super::LinkState;
use crate::ble::{Advertisement, DeviceId, DisconnectReason, Uuid};

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
    pub(super) actors: Arc<AtomicUsize>,
    pub(super) forwarders: Arc<AtomicUsize>,
    pub(super) subscribers: Arc<AtomicUsize>,
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
    /// The radio that hears it best (`rssi` is that radio's).
    pub radio: Option<String>,
    /// What the advertisement says in a format gattway reads (BTHome).
    pub readings: Vec<crate::adverts::Reading>,
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
            radio: None,
            readings: Vec::new(),
        }
    }
}

/// An advertisement as the gateway passes it on: the radio's bytes, with the RSSI
/// of the radio that hears the device best, and what the gateway made of them
/// (that radio's name, the decoded readings), worked out once for every listener.
#[derive(Debug)]
pub struct Heard {
    pub advert: Advertisement,
    pub device: DeviceInfo,
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
    /// The radio the link goes through.
    pub radio: Option<String>,
}

/// Options for [`Gateway::connect`].
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// Overall limit, scanning included; the configured default when `None`.
    pub timeout: Option<Duration>,
    /// With a name prefix: the device must advertise one of these.
    pub services: Vec<Uuid>,
}
