//! The `[hub]` table: the hub's bounds, timers, retention and feeds, with their
//! defaults (CONFIGURATION.md lists them).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::feeds::{BleCommand, BleTelemetry};

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

    pub(crate) fn heartbeat_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.heartbeat_secs * self.heartbeat_misses.max(1) as f64)
    }
}
