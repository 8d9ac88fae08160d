//! Command routing: one task owns every open command. A command is stored
//! (`queued`) before anything else happens; it goes to its device when the device
//! is online and has a free slot (`sent`), highest priority first, then oldest;
//! the device reports `delivered`, `succeeded` or `failed`. A timer ends a command
//! still queued at its expiry (`expired`) or sent without a final result by its
//! deadline (`timed_out`). Every change is stored before anyone is told, so a
//! restarted hub picks up where it stopped: queued commands wait again, commands
//! that were sent but not confirmed are sent again, delivered ones keep their
//! deadline.
//!
//! In a cluster, a command is moved by the instance holding its device; the
//! store's conditional updates decide when two instances race, and every change
//! is published, so the sender's instance hears it (`router.rs`).

mod router;

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use self::router::Router;
use super::error::HubError;
use super::event::Event;
use super::fanout::Fanout;
use crate::metrics::CommandStatusLabels;
use crate::outbox::Outbox;
use crate::store::{CommandRecord, CommandStatus, Store};
use crate::sync::AbortOnDrop;

/// How much the router lets pile up.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Commands one device works on at once.
    pub in_flight: usize,
    /// Open (not yet final) commands one device may have.
    pub max_open: usize,
}

/// What the router hands a device.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivery {
    Command(Box<CommandRecord>),
    Cancel(String),
}

/// Where a device's commands go: a network device's connection, or a BLE device's
/// feed. `false` when the device can no longer take it.
pub trait CommandSink: Send + Sync {
    fn deliver(&self, d: Delivery) -> bool;
}

/// A network device's connection: its queue of deliveries, which its front end
/// sends in its own wire format.
impl CommandSink for Outbox<Delivery> {
    fn deliver(&self, d: Delivery) -> bool {
        self.reply(d);
        true
    }
}

enum Msg {
    Submit {
        record: CommandRecord,
        issuer: Option<Outbox<Event>>,
        reply: oneshot::Sender<Result<(), HubError>>,
    },
    Report {
        device: String,
        command_id: String,
        status: CommandStatus,
        result: Option<Value>,
        error: Option<String>,
        reply: oneshot::Sender<Result<(), HubError>>,
    },
    Cancel {
        command_id: String,
        allowed: Box<dyn Fn(&str) -> bool + Send>,
        reply: oneshot::Sender<Result<(), HubError>>,
    },
    Online {
        device: Arc<str>,
        conn: u64,
        sink: Arc<dyn CommandSink>,
    },
    Offline {
        device: String,
        conn: u64,
    },
    /// Another instance changed a command's status (stored already).
    Heard(Box<CommandRecord>),
}

/// The handle front ends use; the task stops when the last handle drops.
#[derive(Clone)]
pub struct Commands {
    tx: mpsc::UnboundedSender<Msg>,
    _task: Arc<AbortOnDrop>,
}

impl Commands {
    /// Loads the open commands and starts routing.
    pub(crate) async fn start(
        store: Arc<dyn Store>,
        fanout: Arc<Fanout>,
        limits: Limits,
        metrics: Family<CommandStatusLabels, Counter>,
        cluster: Option<crate::cluster::Membership>,
    ) -> Result<Commands, crate::store::StoreError> {
        let router = Router::load(store, fanout, limits, metrics, cluster).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(router.run(rx));
        Ok(Commands {
            tx,
            _task: Arc::new(AbortOnDrop(task)),
        })
    }

    async fn ask(
        &self,
        msg: impl FnOnce(oneshot::Sender<Result<(), HubError>>) -> Msg,
    ) -> Result<(), HubError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || HubError::Store("the command router has stopped".into());
        self.tx.send(msg(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Stores a new command and routes it; `issuer` gets its status changes.
    pub async fn submit(&self, record: CommandRecord, issuer: Option<Outbox<Event>>) -> Result<(), HubError> {
        self.ask(|reply| Msg::Submit {
            record,
            issuer,
            reply,
        })
        .await
    }

    /// A device's report on one of its commands.
    pub async fn report(
        &self,
        device: &str,
        command_id: String,
        status: CommandStatus,
        result: Option<Value>,
        error: Option<String>,
    ) -> Result<(), HubError> {
        // What the store keeps of the answer must read back (`store::storable`).
        if let Some(result) = &result {
            crate::store::check_json("result", result)?;
        }
        if let Some(error) = &error {
            crate::store::check_text("error", error)?;
        }
        let device = device.to_string();
        self.ask(|reply| Msg::Report {
            device,
            command_id,
            status,
            result,
            error,
            reply,
        })
        .await
    }

    /// Cancels an open command, if `allowed` admits its device.
    pub async fn cancel(
        &self,
        command_id: String,
        allowed: impl Fn(&str) -> bool + Send + 'static,
    ) -> Result<(), HubError> {
        let allowed = Box::new(allowed);
        self.ask(|reply| Msg::Cancel {
            command_id,
            allowed,
            reply,
        })
        .await
    }

    /// A device connection (`conn`) is ready for commands.
    pub fn online(&self, device: &Arc<str>, conn: u64, sink: Arc<dyn CommandSink>) {
        let _ = self.tx.send(Msg::Online {
            device: device.clone(),
            conn,
            sink,
        });
    }

    /// Another instance stored a status change of a command.
    pub(crate) fn heard(&self, record: Box<CommandRecord>) {
        let _ = self.tx.send(Msg::Heard(record));
    }

    pub fn offline(&self, device: &str, conn: u64) {
        let _ = self.tx.send(Msg::Offline {
            device: device.to_string(),
            conn,
        });
    }
}
