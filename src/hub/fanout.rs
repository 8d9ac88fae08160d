//! Live delivery of stored telemetry and presence to subscribed clients. A
//! committed batch is serialized once per device and the same bytes are queued to
//! every subscriber that takes all its keys; a subscriber whose queue is full loses
//! the message and is told (`lagged`), so a slow client never slows anyone else.
//!
//! Replay meets live without gap or duplicate through the commit order: a new
//! subscription is registered together with the id of the last point published
//! (its watermark), live delivery brings every point after it, and the replay
//! reads stored points up to it.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;

use prometheus_client::metrics::counter::Counter;

use super::protocol::{self, Frame, OutPoint};
use crate::outbox::Outbox;
use crate::store::Committed;

/// Which devices or keys a subscription takes.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    All,
    Only(HashSet<String>),
}

impl Filter {
    /// `["*"]`, or no list at all, is everything.
    pub fn from_list(list: Option<&[String]>) -> Filter {
        match list {
            None => Filter::All,
            Some(l) if l.iter().any(|s| s == "*") => Filter::All,
            Some(l) => Filter::Only(l.iter().cloned().collect()),
        }
    }

    pub fn admits(&self, s: &str) -> bool {
        match self {
            Filter::All => true,
            Filter::Only(set) => set.contains(s),
        }
    }

    /// The list a store query takes (empty: all).
    pub fn to_list(&self) -> Vec<String> {
        match self {
            Filter::All => Vec::new(),
            Filter::Only(set) => set.iter().cloned().collect(),
        }
    }
}

struct Subscriber {
    devices: Filter,
    keys: Filter,
    out: Outbox<Frame>,
}

struct Inner {
    /// By id: ids grow, so walking the map is subscription order, and removing
    /// one costs a lookup, not a scan of every subscriber under the write lock.
    subscribers: BTreeMap<u64, Subscriber>,
    next_id: u64,
}

pub struct Fanout {
    inner: RwLock<Inner>,
    /// Id of the last point published. Changed only under the read lock by the one
    /// publisher (the writer task), read under the write lock by `subscribe`.
    last_published: AtomicI64,
    deliveries: Counter,
    dropped: Counter,
}

/// A registered subscription: its id, and the watermark its replay stops at.
pub struct Registration {
    pub id: u64,
    pub watermark: i64,
}

impl Fanout {
    pub fn new(last_stored: i64, deliveries: Counter, dropped: Counter) -> Self {
        Fanout {
            inner: RwLock::new(Inner {
                subscribers: BTreeMap::new(),
                next_id: 1,
            }),
            last_published: AtomicI64::new(last_stored),
            deliveries,
            dropped,
        }
    }

    pub fn subscribe(&self, devices: Filter, keys: Filter, out: Outbox<Frame>) -> Registration {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let id = inner.next_id;
        inner.next_id += 1;
        inner.subscribers.insert(id, Subscriber { devices, keys, out });
        Registration {
            id,
            watermark: self.last_published.load(Ordering::Acquire),
        }
    }

    /// Removes subscriptions; returns how many went.
    pub fn unsubscribe(&self, ids: &[u64]) -> usize {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        ids.iter()
            .filter(|id| inner.subscribers.remove(id).is_some())
            .count()
    }

    pub fn subscriber_count(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .subscribers
            .len()
    }

    fn queue(&self, s: &Subscriber, frame: Frame) {
        if s.out.event(frame) {
            self.deliveries.inc();
        } else {
            self.dropped.inc();
        }
    }

