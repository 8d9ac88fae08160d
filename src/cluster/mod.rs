//! Several gattway instances as one hub (`[cluster]`): they share one PostgreSQL
//! database and talk over NATS core. This module is the talking: the messages,
//! and the NATS connection that carries them; the hub acts on them
//! (`hub/cluster.rs`). Each instance keeps its own connections;
//! what the others must know travels as small JSON messages under one subject
//! prefix (`cluster.name`):
//!
//! | subject | what | who acts on it |
//! |---|---|---|
//! | `NAME.telemetry` | a commit's points with their ids | every instance's live fan-out, in id order (`hub/sequencer.rs`) |
//! | `NAME.presence` | a device came online or went offline here | presence everywhere; an older connection elsewhere ends |
//! | `NAME.alive` | every second: this instance and the devices it holds | presence (an instance silent for 3 s is gone, its devices offline) |
//! | `NAME.command` | a command's new status, stored | the issuer's instance, the device's subscribers, routers tracking it |
//!
//! NATS core is enough, because nothing here is the only copy: every point and
//! every command status is committed to PostgreSQL before it is published. A
//! message lost with a killed instance is read back from the database (the
//! sequencer fills gaps in the id order from the store; a device that reconnects
//! elsewhere takes its open commands from the store), so a second durable log
//! (JetStream) would add a copy to keep consistent and nothing that the database
//! does not already keep.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::store::{CommandRecord, Committed};
use crate::sync::AbortOnDrop;

/// The `[cluster]` table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The NATS server the instances meet on (`nats://127.0.0.1:4222`); empty (the
    /// default): one instance on its own.
    pub nats: String,
    /// The subject prefix: instances with the same name are one hub. Several hubs
    /// may share one NATS server under different names.
    pub name: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats: String::new(),
            name: "gattway".into(),
        }
    }
}

impl ClusterConfig {
    pub fn enabled(&self) -> bool {
        !self.nats.trim().is_empty()
    }

    pub fn validate(&self) -> Result<(), String> {
        let valid = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if valid {
            Ok(())
        } else {
            Err(format!(
                "cluster.name {:?}: letters, digits, - and _ only (it is a NATS subject prefix)",
                self.name
            ))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot subscribe on NATS: {0}")]
    Subscribe(String),
}

/// How often an instance says it is alive, and how long one may be silent.
pub(crate) const ALIVE_EVERY: Duration = Duration::from_secs(1);
pub(crate) const ALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// A device's presence on one instance.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct PresenceNote {
    pub instance: Arc<str>,
    pub device: String,
    /// `network` or `ble`.
    pub kind: String,
    pub online: bool,
    /// When the connection began (online) or ended (offline), ms: between two
    /// instances holding a device, the later connection wins.
    pub at: i64,
}

/// A device an instance holds, and since when (ms).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Held {
    pub device: String,
    pub since: i64,
    pub kind: String,
}

/// An instance's heartbeat: the devices it holds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Alive {
    pub instance: Arc<str>,
    pub devices: Vec<Held>,
}

/// What other instances tell this one.
pub(crate) enum Heard {
    Telemetry(Committed),
    Presence(PresenceNote),
    Alive(Alive),
    Command(Box<CommandRecord>),
}

/// This instance's side of the cluster: its name among the others, and the queue
/// its messages go out through (publishing never waits on the network).
#[derive(Clone)]
pub(crate) struct Link {
    pub instance: Arc<str>,
    prefix: Arc<str>,
    out: mpsc::UnboundedSender<(String, Bytes)>,
}

impl Link {
    fn send(&self, topic: &str, body: &impl Serialize) {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                let _ = self.out.send((format!("{}.{topic}", self.prefix), bytes.into()));
            }
            Err(e) => tracing::error!(error = %e, topic, "cluster message not encoded"),
        }
    }

    pub fn telemetry(&self, committed: &Committed) {
        self.send("telemetry", committed);
    }

    pub fn presence(&self, device: &str, kind: &str, online: bool, at: i64) {
        self.send(
            "presence",
            &PresenceNote {
                instance: self.instance.clone(),
                device: device.to_string(),
                kind: kind.to_string(),
                online,
                at,
            },
        );
    }

    pub fn alive(&self, devices: Vec<Held>) {
        self.send(
            "alive",
            &Alive {
                instance: self.instance.clone(),
                devices,
            },
        );
    }

    pub fn command(&self, record: &CommandRecord) {
        self.send("command", record);
    }
}

/// Connects to NATS and subscribes; returns this instance's [`Link`], the stream
/// of what the others say, and the tasks that move both (they stop when dropped).
pub(crate) async fn join(
    config: &ClusterConfig,
) -> Result<(Link, mpsc::UnboundedReceiver<Heard>, Vec<AbortOnDrop>), ClusterError> {
    let instance: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
    let client = async_nats::ConnectOptions::new()
        .name(format!("gattway {instance}"))
        // Its own messages are acted on locally already.
        .no_echo()
        .connect(config.nats.as_str())
        .await
        .map_err(|e| ClusterError::Connect {
            url: config.nats.clone(),
            reason: e.to_string(),
        })?;
    let prefix: Arc<str> = config.name.as_str().into();
    let mut subscription = client
        .subscribe(format!("{prefix}.*"))
        .await
        .map_err(|e| ClusterError::Subscribe(e.to_string()))?;
    // The subscription is in place once the server has seen it: flush, so nothing
    // published after `join` returns is missed.
    client
        .flush()
        .await
        .map_err(|e| ClusterError::Subscribe(e.to_string()))?;
    let (out, mut outgoing) = mpsc::unbounded_channel::<(String, Bytes)>();
    let publisher = {
        let client = client.clone();
        AbortOnDrop(tokio::spawn(async move {
            while let Some((subject, body)) = outgoing.recv().await {
                if let Err(e) = client.publish(subject, body).await {
                    tracing::warn!(error = %e, "cluster message not sent");
                }
            }
        }))
    };
    let (heard_tx, heard) = mpsc::unbounded_channel();
    let receiver = {
        let prefix = prefix.clone();
        AbortOnDrop(tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let topic = message
                    .subject
                    .as_str()
                    .strip_prefix(&*prefix)
                    .and_then(|t| t.strip_prefix('.'))
                    .unwrap_or_default();
                match decode(topic, &message.payload) {
                    Ok(Some(h)) => {
                        if heard_tx.send(h).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, subject = %message.subject, "cluster message not understood")
                    }
                }
            }
            tracing::error!("the NATS subscription ended: this instance no longer hears the others");
        }))
    };
    let link = Link {
        instance,
        prefix,
        out,
    };
    Ok((link, heard, vec![publisher, receiver]))
}

fn decode(topic: &str, body: &[u8]) -> Result<Option<Heard>, serde_json::Error> {
    Ok(Some(match topic {
        "telemetry" => Heard::Telemetry(serde_json::from_slice(body)?),
        "presence" => Heard::Presence(serde_json::from_slice(body)?),
        "alive" => Heard::Alive(serde_json::from_slice(body)?),
        "command" => Heard::Command(Box::new(serde_json::from_slice(body)?)),
        _ => return Ok(None),
    }))
}
