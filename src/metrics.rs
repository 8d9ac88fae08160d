//! Prometheus metrics: one registry, made by `main` and handed to the gateway,
//! which the hub and the front ends reach through it (tests make one per gateway,
//! so gateways in one process never share counters). The BLE names are the original performance
//! guide's; the rest are `gattway_*`. Labels never carry unbounded values: no device
//! ids, only endpoint, direction, tool, outcome and the configured radios' names.
//!
//! Most series are recorded where things happen (the gateway, the front ends);
//! process and runtime figures are sampled at scrape time ([`Metrics::render`]).

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::sync::lock;

/// Which front end a connection or message belongs to.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Endpoint {
    bridge,
    control,
    hub,
    mcp,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Direction {
    /// From a client to gattway.
    received,
    /// From gattway to a client.
    sent,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: Endpoint,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    pub endpoint: Endpoint,
    pub direction: Direction,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    pub tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolOutcomeLabels {
    pub tool: String,
    /// `ok`, `error` (a tool error the assistant sees) or `protocol_error`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandStatusLabels {
    /// A hub command status: `queued`, `sent`, … `cancelled`.
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RadioLabels {
    /// A configured radio's name (a bounded set, unlike device ids).
    pub radio: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecoveryLabels {
    pub radio: String,
    /// `restart_scan` or `power_cycle`.
    pub action: &'static str,
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Each radio's state, set at scrape time ([`Metrics::set_radio`]).
#[derive(Default)]
struct RadioGauges {
    up: Family<RadioLabels, Gauge>,
    scanning: Family<RadioLabels, Gauge>,
    slots_used: Family<RadioLabels, Gauge>,
    slots_free: Family<RadioLabels, Gauge>,
    last_advert_age: Family<RadioLabels, FloatGauge>,
    recoveries: Family<RecoveryLabels, Counter>,
    adverts: Family<RadioLabels, Counter>,
}

/// What changes between scrapes, for rates.
struct Sampler {
    at: Instant,
    cpu_ticks: Option<u64>,
    bytes: u64,
    busy: Duration,
}

pub struct Metrics {
    registry: Registry,
    pub discovery_time: Histogram,
    pub devices_found: Counter,
    pub connection_time: Histogram,
    pub connection_success: Counter,
    pub connection_failure: Counter,
    pub transfer_rate: FloatGauge,
    pub transfer_latency: Histogram,
    pub memory_usage: Gauge,
    pub cpu_usage: FloatGauge,
    pub connected_devices: Gauge,
    pub ws_connections: Family<EndpointLabels, Gauge>,
    pub messages: Family<MessageLabels, Counter>,
    pub mcp_tool_calls: Family<ToolOutcomeLabels, Counter>,
    pub rate_limited: Counter,
    pub mcp_tool_duration: Family<ToolLabels, Histogram>,
    pub runtime_workers: Gauge,
    pub runtime_alive_tasks: Gauge,
    pub runtime_busy_ratio: FloatGauge,
    pub runtime_scheduling_delay: FloatGauge,
    pub hub_points_stored: Counter,
    /// MQTT export: points the broker acknowledged, points skipped past the
    /// backlog bound, points committed and not yet acknowledged, and whether a
    /// broker session is up.
    pub mqtt_published: Counter,
    pub mqtt_dropped: Counter,
    pub mqtt_backlog: Gauge,
    pub mqtt_connected: Gauge,
    /// MQTT export: points with no valid topic (an empty name, an over-long
    /// topic) or a value over `mqtt.max_payload_bytes`, passed over so the export
    /// goes on.
    pub mqtt_skipped: Counter,
    /// Cluster messages that did not verify (forged, altered, stale or replayed),
    /// dropped.
    pub cluster_rejected: Counter,
    pub hub_commits: Counter,
    pub hub_deliveries: Counter,
    pub hub_dropped: Counter,
    pub hub_connection_log_dropped: Counter,
    pub hub_devices_online: Gauge,
    /// Bytes of telemetry waiting for the writer (bounded by
    /// `hub.writer_queue_bytes`).
    pub hub_writer_queued_bytes: Gauge,
    pub hub_commands: Family<CommandStatusLabels, Counter>,
    radios: RadioGauges,
    sampler: Mutex<Sampler>,
}

fn tool_duration_histogram() -> Histogram {
    Histogram::new([0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::default();
        let discovery_time = Histogram::new([0.1, 0.5, 1.0, 2.0, 5.0]);
        let devices_found = Counter::default();
        let connection_time = Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0]);
        let connection_success = Counter::default();
        let connection_failure = Counter::default();
        let transfer_rate = FloatGauge::default();
        let transfer_latency = Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1]);
        let memory_usage = Gauge::default();
        let cpu_usage = FloatGauge::default();
        let connected_devices = Gauge::default();
        let radios = RadioGauges::default();
        let ws_connections = Family::<EndpointLabels, Gauge>::default();
        let messages = Family::<MessageLabels, Counter>::default();
        let mcp_tool_calls = Family::<ToolOutcomeLabels, Counter>::default();
        let rate_limited = Counter::default();
        let mcp_tool_duration = Family::<ToolLabels, Histogram>::new_with_constructor(
            tool_duration_histogram as fn() -> Histogram,
        );
        let runtime_workers = Gauge::default();
        let runtime_alive_tasks = Gauge::default();
        let runtime_busy_ratio = FloatGauge::default();
        let runtime_scheduling_delay = FloatGauge::default();

        r.register(
            "ble_discovery_time_seconds",
            "Time from the start of a scan until a device was first heard",
            discovery_time.clone(),
        );
        r.register(
            "ble_devices_found",
            "Devices newly found by scans",
            devices_found.clone(),
        );
        r.register(
            "ble_connection_time_seconds",
            "Time to open a link, retries included",
            connection_time.clone(),
        );
        r.register(
            "ble_connection_success",
            "Connects that succeeded",
            connection_success.clone(),
        );
        r.register(
            "ble_connection_failure",
            "Connects that failed after every retry",
            connection_failure.clone(),
        );
        r.register(
            "ble_transfer_rate_bytes_per_second",
            "Bytes written and notified per second since the previous scrape",
            transfer_rate.clone(),
        );
        r.register(
            "ble_transfer_latency_seconds",
            "Round trip of one GATT read or write",
            transfer_latency.clone(),
        );
        r.register(
            "ble_memory_usage_bytes",
            "Resident memory of the gattway process",
            memory_usage.clone(),
        );
        r.register(
            "ble_cpu_usage_percent",
            "CPU used by the gattway process since the previous scrape (100 = one core)",
            cpu_usage.clone(),
        );
        r.register(
            "gattway_connected_devices",
            "Devices with an open link",
            connected_devices.clone(),
        );
        for (name, help, family) in [
            (
                "gattway_radio_up",
                "1 while the radio is present and powered",
                &radios.up,
            ),
            (
                "gattway_radio_scanning",
                "1 while the radio scans",
                &radios.scanning,
            ),
            (
                "gattway_radio_slots_used",
                "Links open or opening through the radio",
                &radios.slots_used,
            ),
            (
                "gattway_radio_slots_free",
                "Links the radio can still open",
                &radios.slots_free,
            ),
        ] {
            r.register(name, help, family.clone());
        }
        r.register(
            "gattway_radio_recoveries",
            "The watchdog's recoveries of a deaf radio, by action and outcome",
            radios.recoveries.clone(),
        );
        r.register(
            "gattway_radio_adverts",
            "Advertisements each radio heard",
            radios.adverts.clone(),
        );
        r.register(
            "gattway_radio_last_advert_age_seconds",
            "Seconds since the radio last heard an advertisement",
            radios.last_advert_age.clone(),
        );
        r.register(
            "gattway_ws_connections",
            "Open WebSocket connections",
            ws_connections.clone(),
        );
        r.register(
            "gattway_messages",
            "Messages exchanged with clients",
            messages.clone(),
        );
        r.register(
            "gattway_mcp_tool_calls",
            "MCP tool calls by outcome",
            mcp_tool_calls.clone(),
        );
        r.register(
            "gattway_rate_limited",
            "Requests refused by a rate limit",
            rate_limited.clone(),
        );
        r.register(
            "gattway_mcp_tool_duration_seconds",
            "MCP tool call duration",
            mcp_tool_duration.clone(),
        );
        r.register(
            "gattway_runtime_workers",
            "Async runtime worker threads",
            runtime_workers.clone(),
        );
        r.register(
            "gattway_runtime_alive_tasks",
            "Async tasks alive",
            runtime_alive_tasks.clone(),
        );
        r.register(
            "gattway_runtime_worker_busy_ratio",
            "Share of worker time spent busy since the previous scrape (0..1)",
            runtime_busy_ratio.clone(),
        );
        r.register(
            "gattway_runtime_scheduling_delay_seconds",
            "How late a timer task last woke (the event-loop lag)",
            runtime_scheduling_delay.clone(),
        );
        let hub_points_stored = Counter::default();
        let (mqtt_published, mqtt_dropped) = (Counter::default(), Counter::default());
        let (mqtt_backlog, mqtt_connected) = (Gauge::default(), Gauge::default());
        r.register(
            "gattway_mqtt_published",
            "Points the MQTT broker acknowledged",
            mqtt_published.clone(),
        );
        r.register(
            "gattway_mqtt_dropped",
            "Points skipped because the MQTT backlog passed mqtt.max_backlog",
            mqtt_dropped.clone(),
        );
        r.register(
            "gattway_mqtt_backlog",
            "Points committed and not yet acknowledged by the MQTT broker",
            mqtt_backlog.clone(),
        );
        r.register(
            "gattway_mqtt_connected",
            "1 while a session with the MQTT broker is up",
            mqtt_connected.clone(),
        );
        let mqtt_skipped = Counter::default();
        r.register(
            "gattway_mqtt_skipped",
            "Points not exported to MQTT: no valid topic, or a value over mqtt.max_payload_bytes",
            mqtt_skipped.clone(),
        );
        let cluster_rejected = Counter::default();
        r.register(
            "gattway_cluster_rejected",
            "Cluster messages dropped because they did not verify (forged, altered, stale or replayed)",
            cluster_rejected.clone(),
        );
        let hub_commits = Counter::default();
        let hub_deliveries = Counter::default();
        let hub_dropped = Counter::default();
        let hub_connection_log_dropped = Counter::default();
        let hub_devices_online = Gauge::default();
        let hub_writer_queued_bytes = Gauge::default();
        let hub_commands = Family::<CommandStatusLabels, Counter>::default();
        r.register(
            "gattway_hub_points_stored",
            "Telemetry points the hub stored (and acknowledged)",
            hub_points_stored.clone(),
        );
        r.register(
            "gattway_hub_commits",
            "Telemetry transactions (one group commit holds many devices' points)",
            hub_commits.clone(),
        );
        r.register(
            "gattway_hub_deliveries",
            "Live hub messages queued to subscribers",
            hub_deliveries.clone(),
        );
        r.register(
            "gattway_hub_dropped",
            "Live hub messages a slow subscriber lost (it was sent `lagged`)",
            hub_dropped.clone(),
        );
        r.register(
            "gattway_hub_connection_log_dropped",
            "Connection-log records not written: the store fell too far behind, or failed",
            hub_connection_log_dropped.clone(),
        );
        r.register(
            "gattway_hub_devices_online",
            "Hub devices connected now",
            hub_devices_online.clone(),
        );
        r.register(
            "gattway_hub_writer_queued_bytes",
            "Telemetry waiting for the store, in bytes (at most hub.writer_queue_bytes; senders past it wait)",
            hub_writer_queued_bytes.clone(),
        );
        r.register(
            "gattway_hub_commands",
            "Hub command status changes, by the status reached",
            hub_commands.clone(),
        );
        for status in crate::store::CommandStatus::ALL {
            let _ = hub_commands.get_or_create(&CommandStatusLabels {
                status: status.as_str(),
            });
        }
        // Known label sets start at zero: a dashboard shows 0, not "no data".
        for endpoint in [Endpoint::bridge, Endpoint::control, Endpoint::hub] {
            let _ = ws_connections.get_or_create(&EndpointLabels { endpoint });
            for direction in [Direction::received, Direction::sent] {
                let _ = messages.get_or_create(&MessageLabels { endpoint, direction });
            }
        }
        Metrics {
            registry: r,
            discovery_time,
            devices_found,
            connection_time,
            connection_success,
            connection_failure,
            transfer_rate,
            transfer_latency,
            memory_usage,
            cpu_usage,
            connected_devices,
            ws_connections,
            messages,
            mcp_tool_calls,
            rate_limited,
            mcp_tool_duration,
            runtime_workers,
            runtime_alive_tasks,
            runtime_busy_ratio,
            runtime_scheduling_delay,
            hub_points_stored,
            mqtt_published,
            mqtt_dropped,
            mqtt_backlog,
            mqtt_connected,
            mqtt_skipped,
            cluster_rejected,
            hub_commits,
            hub_deliveries,
            hub_dropped,
            hub_connection_log_dropped,
            hub_devices_online,
            hub_writer_queued_bytes,
            hub_commands,
            radios,
            sampler: Mutex::new(Sampler {
                at: Instant::now(),
                cpu_ticks: process_cpu_ticks(),
                bytes: 0,
                busy: Duration::ZERO,
            }),
        }
    }

    /// One radio's state, as the gateway reads it before a scrape.
    pub fn set_radio(
        &self,
        radio: &str,
        up: bool,
        scanning: bool,
        slots: (usize, usize),
        advert_age: Option<f64>,
    ) {
        let labels = RadioLabels {
            radio: radio.to_string(),
        };
        let g = &self.radios;
        g.up.get_or_create(&labels).set(i64::from(up));
        g.scanning.get_or_create(&labels).set(i64::from(scanning));
        g.slots_used.get_or_create(&labels).set(slots.0 as i64);
        g.slots_free.get_or_create(&labels).set(slots.1 as i64);
        if let Some(age) = advert_age {
            g.last_advert_age.get_or_create(&labels).set(age);
        }
    }

    /// The counter of `radio`'s advertisements: the router counts into it directly,
    /// one atomic add per advert.
    pub fn radio_adverts(&self, radio: &str) -> Counter {
        let labels = RadioLabels {
            radio: radio.to_string(),
        };
        self.radios.adverts.get_or_create(&labels).clone()
    }

    /// The watchdog tried `action` on `radio`.
    pub fn radio_recovery(&self, radio: &str, action: &'static str, ok: bool) {
        let labels = RecoveryLabels {
            radio: radio.to_string(),
            action,
            outcome: if ok { "ok" } else { "failed" },
        };
        self.radios.recoveries.get_or_create(&labels).inc();
    }

    pub fn message(&self, endpoint: Endpoint, direction: Direction) {
        self.messages
            .get_or_create(&MessageLabels { endpoint, direction })
            .inc();
    }

    /// Samples the process and runtime, then encodes every series in the text format.
    /// `bytes_transferred` is the running total of bytes written and notified.
    pub fn render(&self, bytes_transferred: u64, connected: usize) -> String {
        self.connected_devices.set(connected as i64);
        if let Some(rss) = resident_memory_bytes() {
            self.memory_usage.set(rss as i64);
        }
        let busy = self.sample_runtime();
        {
            let mut s = lock(&self.sampler);
            let now = Instant::now();
            let secs = now.duration_since(s.at).as_secs_f64();
            if secs > 0.0 {
                self.transfer_rate
                    .set(bytes_transferred.saturating_sub(s.bytes) as f64 / secs);
                let ticks = process_cpu_ticks();
                if let (Some(before), Some(after)) = (s.cpu_ticks, ticks) {
                    // Linux reports CPU time in clock ticks of 1/100 s.
                    let cpu_secs = after.saturating_sub(before) as f64 / 100.0;
                    self.cpu_usage.set(100.0 * cpu_secs / secs);
                }
                if let Some(total_busy) = busy {
                    let workers = self.runtime_workers.get().max(1) as f64;
                    let delta = total_busy.saturating_sub(s.busy).as_secs_f64();
                    self.runtime_busy_ratio
                        .set((delta / (secs * workers)).clamp(0.0, 1.0));
                    s.busy = total_busy;
                }
                s.cpu_ticks = ticks;
            }
            s.at = now;
            s.bytes = bytes_transferred;
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Runtime figures; the workers' total busy time.
    fn sample_runtime(&self) -> Option<Duration> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let m = handle.metrics();
        self.runtime_workers.set(m.num_workers() as i64);
        self.runtime_alive_tasks.set(m.num_alive_tasks() as i64);
        #[cfg(target_has_atomic = "64")]
        {
            Some(
                (0..m.num_workers())
                    .map(|w| m.worker_total_busy_duration(w))
                    .sum(),
            )
        }
        #[cfg(not(target_has_atomic = "64"))]
        {
            None
        }
    }

    /// Measures event-loop lag until dropped: a task that asks to sleep a fixed time
    /// and records how much later than asked it woke.
    pub fn spawn_lag_probe(metrics: std::sync::Arc<Metrics>) -> crate::sync::AbortOnDrop {
        const PERIOD: Duration = Duration::from_millis(250);
        crate::sync::AbortOnDrop(tokio::spawn(async move {
            loop {
                let asked = Instant::now();
                tokio::time::sleep(PERIOD).await;
                let late = asked.elapsed().saturating_sub(PERIOD);
                metrics.runtime_scheduling_delay.set(late.as_secs_f64());
            }
        }))
    }
}

/// Resident memory of this process.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// User + system CPU time of this process, in clock ticks.
fn process_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
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
