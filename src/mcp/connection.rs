//! Links: `ble_connect`, `ble_disconnect`, `ble_connections`, and the ble-mcp-test
//! compatible `get_connection_state`.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router, Json};

use super::error::{seconds_arg, ToolError};
use super::types::{
    ConnectParams, ConnectionOut, ConnectionStateResult, ConnectionsResult, DeviceParams, DisconnectResult,
};
use super::BleMcp;
use crate::gateway::ConnectOptions;

#[tool_router(router = connection_router, vis = "pub(super)")]
impl BleMcp {
    /// Connect to a device by id or name prefix (scanning for it if needed). Returns
    /// the link's MTU and state. Returns at once when it is already connected. Then
    /// call ble_services to see what it offers.
    #[tool(annotations(
        title = "Connect to a BLE device",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = true,
        open_world_hint = true
    ))]
    async fn ble_connect(
        &self,
        Parameters(p): Parameters<ConnectParams>,
    ) -> Result<Json<ConnectionOut>, String> {
        let timeout = seconds_arg("timeout", p.timeout, 10.0, 120.0)?;
        // A device heard already is named by its id; anything else goes to the
        // gateway as written, which scans for it.
        let target = match self.resolve_device(&p.device)? {
            Some(id) => id.to_string(),
            None => p.device.trim().to_string(),
        };
        let info = self
            .gateway
            .connect(
                &target,
                ConnectOptions {
                    timeout: Some(timeout),
                    services: Vec::new(),
                },
            )
            .await
            .map_err(ToolError::from)?;
        Ok(Json(ConnectionOut::from(&info)))
    }

    /// Disconnect from a device. Its subscriptions end.
    #[tool(annotations(
        title = "Disconnect a BLE device",
        read_only_hint = false,
        destructive_hint = false,
        idempotent_hint = true
    ))]
    async fn ble_disconnect(
        &self,
        Parameters(p): Parameters<DeviceParams>,
    ) -> Result<Json<DisconnectResult>, String> {
        let id = self.device_arg(&p.device)?;
        self.gateway
            .device(&id)
            .disconnect()
            .await
            .map_err(ToolError::from)?;
        Ok(Json(DisconnectResult {
            id: id.to_string(),
            disconnected: true,
        }))
    }

    /// List the open links: device, state, MTU, since when, RSSI and who holds the
    /// device exclusively (a web bridge session, for instance).
    #[tool(annotations(title = "List BLE connections", read_only_hint = true))]
    async fn ble_connections(&self) -> Result<Json<ConnectionsResult>, String> {
        let connections = self
            .visible_connections()
            .iter()
            .map(ConnectionOut::from)
            .collect();
        Ok(Json(ConnectionsResult { connections }))
    }

    /// Get detailed BLE connection state and activity (ble-mcp-test compatible): the
    /// most recently connected device's packet counts, plus every open link.
    #[tool(annotations(title = "Get connection state", read_only_hint = true))]
    async fn get_connection_state(&self) -> Result<Json<ConnectionStateResult>, String> {
        let connections = self.visible_connections();
        let newest = connections.iter().max_by_key(|c| c.connected_since);
        let (counts, last) = newest
            .map(|c| self.gateway.packet_log().device_activity(&c.id))
            .unwrap_or_default();
        let iso = |t| humantime::format_rfc3339_millis(t).to_string();
        Ok(Json(ConnectionStateResult {
            connected: newest.is_some(),
            device_name: newest.and_then(|c| c.name.clone()),
            device_id: newest.map(|c| c.id.to_string()),
            connected_at: newest.and_then(|c| c.connected_since).map(iso),
            last_activity: last.map(iso),
            packets_transmitted: counts.packets_transmitted,
            packets_received: counts.packets_received,
            connections: connections.iter().map(ConnectionOut::from).collect(),
        }))
    }
}

impl BleMcp {
    /// The open links of devices the caller may see.
    fn visible_connections(&self) -> Vec<crate::gateway::ConnectionInfo> {
        let mut connections = self.gateway.connections();
        connections.retain(|c| self.may_see(&c.id, c.name.as_deref()));
        connections
    }
}
