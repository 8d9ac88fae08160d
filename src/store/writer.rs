//! Group commit for telemetry. Devices hand their batches to one writer task; it
//! takes everything waiting (up to a limit) into one transaction, so a commit's
//! cost is shared by every point in it and the rate of commits falls as load rises.
//! Each sender learns when its points are durable (that is when a device gets its
//! ack), and the committed points, with their ids, go to a callback in commit
//! order (the hub's live fan-out).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{DeviceBatch, Store, StoreError};
use crate::sync::AbortOnDrop;

/// Points committed together; the points' ids run from `first_id` in batch order.
pub struct Committed {
    pub first_id: i64,
    pub batches: Vec<DeviceBatch>,
}

/// Told when a submission is stored, or why it is not.
pub type Ack = oneshot::Receiver<Result<(), String>>;

struct Submission {
    batch: DeviceBatch,
    done: oneshot::Sender<Result<(), String>>,
}

/// The sending side of the writer task; the task ends when the last clone drops.
#[derive(Clone)]
pub struct TelemetryWriter {
    tx: mpsc::Sender<Submission>,
    _task: Arc<AbortOnDrop>,
}

impl TelemetryWriter {
    /// Starts the writer. At most `max_points` go into one transaction; up to
    /// `queue` submissions wait for it, and senders beyond that wait for room (so a
    /// store that falls behind slows devices down rather than filling memory).
    pub fn spawn(
        store: Arc<dyn Store>,
        max_points: usize,
        queue: usize,
        on_commit: impl Fn(Committed) + Send + Sync + 'static,
    ) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let task = tokio::spawn(run(store, rx, max_points.max(1), on_commit));
        TelemetryWriter {
            tx,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }

    /// Queues a batch; the returned [`Ack`] resolves once it is committed.
    pub async fn submit(&self, batch: DeviceBatch) -> Result<Ack, StoreError> {
        let (done, ack) = oneshot::channel();
        self.tx
            .send(Submission { batch, done })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        Ok(ack)
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Submission>,
    max_points: usize,
    on_commit: impl Fn(Committed),
) {
    let mut waiting = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut points = first.batch.points.len();
        waiting.push(first);
        while points < max_points {
            match rx.try_recv() {
                Ok(s) => {
                    points += s.batch.points.len();
                    waiting.push(s);
                }
                Err(_) => break,
            }
        }
        let (batches, acks): (Vec<_>, Vec<_>) = waiting.drain(..).map(|s| (s.batch, s.done)).unzip();
        match store.append_telemetry(&batches).await {
            Ok(first_id) => {
                on_commit(Committed { first_id, batches });
                for ack in acks {
                    let _ = ack.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, points, "telemetry not stored");
                let message = e.to_string();
                for ack in acks {
                    let _ = ack.send(Err(message.clone()));
                }
            }
        }
    }
}
