//! The hub and the cluster that replicates it: telemetry stored and committed,
//! live messages delivered and dropped, devices online, the writer's queue,
//! command status changes, and cluster messages that did not verify.

use prometheus_client::encoding::EncodeLabelSet;

use super::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandStatusLabels {
    /// A hub command status: `queued`, `sent`, … `cancelled`.
    pub status: &'static str,
}

impl Metrics {
    pub(super) fn register_cluster(&mut self) {
        self.registry.register(
            "gattway_cluster_rejected",
            "Cluster messages dropped because they did not verify (forged, altered, stale or replayed)",
            self.cluster_rejected.clone(),
        );
    }

    pub(super) fn register_hub(&mut self) {
        let r = &mut self.registry;
        r.register(
            "gattway_hub_points_stored",
            "Telemetry points the hub stored (and acknowledged)",
            self.hub_points_stored.clone(),
        );
        r.register(
            "gattway_hub_commits",
            "Telemetry transactions (one group commit holds many devices' points)",
            self.hub_commits.clone(),
        );
        r.register(
            "gattway_hub_deliveries",
            "Live hub messages queued to subscribers",
            self.hub_deliveries.clone(),
        );
        r.register(
            "gattway_hub_dropped",
            "Live hub messages a slow subscriber lost (it was sent `lagged`)",
            self.hub_dropped.clone(),
        );
        r.register(
            "gattway_hub_connection_log_dropped",
            "Connection-log records not written: the store fell too far behind, or failed",
            self.hub_connection_log_dropped.clone(),
        );
        r.register(
            "gattway_hub_devices_online",
            "Hub devices connected now",
            self.hub_devices_online.clone(),
        );
        r.register(
            "gattway_hub_writer_queued_bytes",
            "Telemetry waiting for the store, in bytes (at most hub.writer_queue_bytes; senders past it wait)",
            self.hub_writer_queued_bytes.clone(),
        );
        r.register(
            "gattway_hub_commands",
            "Hub command status changes, by the status reached",
            self.hub_commands.clone(),
        );
        // Every status starts at zero: a dashboard shows 0, not "no data".
        for status in crate::store::CommandStatus::ALL {
            let _ = self.hub_commands.get_or_create(&CommandStatusLabels {
                status: status.as_str(),
            });
        }
    }
}