    /// Delivers a commit to the subscribers that take it. Called in commit order.
    pub fn publish(&self, committed: &Committed) {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut id = committed.first_id;
        for batch in &committed.batches {
            let first = id;
            id += batch.points.len() as i64;
            if inner.subscribers.is_empty() || batch.points.is_empty() {
                continue;
            }
            let points = || {
                batch.points.iter().enumerate().map(move |(i, p)| OutPoint {
                    id: first + i as i64,
                    key: &p.key,
                    value: &p.value,
                    ts: p.ts,
                })
            };
            let mut whole: Option<Frame> = None;
            for s in inner
                .subscribers
                .values()
                .filter(|s| s.devices.admits(&batch.device))
            {
                let frame = match &s.keys {
                    Filter::All => whole
                        .get_or_insert_with(|| protocol::telemetry(&batch.device, points(), false))
                        .clone(),
                    keys => {
                        let mut some = points().filter(|p| keys.admits(p.key)).peekable();
                        if some.peek().is_none() {
                            continue;
                        }
                        protocol::telemetry(&batch.device, some, false)
                    }
                };
                self.queue(s, frame);
            }
        }
        self.last_published.store(id - 1, Ordering::Release);
    }

    /// Sends an event about `device` (presence, a command's status) to each
    /// connection subscribed to it, once per connection however many of its
    /// subscriptions match, and not to `except` (which was told directly).
    pub fn device_event(&self, device: &str, frame: Frame, except: Option<&Outbox<Frame>>) {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut told: Vec<&Outbox<Frame>> = Vec::new();
        for s in inner.subscribers.values().filter(|s| s.devices.admits(device)) {
            if except.is_some_and(|e| e.same(&s.out)) || told.iter().any(|t| t.same(&s.out)) {
                continue;
            }
            told.push(&s.out);
            self.queue(s, frame.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DeviceBatch, Point};
    use serde_json::{json, Value};

    fn commit(first_id: i64, device: &str, keys: &[&str]) -> Committed {
        Committed {
            first_id,
            batches: vec![DeviceBatch {
                device: device.into(),
                seq: None,
                points: keys
                    .iter()
                    .map(|k| Point {
                        key: k.to_string(),
                        value: json!(1),
                        ts: 0,
                    })
                    .collect(),
            }],
        }
    }

    fn parse(f: &Frame) -> Value {
        serde_json::from_str(f.as_str()).unwrap()
    }

    #[tokio::test]
    async fn filters_select_devices_and_keys_and_the_watermark_follows_commits() {
        let f = Fanout::new(10, Counter::default(), Counter::default());
        let all: Outbox<Frame> = Outbox::new(8);
        let temp_of_a: Outbox<Frame> = Outbox::new(8);
        assert_eq!(f.subscribe(Filter::All, Filter::All, all.clone()).watermark, 10);
        f.subscribe(
            Filter::from_list(Some(&["a".into()])),
            Filter::from_list(Some(&["temp".into()])),
            temp_of_a.clone(),
        );
        f.publish(&commit(11, "a", &["temp", "hum"]));
        f.publish(&commit(13, "b", &["temp"]));
        assert_eq!(
            f.subscribe(Filter::All, Filter::All, Outbox::new(1)).watermark,
            13
        );
        let first = parse(&all.next().await);
        assert_eq!(first["points"][1]["id"], 12);
        assert_eq!(parse(&all.next().await)["device"], "b");
        let only = parse(&temp_of_a.next().await);
        assert_eq!(only["points"].as_array().unwrap().len(), 1);
        assert!(temp_of_a.is_empty(), "device b is not in its filter");
    }

    #[tokio::test]
    async fn a_full_subscriber_loses_messages_without_holding_back_others() {
        let dropped = Counter::default();
        let f = Fanout::new(0, Counter::default(), dropped.clone());
        let slow: Outbox<Frame> = Outbox::new(1);
        let fast: Outbox<Frame> = Outbox::new(100);
        f.subscribe(Filter::All, Filter::All, slow.clone());
        f.subscribe(Filter::All, Filter::All, fast.clone());
        for i in 0..5 {
            f.publish(&commit(i + 1, "a", &["k"]));
        }
        assert_eq!((slow.len(), fast.len()), (1, 5));
        assert_eq!((slow.take_lost(), dropped.get()), (4, 4));
    }
}
