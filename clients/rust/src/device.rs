//! A device on the hub: telemetry batched, queued while offline (bounded, by
//! priority), sent with a `seq` given as each message leaves (so a reordered
//! queue never makes a new message look like a retry), sent again after a
//! reconnect when the hub had not stored it; each point's future resolves once
//! the hub has stored it. Commands come in as events; heartbeats go out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::link::{self, Options, Socket, State, Task};
use crate::ClientError;

/// How much a device gathers and holds.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Points kept while offline; past it the oldest of the lowest priority go.
    pub queue: usize,
    /// Points per telemetry message.
    pub batch_points: usize,
    /// Longest wait for a batch to fill.
    pub batch_delay: Duration,
    /// Messages sent and not yet acknowledged.
    pub in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queue: 10_000,
            batch_points: 100,
            batch_delay: Duration::from_millis(20),
            in_flight: 32,
        }
    }
}

/// What the hub sends a device, apart from acknowledgements.
#[derive(Debug)]
pub enum DeviceEvent {
    Command(Value),
    Cancel(Value),
    Error(Value),
}

struct Pending {
    key: String,
    value: Value,
    ts: i64,
    priority: i32,
    order: u64,
    done: oneshot::Sender<Result<(), ClientError>>,
}

enum Op {
    Send(Pending),
    Result(Value),
}

struct Sent {
    seq: u64,
    points: Vec<Pending>,
}

/// The handle; the connection's task ends when it is dropped or closed.
pub struct HubDevice {
    task: Task<Op>,
    dropped: Arc<AtomicU64>,
    order: AtomicU64,
}

impl HubDevice {
    /// Starts connecting `device` to the hub at `base` (`http://HOST:PORT`).
    pub fn connect(
        base: &str,
        device: &str,
        options: Options,
        limits: Limits,
    ) -> (HubDevice, mpsc::UnboundedReceiver<DeviceEvent>) {
        let dropped = Arc::new(AtomicU64::new(0));
        let url = link::hub_url(base, &format!("device={device}"));
        let worker = |events| Worker {
            limits,
            queue: Vec::new(),
            batch: Vec::new(),
            batch_due: None,
            in_flight: VecDeque::new(),
            seq: 0,
            dropped: dropped.clone(),
            events,
        };
        let (task, events_rx) =
            Task::spawn(|ops, events, state| worker(events).run(url, options, ops, state));
        let device = HubDevice {
            task,
            dropped,
            order: AtomicU64::new(0),
        };
        (device, events_rx)
    }

    /// Queues a point; resolves once the hub has stored it, or fails if it was
    /// dropped from a full queue or the device closed.
    pub async fn send(&self, key: &str, value: Value, priority: i32) -> Result<(), ClientError> {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let order = self.order.fetch_add(1, Ordering::Relaxed);
        self.task
            .ask(|done| {
                Op::Send(Pending {
                    key: key.to_string(),
                    value,
                    ts,
                    priority,
                    order,
                    done,
                })
            })
            .await
    }

    /// Reports a command's result (`delivered`, `succeeded`, `failed`); dropped
    /// when offline (the hub sends an unconfirmed command again).
    pub fn result(&self, command_id: &str, status: &str, body: Value) {
        let mut message = json!({"type": "command_result", "command_id": command_id, "status": status});
        if let (Some(m), Value::Object(extra)) = (message.as_object_mut(), body) {
            m.extend(extra);
        }
        let _ = self.task.ops.send(Op::Result(message));
    }

    pub fn state(&self) -> watch::Receiver<State> {
        self.task.state()
    }

    /// Points dropped from a full offline queue.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

struct Worker {
    limits: Limits,
    queue: Vec<Pending>,
    batch: Vec<Pending>,
    batch_due: Option<Instant>,
    in_flight: VecDeque<Sent>,
    seq: u64,
    dropped: Arc<AtomicU64>,
    events: mpsc::UnboundedSender<DeviceEvent>,
}

impl Worker {
    async fn run(
        mut self,
        url: String,
        options: Options,
        mut ops: mpsc::UnboundedReceiver<Op>,
        state: watch::Sender<State>,
    ) {
        let mut attempt = 0;
        loop {
            // Connecting, while the queue keeps taking points.
            let (mut ws, welcome) = {
                let connecting = link::open(&url, &options, link::Greeting::Welcome, &mut attempt, &state);
                tokio::pin!(connecting);
                loop {
                    tokio::select! {
                        opened = &mut connecting => break opened,
                        op = ops.recv() => match op {
                            Some(Op::Send(p)) => self.enqueue(p),
                            Some(Op::Result(_)) => {}
                            None => return,
                        },
                    }
                }
            };
            if self.connected(&mut ws, &welcome).await.is_ok() {
                let heartbeat = Duration::from_secs_f64(
                    (welcome["heartbeat_interval"].as_f64().unwrap_or(30.0) / 2.0).max(1.0),
                );
                if self.serve(&mut ws, &mut ops, heartbeat).await.is_none() {
                    state.send_replace(State::Closed);
                    return;
                }
            }
            // The batch not sent yet waits in the queue again (its order keeps it ahead).
            self.queue.append(&mut self.batch);
            self.batch_due = None;
            attempt = 1;
        }
    }

