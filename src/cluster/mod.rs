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
//! Every message is sealed with the shared `cluster.secret` (`seal.rs`): one that
//! does not verify, is stale or is a replay is dropped and counted
//! (`gattway_cluster_rejected_total`), so a publisher on the same NATS who is not
//! an instance is not heard. Who may reach the NATS at all is the NATS server's
//! to say: `cluster.user`/`password`, `token`, `nkey_seed` or `credentials_file`,
//! and TLS with `cluster.ca_file`.
//!
//! NATS core is enough, because nothing here is the only copy: every point and
//! every command status is committed to PostgreSQL before it is published. A
//! message lost with a killed instance is read back from the database (the
//! sequencer fills gaps in the id order from the store; a device that reconnects
//! elsewhere takes its open commands from the store), so a second durable log
//! (JetStream) would add a copy to keep consistent and nothing that the database
//! does not already keep.

mod seal;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use self::seal::{Opener, Sealer};
use crate::store::{now_ms, CommandRecord, Committed};
use crate::sync::AbortOnDrop;

/// The shortest `cluster.secret` accepted: a guessable secret is no seal.
pub const MIN_SECRET: usize = 16;

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
    /// The secret every instance of the hub seals its messages with, and checks
    /// the others' against (HMAC-SHA256); at least 16 characters, the same on
    /// every instance. Required with `nats`. Prefer `GATTWAY_CLUSTER_SECRET`.
    pub secret: String,
    /// NATS credentials, at most one kind: a user and password, ...
    pub user: String,
    pub password: String,
    /// ... a token, ...
    pub token: String,
    /// ... an NKey seed (`SU…`), ...
    pub nkey_seed: String,
    /// ... or a `.creds` file (a user JWT and its NKey seed).
    pub credentials_file: String,
    /// The CA (PEM) that signs the NATS server's certificate; set, TLS is
    /// required. A `tls://` URL requires TLS with the system's roots.
    pub ca_file: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats: String::new(),
            name: "gattway".into(),
            secret: String::new(),
            user: String::new(),
            password: String::new(),
            token: String::new(),
            nkey_seed: String::new(),
            credentials_file: String::new(),
            ca_file: String::new(),
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
        if !valid {
            return Err(format!(
                "cluster.name {:?}: letters, digits, - and _ only (it is a NATS subject prefix)",
                self.name
            ));
        }
        if !self.enabled() {
            return Ok(());
        }
        if self.secret.chars().count() < MIN_SECRET {
            return Err(format!(
                "cluster.nats is set, so cluster.secret (GATTWAY_CLUSTER_SECRET) is required: the same \
                 secret of at least {MIN_SECRET} characters on every instance (`openssl rand -hex 32` makes \
                 one); without it anyone who can publish on the NATS server speaks for an instance"
            ));
        }
        let kinds = [
            !self.user.is_empty() || !self.password.is_empty(),
            !self.token.is_empty(),
            !self.nkey_seed.is_empty(),
            !self.credentials_file.is_empty(),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            return Err(
                "cluster: give one kind of NATS credentials: user and password, token, nkey_seed or \
                 credentials_file"
                    .into(),
            );
        }
        Ok(())
    }

    /// How to reach the NATS server: its credentials and TLS.
    async fn connect_options(&self) -> Result<async_nats::ConnectOptions, ClusterError> {
        let mut o = async_nats::ConnectOptions::new();
        if !self.user.is_empty() || !self.password.is_empty() {
            o = o.user_and_password(self.user.clone(), self.password.clone());
        }
        if !self.token.is_empty() {
            o = o.token(self.token.clone());
        }
        if !self.nkey_seed.is_empty() {
            o = o.nkey(self.nkey_seed.trim().to_string());
        }
        if !self.credentials_file.is_empty() {
            o = o
                .credentials_file(&self.credentials_file)
                .await
                .map_err(|e| ClusterError::Credentials {
                    path: self.credentials_file.clone(),
                    reason: e.to_string(),
                })?;
        }
        if !self.ca_file.is_empty() {
            o = o
                .add_root_certificates(self.ca_file.clone().into())
                .require_tls(true);
        }
        Ok(o)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot subscribe on NATS: {0}")]
    Subscribe(String),
    #[error("cluster.credentials_file {path}: {reason}")]
    Credentials { path: String, reason: String },
    #[error("{0}")]
    Config(String),
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

/// This instance's membership of the cluster, what [`join`] gives it: its name
/// among the others, and the queue its messages to them go out through
/// (publishing never waits on the network).
#[derive(Clone)]
pub(crate) struct Membership {
    pub instance: Arc<str>,
    prefix: Arc<str>,
    out: mpsc::UnboundedSender<(String, Bytes)>,
}

impl Membership {
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

/// Connects to NATS and subscribes; returns this instance's [`Membership`], the
/// stream of what the others say, and the tasks that move both (they stop when
/// dropped). What is heard and does not verify is dropped and counted in `rejected`.
pub(crate) async fn join(
    config: &ClusterConfig,
    rejected: Counter,
) -> Result<(Membership, mpsc::UnboundedReceiver<Heard>, Vec<AbortOnDrop>), ClusterError> {
    config.validate().map_err(ClusterError::Config)?;
    let instance: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
    let client = config
        .connect_options()
        .await?
        .name(format!("gattway {instance}"))
        // Its own messages are acted on locally already.
        .no_echo()
        .connect(config.nats.as_str())
        .await
        .map_err(|e| ClusterError::Connect {
            url: crate::redact::url(&config.nats),
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
        // Sealed here, in the one task that publishes: numbers go out in order.
        let mut sealer = Sealer::new(&config.secret, &instance);
        AbortOnDrop(tokio::spawn(async move {
            while let Some((subject, body)) = outgoing.recv().await {
                let sealed = Bytes::from(sealer.seal(&subject, &body, now_ms()));
                if let Err(e) = client.publish(subject, sealed).await {
                    tracing::warn!(error = %e, "cluster message not sent");
                }
            }
        }))
    };
    let (heard_tx, heard) = mpsc::unbounded_channel();
    let receiver = {
        let prefix = prefix.clone();
        let mut opener = Opener::new(&config.secret);
        let mut warned: Option<Instant> = None;
        AbortOnDrop(tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let body = match opener.open(message.subject.as_str(), &message.payload, now_ms()) {
                    Ok(body) => body,
                    Err(why) => {
                        rejected.inc();
                        // Said once in a while: a flood of forgeries must not flood the log.
                        if warned.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                            warned = Some(Instant::now());
                            tracing::warn!(subject = %message.subject, reason = %why,
                                "a cluster message that does not verify is dropped (gattway_cluster_rejected_total counts them)");
                        }
                        continue;
                    }
                };
                let topic = message
                    .subject
                    .as_str()
                    .strip_prefix(&*prefix)
                    .and_then(|t| t.strip_prefix('.'))
                    .unwrap_or_default();
                match decode(topic, body) {
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
    let membership = Membership {
        instance,
        prefix,
        out,
    };
    Ok((membership, heard, vec![publisher, receiver]))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_needs_a_secret_and_one_kind_of_credentials() {
        let alone = ClusterConfig::default();
        assert_eq!(alone.validate(), Ok(()), "no NATS: no secret needed");
        let clustered = ClusterConfig {
            nats: "nats://127.0.0.1:4222".into(),
            ..Default::default()
        };
        let e = clustered.validate().unwrap_err();
        assert!(
            e.contains("cluster.secret") && e.contains("GATTWAY_CLUSTER_SECRET"),
            "{e}"
        );
        let short = ClusterConfig {
            secret: "too short".into(),
            ..clustered.clone()
        };
        assert!(short.validate().is_err());
        let sealed = ClusterConfig {
            secret: "0123456789abcdef".into(),
            ..clustered
        };
        assert_eq!(sealed.validate(), Ok(()));
        let token = ClusterConfig {
            token: "t".into(),
            ..sealed.clone()
        };
        assert_eq!(token.validate(), Ok(()));
        let two = ClusterConfig {
            user: "u".into(),
            password: "p".into(),
            ..token
        };
        assert!(two.validate().unwrap_err().contains("one kind"));
    }
}
