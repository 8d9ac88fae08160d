//! The device hub's core (`docs/hub-protocol.md` is its `/hub` front end, in
//! `crate::hub_api`): devices send telemetry and take commands; clients subscribe
//! to live telemetry (with replay of stored points), send commands, read history
//! and presence. BLE devices take part too: their notifications become telemetry
//! and hub commands become BLE writes. The core speaks in typed [`Event`]s and
//! [`HubError`]s; it never builds a wire message.
//!
//! - `config.rs`: the `[hub]` table.
//! - `event.rs`: what the hub tells listeners, built once, encoded once per front end.
//! - `error.rs`: the hub's errors and their kinds.
//! - `accept.rs`: what the hub takes in (device ids, points), checked once for
//!   every way in, against its bounds and what the store can read back.
//! - `fanout.rs`: live delivery to subscribers, with the replay watermark.
//! - `commands/`: the command router (status, priority, timeouts, restarts);
//!   `command_request.rs`: a client's command, checked, as the record stored first.
//! - `presence.rs`: who is online, and telling subscribers.
//! - `connlog.rs`: the connection log, written in the background.
//! - `history.rs`: stored telemetry as `history` and REST both answer it.
//! - `feeds/`: BLE notifications and broadcast sensors as telemetry, hub commands
//!   as BLE writes.
//! - `cluster.rs`: several instances as one hub (`[cluster]`): acting on what the
//!   others say; `sequencer.rs`: their commits and ours to the fan-out in id order.

pub mod accept;
mod cluster;
mod command_request;
pub mod commands;
mod config;
mod connlog;
mod error;
pub mod event;
pub mod fanout;
mod feeds;
mod history;
mod presence;
mod sequencer;

use std::sync::Arc;
use std::time::Duration;

pub use self::command_request::CommandRequest;
use self::commands::Commands;
pub use self::config::HubConfig;
use self::connlog::ConnectionLog;
pub use self::error::HubError;
pub use self::event::{Event, Happened, PublishedPoint, StatusReport};
use self::fanout::Fanout;
pub use self::feeds::{BleCommand, BleTelemetry};
pub use self::history::{HistoryAnswer, HistoryRequest};
pub use self::presence::DevicePresence;
pub(crate) use self::presence::{Presence, Replaced};
use crate::auth::{Authenticator, Principal, Scope};
use crate::cluster::{ClusterConfig, ClusterError};
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, TelemetryWriter};
use crate::sync::AbortOnDrop;

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
            true => Some(crate::cluster::join(cluster, metrics.cluster_rejected.clone()).await?),
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
        let feeds = feeds::ble::feeds(&config, gateway);
        let ble_written = feeds.iter().flat_map(feeds::ble::Feed::written_ids).collect();
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
        let feeds = feeds::ble::spawn(feeds, gateway.clone(), Arc::downgrade(&hub.0));
        let sweep = heartbeat_sweep(Arc::downgrade(&hub.0), config.heartbeat_timeout());
        let adverts = config
            .advert_feed
            .then(|| feeds::adverts::spawn(gateway.clone(), Arc::downgrade(&hub.0)));
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
    pub(crate) fn may_command(&self, principal: Option<&Principal>, device: &str) -> Result<(), HubError> {
        crate::auth::check_device(principal, device, None)?;
        let Some(p) = principal else { return Ok(()) };
        if !p.has(Scope::BleWrite) && crate::sync::lock(&self.0.ble_written).contains(device) {
            return Err(HubError::NeedsBleWrite(device.to_string()));
        }
        Ok(())
    }

    /// A BLE feed connected under this hub id: its commands are BLE writes.
    pub(crate) fn ble_written(&self, hub_id: &str) {
        crate::sync::lock(&self.0.ble_written).insert(hub_id.to_string());
    }

    /// Stored telemetry of one device: points or buckets (`history.rs`).
    pub async fn history(&self, request: HistoryRequest) -> Result<HistoryAnswer, HubError> {
        history::answer(self, request).await
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
