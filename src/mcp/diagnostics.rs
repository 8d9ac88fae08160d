//! Debugging, compatible with the ble-mcp-test MCP tools: `get_logs`,
//! `search_packets`, `status`, `get_metrics`. They read the gateway's packet log.

use std::sync::atomic::Ordering;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router, Json};

use super::error::ToolError;
use super::types::{
    GetLogsParams, LogEntryOut, LogsResult, MetricsResult, SearchPacketsParams, SearchResult, StatusResult,
};
use super::BleMcp;
use crate::gateway::packet_log::{hex_pattern, Filter, Since};

#[tool_router(router = diagnostics_router, vis = "pub(super)")]
impl BleMcp {
    /// Retrieve recent BLE communication logs (every byte written and notified,
    /// oldest first) with filtering options.
    #[tool(annotations(title = "Get BLE communication logs", read_only_hint = true))]
    async fn get_logs(&self, Parameters(p): Parameters<GetLogsParams>) -> Result<Json<LogsResult>, String> {
        let since_text = p.since.as_deref().unwrap_or("30s");
        let since = if since_text.trim().eq_ignore_ascii_case("last") {
            Since::AfterSeq(self.session.logs_cursor.load(Ordering::Relaxed))
        } else {
            Since::parse(since_text).map_err(ToolError)?
        };
        let filter = Filter::parse(p.filter.as_deref().unwrap_or("")).map_err(ToolError)?;
        let limit = p.limit.unwrap_or(100).clamp(1, 1000);
        let (entries, more) = self
            .gateway
            .packet_log()
            .query(&since, &filter, &self.visible(), limit);
        if let Some(last) = entries.last() {
            self.session.logs_cursor.fetch_max(last.seq, Ordering::Relaxed);
        }
        let logs: Vec<LogEntryOut> = entries.iter().map(LogEntryOut::from).collect();
        Ok(Json(LogsResult {
            count: logs.len() + more,
            truncated: more > 0,
            logs,
        }))
    }

    /// Search for hex patterns in BLE packets, newest first (case insensitive,
    /// spaces optional).
    #[tool(annotations(title = "Search BLE packets", read_only_hint = true))]
    async fn search_packets(
        &self,
        Parameters(p): Parameters<SearchPacketsParams>,
    ) -> Result<Json<SearchResult>, String> {
        let pattern = hex_pattern(&p.hex_pattern).map_err(ToolError)?;
        let limit = p.limit.unwrap_or(100).clamp(1, 1000);
        let matches: Vec<LogEntryOut> = self
            .gateway
            .packet_log()
            .search(&pattern, &self.visible(), limit)
            .iter()
            .map(LogEntryOut::from)
            .collect();
        Ok(Json(SearchResult {
            count: matches.len(),
            matches,
            pattern: p.hex_pattern,
        }))
    }

    /// Get the gateway's status and configuration: version, uptime, radio, transport,
    /// whether assistants may write.
    #[tool(annotations(title = "Gateway status", read_only_hint = true))]
    async fn status(&self) -> Result<Json<StatusResult>, String> {
        Ok(Json(StatusResult {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime: self.gateway.uptime().as_secs_f64(),
            backend: self.gateway.backend_name().to_string(),
            transport: self.settings.transport.to_string(),
            writes_enabled: self.settings.writes_enabled,
            write_allow_list: self.settings.write_allow_list.iter().map(|u| u.short()).collect(),
            log_buffer_size: self.gateway.packet_log().capacity(),
            connected_devices: self.gateway.stats().connected,
        }))
    }

    /// Get gateway metrics: links, subscriptions, leases, bytes and packets in each
    /// direction, and this session's tool calls.
    #[tool(annotations(title = "Gateway metrics", read_only_hint = true))]
    async fn get_metrics(&self) -> Result<Json<MetricsResult>, String> {
        let stats = self.gateway.stats();
        let totals = self.gateway.packet_log().totals();
        Ok(Json(MetricsResult {
            uptime_seconds: self.gateway.uptime().as_secs_f64(),
            connected_devices: stats.connected,
            device_tasks: stats.device_tasks,
            radio_subscriptions: stats.radio_subscriptions,
            subscribers: stats.subscribers,
            leases: stats.leases,
            packets_transmitted: totals.packets_transmitted,
            packets_received: totals.packets_received,
            bytes_transmitted: totals.bytes_transmitted,
            bytes_received: totals.bytes_received,
            session_tool_calls: self.session.calls(),
        }))
    }
}
