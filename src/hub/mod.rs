//! The device hub at `/hub` (`docs/hub-protocol.md`): devices send telemetry and
//! take commands; clients subscribe to live telemetry (with replay of stored
//! points), send commands, read history and presence. BLE devices take part too:
//! their notifications become telemetry and hub commands become BLE writes.
//!
//! - `protocol.rs`: wire shapes, error codes, frame builders; `cbor.rs`: the same
//!   messages as CBOR (the `gattway.cbor` subprotocol).
//! - `accept.rs`: what the hub takes in (device ids, points), checked once for
//!   every way in, against its bounds and what the store can read back.
//! - `fanout.rs`: live delivery to subscribers, with the replay watermark.
//! - `commands.rs`: the command router (status, priority, timeouts, restarts);
//!   `command_request.rs`: a client's command, checked, as the record stored first.
//! - `presence.rs`: who is online, and telling subscribers.
//! - `connlog.rs`: the connection log, written in the background.
//! - `socket.rs`: one connection's task: authentication, role, limits.
//! - `link.rs`: the socket as the role loops use it, and what ends it.
//! - `device.rs`, `client.rs`: the device and client message families.
//! - `history.rs`: stored telemetry as `history` and REST both answer it.
//! - `ble_feed.rs`: the BLE feed (notifications → telemetry, commands → writes).
//! - `rest.rs`: history, devices and commands over REST.
//! - `cluster.rs`: several instances as one hub (`[cluster]`): acting on what the
//!   others say; `sequencer.rs`: their commits and ours to the fan-out in id order.

pub mod accept;
mod advert_feed;
mod ble_feed;
pub mod cbor;
mod client;
mod cluster;
mod command_request;
pub mod commands;
mod connlog;
mod device;
pub mod fanout;
mod history;
mod link;
mod presence;
pub mod protocol;
pub mod rest;
mod sequencer;
mod socket;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::ble_feed::{BleCommand, BleTelemetry};
pub use self::command_request::CommandRequest;
use self::commands::Commands;
use self::connlog::ConnectionLog;
use self::fanout::Fanout;
use self::presence::Presence;
use self::protocol::Failure;
pub use self::socket::{handle_socket, Hello};
use crate::auth::{Authenticator, Principal, Scope};
use crate::cluster::{self as nats, ClusterConfig, ClusterError};
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, TelemetryWriter};
use crate::sync::AbortOnDrop;

/// The `[hub]` table.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// Open `/hub` connections at once (devices and clients).
    pub max_connections: usize,
    /// Larger messages get MESSAGE_TOO_LARGE (and are not stored).
    pub max_message_bytes: usize,
    /// Messages a second one connection may send, sustained, and the burst above it.
    pub rate_per_connection: f64,
    pub burst_per_connection: f64,
    /// Live messages waiting for a slow client before it loses some (`lagged`).
    pub client_queue: usize,
    /// The same queue's bound in bytes: a client past either loses messages
    /// (`lagged`, counted in `gattway_hub_dropped_total`).
    pub client_queue_bytes: usize,
    /// Telemetry waiting for the store, in bytes, from every device and feed
    /// together; past it, senders wait (their acks come later), nothing is lost.
    pub writer_queue_bytes: usize,
    /// A device should send something (a heartbeat at least) this often; one silent
    /// for `heartbeat_misses` intervals is offline.
    pub heartbeat_secs: f64,
    pub heartbeat_misses: u32,
    /// Default time from `sent` to a final result, when a command gives none.
    pub command_timeout_secs: f64,
    /// Default time a command may wait queued before it expires.
    pub command_ttl_secs: f64,
    /// Commands one device works on at once; more wait `queued` (busy).
    pub commands_in_flight: usize,
    /// Open (not yet final) commands one device may have; more are refused
    /// (`COMMAND_QUEUE_FULL`), so a flood cannot pile up in memory for the TTL.
    pub max_open_commands: usize,
    /// Subscriptions one client connection may hold.
    pub max_subscriptions: usize,
    /// Hub REST requests a second per credential (or per peer without one),
    /// sustained, and the burst above it; more get 429.
    pub rest_rate_per_principal: f64,
    pub rest_burst_per_principal: f64,
    /// Points older than this are deleted (hourly); 0 keeps them forever.
    pub retention_days: f64,
    /// Ended connections older than this leave the connection log (hourly); 0
    /// keeps them forever.
    pub connection_log_days: f64,
    /// Most points in one transaction (group commit).
    pub max_batch_points: usize,
    /// Feed the simulated devices' notifications into the hub (on the simulator,
    /// when `ble` names nothing): a fresh `gattway serve` has live data.
    pub sim_feed: bool,
    /// Keep a scan running and store what sensors broadcast (BTHome) as their
    /// telemetry, each new packet once.
    pub advert_feed: bool,
    /// BLE notifications stored as telemetry.
    pub ble: Vec<BleTelemetry>,
    /// Hub commands that become BLE writes.
    pub ble_commands: Vec<BleCommand>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_connections: 10_000,
            max_message_bytes: 1024 * 1024,
            rate_per_connection: 1000.0,
            burst_per_connection: 2000.0,
            client_queue: 4096,
            client_queue_bytes: 4 * 1024 * 1024,
            writer_queue_bytes: 16 * 1024 * 1024,
            heartbeat_secs: 30.0,
            heartbeat_misses: 3,
            command_timeout_secs: 30.0,
            command_ttl_secs: 24.0 * 3600.0,
            commands_in_flight: 1,
            max_open_commands: 1000,
            max_subscriptions: 256,
            rest_rate_per_principal: 100.0,
            rest_burst_per_principal: 200.0,
            retention_days: 30.0,
            connection_log_days: 30.0,
            max_batch_points: 20_000,
            sim_feed: true,
            advert_feed: true,
            ble: Vec::new(),
            ble_commands: Vec::new(),
        }
    }
}

