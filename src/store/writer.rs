//! Group commit for telemetry. Devices hand their batches to one writer task; it
//! takes everything waiting (up to a limit) into one transaction, so a commit's
//! cost is shared by every point in it and the rate of commits falls as load rises.
//! Each sender learns when its points are durable (that is when a device gets its
//! ack), and the committed points, with their ids, go to a callback in commit
//! order (the hub's live fan-out).
//!
//! A failed commit fails every batch in it, and then every later batch of the
//! devices in it that number their batches (`seq`), until each such device
//! [`TelemetryWriter::resume`]s (reconnects). Without that, a later batch stored
//! behind a failed one would raise the device's `last_seq` past the failed one, and
//! its retry would be taken for a duplicate: acknowledged, never stored. A sender
//! without `seq` (the BLE and advertisement feeds) has no such hazard and never
//! reconnects, so its next batch is simply tried again: it goes on once the store
//! works again.
//!
//! Whether the last commit failed is kept for readiness ([`TelemetryWriter::failing`]):
//! a database that answers a ping but refuses every commit is not ready.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::{DeviceBatch, Store, StoreError};
use crate::sync::AbortOnDrop;

/// Points committed together; the points' ids run from `first_id` in batch order.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Committed {
    pub first_id: i64,
    pub batches: Vec<DeviceBatch>,
}

/// Told when a submission is stored (or recognised as a retry of one stored), or
/// why it is not.
pub type Ack = oneshot::Receiver<Result<(), String>>;

enum Msg {
    Submit {
        batch: DeviceBatch,
        done: oneshot::Sender<Result<(), String>>,
        /// The batch's share of the byte budget, given back once it is stored
        /// or refused.
        room: Room,
    },
    /// The device reconnected: its batches are taken again. Answered once
    /// everything queued before it is done.
    Resume(Arc<str>, oneshot::Sender<()>),
}

/// A batch's bytes of the queue's budget, and the gauge that shows them.
struct Room {
    _permit: OwnedSemaphorePermit,
    bytes: i64,
    gauge: Gauge,
}

impl Drop for Room {
    fn drop(&mut self) {
        self.gauge.dec_by(self.bytes);
    }
}

/// The last commit's failure, until a commit succeeds again.
#[derive(Clone, Debug)]
pub struct Failing {
    pub error: String,
    /// The first failure of this run of them.
    pub since: Instant,
    /// The latest.
    pub last: Instant,
}

/// The sending side of the writer task; the task ends when the last clone drops.
#[derive(Clone)]
pub struct TelemetryWriter {
    tx: mpsc::Sender<Msg>,
    /// Bytes of telemetry that may wait for the writer: a count of submissions
    /// alone let a few large ones hold what the store could not yet take.
    budget: Arc<Semaphore>,
    max_bytes: usize,
    queued: Gauge,
    failing: Arc<Mutex<Option<Failing>>>,
    _task: Arc<AbortOnDrop>,
}

