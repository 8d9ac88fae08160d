//! The hub's bookkeeping, written in the background: the connection log (who
//! connected, when, from where, how it ended) and devices coming online or going
//! offline. A connection does not wait for the database to open or close: ids are
//! handed out here, and one task writes what queued up in one transaction. A burst
//! of connections (every device reconnecting after a restart) costs one write, not
//! a query each, nor a queue of pending queries holding memory.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::store::{now_ms, ConnectionRecord, LogEvent, Store, StoreResult};
use crate::sync::AbortOnDrop;

/// Most events in one transaction.
const BATCH: usize = 1000;

pub struct ConnectionLog {
    next_id: AtomicI64,
    tx: mpsc::UnboundedSender<LogEvent>,
    _task: AbortOnDrop,
}

impl ConnectionLog {
    pub async fn start(store: Arc<dyn Store>) -> StoreResult<ConnectionLog> {
        let last = store.last_connection_id().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        Ok(ConnectionLog {
            next_id: AtomicI64::new(last + 1),
            tx,
            _task: AbortOnDrop(tokio::spawn(write(store, rx))),
        })
    }

    /// Logs a new connection; returns its id for [`ConnectionLog::closed`].
    pub fn opened(&self, mut record: ConnectionRecord) -> i64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        record.id = id;
        let _ = self.tx.send(LogEvent::Opened(record));
        id
    }

    /// A device came online or went offline.
    pub fn presence(&self, device: &str, kind: &'static str, online: bool, at: i64) {
        let _ = self.tx.send(LogEvent::Presence {
            device: device.to_string(),
            kind,
            online,
            at,
        });
    }

    pub fn closed(&self, id: i64, reason: &str) {
        let _ = self.tx.send(LogEvent::Closed {
            id,
            at: now_ms(),
            reason: reason.to_string(),
        });
    }
}

async fn write(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<LogEvent>) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        if let Err(e) = store.write_log(&batch).await {
            tracing::warn!(error = %e, events = batch.len(), "connection log and presence not written");
        }
        batch.clear();
    }
}