impl HubConfig {
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("hub.heartbeat_secs", self.heartbeat_secs),
            ("hub.command_timeout_secs", self.command_timeout_secs),
            ("hub.command_ttl_secs", self.command_ttl_secs),
            ("hub.rate_per_connection", self.rate_per_connection),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} must be a positive number of seconds, not {v}"));
            }
        }
        for (name, days) in [
            ("hub.retention_days", self.retention_days),
            ("hub.connection_log_days", self.connection_log_days),
        ] {
            if days < 0.0 || !days.is_finite() {
                return Err(format!("{name} must be 0 (keep) or more"));
            }
        }
        for b in &self.ble {
            b.validate()?;
        }
        for c in &self.ble_commands {
            c.validate()?;
        }
        Ok(())
    }

    fn heartbeat_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.heartbeat_secs * self.heartbeat_misses.max(1) as f64)
    }
}

struct Inner {
    config: HubConfig,
    store: Arc<dyn Store>,
    writer: TelemetryWriter,
    fanout: Arc<Fanout>,
    presence: Presence,
    commands: Commands,
    connections: Arc<ConnectionLog>,
    auth: Arc<Authenticator>,
    metrics: Arc<Metrics>,
    /// The id of the last point committed: exporters (MQTT) wait on it.
    committed: tokio::sync::watch::Receiver<i64>,
    /// Hub ids of BLE devices whose commands become BLE writes: the configured
    /// ones, and each fed device's resolved id once its feed connects.
    ble_written: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Retention and the BLE feed; they stop with the hub.
    tasks: std::sync::Mutex<Vec<AbortOnDrop>>,
}

/// Why the hub did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// How long a failed commit keeps the hub unready when none follows it.
const COMMIT_FAILURE_HOLDS: Duration = Duration::from_secs(30);
/// How long readiness waits for the store to answer (`/readyz`, `/health`).
const READY_WAIT: Duration = Duration::from_secs(2);

/// Why the hub's store is not ready.
#[derive(Debug, thiserror::Error)]
pub enum Unready {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store did not answer within {0:?}")]
    Slow(Duration),
    #[error("telemetry is not being stored: commits have failed for {secs} s ({error})")]
    Commits { error: String, secs: u64 },
}

/// The hub's shared state; clones are cheap.
#[derive(Clone)]
pub struct Hub(Arc<Inner>);