impl TelemetryWriter {
    /// Starts the writer. At most `max_points` go into one transaction; up to
    /// `queue` submissions, and `max_bytes` of them ([`DeviceBatch::weight`]),
    /// wait for it, and senders beyond either wait for room (so a store that falls
    /// behind slows devices down rather than filling memory). `queued` shows the
    /// bytes waiting.
    pub fn spawn(
        store: Arc<dyn Store>,
        max_points: usize,
        queue: usize,
        max_bytes: usize,
        queued: Gauge,
        on_commit: impl Fn(Committed) + Send + Sync + 'static,
    ) -> Self {
        // A semaphore counts at most u32::MAX permits at a time in one acquire.
        let max_bytes = max_bytes.clamp(1, u32::MAX as usize);
        let (tx, rx) = mpsc::channel(queue.max(1));
        let failing = Arc::new(Mutex::new(None));
        let task = tokio::spawn(run(store, rx, max_points.max(1), failing.clone(), on_commit));
        TelemetryWriter {
            tx,
            budget: Arc::new(Semaphore::new(max_bytes)),
            max_bytes,
            queued,
            failing,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }

    /// Why the last commit failed, when no commit has succeeded since.
    pub fn failing(&self) -> Option<Failing> {
        crate::sync::lock(&self.failing).clone()
    }

    /// Queues a batch; the returned [`Ack`] resolves once it is committed.
    pub async fn submit(&self, batch: DeviceBatch) -> Result<Ack, StoreError> {
        let (done, ack) = oneshot::channel();
        // A batch larger than the whole budget still goes, alone.
        let bytes = batch.weight().clamp(1, self.max_bytes);
        let permit = (self.budget.clone())
            .acquire_many_owned(bytes as u32)
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        self.queued.inc_by(bytes as i64);
        let room = Room {
            _permit: permit,
            bytes: bytes as i64,
            gauge: self.queued.clone(),
        };
        self.tx
            .send(Msg::Submit { batch, done, room })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        Ok(ack)
    }

    /// A device's new connection: batches it sends from now on are taken again,
    /// even if an earlier one failed. Returns once everything its old connection
    /// queued has been stored or refused, so the `last_seq` read next is final.
    pub async fn resume(&self, device: Arc<str>) -> Result<(), StoreError> {
        let (done, resumed) = oneshot::channel();
        self.tx
            .send(Msg::Resume(device, done))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        resumed.await.map_err(|_| StoreError::WriterStopped)
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Msg>,
    max_points: usize,
    failing: Arc<Mutex<Option<Failing>>>,
    on_commit: impl Fn(Committed),
) {
    // Devices with a failed batch, refused until they resume.
    let mut failed: HashSet<Arc<str>> = HashSet::new();
    let mut batches = Vec::new();
    let mut acks = Vec::new();
    // What the gathered batches hold of the byte budget, until they are done.
    let mut rooms = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut points = 0;
        let mut resume = None;
        while let Some(msg) = next.take() {
            match msg {
                // A resume ends the gathering: what came before it is committed (or
                // failed) first, so a failure there cannot outlive the resume.
                Msg::Resume(device, done) => resume = Some((device, done)),
                Msg::Submit { batch, done, .. } if failed.contains(&batch.device) => {
                    let _ = done.send(Err(
                        "an earlier batch of this device was not stored: reconnect and send again after last_seq"
                            .into(),
                    ));
                }
                Msg::Submit { batch, done, room } => {
                    points += batch.points.len();
                    batches.push(batch);
                    acks.push(done);
                    rooms.push(room);
                }
            }
            if points < max_points && resume.is_none() {
                next = rx.try_recv().ok();
            }
        }
        if !batches.is_empty() {
            let outcome = commit(&*store, &mut batches, &mut acks, &mut failed, &on_commit, points).await;
            let mut failing = crate::sync::lock(&failing);
            match outcome {
                Ok(()) => *failing = None,
                Err(error) => {
                    let last = Instant::now();
                    let since = failing.as_ref().map_or(last, |f| f.since);
                    *failing = Some(Failing { error, since, last });
                }
            }
            rooms.clear();
        }
        if let Some((device, done)) = resume {
            failed.remove(&device);
            let _ = done.send(());
        }
    }
}

/// Stores what gathered; acks it, or fails it and marks its numbering devices
/// failed (and says why).
async fn commit(
    store: &dyn Store,
    batches: &mut Vec<DeviceBatch>,
    acks: &mut Vec<oneshot::Sender<Result<(), String>>>,
    failed: &mut HashSet<Arc<str>>,
    on_commit: &impl Fn(Committed),
    points: usize,
) -> Result<(), String> {
    match store.append_telemetry(batches).await {
        Ok(appended) => {
            let stored = batches
                .drain(..)
                .zip(appended.stored)
                .filter_map(|(b, kept)| kept.then_some(b))
                .collect();
            on_commit(Committed {
                first_id: appended.first_id,
                batches: stored,
            });
            for ack in acks.drain(..) {
                let _ = ack.send(Ok(()));
            }
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, points, "telemetry not stored");
            let message = e.to_string();
            failed.extend(batches.drain(..).filter(|b| b.seq.is_some()).map(|b| b.device));
            for ack in acks.drain(..) {
                let _ = ack.send(Err(message.clone()));
            }
            Err(message)
        }
    }
}
