//! Who is online. A device is online while it has a connection (a network device's
//! socket, a BLE device's link held by the feed); one connection per device, the
//! newest wins. Changes are stored and sent to the device's subscribers. Network
//! devices that fall silent are ended here too, by one sweep over all of them.
//!
//! In a cluster ([`super::cluster`]) presence is global: each instance announces
//! its devices' connections and, every second, the devices it holds; it keeps the
//! devices held elsewhere beside its own. A device connecting here ends its older
//! connection on another instance (the later connection wins), and an instance
//! that falls silent takes its devices offline with it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::commands::Delivery;
use super::connlog::ConnectionLog;
use super::event::Event;
use super::fanout::Fanout;
use crate::cluster::{self, Alive, Held, PresenceNote};
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
    /// When it connected (wall clock, ms): between instances the later wins.
    since: i64,
    /// A newer connection on another instance took the device: its end is no
    /// offline.
    moved: bool,
    kind: &'static str,
}

/// A device held by another instance.
struct Elsewhere {
    instance: Arc<str>,
    since: i64,
    kind: String,
}

/// How a connection is told that a newer one of its device took over.
pub enum Replaced {
    /// A network device's command queue is closed: its loop already waits on it.
    Outbox(Outbox<Delivery>),
    /// The BLE feed's link is cancelled.
    Token(CancellationToken),
}

impl Replaced {
    fn tell(&self) {
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
    /// This instance in a cluster; `None` on its own.
    cluster: Option<cluster::Membership>,
    /// Devices online on other instances (a cluster's).
    elsewhere: Mutex<HashMap<String, Elsewhere>>,
    /// When each other instance was last heard.
    instances: Mutex<HashMap<Arc<str>, Instant>>,
}

/// A device's presence as clients see it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DevicePresence {
    pub device: String,
    pub online: bool,
    pub last_seen: i64,
}

impl Presence {
    pub fn new(
        store: Arc<dyn Store>,
        log: Arc<ConnectionLog>,
        fanout: Arc<Fanout>,
        online: Gauge,
        cluster: Option<cluster::Membership>,
    ) -> Self {
        Presence {
            store,
            log,
            fanout,
            online,
            devices: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            cluster,
            elsewhere: Mutex::new(HashMap::new()),
            instances: Mutex::new(HashMap::new()),
        }
    }

