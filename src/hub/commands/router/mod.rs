//! The router task: every open command, its timer, and which devices are online
//! here with free slots. Its handle is [`super::Commands`]. What it does with other
//! instances of a cluster is in `cluster.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::poll_fn;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::time::{delay_queue, DelayQueue};

use super::{CommandSink, Delivery, Msg};
use crate::hub::error::HubError;
use crate::hub::event::Event;
use crate::hub::fanout::Fanout;
use crate::metrics::CommandStatusLabels;
use crate::outbox::Outbox;
use crate::store::{now_ms, CommandRecord, CommandStatus, CommandUpdate, Store};

mod cluster;

/// How soon a timer whose status change the store refused tries again.
const STORE_RETRY: Duration = Duration::from_secs(1);

struct Open {
    record: CommandRecord,
    issuer: Option<Outbox<Event>>,
    timer: Option<delay_queue::Key>,
    /// Arrival order: among equal priorities the oldest goes first (creation
    /// times in ms can tie).
    order: u64,
}

pub(super) struct Router {
    store: Arc<dyn Store>,
    /// Status changes go to the device's subscribers too.
    fanout: Arc<Fanout>,
    open: HashMap<String, Open>,
    /// Device → (connection, sink) of its current connection.
    /// Keyed by the id the device's connection holds too (one allocation).
    online: HashMap<Arc<str>, (u64, Arc<dyn CommandSink>)>,
    /// Device → commands sent or delivered and not final.
    busy: HashMap<String, usize>,
    timers: DelayQueue<String>,
    in_flight: usize,
    /// Open commands one device may have; more are refused (COMMAND_QUEUE_FULL).
    max_open: usize,
    next_order: u64,
    metrics: Family<CommandStatusLabels, Counter>,
    /// This instance in a cluster: status changes are published; `None` alone.
    cluster: Option<crate::cluster::Membership>,
    /// Commands another instance has taken over, and who here sent them: they
    /// hear its status changes (through [`Msg::Heard`]) until a final one.
    issued_here: HashMap<String, Outbox<Event>>,
    /// Commands whose status changed elsewhere under this router's copy (a
    /// conditional store update found another status): read again after the
    /// message in hand.
    stale: Vec<String>,
}

fn until(at_ms: i64) -> Duration {
    Duration::from_millis((at_ms - now_ms()).max(0) as u64)
}

impl Router {
    /// A router with every open command loaded. Alone, a command sent before a
    /// restart is queued again (it may never have arrived); in a cluster another
    /// instance may hold its device, so each is taken as it is.
    pub(super) async fn load(
        store: Arc<dyn Store>,
        fanout: Arc<Fanout>,
        limits: super::Limits,
        metrics: Family<CommandStatusLabels, Counter>,
        cluster: Option<crate::cluster::Membership>,
    ) -> Result<Router, crate::store::StoreError> {
        let mut router = Router {
            store: store.clone(),
            fanout,
            open: HashMap::new(),
            online: HashMap::new(),
            busy: HashMap::new(),
            timers: DelayQueue::new(),
            in_flight: limits.in_flight.max(1),
            max_open: limits.max_open.max(1),
            next_order: 0,
            metrics,
            cluster,
            issued_here: HashMap::new(),
            stale: Vec::new(),
        };
        for c in store.open_commands().await? {
            if router.cluster.is_some() {
                router.track(c, None, None);
            } else {
                router.take_over(c, None).await;
            }
        }
        Ok(router)
    }

    /// Takes an open command sent to an earlier connection of its device (before
    /// a restart, or on another instance): sent is queued again, to be sent
    /// again (at least once); delivered keeps its deadline and its device's slot.
    async fn take_over(&mut self, mut c: CommandRecord, issuer: Option<Outbox<Event>>) {
        if c.status == CommandStatus::Sent
            && self.set(&mut c, CommandStatus::Queued, None, None).await.is_err()
        {
            c.status = CommandStatus::Queued; // re-sent all the same
        }
        if c.status == CommandStatus::Delivered {
            *self.busy.entry(c.device.clone()).or_default() += 1;
        }
        self.track(c, issuer, None);
    }

