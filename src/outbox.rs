//! A WebSocket connection's send queue, shared by the front ends whose background
//! work (subscriptions, fan-out, command routing) produces messages for a client.
//! Events are dropped, and counted, when the client reads too slowly, so a slow
//! reader never blocks a producer; replies are never dropped (at most one per
//! request is ever queued). A queue is bounded by its count and, when given one,
//! by the bytes it holds ([`Outbox::with_byte_budget`]): a count alone let a slow
//! reader hold thousands of large messages.
//!
//! A `VecDeque` behind a mutex rather than a channel: a
//! tokio channel allocates its first block up front, which every idle connection
//! would carry.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::sync::lock;

pub struct Outbox<T>(Arc<OutboxInner<T>>);

impl<T> Clone for Outbox<T> {
    fn clone(&self) -> Self {
        Outbox(self.0.clone())
    }
}

struct OutboxInner<T> {
    queue: Mutex<Queue<T>>,
    ready: Notify,
    /// Events dropped since the client was last told.
    lost: AtomicU64,
    /// Its connection was told to end (see [`Outbox::close`]).
    closed: AtomicBool,
    capacity: usize,
    /// Bytes the queued messages may hold, and how a message is weighed; none:
    /// only the count bounds it.
    budget: Option<ByteBudget<T>>,
}

/// How many bytes an outbox's messages may hold, and how one is weighed.
struct ByteBudget<T> {
    max: usize,
    weigh: fn(&T) -> usize,
}

struct Queue<T> {
    items: VecDeque<T>,
    /// What the queued items weigh, when the outbox has a byte budget.
    bytes: usize,
}

impl<T> Outbox<T> {
    pub fn new(capacity: usize) -> Self {
        Self::build(capacity, None)
    }

    /// An outbox that also holds at most `max_bytes` of messages, as `weigh`
    /// counts them. An event that would pass it is dropped (and counted) unless
    /// the queue is empty: one message, however large, always gets through.
    pub fn with_byte_budget(capacity: usize, max_bytes: usize, weigh: fn(&T) -> usize) -> Self {
        Self::build(
            capacity,
            Some(ByteBudget {
                max: max_bytes,
                weigh,
            }),
        )
    }