    /// Records a new connection of `device`, told through `replaced` when a newer
    /// one takes over; returns its id. The older connection, if any, is told to go.
    pub fn connect(&self, device: &Arc<str>, kind: &'static str, replaced: Replaced) -> u64 {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        let previous = {
            let mut devices = lock(&self.devices);
            // Announced under the lock, so a heartbeat listing this instance's
            // devices never goes out between this and the announcement.
            if let Some(c) = &self.cluster {
                c.presence(device, kind, true, now);
            }
            devices.insert(
                device.clone(),
                Entry {
                    conn,
                    replaced,
                    heard: Instant::now(),
                    silent: false,
                    since: now,
                    moved: false,
                    kind,
                },
            )
        };
        // Online elsewhere until now: moving here, not coming online.
        let moved_here = lock(&self.elsewhere).remove(&**device).is_some();
        match previous {
            Some(old) => old.replaced.tell(),
            None => {
                self.online.inc();
                self.log.presence(device, kind, true, now);
                if !moved_here {
                    self.fanout.device_event(Event::presence(device, true, now), None);
                }
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
            let moved = devices.remove(device).is_some_and(|e| e.moved);
            if moved {
                // Online on the instance it moved to, which said so.
                self.online.dec();
                return;
            }
            if let Some(c) = &self.cluster {
                c.presence(device, kind, false, now);
            }
        }
        self.online.dec();
        self.log.presence(device, kind, false, now);
        self.fanout
            .device_event(Event::presence(device, false, now), None);
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

    /// Another instance's news of one of its devices.
    pub(crate) fn heard(&self, note: PresenceNote) {
        lock(&self.instances).insert(note.instance.clone(), Instant::now());
        let held = Held {
            device: note.device,
            since: note.at,
            kind: note.kind,
        };
        if note.online {
            self.held_elsewhere(&note.instance, held);
        } else {
            self.left_elsewhere(&held.device, &note.instance, note.at);
        }
    }

    /// Another instance's heartbeat: what it lists is online there, and what it
    /// no longer lists is not.
    pub(crate) fn heard_alive(&self, alive: Alive) {
        lock(&self.instances).insert(alive.instance.clone(), Instant::now());
        let listed: HashSet<String> = alive.devices.iter().map(|h| h.device.clone()).collect();
        let gone: Vec<String> = lock(&self.elsewhere)
            .iter()
            .filter(|(d, e)| e.instance == alive.instance && !listed.contains(*d))
            .map(|(d, _)| d.clone())
            .collect();
        for held in alive.devices {
            self.held_elsewhere(&alive.instance, held);
        }
        let now = now_ms();
        for device in gone {
            self.left_elsewhere(&device, &alive.instance, now);
        }
    }

    /// `instance` holds `held.device`. A connection of it here that is older
    /// ends (the later one wins; on a tie, the higher instance id).
    fn held_elsewhere(&self, instance: &Arc<str>, held: Held) {
        let Some(me) = &self.cluster else { return };
        let here = {
            let mut devices = lock(&self.devices);
            match devices.get_mut(held.device.as_str()) {
                Some(e) if (e.since, &*me.instance) >= (held.since, &**instance) => return,
                Some(e) => {
                    if !e.moved {
                        e.moved = true;
                        e.replaced.tell();
                    }
                    true
                }
                None => false,
            }
        };
        let was = lock(&self.elsewhere).insert(
            held.device.clone(),
            Elsewhere {
                instance: instance.clone(),
                since: held.since,
                kind: held.kind,
            },
        );
        if was.is_none() && !here {
            let event = Event::presence(&held.device, true, held.since);
            self.fanout.device_event(event, None);
        }
    }

    /// `instance` no longer holds `device`.
    fn left_elsewhere(&self, device: &str, instance: &Arc<str>, at: i64) {
        {
            let mut elsewhere = lock(&self.elsewhere);
            if elsewhere.get(device).is_none_or(|e| e.instance != *instance) {
                return;
            }
            elsewhere.remove(device);
        }
        if !lock(&self.devices).contains_key(device) {
            self.fanout.device_event(Event::presence(device, false, at), None);
        }
    }

    /// Says which devices this instance holds (its heartbeat), and takes the
    /// devices of instances silent for longer than [`cluster::ALIVE_TIMEOUT`]
    /// offline: here, and in the store, which their instance can no longer tell.
    pub(crate) fn beat(&self) {
        let Some(me) = &self.cluster else { return };
        {
            let devices = lock(&self.devices);
            let held = devices
                .iter()
                .filter(|(_, e)| !e.moved)
                .map(|(d, e)| Held {
                    device: d.to_string(),
                    since: e.since,
                    kind: e.kind.to_string(),
                })
                .collect();
            me.alive(held);
        }
        let dead: Vec<Arc<str>> = {
            let mut instances = lock(&self.instances);
            let dead: Vec<Arc<str>> = instances
                .iter()
                .filter(|(_, heard)| heard.elapsed() > cluster::ALIVE_TIMEOUT)
                .map(|(i, _)| i.clone())
                .collect();
            for i in &dead {
                instances.remove(i);
            }
            dead
        };
        for instance in dead {
            let gone: Vec<(String, String)> = lock(&self.elsewhere)
                .iter()
                .filter(|(_, e)| e.instance == instance)
                .map(|(d, e)| (d.clone(), e.kind.clone()))
                .collect();
            tracing::warn!(%instance, devices = gone.len(), "a cluster instance fell silent: its devices are offline");
            let now = now_ms();
            for (device, kind) in gone {
                self.left_elsewhere(&device, &instance, now);
                if !lock(&self.devices).contains_key(device.as_str()) {
                    self.log.presence(&device, stored_kind(&kind), false, now);
                }
            }
        }
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
        for (name, e) in lock(&self.elsewhere).iter().filter(|(name, _)| asked(name)) {
            live.entry(name.clone()).or_insert(e.since);
        }
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

/// The stored kind of a device another instance reported.
fn stored_kind(kind: &str) -> &'static str {
    if kind == "ble" {
        "ble"
    } else {
        "network"
    }
}