    pub(super) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(m) => self.handle(m).await,
                    None => break,
                },
                Some(expired) = poll_fn(|cx| self.timers.poll_expired(cx)) => {
                    self.expire(expired.into_inner()).await;
                }
            }
            while let Some(id) = self.stale.pop() {
                self.resync(&id).await;
            }
        }
    }

    /// Stops tracking a command (its timer, its device's slot); returns it.
    fn untrack(&mut self, id: &str) -> Option<Open> {
        let mut open = self.open.remove(id)?;
        if let Some(key) = open.timer.take() {
            self.timers.remove(&key);
        }
        if matches!(open.record.status, CommandStatus::Sent | CommandStatus::Delivered) {
            self.release(&open.record.device);
        }
        Some(open)
    }

    /// Stores a status change and, once stored, applies it to `c` and counts it.
    /// A change the store refused is not applied, so it is never announced: the
    /// caller tells whoever caused it (a device's report, a client's cancel) or
    /// tries again later (a timer).
    async fn set(
        &mut self,
        c: &mut CommandRecord,
        status: CommandStatus,
        result: Option<Value>,
        error: Option<String>,
    ) -> Result<(), HubError> {
        let at = now_ms();
        let deadline = match status {
            CommandStatus::Sent => Some(at + c.timeout_ms),
            CommandStatus::Queued => None,
            _ => c.deadline,
        };
        let update = CommandUpdate {
            from: c.status,
            status,
            result: result.clone(),
            error: error.clone(),
            deadline,
            at,
        };
        match self.store.update_command(&c.id, &update).await {
            Ok(true) => {}
            Ok(false) => {
                // Another instance moved it first; read it again after this.
                self.stale.push(c.id.clone());
                return Err(HubError::CommandClosed(format!(
                    "command {} changed on another instance",
                    c.id
                )));
            }
            Err(e) => {
                tracing::error!(command = %c.id, status = status.as_str(), error = %e, "command status not stored; not announced");
                return Err(HubError::Store(format!("command status not stored: {e}")));
            }
        }
        c.status = status;
        c.updated_at = at;
        c.deadline = deadline;
        if result.is_some() {
            c.result = result;
        }
        if error.is_some() {
            c.error = error;
        }
        self.metrics
            .get_or_create(&CommandStatusLabels {
                status: status.as_str(),
            })
            .inc();
        Ok(())
    }

    /// Keeps an open command with its timer.
    fn track(&mut self, record: CommandRecord, issuer: Option<Outbox<Event>>, order: Option<u64>) {
        let order = order.unwrap_or_else(|| {
            self.next_order += 1;
            self.next_order
        });
        let due = match record.status {
            CommandStatus::Queued => record.expires_at,
            _ => record.deadline.unwrap_or(record.updated_at + record.timeout_ms),
        };
        let timer = Some(self.timers.insert(record.id.clone(), until(due)));
        self.open.insert(
            record.id.clone(),
            Open {
                record,
                issuer,
                timer,
                order,
            },
        );
    }

    /// Tells the client that sent the command, and every client subscribed to its
    /// device (once each), where it is now.
    fn notify(&self, open: &Open) {
        let event = Event::command_status(&open.record);
        if let Some(out) = &open.issuer {
            out.reply(event.clone());
        }
        self.fanout.device_event(event, open.issuer.as_ref());
        if let Some(c) = &self.cluster {
            c.command(&open.record);
        }
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Submit {
                record,
                issuer,
                reply,
            } => {
                let device = record.device.clone();
                let open = self.open.values().filter(|o| o.record.device == device).count();
                if open >= self.max_open {
                    let _ = reply.send(Err(HubError::CommandQueueFull { device, open }));
                    return;
                }
                if let Err(e) = self.store.insert_command(&record).await {
                    let _ = reply.send(Err(e.into()));
                    return;
                }
                self.metrics
                    .get_or_create(&CommandStatusLabels {
                        status: CommandStatus::Queued.as_str(),
                    })
                    .inc();
                // Its sender hears `command_accepted`; the device's subscribers hear it queued.
                let event = Event::command_status(&record);
                self.fanout.device_event(event, issuer.as_ref());
                if let Some(c) = &self.cluster {
                    // The instance holding the device takes it from here.
                    c.command(&record);
                }
                self.track(record, issuer, None);
                let _ = reply.send(Ok(()));
                self.dispatch(&device).await;
            }
            Msg::Report {
                device,
                command_id,
                status,
                result,
                error,
                reply,
            } => {
                let answer = self.report(&device, &command_id, status, result, error).await;
                let _ = reply.send(answer);
                self.dispatch(&device).await;
            }
            Msg::Cancel {
                command_id,
                allowed,
                reply,
            } => {
                if self.cluster.is_some() && !self.open.contains_key(&command_id) {
                    // Another instance's to move: cancelled from here all the same
                    // (the store decides who is first), and its holder is told.
                    self.refresh(&command_id).await;
                }
                let device = self
                    .open
                    .get(&command_id)
                    .filter(|o| allowed(&o.record.device))
                    .map(|o| o.record.device.clone());
                let Some(device) = device else {
                    let _ = reply.send(Err(HubError::UnknownCommand(format!(
                        "no open command {command_id}"
                    ))));
                    return;
                };
                let mut was = self.open.get(&command_id).map(|o| o.record.status);
                let mut closed = self
                    .close(&command_id, CommandStatus::Cancelled, None, None)
                    .await;
                if closed.is_err() && self.stale.contains(&command_id) {
                    // It moved on elsewhere under this copy (sent by the device's
                    // instance, say): take the store's and cancel that.
                    self.stale.retain(|id| *id != command_id);
                    self.refresh(&command_id).await;
                    was = self.open.get(&command_id).map(|o| o.record.status);
                    closed = match was {
                        Some(_) => {
                            self.close(&command_id, CommandStatus::Cancelled, None, None)
                                .await
                        }
                        None => Err(HubError::UnknownCommand(format!("no open command {command_id}"))),
                    };
                }
                if closed.is_ok() && was != Some(CommandStatus::Queued) {
                    if let Some((_, sink)) = self.online.get(device.as_str()) {
                        sink.deliver(Delivery::Cancel(command_id.clone()));
                    }
                }
                let _ = reply.send(closed);
                self.dispatch(&device).await;
            }
            Msg::Online { device, conn, sink } => {
                self.online.insert(device.clone(), (conn, sink));
                if self.cluster.is_some() {
                    self.adopt(&device).await;
                }
                self.dispatch(&device).await;
            }
            Msg::Heard(record) => self.heard(*record).await,
            Msg::Offline { device, conn } => {
                if self.online.get(device.as_str()).is_some_and(|(c, _)| *c == conn) {
                    self.online.remove(device.as_str());
                    // Sent but never confirmed: the device may not have it. Queue
                    // it again for the next connection.
                    let unconfirmed: Vec<String> = self
                        .open
                        .values()
                        .filter(|o| o.record.device == device && o.record.status == CommandStatus::Sent)
                        .map(|o| o.record.id.clone())
                        .collect();
                    for id in unconfirmed {
                        self.requeue(&id).await;
                    }
                }
            }
        }
    }

    async fn requeue(&mut self, id: &str) {
        let Some(mut open) = self.open.remove(id) else {
            return;
        };
        if let Some(key) = open.timer.take() {
            self.timers.remove(&key);
        }
        self.release(&open.record.device);
        if self
            .set(&mut open.record, CommandStatus::Queued, None, None)
            .await
            .is_ok()
        {
            self.notify(&open);
        } else {
            // Not stored, not announced; it must still go out again on the next
            // connection (the store still says sent, which a restart re-sends too).
            open.record.status = CommandStatus::Queued;
        }
        self.track(open.record, open.issuer, Some(open.order));
    }

    fn release(&mut self, device: &str) {
        if let Some(n) = self.busy.get_mut(device) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.busy.remove(device);
            }
        }
    }

    async fn report(
        &mut self,
        device: &str,
        id: &str,
        status: CommandStatus,
        result: Option<Value>,
        error: Option<String>,
    ) -> Result<(), HubError> {
        let Some(open) = self.open.get_mut(id).filter(|o| o.record.device == device) else {
            return Err(HubError::UnknownCommand(format!(
                "no open command {id} for this device"
            )));
        };
        match (open.record.status, status) {
            (CommandStatus::Queued, _) => Err(HubError::CommandClosed(format!(
                "command {id} was not sent to this connection"
            ))),
            (_, CommandStatus::Delivered) => {
                if open.record.status == CommandStatus::Sent {
                    let mut record = open.record.clone();
                    self.set(&mut record, CommandStatus::Delivered, None, None)
                        .await?;
                    if let Some(o) = self.open.get_mut(id) {
                        o.record = record;
                    }
                    if let Some(o) = self.open.get(id) {
                        self.notify(o);
                    }
                }
                Ok(())
            }
            // A device whose result was not stored is told so, and may send it again.
            _ => self.close(id, status, result, error).await,
        }
    }

    /// Gives an open command its final status, once that is stored; until then
    /// it stays open as it was.
    async fn close(
        &mut self,
        id: &str,
        status: CommandStatus,
        result: Option<Value>,
        error: Option<String>,
    ) -> Result<(), HubError> {
        let Some(mut record) = self.open.get(id).map(|o| o.record.clone()) else {
            return Ok(());
        };
        self.set(&mut record, status, result, error).await?;
        let Some(mut open) = self.open.remove(id) else {
            return Ok(());
        };
        if let Some(key) = open.timer.take() {
            self.timers.remove(&key);
        }
        if open.record.status != CommandStatus::Queued {
            self.release(&open.record.device);
        }
        open.record = record;
        self.notify(&open);
        Ok(())
    }

    async fn expire(&mut self, id: String) {
        let Some(open) = self.open.get_mut(&id) else {
            return;
        };
        open.timer = None;
        let (status, why) = match open.record.status {
            CommandStatus::Queued => (
                CommandStatus::Expired,
                "the device did not take it before it expired",
            ),
            _ => (
                CommandStatus::TimedOut,
                "no result from the device within the timeout",
            ),
        };
        let device = open.record.device.clone();
        if self
            .close(&id, status, None, Some(why.to_string()))
            .await
            .is_err()
        {
            // Not stored: try again shortly rather than announce it.
            if let Some(open) = self.open.get_mut(&id) {
                open.timer = Some(self.timers.insert(id.clone(), STORE_RETRY));
            }
        }
        self.dispatch(&device).await;
    }

    /// Sends the device's best queued commands while it has free slots.
    async fn dispatch(&mut self, device: &str) {
        loop {
            let Some((_, sink)) = self.online.get(device) else {
                return;
            };
            let sink = sink.clone();
            if self.busy.get(device).copied().unwrap_or(0) >= self.in_flight {
                return;
            }
            let next = self
                .open
                .values()
                .filter(|o| o.record.device == device && o.record.status == CommandStatus::Queued)
                .max_by_key(|o| (o.record.priority, std::cmp::Reverse(o.order)))
                .map(|o| o.record.id.clone());
            let Some(id) = next else { return };
            let Some(mut open) = self.open.remove(&id) else {
                return;
            };
            if let Some(key) = open.timer.take() {
                self.timers.remove(&key);
            }
            if self
                .set(&mut open.record, CommandStatus::Sent, None, None)
                .await
                .is_err()
            {
                // Not stored as sent: it stays queued, and goes out at the next
                // dispatch (a report, a new command, a reconnect) or expires.
                self.track(open.record, open.issuer, Some(open.order));
                return;
            }
            *self.busy.entry(device.to_string()).or_default() += 1;
            let delivered = sink.deliver(Delivery::Command(Box::new(open.record.clone())));
            self.notify(&open);
            self.track(open.record, open.issuer, Some(open.order));
            if !delivered {
                self.online.remove(device);
                self.requeue(&id).await;
                return;
            }
        }
    }
}