    fn build(capacity: usize, budget: Option<ByteBudget<T>>) -> Self {
        Outbox(Arc::new(OutboxInner {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
            }),
            ready: Notify::new(),
            lost: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            capacity: capacity.max(1),
            budget,
        }))
    }

    fn weight(&self, v: &T) -> usize {
        self.0.budget.as_ref().map_or(0, |b| (b.weigh)(v))
    }

    /// Queues an event; false (and counted as lost) when the queue is full, by
    /// count or by bytes.
    pub fn event(&self, v: T) -> bool {
        let weight = self.weight(&v);
        let mut q = lock(&self.0.queue);
        let over_budget = self
            .0
            .budget
            .as_ref()
            .is_some_and(|b| !q.items.is_empty() && q.bytes + weight > b.max);
        if q.items.len() >= self.0.capacity || over_budget {
            drop(q);
            self.0.lost.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        q.bytes += weight;
        q.items.push_back(v);
        drop(q);
        self.0.ready.notify_one();
        true
    }

    /// Counts events lost before they reached the queue (a lagging upstream).
    pub fn lost(&self, n: u64) {
        self.0.lost.fetch_add(n, Ordering::Relaxed);
    }

    /// Queues a reply, whatever the queue holds.
    pub fn reply(&self, v: T) {
        let weight = self.weight(&v);
        let mut q = lock(&self.0.queue);
        q.bytes += weight;
        q.items.push_back(v);
        drop(q);
        self.0.ready.notify_one();
    }

    /// Events lost since the last call.
    pub fn take_lost(&self) -> u64 {
        self.0.lost.swap(0, Ordering::Relaxed)
    }

    /// Whether both are the same queue (one connection's).
    pub fn same(&self, other: &Outbox<T>) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub fn len(&self) -> usize {
        lock(&self.0.queue).items.len()
    }

    /// What the queued messages weigh (0 without a byte budget).
    pub fn bytes(&self) -> usize {
        lock(&self.0.queue).bytes
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next queued message, if one is waiting.
    pub fn try_next(&self) -> Option<T> {
        let mut q = lock(&self.0.queue);
        let v = q.items.pop_front()?;
        q.bytes -= self.weight(&v);
        Some(v)
    }

    /// Tells the connection that reads this queue to end: [`Outbox::next_or_closed`]
    /// answers `None` from now on. One flag in the queue the connection already
    /// waits on, rather than a token and a second future in every idle connection.
    pub fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
        self.0.ready.notify_one();
    }

    /// The next queued message, waiting for one; `None` once the queue is closed
    /// (what is still queued is dropped).
    pub async fn next_or_closed(&self) -> Option<T> {
        loop {
            if self.0.closed.load(Ordering::Acquire) {
                return None;
            }
            if let Some(v) = self.try_next() {
                return Some(v);
            }
            self.0.ready.notified().await;
        }
    }

    /// The next queued message, waiting for one. Its own loop rather than a call
    /// to `next_or_closed`: the nested future cost every idle hub client ~50 bytes.
    pub async fn next(&self) -> T {
        loop {
            if let Some(v) = self.try_next() {
                return v;
            }
            self.0.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[tokio::test]
    async fn a_full_outbox_drops_events_counts_them_and_never_drops_replies() {
        let out: Outbox<Value> = Outbox::new(2);
        for i in 0..5 {
            out.event(json!({"type": "NOTIFICATION", "n": i}));
        }
        out.lost(3); // a subscriber that lagged upstream
        out.reply(json!({"type": "PONG", "id": 1}));
        assert_eq!(out.take_lost(), 6, "3 overflowed + 3 lagged");
        assert_eq!(out.take_lost(), 0, "taking resets the count");
        assert_eq!(out.next().await["n"], 0);
        assert_eq!(out.next().await["n"], 1);
        assert_eq!(
            out.next().await["type"],
            "PONG",
            "a reply is queued even when events are not"
        );
        let waiting = tokio::spawn({
            let out = out.clone();
            async move { out.next().await }
        });
        out.event(json!({"type": "NOTIFICATION", "n": 9}));
        assert_eq!(waiting.await.unwrap()["n"], 9, "a waiting reader wakes");
    }

    #[tokio::test]
    async fn a_byte_budget_drops_what_would_pass_it_but_never_the_only_message() {
        let out: Outbox<String> = Outbox::with_byte_budget(100, 10, String::len);
        assert!(out.event("a".repeat(25)), "alone, however large");
        assert!(!out.event("b".into()), "nothing past a full budget");
        assert_eq!(out.next().await.len(), 25);
        assert!(out.event("c".repeat(6)));
        assert!(out.event("d".repeat(4)));
        assert!(!out.event("e".into()), "6 + 4 + 1 > 10");
        assert_eq!(out.bytes(), 10);
        out.reply("f".repeat(20));
        assert_eq!(out.bytes(), 30, "replies are never dropped, and count");
        assert_eq!(out.take_lost(), 2);
        while out.try_next().is_some() {}
        assert_eq!(out.bytes(), 0);
    }

    #[tokio::test]
    async fn a_closed_outbox_ends_its_reader() {
        let out: Outbox<u32> = Outbox::new(4);
        out.event(1);
        assert_eq!(out.next_or_closed().await, Some(1));
        let waiting = tokio::spawn({
            let out = out.clone();
            async move { out.next_or_closed().await }
        });
        out.close();
        assert_eq!(waiting.await.unwrap(), None, "a waiting reader is told");
        out.event(2);
        assert_eq!(out.next_or_closed().await, None, "and so is a later one");
    }
}
