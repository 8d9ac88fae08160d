//! Who is online. A device is online while it has a connection (a network device's
//! socket, a BLE device's link held by the feed); one connection per device, the
//! newest wins. Changes are stored and sent to the device's subscribers. Network
//! devices that fall silent are ended here too, by one sweep over all of them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::connlog::ConnectionLog;
use super::fanout::Fanout;
use super::protocol::{self, Frame};
use crate::outbox::Outbox;
use crate::store::{now_ms, Store, StoreError};
use crate::sync::lock;

struct Entry {
    conn: u64,
    /// Told when a newer connection of the same device takes over.
    replaced: Replaced,
    /// When the device last said something, on the monotonic clock the heartbeat
    /// sweep reads; its wall-clock time is worked out when asked (`snapshot`).
    heard: Instant,
    /// The sweep ended this connection for silence.
    silent: bool,
}

/// How a connection is told that a newer one of its device took over.
pub enum Replaced {
    /// A network device's send queue is closed: its loop already waits on it.
    Outbox(Outbox<Frame>),
    /// The BLE feed's link is cancelled.
    Token(CancellationToken),
}

impl Replaced {
    fn tell(self) {
        match self {
            Replaced::Outbox(out) => out.close(),
            Replaced::Token(token) => token.cancel(),
        }
    }
}

pub struct Presence {
    store: Arc<dyn Store>,
    /// Where presence changes are written, in the background.
    log: Arc<ConnectionLog>,
    fanout: Arc<Fanout>,
    online: Gauge,
    /// Keyed by the id the device's connection holds too (one allocation).
    devices: Mutex<HashMap<Arc<str>, Entry>>,
    next_conn: AtomicU64,
}

/// A device's presence as clients see it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DevicePresence {
    pub device: String,
    pub online: bool,
    pub last_seen: i64,
}

impl Presence {
    pub fn new(store: Arc<dyn Store>, log: Arc<ConnectionLog>, fanout: Arc<Fanout>, online: Gauge) -> Self {
        Presence {
            store,
            log,
            fanout,
            online,
            devices: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
        }
    }

    /// Records a new connection of `device`, told through `replaced` when a newer
    /// one takes over; returns its id. The older connection, if any, is told to go.
    pub fn connect(&self, device: &Arc<str>, kind: &'static str, replaced: Replaced) -> u64 {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        let previous = lock(&self.devices).insert(
            device.clone(),
            Entry {
                conn,
                replaced,
                heard: Instant::now(),
                silent: false,
            },
        );
        match previous {
            Some(old) => old.replaced.tell(),
            None => {
                self.online.inc();
                self.log.presence(device, kind, true, now);
                self.fanout
                    .device_event(device, protocol::presence(device, true, now), None);
            }
        }
        conn
    }

    /// The connection ended; the device goes offline unless a newer one replaced it.
    pub fn disconnect(&self, device: &str, kind: &'static str, conn: u64) {
        let now = now_ms();
        {
            let mut devices = lock(&self.devices);
            if devices.get(device).is_none_or(|e| e.conn != conn) {
                return;
            }
            devices.remove(device);
        }
        self.online.dec();
        self.log.presence(device, kind, false, now);
        self.fanout
            .device_event(device, protocol::presence(device, false, now), None);
    }

    /// The device said something.
    pub fn seen(&self, device: &str) {
        if let Some(e) = lock(&self.devices).get_mut(device) {
            e.heard = Instant::now();
        }
    }

    /// Tells every network device's connection that has heard nothing for
    /// `silence` to end (its queue is closed; [`Presence::ended_silent`] says why).
    /// One sweep for all devices, rather than a timer in every idle connection.
    /// BLE devices are left alone: their feed watches its own link.
    pub fn end_silent(&self, silence: Duration) {
        let Some(cutoff) = Instant::now().checked_sub(silence) else {
            return;
        };
        for e in lock(&self.devices).values_mut() {
            if let (false, true, Replaced::Outbox(out)) = (e.silent, e.heard < cutoff, &e.replaced) {
                e.silent = true;
                out.close();
            }
        }
    }

    /// Whether connection `conn` of `device` was ended by [`Presence::end_silent`]
    /// (and not replaced by a newer one).
    pub fn ended_silent(&self, device: &str, conn: u64) -> bool {
        lock(&self.devices)
            .get(device)
            .is_some_and(|e| e.conn == conn && e.silent)
    }

    /// Presence of the named devices (every known device when `devices` is empty).
    /// Linear in the devices: the live table is copied out under its lock (no store
    /// call, no search inside it) and merged with the stored list by name.
    pub async fn snapshot(&self, devices: &[String]) -> Result<Vec<DevicePresence>, StoreError> {
        let stored = self.store.devices().await?;
        let wanted: HashSet<&str> = devices.iter().map(String::as_str).collect();
        let asked = |name: &str| wanted.is_empty() || wanted.contains(name);
        let (wall, mono) = (now_ms(), Instant::now());
        let mut live: HashMap<String, i64> = lock(&self.devices)
            .iter()
            .filter(|(name, _)| asked(name))
            .map(|(name, e)| {
                (
                    name.to_string(),
                    wall - mono.duration_since(e.heard).as_millis() as i64,
                )
            })
            .collect();
        let mut out: Vec<DevicePresence> = Vec::with_capacity(stored.len() + live.len());
        let mut listed: HashSet<String> = HashSet::new();
        for d in stored.into_iter().filter(|d| asked(&d.id)) {
            let now = live.remove(&d.id);
            listed.insert(d.id.clone());
            out.push(DevicePresence {
                online: now.is_some(),
                last_seen: now.map_or(d.last_seen, |seen| seen.max(d.last_seen)),
                device: d.id,
            });
        }
        // Online devices whose first presence is still on its way to the store.
        for (name, last_seen) in live {
            listed.insert(name.clone());
            out.push(DevicePresence {
                device: name,
                online: true,
                last_seen,
            });
        }
        // Named devices never seen at all.
        for name in devices {
            if listed.insert(name.clone()) {
                out.push(DevicePresence {
                    device: name.clone(),
                    online: false,
                    last_seen: 0,
                });
            }
        }
        Ok(out)
    }
}
