//! The front ends: WebSocket connections and messages per endpoint, MCP tool calls
//! and their durations, and requests a rate limit refused.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::histogram::Histogram;

use super::Metrics;

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

/// Seconds of one MCP tool call, from a fraction of a millisecond to a long scan.
pub(super) fn tool_duration_histogram() -> Histogram {
    Histogram::new([0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0])
}

impl Metrics {
    pub(super) fn register_front_ends(&mut self) {
        let r = &mut self.registry;
        r.register(
            "gattway_ws_connections",
            "Open WebSocket connections",
            self.ws_connections.clone(),
        );
        r.register(
            "gattway_messages",
            "Messages exchanged with clients",
            self.messages.clone(),
        );
        r.register(
            "gattway_mcp_tool_calls",
            "MCP tool calls by outcome",
            self.mcp_tool_calls.clone(),
        );
        r.register(
            "gattway_rate_limited",
            "Requests refused by a rate limit",
            self.rate_limited.clone(),
        );
        r.register(
            "gattway_mcp_tool_duration_seconds",
            "MCP tool call duration",
            self.mcp_tool_duration.clone(),
        );
        // Known label sets start at zero: a dashboard shows 0, not "no data".
        for endpoint in [Endpoint::bridge, Endpoint::control, Endpoint::hub] {
            let _ = self.ws_connections.get_or_create(&EndpointLabels { endpoint });
            for direction in [Direction::received, Direction::sent] {
                let _ = self
                    .messages
                    .get_or_create(&MessageLabels { endpoint, direction });
            }
        }
    }

    pub fn message(&self, endpoint: Endpoint, direction: Direction) {
        self.messages
            .get_or_create(&MessageLabels { endpoint, direction })
            .inc();
    }
}