impl Hub {
    /// Starts the hub on a store: loads open commands, marks every device offline
    /// (no connection survives a restart), starts the writer, retention and, when
    /// configured, the BLE feed. With `cluster.nats` it joins the other instances
    /// of the same `cluster.name` instead, and leaves their devices online.
    pub async fn start(
        store: Arc<dyn Store>,
        gateway: &Gateway,
        auth: Arc<Authenticator>,
        config: HubConfig,
        cluster: &ClusterConfig,
    ) -> Result<Hub, StartError> {
        let metrics = gateway.metrics().clone();
        // Joined before the last id is read: a commit the subscription misses in
        // between is below that id, and one after it arrives.
        let joined = match cluster.enabled() {
            true => Some(nats::join(cluster, metrics.cluster_rejected.clone()).await?),
            false => None,
        };
        let link = joined.as_ref().map(|(link, _, _)| link.clone());
        if link.is_none() {
            store.all_offline().await?;
        }
        let last = store.last_point_id().await?;
        let fanout = Arc::new(Fanout::new(
            last,
            metrics.hub_deliveries.clone(),
            metrics.hub_dropped.clone(),
        ));
        let sequencer = link
            .as_ref()
            .map(|_| Arc::new(sequencer::Sequencer::new(last, fanout.clone())));
        let (committed_tx, committed) = tokio::sync::watch::channel(last);
        let writer = {
            let fanout = fanout.clone();
            let (link, sequencer) = (link.clone(), sequencer.clone());
            let stored = metrics.hub_points_stored.clone();
            let commits = metrics.hub_commits.clone();
            TelemetryWriter::spawn(
                store.clone(),
                config.max_batch_points,
                4096,
                config.writer_queue_bytes,
                metrics.hub_writer_queued_bytes.clone(),
                move |c| {
                    let n: usize = c.batches.iter().map(|b| b.points.len()).sum();
                    stored.inc_by(n as u64);
                    commits.inc();
                    let last = c.first_id + n as i64 - 1;
                    match (&link, &sequencer) {
                        (Some(link), Some(sequencer)) => {
                            link.telemetry(&c);
                            sequencer.offer(c);
                        }
                        _ => fanout.publish(&c),
                    }
                    committed_tx.send_if_modified(|v| {
                        let newer = last > *v;
                        if newer {
                            *v = last;
                        }
                        newer
                    });
                },
            )
        };
        let commands = Commands::start(
            store.clone(),
            fanout.clone(),
            commands::Limits {
                in_flight: config.commands_in_flight,
                max_open: config.max_open_commands,
            },
            metrics.hub_commands.clone(),
            link.clone(),
        )
        .await?;
        let connections =
            Arc::new(ConnectionLog::start(store.clone(), metrics.hub_connection_log_dropped.clone()).await?);
        let presence = Presence::new(
            store.clone(),
            connections.clone(),
            fanout.clone(),
            metrics.hub_devices_online.clone(),
            link.clone(),
        );
        let feeds = ble_feed::feeds(&config, gateway);
        let ble_written = feeds.iter().flat_map(ble_feed::Feed::written_ids).collect();
        let mut tasks = Vec::new();
        if config.retention_days > 0.0 || config.connection_log_days > 0.0 {
            tasks.push(retention(
                store.clone(),
                config.retention_days,
                config.connection_log_days,
            ));
        }
        let hub = Hub(Arc::new(Inner {
            committed,
            config: config.clone(),
            store,
            writer,
            fanout,
            presence,
            commands,
            connections,
            auth,
            metrics,
            ble_written: std::sync::Mutex::new(ble_written),
            tasks: std::sync::Mutex::new(tasks),
        }));
        // The feeds hold a weak handle: the hub owns their tasks, and a strong one
        // would keep both alive forever.
        let feeds = ble_feed::spawn(feeds, gateway.clone(), Arc::downgrade(&hub.0));
        let sweep = heartbeat_sweep(Arc::downgrade(&hub.0), config.heartbeat_timeout());
        let adverts = config
            .advert_feed
            .then(|| advert_feed::spawn(gateway.clone(), Arc::downgrade(&hub.0)));
        crate::sync::lock(&hub.0.tasks).extend(feeds.into_iter().chain([sweep]).chain(adverts));
        if let (Some((_, heard, tasks)), Some(sequencer)) = (joined, sequencer) {
            let mut all = tasks;
            all.push(sequencer.spawn_gap_filler(hub.0.store.clone()));
            all.extend(cluster::spawn(Arc::downgrade(&hub.0), heard, sequencer));
            crate::sync::lock(&hub.0.tasks).extend(all);
        }
        Ok(hub)
    }

