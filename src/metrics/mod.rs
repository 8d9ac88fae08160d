//! Prometheus metrics: one registry, made by `main` and handed to the gateway, which
//! the hub and the front ends reach through it (tests make one per gateway, so
//! gateways in one process never share counters). The BLE names are the original
//! performance guide's; the rest are `gattway_*`. Labels never carry unbounded
//! values: no device ids, only endpoint, direction, tool, outcome and the
//! configured radios' names.
//!
//! Most series are recorded where things happen (the gateway, the front ends);
//! process and runtime figures are sampled at scrape time ([`Metrics::render`]).
//!
//! [`Metrics`] holds every series, so a layer records into a field; one file per
//! concern names, registers and samples its own: `gateway.rs` (the radios and the
//! links), `front_ends.rs` (WebSocket connections, messages, MCP tools, rate
//! limits), `process.rs` (memory, CPU, the async runtime), `mqtt.rs` and `hub.rs`
//! (the hub and its cluster).

mod front_ends;
mod gateway;
mod hub;
mod mqtt;
mod process;

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use self::front_ends::{
    Direction, Endpoint, EndpointLabels, MessageLabels, ToolLabels, ToolOutcomeLabels,
};
use self::gateway::RadioGauges;
pub use self::gateway::{RadioLabels, RecoveryLabels};
pub use self::hub::CommandStatusLabels;
pub use self::process::resident_memory_bytes;
use self::process::Sampler;

type FloatGauge = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,

    // The radios and the links (`gateway.rs`).
    pub discovery_time: Histogram,
    pub devices_found: Counter,
    pub connection_time: Histogram,
    pub connection_success: Counter,
    pub connection_failure: Counter,
    pub transfer_rate: FloatGauge,
    pub transfer_latency: Histogram,
    pub connected_devices: Gauge,
    radios: RadioGauges,

    // The front ends (`front_ends.rs`).
    pub ws_connections: Family<EndpointLabels, Gauge>,
    pub messages: Family<MessageLabels, Counter>,
    pub mcp_tool_calls: Family<ToolOutcomeLabels, Counter>,
    pub rate_limited: Counter,
    pub mcp_tool_duration: Family<ToolLabels, Histogram>,

    // The process and the async runtime, sampled when scraped (`process.rs`).
    pub memory_usage: Gauge,
    pub cpu_usage: FloatGauge,
    pub runtime_workers: Gauge,
    pub runtime_alive_tasks: Gauge,
    pub runtime_busy_ratio: FloatGauge,
    pub runtime_scheduling_delay: FloatGauge,
    sampler: Mutex<Sampler>,

    // The MQTT export (`mqtt.rs`).
    /// Points the broker acknowledged.
    pub mqtt_published: Counter,
    /// Points skipped past the backlog bound.
    pub mqtt_dropped: Counter,
    /// Points committed and not yet acknowledged.
    pub mqtt_backlog: Gauge,
    /// Whether a broker session is up.
    pub mqtt_connected: Gauge,
    /// Points with no valid topic (an empty name, an over-long topic) or a value
    /// over `mqtt.max_payload_bytes`, passed over so the export goes on.
    pub mqtt_skipped: Counter,

    // The hub and its cluster (`hub.rs`).
    /// Cluster messages that did not verify (forged, altered, stale or replayed),
    /// dropped.
    pub cluster_rejected: Counter,
    pub hub_points_stored: Counter,
    pub hub_commits: Counter,
    pub hub_deliveries: Counter,
    pub hub_dropped: Counter,
    pub hub_connection_log_dropped: Counter,
    pub hub_devices_online: Gauge,
    /// Bytes of telemetry waiting for the writer (bounded by
    /// `hub.writer_queue_bytes`).
    pub hub_writer_queued_bytes: Gauge,
    pub hub_commands: Family<CommandStatusLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every series, registered at zero.
    pub fn new() -> Self {
        let mut metrics = Metrics {
            registry: Registry::default(),
            discovery_time: gateway::discovery_time(),
            devices_found: Counter::default(),
            connection_time: gateway::connection_time(),
            connection_success: Counter::default(),
            connection_failure: Counter::default(),
            transfer_rate: FloatGauge::default(),
            transfer_latency: gateway::transfer_latency(),
            connected_devices: Gauge::default(),
            radios: RadioGauges::default(),
            ws_connections: Family::default(),
            messages: Family::default(),
            mcp_tool_calls: Family::default(),
            rate_limited: Counter::default(),
            mcp_tool_duration: Family::new_with_constructor(
                front_ends::tool_duration_histogram as fn() -> Histogram,
            ),
            memory_usage: Gauge::default(),
            cpu_usage: FloatGauge::default(),
            runtime_workers: Gauge::default(),
            runtime_alive_tasks: Gauge::default(),
            runtime_busy_ratio: FloatGauge::default(),
            runtime_scheduling_delay: FloatGauge::default(),
            sampler: Mutex::new(Sampler::new()),
            mqtt_published: Counter::default(),
            mqtt_dropped: Counter::default(),
            mqtt_backlog: Gauge::default(),
            mqtt_connected: Gauge::default(),
            mqtt_skipped: Counter::default(),
            cluster_rejected: Counter::default(),
            hub_points_stored: Counter::default(),
            hub_commits: Counter::default(),
            hub_deliveries: Counter::default(),
            hub_dropped: Counter::default(),
            hub_connection_log_dropped: Counter::default(),
            hub_devices_online: Gauge::default(),
            hub_writer_queued_bytes: Gauge::default(),
            hub_commands: Family::default(),
        };
        metrics.register_gateway();
        metrics.register_front_ends();
        metrics.register_process();
        metrics.register_mqtt();
        metrics.register_cluster();
        metrics.register_hub();
        metrics
    }

    /// Samples the process and runtime, then encodes every series in the text format.
    /// `bytes_transferred` is the running total of bytes written and notified.
    pub fn render(&self, bytes_transferred: u64, connected: usize) -> String {
        self.connected_devices.set(connected as i64);
        self.sample(bytes_transferred);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_guide_names() {
        let m = Metrics::new();
        m.devices_found.inc();
        m.connection_time.observe(0.2);
        m.message(Endpoint::bridge, Direction::received);
        let text = m.render(0, 1);
        for name in [
            "ble_devices_found_total 1",
            "ble_connection_time_seconds_count 1",
            "ble_connection_success_total 0",
            "gattway_connected_devices 1",
            "gattway_messages_total{endpoint=\"bridge\",direction=\"received\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing in:\n{text}");
        }
    }
}