    /// What the hub stored is acknowledged; the rest goes again, same seq, in order.
    async fn connected(&mut self, ws: &mut Socket, welcome: &Value) -> Result<(), ()> {
        let last = welcome["last_seq"].as_u64().unwrap_or(0);
        self.seq = self.seq.max(last);
        while self.in_flight.front().is_some_and(|m| m.seq <= last) {
            if let Some(m) = self.in_flight.pop_front() {
                m.points.into_iter().for_each(|p| {
                    let _ = p.done.send(Ok(()));
                });
            }
        }
        for m in &self.in_flight {
            transmit(ws, m).await?;
        }
        self.pump(ws).await
    }

    /// The connected loop; `None` when the handle is gone (stop), `Some` when the
    /// connection dropped (reconnect).
    async fn serve(
        &mut self,
        ws: &mut Socket,
        ops: &mut mpsc::UnboundedReceiver<Op>,
        heartbeat: Duration,
    ) -> Option<()> {
        let mut beat = tokio::time::interval(heartbeat);
        beat.tick().await;
        loop {
            let due = self.batch_due;
            let step: Result<(), ()> = tokio::select! {
                op = ops.recv() => match op? {
                    Op::Send(p) => {
                        self.enqueue(p);
                        self.pump(ws).await
                    }
                    Op::Result(m) => ws.send(link::message(m.to_string())).await.map_err(|_| ()),
                },
                message = ws.next() => match message {
                    Some(frame) => match link::text(&frame) {
                        Some(text) => self.heard(ws, text).await,
                        None => Ok(()),
                    },
                    None => Err(()),
                },
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => self.flush(ws).await,
                _ = beat.tick() => ws.send(link::message(r#"{"type":"heartbeat"}"#)).await.map_err(|_| ()),
            };
            if step.is_err() {
                return Some(());
            }
        }
    }

    async fn heard(&mut self, ws: &mut Socket, text: &str) -> Result<(), ()> {
        let Ok(m) = serde_json::from_str::<Value>(text) else {
            return Ok(());
        };
        match m["type"].as_str() {
            Some("telemetry_ack") => {
                let seq = m["seq"].as_u64().unwrap_or(0);
                if let Some(i) = self.in_flight.iter().position(|s| s.seq == seq) {
                    if let Some(sent) = self.in_flight.remove(i) {
                        sent.points.into_iter().for_each(|p| {
                            let _ = p.done.send(Ok(()));
                        });
                    }
                }
                self.pump(ws).await
            }
            Some("command") => {
                let _ = self.events.send(DeviceEvent::Command(m));
                Ok(())
            }
            Some("cancel") => {
                let _ = self.events.send(DeviceEvent::Cancel(m));
                Ok(())
            }
            Some("error") => {
                let _ = self.events.send(DeviceEvent::Error(m));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Queues a point; over the bound, the oldest of the lowest priority goes.
    fn enqueue(&mut self, p: Pending) {
        self.queue.push(p);
        while self.queue.len() > self.limits.queue {
            let victim = (0..self.queue.len())
                .min_by_key(|&i| (self.queue[i].priority, self.queue[i].order))
                .unwrap_or(0);
            let gone = self.queue.remove(victim);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            let _ = gone.done.send(Err(ClientError::Dropped));
        }
    }

    /// Moves the best of the queue into the batch while the window has room.
    async fn pump(&mut self, ws: &mut Socket) -> Result<(), ()> {
        while !self.queue.is_empty() && self.in_flight.len() < self.limits.in_flight {
            self.queue
                .sort_by_key(|p| (std::cmp::Reverse(p.priority), p.order));
            let room = self.limits.batch_points - self.batch.len();
            let take = room.min(self.queue.len());
            self.batch.extend(self.queue.drain(..take));
            if self.batch.len() >= self.limits.batch_points {
                self.flush(ws).await?;
            } else if self.batch_due.is_none() {
                self.batch_due = Some(Instant::now() + self.limits.batch_delay);
            }
        }
        Ok(())
    }

    /// The batch as one message, its seq given now.
    async fn flush(&mut self, ws: &mut Socket) -> Result<(), ()> {
        self.batch_due = None;
        if self.batch.is_empty() {
            return Ok(());
        }
        self.seq += 1;
        let sent = Sent {
            seq: self.seq,
            points: std::mem::take(&mut self.batch),
        };
        let result = transmit(ws, &sent).await;
        self.in_flight.push_back(sent);
        result
    }
}

async fn transmit(ws: &mut Socket, m: &Sent) -> Result<(), ()> {
    let points: Vec<Value> = m
        .points
        .iter()
        .map(|p| json!({"key": p.key, "value": p.value, "ts": p.ts}))
        .collect();
    let text = json!({"type": "telemetry", "seq": m.seq, "points": points}).to_string();
    ws.send(link::message(text)).await.map_err(|_| ())
}