    pub fn config(&self) -> &HubConfig {
        &self.0.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// The id of the last point committed, changing as commits land.
    pub fn committed(&self) -> tokio::sync::watch::Receiver<i64> {
        self.0.committed.clone()
    }

    pub fn commands(&self) -> &Commands {
        &self.0.commands
    }

    pub(crate) fn writer(&self) -> &TelemetryWriter {
        &self.0.writer
    }

    pub(crate) fn fanout(&self) -> &Arc<Fanout> {
        &self.0.fanout
    }

    pub(crate) fn connections(&self) -> &ConnectionLog {
        &self.0.connections
    }

    pub(crate) fn presence(&self) -> &Presence {
        &self.0.presence
    }

    pub(crate) fn auth(&self) -> &Arc<Authenticator> {
        &self.0.auth
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }

    /// Whether `principal` may command `device`: its device list must admit the
    /// device, and a command that becomes a BLE write needs `ble:write`, as a write
    /// on any other front end does.
    pub(crate) fn may_command(&self, principal: Option<&Principal>, device: &str) -> Result<(), Failure> {
        crate::auth::check_device(principal, device, None)?;
        let Some(p) = principal else { return Ok(()) };
        if !p.has(Scope::BleWrite) && crate::sync::lock(&self.0.ble_written).contains(device) {
            return Err(Failure::new(
                protocol::Code::Forbidden,
                format!("commands to {device} become BLE writes: they need the ble:write scope"),
            ));
        }
        Ok(())
    }

    /// A BLE feed connected under this hub id: its commands are BLE writes.
    pub(crate) fn ble_written(&self, hub_id: &str) {
        crate::sync::lock(&self.0.ble_written).insert(hub_id.to_string());
    }

    /// Live subscriptions now (tests and metrics).
    pub fn subscriber_count(&self) -> usize {
        self.0.fanout.subscriber_count()
    }

    /// Whether the store answers and takes telemetry (readiness): a database
    /// that answers a ping but refused a commit within [`COMMIT_FAILURE_HOLDS`],
    /// with none stored since, is not ready either. The failure lapses with no
    /// further one: a quiet hub (or one whose devices wait to reconnect) commits
    /// nothing that could clear it, and a load balancer would never send it
    /// traffic again.
    pub async fn ready(&self) -> Result<(), Unready> {
        let ping = tokio::time::timeout(READY_WAIT, self.0.store.ping());
        ping.await.map_err(|_| Unready::Slow(READY_WAIT))??;
        match self.0.writer.failing() {
            Some(f) if f.last.elapsed() < COMMIT_FAILURE_HOLDS => Err(Unready::Commits {
                error: f.error,
                secs: f.since.elapsed().as_secs(),
            }),
            _ => Ok(()),
        }
    }
}

/// Deletes points, and ended connections, older than their retention every hour
/// (and once at start); 0 days keeps them.
/// Ends network devices silent for `silence`, checking a few times within it (at
/// least every second). A weak handle, as the feeds hold: the hub owns this task.
fn heartbeat_sweep(hub: std::sync::Weak<Inner>, silence: Duration) -> AbortOnDrop {
    let every = (silence / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            let Some(inner) = hub.upgrade() else {
                return;
            };
            inner.presence.end_silent(silence);
        }
    }))
}

fn retention(store: Arc<dyn Store>, days: f64, log_days: f64) -> AbortOnDrop {
    let age = |days: f64| (days > 0.0).then_some((days * 86_400_000.0) as i64);
    let (points, log) = (age(days), age(log_days));
    AbortOnDrop(tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            if let Some(keep) = points {
                match store.delete_points_before(crate::store::now_ms() - keep).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, days, "old telemetry deleted (retention)"),
                    Err(e) => tracing::warn!(error = %e, "retention failed"),
                }
            }
            if let Some(keep) = log {
                match store
                    .delete_connections_before(crate::store::now_ms() - keep)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(deleted = n, days = log_days, "old connection-log entries deleted")
                    }
                    Err(e) => tracing::warn!(error = %e, "connection-log retention failed"),
                }
            }
        }
    }))
}
