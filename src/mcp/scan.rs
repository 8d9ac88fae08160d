//! Finding devices: `ble_scan` (with progress notifications while it runs) and the
//! ble-mcp-test compatible `scan_devices`.

use std::time::Duration;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ProgressNotificationParam, RequestMetaObject};
use rmcp::{tool, tool_router, Json, Peer, RoleServer};

use super::error::{seconds_arg, uuid_arg, ToolError};
use super::types::{DeviceOut, ScanDevicesParams, ScanParams, ScanResult};
use super::BleMcp;
use crate::ble::ScanFilter;

#[tool_router(router = scan_router, vis = "pub(super)")]
impl BleMcp {
    /// Scan for advertising Bluetooth LE devices. Returns them strongest first with
    /// id, name, RSSI, advertised services and manufacturer data. Sends progress
    /// notifications as devices are found. Use an `id` (or a name prefix) from the
    /// result with ble_connect.
    #[tool(annotations(title = "Scan for BLE devices", read_only_hint = true, open_world_hint = true))]
    async fn ble_scan(
        &self,
        Parameters(p): Parameters<ScanParams>,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<Json<ScanResult>, String> {
        let duration = seconds_arg("timeout", p.timeout, 5.0, 60.0)?;
        let services = p
            .services
            .unwrap_or_default()
            .iter()
            .map(|s| uuid_arg("services", s))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = ScanFilter {
            name_prefix: p.name_prefix,
            services,
            min_rssi: p.min_rssi,
        };
        let mut scan = self
            .gateway
            .scan(filter, duration)
            .await
            .map_err(ToolError::from)?;
        let token = meta.get_progress_token();
        let mut found = 0u32;
        while let Some(device) = scan.next().await {
            if !self.may_see(&device.id, device.name.as_deref()) {
                continue;
            }
            found += 1;
            if let Some(token) = &token {
                let message = format!(
                    "found {} ({}, {} dBm)",
                    device.name.as_deref().unwrap_or("unnamed"),
                    device.id,
                    device.rssi
                );
                let _ = peer
                    .notify_progress(
                        ProgressNotificationParam::new(token.clone(), found as f64).with_message(message),
                    )
                    .await;
            }
        }
        let devices = scan
            .results()
            .iter()
            .filter(|d| self.may_see(&d.id, d.name.as_deref()))
            .map(DeviceOut::from)
            .collect();
        Ok(Json(ScanResult { devices }))
    }

    /// Scan for nearby BLE devices for `duration` milliseconds (ble-mcp-test
    /// compatible; ble_scan has filters and progress).
    #[tool(annotations(
        title = "Scan for BLE devices (ble-mcp-test)",
        read_only_hint = true,
        open_world_hint = true
    ))]
    async fn scan_devices(
        &self,
        Parameters(p): Parameters<ScanDevicesParams>,
    ) -> Result<Json<ScanResult>, String> {
        let ms = p.duration.unwrap_or(5000).clamp(1000, 30_000);
        let devices = self
            .gateway
            .scan(ScanFilter::default(), Duration::from_millis(ms))
            .await
            .map_err(ToolError::from)?
            .collect()
            .await
            .iter()
            .filter(|d| self.may_see(&d.id, d.name.as_deref()))
            .map(DeviceOut::from)
            .collect();
        Ok(Json(ScanResult { devices }))
    }
}
