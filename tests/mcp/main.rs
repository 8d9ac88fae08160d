//! The MCP server through the official rmcp client: `gattway mcp` on stdio as a
//! child process, and `/mcp` over Streamable HTTP in-process, against the simulator.
//! One file per concern.

#[path = "../common/mod.rs"]
mod common;

mod device_list;
mod failover;
mod http;
mod stdio;
mod tool_errors;
mod write_policy;

/// Every tool the server lists when writes are allowed, by name.
const ALL_TOOLS: [&str; 23] = [
    "ble_collect_list",
    "ble_collect_start",
    "ble_collect_stop",
    "ble_connect",
    "ble_connections",
    "ble_disconnect",
    "ble_notifications",
    "ble_profile",
    "ble_read",
    "ble_read_descriptor",
    "ble_scan",
    "ble_services",
    "ble_subscribe",
    "ble_unsubscribe",
    "ble_write",
    "ble_write_descriptor",
    "device_command",
    "get_connection_state",
    "get_logs",
    "get_metrics",
    "scan_devices",
    "search_packets",
    "status",
];
