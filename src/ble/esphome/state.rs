//! What the radio and its session share: the live session's outbox, the links
//! through the proxy, the requests waiting for an answer, and the adverts heard.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc, oneshot, Notify};

use super::api::proto::BluetoothGattService;
use super::api::{device_id_of, Message, Psk};
use super::gatt::RemoteGatt;
use crate::ble::{Advertisement, BackendEvent, BleError, BleResult, DisconnectReason, Notification};
use crate::sync::lock;

/// Devices whose adverts are remembered, to merge an advert with its scan response.
const ADVERT_CACHE: usize = 4096;

/// What a waiter waits for.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum Key {
    Connect(u64),
    Services(u64),
    Read(u64, u32),
    Write(u64, u32),
    Notify(u64, u32),
}

impl Key {
    pub fn address(self) -> u64 {
        match self {
            Key::Connect(a) | Key::Services(a) | Key::Read(a, _) | Key::Write(a, _) | Key::Notify(a, _) => a,
        }
    }
}

/// A link this radio opened through the proxy: the device's GATT tree as the proxy
/// lists it, and its notifications.
pub(super) struct ProxiedLink {
    pub gatt: Option<Arc<RemoteGatt>>,
    /// Services arriving before the proxy says it has listed them all.
    pub listing: Vec<BluetoothGattService>,
    pub notify: broadcast::Sender<Notification>,
}

#[derive(Default)]
pub(super) struct State {
    /// The live session's outbox; `None` while the proxy is unreachable.
    pub out: Option<mpsc::Sender<Message>>,
    pub down_reason: Option<String>,
    pub links: HashMap<u64, ProxiedLink>,
    pub pending: HashMap<Key, oneshot::Sender<BleResult<Message>>>,
    pub adverts: HashMap<u64, Advertisement>,
    /// Public (0) or random (1), as the proxy heard each address: a connect must
    /// name the right one.
    pub address_types: HashMap<u64, u32>,
}

pub(super) struct Shared {
    pub name: String,
    pub address: String,
    pub psk: Option<Psk>,
    pub events: broadcast::Sender<BackendEvent>,
    pub scanning: AtomicBool,
    pub features: AtomicU32,
    /// Asks the session to drop and start again (the watchdog's reset).
    pub reset: Notify,
    pub state: Mutex<State>,
}

impl Shared {
    pub fn answer(&self, key: Key, message: Message) {
        if let Some(w) = lock(&self.state).pending.remove(&key) {
            let _ = w.send(Ok(message));
        }
    }

    /// The proxy says a link dropped.
    pub fn link_lost(&self, address: u64) {
        let waiters: Vec<_> = {
            let mut st = lock(&self.state);
            if st.links.remove(&address).is_none() {
                return;
            }
            let keys: Vec<Key> = st
                .pending
                .keys()
                .filter(|k| k.address() == address)
                .copied()
                .collect();
            keys.into_iter().filter_map(|k| st.pending.remove(&k)).collect()
        };
        let id = device_id_of(address);
        for w in waiters {
            let _ = w.send(Err(BleError::LinkLost(id.clone())));
        }
        let _ = self.events.send(BackendEvent::Disconnected {
            id,
            reason: DisconnectReason::LinkLost,
        });
    }

    /// An advert fills in what its scan response (or an earlier advert) said: a
    /// proxy passes each packet on alone, and only one of them carries the name.
    pub fn merge_advert(&self, address: u64, mut adv: Advertisement) -> Advertisement {
        let mut st = lock(&self.state);
        if st.adverts.len() >= ADVERT_CACHE && !st.adverts.contains_key(&address) {
            st.adverts.clear();
            st.address_types.clear();
        }
        let known = st.adverts.entry(address).or_insert_with(|| adv.clone());
        if adv.name.is_none() {
            adv.name = known.name.clone();
        }
        if adv.tx_power.is_none() {
            adv.tx_power = known.tx_power;
        }
        for s in &known.services {
            if !adv.services.contains(s) {
                adv.services.push(*s);
            }
        }
        for (k, v) in &known.service_data {
            adv.service_data.entry(*k).or_insert_with(|| v.clone());
        }
        for (k, v) in &known.manufacturer_data {
            adv.manufacturer_data.entry(*k).or_insert_with(|| v.clone());
        }
        *known = adv.clone();
        adv
    }
}
