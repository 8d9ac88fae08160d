//! The hub's bookkeeping, written in the background: the connection log (who
//! connected, when, from where, how it ended) and devices coming online or going
//! offline. A connection does not wait for the database to open or close: ids are
//! handed out here, and one task writes what gathered in one transaction. A burst
//! of connections (every device reconnecting after a restart) costs one write.
//!
//! What waits is bounded, however slow the store is:
//! - presence is kept as each device's latest change (one entry per device);
//! - connections wait in a table of at most [`PENDING`] entries, where a close
//!   finds its still-unwritten open and completes it (one row, not two writes).
//!   Past that, records are dropped and counted
//!   (`gattway_hub_connection_log_dropped_total`), never queued without end.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use crate::store::{now_ms, ConnectionRecord, LogEvent, Store, StoreResult};
use crate::sync::{lock, AbortOnDrop};

/// Connection records waiting to be written, at most.
const PENDING: usize = 10_000;

/// A connection record waiting: a new connection (perhaps closed already), or
/// the close of one written before.
enum Waiting {
    Opened(ConnectionRecord),
    Closed { at: i64, reason: String },
}

#[derive(Default)]
struct Pending {
    connections: BTreeMap<i64, Waiting>,
    /// Device → its latest presence change.
    presence: HashMap<String, (&'static str, bool, i64)>,
}

struct Shared {
    pending: Mutex<Pending>,
    ready: Notify,
    dropped: Counter,
}

pub struct ConnectionLog {
    next_id: AtomicI64,
    shared: Arc<Shared>,
    _task: AbortOnDrop,
}

impl ConnectionLog {
    pub async fn start(store: Arc<dyn Store>, dropped: Counter) -> StoreResult<ConnectionLog> {
        let first = store.first_connection_id().await?;
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            ready: Notify::new(),
            dropped,
        });
        Ok(ConnectionLog {
            next_id: AtomicI64::new(first),
            _task: AbortOnDrop(tokio::spawn(write(store, shared.clone()))),
            shared,
        })
    }

    /// Logs a new connection; returns its id for [`ConnectionLog::closed`].
    pub fn opened(&self, mut record: ConnectionRecord) -> i64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        record.id = id;
        self.wait(id, Waiting::Opened(record));
        id
    }

    pub fn closed(&self, id: i64, reason: &str) {
        let at = now_ms();
        {
            let mut p = lock(&self.shared.pending);
            if let Some(Waiting::Opened(record)) = p.connections.get_mut(&id) {
                record.disconnected_at = Some(at);
                record.reason = Some(reason.to_string());
                return;
            }
        }
        self.wait(
            id,
            Waiting::Closed {
                at,
                reason: reason.to_string(),
            },
        );
    }

    /// A device came online or went offline.
    pub fn presence(&self, device: &str, kind: &'static str, online: bool, at: i64) {
        lock(&self.shared.pending)
            .presence
            .insert(device.to_string(), (kind, online, at));
        self.shared.ready.notify_one();
    }

    fn wait(&self, id: i64, w: Waiting) {
        let mut p = lock(&self.shared.pending);
        if p.connections.len() >= PENDING {
            drop(p);
            self.shared.dropped.inc();
            tracing::debug!(id, "connection log full: record dropped");
            return;
        }
        p.connections.insert(id, w);
        drop(p);
        self.shared.ready.notify_one();
    }
}

async fn write(store: Arc<dyn Store>, shared: Arc<Shared>) {
    loop {
        shared.ready.notified().await;
        let taken = std::mem::take(&mut *lock(&shared.pending));
        let mut events: Vec<LogEvent> = Vec::with_capacity(taken.connections.len() + taken.presence.len());
        for (id, w) in taken.connections {
            events.push(match w {
                Waiting::Opened(record) => LogEvent::Opened(record),
                Waiting::Closed { at, reason } => LogEvent::Closed { id, at, reason },
            });
        }
        for (device, (kind, online, at)) in taken.presence {
            events.push(LogEvent::Presence {
                device,
                kind,
                online,
                at,
            });
        }
        if events.is_empty() {
            continue;
        }
        if let Err(e) = store.write_log(&events).await {
            shared.dropped.inc_by(events.len() as u64);
            tracing::warn!(error = %e, events = events.len(), "connection log and presence not written");
        }
    }
}
