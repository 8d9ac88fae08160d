//! Live delivery of stored telemetry, presence and command statuses to
//! subscribers. A committed batch becomes one [`Event`] per device, and the same
//! event is queued to every subscriber that takes all its keys (its front end
//! encodes it once for all of them); a subscriber whose queue is full loses
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

use super::event::{Event, PublishedPoint};
use crate::outbox::Outbox;
use crate::store::{Committed, Point};

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
    out: Outbox<Event>,
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

    pub fn subscribe(&self, devices: Filter, keys: Filter, out: Outbox<Event>) -> Registration {
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

    fn queue(&self, s: &Subscriber, event: Event) {
        if s.out.event(event) {
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
            // Numbered in commit order; a point is copied only into an event that carries it.
            let numbered = || batch.points.iter().enumerate();
            let published = |(i, p): (usize, &Point)| PublishedPoint {
                id: first + i as i64,
                key: p.key.clone(),
                value: p.value.clone(),
                ts: p.ts,
            };
            let mut whole: Option<Event> = None;
            for s in inner
                .subscribers
                .values()
                .filter(|s| s.devices.admits(&batch.device))
            {
                let event = match &s.keys {
                    Filter::All => whole
                        .get_or_insert_with(|| {
                            Event::telemetry(&batch.device, numbered().map(published).collect(), false)
                        })
                        .clone(),
                    keys => {
                        let some: Vec<PublishedPoint> = numbered()
                            .filter(|(_, p)| keys.admits(&p.key))
                            .map(published)
                            .collect();
                        if some.is_empty() {
                            continue;
                        }
                        Event::telemetry(&batch.device, some, false)
                    }
                };
                self.queue(s, event);
            }
        }
        self.last_published.store(id - 1, Ordering::Release);
    }

    /// Sends an event about its device (presence, a command's status) to each
    /// connection subscribed to it, once per connection however many of its
    /// subscriptions match, and not to `except` (which was told directly).
    pub fn device_event(&self, event: Event, except: Option<&Outbox<Event>>) {
        let device = event.device();
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut told: Vec<&Outbox<Event>> = Vec::new();
        for s in inner.subscribers.values().filter(|s| s.devices.admits(device)) {
            if except.is_some_and(|e| e.same(&s.out)) || told.iter().any(|t| t.same(&s.out)) {
                continue;
            }
            told.push(&s.out);
            self.queue(s, event.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::event::Happened;
    use crate::store::DeviceBatch;
    use serde_json::json;

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

    fn telemetry(e: &Event) -> (&str, &[PublishedPoint]) {
        match e.happened() {
            Happened::Telemetry { device, points, .. } => (device, points),
            other => panic!("not telemetry: {other:?}"),
        }
    }

    #[tokio::test]
    async fn filters_select_devices_and_keys_and_the_watermark_follows_commits() {
        let f = Fanout::new(10, Counter::default(), Counter::default());
        let all: Outbox<Event> = Outbox::new(8);
        let temp_of_a: Outbox<Event> = Outbox::new(8);
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
        let first = all.next().await;
        assert_eq!(telemetry(&first).1[1].id, 12);
        assert_eq!(telemetry(&all.next().await).0, "b");
        let only = temp_of_a.next().await;
        assert_eq!(telemetry(&only).1.len(), 1);
        assert!(temp_of_a.is_empty(), "device b is not in its filter");
    }

    #[tokio::test]
    async fn a_full_subscriber_loses_messages_without_holding_back_others() {
        let dropped = Counter::default();
        let f = Fanout::new(0, Counter::default(), dropped.clone());
        let slow: Outbox<Event> = Outbox::new(1);
        let fast: Outbox<Event> = Outbox::new(100);
        f.subscribe(Filter::All, Filter::All, slow.clone());
        f.subscribe(Filter::All, Filter::All, fast.clone());
        for i in 0..5 {
            f.publish(&commit(i + 1, "a", &["k"]));
        }
        assert_eq!((slow.len(), fast.len()), (1, 5));
        assert_eq!((slow.take_lost(), dropped.get()), (4, 4));
    }
}
