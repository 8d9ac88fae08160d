//! What one MCP session owns: its subscriptions (a task each, copying gateway
//! notifications into the session's bounded buffer) and its cursors. Everything
//! here goes when the session does: the tasks are aborted, which drops the gateway
//! subscriptions, which turns the radio notifications off.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::ble::{DeviceId, Notification, Uuid};
use crate::gateway::{Subscription, SubscriptionEvent};
use crate::sync::{lock, AbortOnDrop};

/// Notifications a session buffers between `ble_notifications` calls.
pub const BUFFER: usize = 1000;

#[derive(Clone)]
pub struct Buffered {
    pub seq: u64,
    pub at: SystemTime,
    pub device: DeviceId,
    pub service: Uuid,
    pub characteristic: Uuid,
    pub value: Bytes,
}

struct Ring {
    entries: VecDeque<Buffered>,
    /// Sequence number of the next notification. Lagged notifications (dropped by
    /// the gateway before they reached us) consume numbers too, so every loss shows
    /// as a gap a reader can count.
    next_seq: u64,
}

/// A page of buffered notifications.
pub struct Page {
    pub entries: Vec<Buffered>,
    pub cursor: u64,
    pub dropped: u64,
}

type SubKey = (DeviceId, Uuid, Uuid);

pub struct Session {
    ring: Mutex<Ring>,
    arrived: Notify,
    subscriptions: Mutex<HashMap<SubKey, AbortOnDrop>>,
    /// The newest packet-log entry this session's `get_logs` returned ('last').
    pub logs_cursor: AtomicU64,
    calls: Mutex<BTreeMap<String, u64>>,
}

impl Session {
    pub fn new() -> Arc<Self> {
        Arc::new(Session {
            ring: Mutex::new(Ring {
                entries: VecDeque::new(),
                next_seq: 1,
            }),
            arrived: Notify::new(),
            subscriptions: Mutex::new(HashMap::new()),
            logs_cursor: AtomicU64::new(0),
            calls: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn count_call(&self, tool: &str) {
        *lock(&self.calls).entry(tool.to_string()).or_default() += 1;
    }

    pub fn calls(&self) -> BTreeMap<String, u64> {
        lock(&self.calls).clone()
    }

    /// The cursor that means "from now on".
    pub fn head(&self) -> u64 {
        lock(&self.ring).next_seq - 1
    }

    fn push(&self, n: Notification) {
        let mut ring = lock(&self.ring);
        let seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.entries.len() == BUFFER {
            ring.entries.pop_front();
        }
        ring.entries.push_back(Buffered {
            seq,
            at: n.at,
            device: n.device,
            service: n.service,
            characteristic: n.characteristic,
            value: n.value,
        });
        drop(ring);
        self.arrived.notify_waiters();
    }

    fn lagged(&self, missed: u64) {
        lock(&self.ring).next_seq += missed;
    }

    /// Takes over a gateway subscription: a task copies it into the buffer until the
    /// session unsubscribes or goes.
    pub fn add_subscription(self: &Arc<Self>, key: SubKey, mut sub: Subscription) {
        let weak: Weak<Session> = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            while let Some(event) = sub.recv().await {
                let Some(session) = weak.upgrade() else { return };
                match event {
                    SubscriptionEvent::Notification(n) => session.push(n),
                    SubscriptionEvent::Lagged(k) => session.lagged(k),
                }
            }
        });
        lock(&self.subscriptions).insert(key, AbortOnDrop(task));
    }

    /// Ends a subscription; false when there was none.
    pub fn remove_subscription(&self, key: &SubKey) -> bool {
        lock(&self.subscriptions).remove(key).is_some()
    }

    /// "device/characteristic" of each live subscription.
    pub fn subscription_names(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.subscriptions)
            .iter()
            .filter(|(_, task)| !task.0.is_finished())
            .map(|((d, _, c), _)| format!("{d}/{}", c.short()))
            .collect();
        v.sort();
        v
    }

    fn page(&self, cursor: u64, limit: usize) -> Page {
        let ring = lock(&self.ring);
        let newest = ring.next_seq - 1;
        let entries: Vec<Buffered> = ring
            .entries
            .iter()
            .filter(|e| e.seq > cursor)
            .take(limit)
            .cloned()
            .collect();
        match entries.last() {
            Some(last) => {
                let last_seq = last.seq;
                let dropped = (last_seq - cursor.min(last_seq)) - entries.len() as u64;
                Page {
                    entries,
                    cursor: last_seq,
                    dropped,
                }
            }
            // Everything after the cursor is gone (or nothing came): skip the gap.
            None => Page {
                entries,
                cursor: newest.max(cursor),
                dropped: newest.saturating_sub(cursor),
            },
        }
    }

    /// Notifications after `cursor`, waiting up to `wait` for the first to arrive.
    pub async fn notifications(&self, cursor: u64, limit: usize, wait: Duration) -> Page {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            // Register before looking, so a push between the look and the wait wakes us.
            arrived.as_mut().enable();
            let page = self.page(cursor, limit);
            if !page.entries.is_empty() || page.dropped > 0 || tokio::time::Instant::now() >= deadline {
                return page;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.page(cursor, limit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(i: u8) -> Notification {
        Notification {
            device: DeviceId::new("d"),
            service: Uuid::from_u16(1),
            characteristic: Uuid::from_u16(2),
            value: Bytes::from(vec![i]),
            at: SystemTime::now(),
        }
    }

    #[tokio::test]
    async fn pages_follow_the_cursor_and_count_drops() {
        let s = Session::new();
        for i in 0..3 {
            s.push(note(i));
        }
        let p = s.notifications(0, 2, Duration::ZERO).await;
        assert_eq!((p.entries.len(), p.cursor, p.dropped), (2, 2, 0));
        s.lagged(5); // seqs 4..=8 never arrive
        s.push(note(9)); // seq 9
        let p = s.notifications(p.cursor, 100, Duration::ZERO).await;
        assert_eq!(p.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 9]);
        assert_eq!((p.cursor, p.dropped), (9, 5));
        let p = s.notifications(9, 100, Duration::ZERO).await;
        assert_eq!((p.entries.len(), p.cursor, p.dropped), (0, 9, 0));
    }

    #[tokio::test]
    async fn overflow_is_reported_as_dropped() {
        let s = Session::new();
        for i in 0..(BUFFER + 10) {
            s.push(note(i as u8));
        }
        let p = s.notifications(0, BUFFER * 2, Duration::ZERO).await;
        assert_eq!(p.entries.len(), BUFFER);
        assert_eq!(p.dropped, 10);
    }

    #[tokio::test]
    async fn a_waiting_reader_wakes_on_arrival() {
        let s = Session::new();
        let s2 = s.clone();
        let reader = tokio::spawn(async move {
            s2.notifications(0, 10, Duration::from_secs(10))
                .await
                .entries
                .len()
        });
        tokio::task::yield_now().await;
        s.push(note(1));
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), reader)
                .await
                .unwrap()
                .unwrap(),
            1
        );
    }
}
