//! The MCP tools' wire shapes: parameters (with the JSON Schema an assistant reads)
//! and structured results. Handlers live in the tool-group files.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ble::decode::decode;
use crate::ble::names::company_name;
use crate::ble::{Characteristic, Service, Uuid};
use crate::gateway::serde_helpers::to_unix_ms;
use crate::gateway::{ConnectionInfo, DeviceInfo};

// ---------------------------------------------------------------- parameters

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ScanParams {
    /// Seconds to scan (default 5, at most 60).
    #[serde(default, deserialize_with = "super::lenient::number")]
    pub timeout: Option<f64>,
    /// Only devices whose advertised name starts with this (case-sensitive).
    pub name_prefix: Option<String>,
    /// Only devices advertising one of these services (16-bit like "180d" or 128-bit UUIDs).
    #[serde(default, deserialize_with = "super::lenient::string_list")]
    pub services: Option<Vec<String>>,
    /// Only devices at least this strong, in dBm (e.g. -70).
    #[serde(default, deserialize_with = "super::lenient::number")]
    pub min_rssi: Option<i16>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeviceParams {
    /// Device id (e.g. "C0:FF:EE:00:00:01") or a name prefix that matches one device.
    pub device: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ConnectParams {
    /// Device id (e.g. "C0:FF:EE:00:00:01") or a name prefix that matches one device.
    pub device: String,
    /// Seconds to wait for the connection, scanning included (default 10).
    #[serde(default, deserialize_with = "super::lenient::number")]
    pub timeout: Option<f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CharacteristicParams {
    /// Device id or a name prefix that matches one connected device.
    pub device: String,
    /// Service UUID, short ("180d") or long.
    pub service: String,
    /// Characteristic UUID, short ("2a37") or long.
    pub characteristic: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WriteParams {
    /// Device id or a name prefix that matches one connected device.
    pub device: String,
    /// Service UUID, short or long.
    pub service: String,
    /// Characteristic UUID, short or long.
    pub characteristic: String,
    /// Bytes to write as hex ("0a1bff"; spaces allowed). Give this or `text`.
    pub value: Option<String>,
    /// UTF-8 text to write. Give this or `value`.
    pub text: Option<String>,
    /// Ask the device to acknowledge (default: true when the characteristic supports it).
    #[serde(default, deserialize_with = "super::lenient::boolean")]
    pub with_response: Option<bool>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DescriptorParams {
    /// Device id or a name prefix that matches one connected device.
    pub device: String,
    /// Service UUID, short or long.
    pub service: String,
    /// Characteristic UUID, short or long.
    pub characteristic: String,
    /// Descriptor UUID, short ("2902") or long.
    pub descriptor: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WriteDescriptorParams {
    /// Device id or a name prefix that matches one connected device.
    pub device: String,
    /// Service UUID, short or long.
    pub service: String,
    /// Characteristic UUID, short or long.
    pub characteristic: String,
    /// Descriptor UUID, short ("2902") or long.
    pub descriptor: String,
    /// Bytes to write as hex ("0100" enables notifications via the CCCD). Give this or `text`.
    pub value: Option<String>,
    /// UTF-8 text to write. Give this or `value`.
    pub text: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct NotificationsParams {
    /// Return notifications after this cursor (the `cursor` of the previous call;
    /// 0 or absent: everything still buffered).
    #[serde(default, deserialize_with = "super::lenient::number")]
    pub cursor: Option<u64>,
    /// Seconds to wait when nothing has arrived yet (default 5, at most 60; 0 returns at once).
    #[serde(default, deserialize_with = "super::lenient::number")]
    pub timeout: Option<f64>,
    /// Most notifications to return (default 100, at most 1000).
    #[serde(default, deserialize_with = "super::lenient::number")]
    pub limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct GetLogsParams {
    /// Time filter: a duration (30s, 5m, 1h), an ISO timestamp, or 'last' (what
    /// arrived since this session's previous get_logs). Default 30s.
    pub since: Option<String>,
    /// Filter by 'TX'/'RX' or a hex pattern.
    pub filter: Option<String>,
    /// Maximum entries to return (1 to 1000, default 100).
    #[serde(default, deserialize_with = "super::lenient::number")]
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchPacketsParams {
    /// Hex pattern to search for (case insensitive, spaces optional).
    pub hex_pattern: String,
    /// Maximum results to return (1 to 1000, default 100).
    #[serde(default, deserialize_with = "super::lenient::number")]
    pub limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ScanDevicesParams {
    /// Scan duration in milliseconds (1000 to 30000, default 5000).
    #[serde(default, deserialize_with = "super::lenient::number")]
    pub duration: Option<u64>,
}

// ---------------------------------------------------------------- results

/// A UUID in both forms, with its standard name when known.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct UuidOut {
    /// Canonical lowercase 128-bit form.
    pub uuid: String,
    /// Shortest form ("180d" for SIG UUIDs).
    pub short: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl From<Uuid> for UuidOut {
    fn from(u: Uuid) -> Self {
        UuidOut {
            uuid: u.to_string(),
            short: u.short(),
            name: u.name().map(str::to_string),
        }
    }
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ManufacturerDataOut {
    pub company_id: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    /// Hex.
    pub data: String,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DeviceOut {
    pub id: String,
    pub name: Option<String>,
    /// dBm.
    pub rssi: i16,
    pub tx_power: Option<i16>,
    pub services: Vec<UuidOut>,
    pub manufacturer_data: Vec<ManufacturerDataOut>,
    /// The radio that hears it best (`rssi` is that radio's).
    pub radio: Option<String>,
    /// Service data: UUID → hex.
    pub service_data: std::collections::BTreeMap<String, String>,
    /// What the advertisement says in a format gattway reads (BTHome): `{key, value, unit}`.
    pub readings: Vec<serde_json::Value>,
}

impl From<&DeviceInfo> for DeviceOut {
    fn from(d: &DeviceInfo) -> Self {
        DeviceOut {
            id: d.id.to_string(),
            name: d.name.clone(),
            rssi: d.rssi,
            tx_power: d.tx_power,
            services: d.services.iter().copied().map(UuidOut::from).collect(),
            manufacturer_data: d
                .manufacturer_data
                .iter()
                .map(|(id, data)| ManufacturerDataOut {
                    company_id: *id,
                    company: company_name(*id).map(str::to_string),
                    data: hex::encode(data),
                })
                .collect(),
            radio: d.radio.clone(),
            service_data: (d.service_data.iter())
                .map(|(k, v)| (k.to_string(), hex::encode(v)))
                .collect(),
            readings: (d.readings.iter())
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ScanResult {
    /// Strongest first.
    pub devices: Vec<DeviceOut>,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ConnectionOut {
    pub id: String,
    pub name: Option<String>,
    /// connecting, connected, reconnecting or disconnected.
    pub state: String,
    /// Negotiated ATT MTU.
    pub mtu: u16,
    /// Milliseconds since the Unix epoch.
    pub connected_since_ms: Option<u64>,
    pub rssi: Option<i16>,
    /// Who holds the device exclusively (e.g. a bridge session), if anyone.
    pub lease_holder: Option<String>,
    /// The radio the link goes through.
    pub radio: Option<String>,
}

impl From<&ConnectionInfo> for ConnectionOut {
    fn from(c: &ConnectionInfo) -> Self {
        ConnectionOut {
            id: c.id.to_string(),
            name: c.name.clone(),
            state: serde_json::to_value(c.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            mtu: c.mtu,
            connected_since_ms: c.connected_since.map(to_unix_ms),
            rssi: c.rssi,
            lease_holder: c.lease_holder.clone(),
            radio: c.radio.clone(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ConnectionsResult {
    pub connections: Vec<ConnectionOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct DisconnectResult {
    pub id: String,
    pub disconnected: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CharacteristicOut {
    #[serde(flatten)]
    pub uuid: UuidOut,
    /// read, write, write_without_response, notify, indicate, broadcast.
    pub properties: Vec<String>,
    pub descriptors: Vec<UuidOut>,
}

impl From<&Characteristic> for CharacteristicOut {
    fn from(c: &Characteristic) -> Self {
        CharacteristicOut {
            uuid: c.uuid.into(),
            properties: c.props.names().into_iter().map(str::to_string).collect(),
            descriptors: c.descriptors.iter().map(|d| d.uuid.into()).collect(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ServiceOut {
    #[serde(flatten)]
    pub uuid: UuidOut,
    pub primary: bool,
    pub characteristics: Vec<CharacteristicOut>,
}

impl From<&Service> for ServiceOut {
    fn from(s: &Service) -> Self {
        ServiceOut {
            uuid: s.uuid.into(),
            primary: s.primary,
            characteristics: s.characteristics.iter().map(CharacteristicOut::from).collect(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ServicesResult {
    pub device: String,
    pub services: Vec<ServiceOut>,
}

/// A value as bytes, text and (for standard characteristics) decoded with units.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ValueOut {
    pub hex: String,
    /// The bytes as UTF-8 when they are printable text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The decoded value (number, string or object) for standard characteristics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decoded: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The decoded value in words, e.g. "72 bpm (sensor contact)".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl ValueOut {
    pub fn new(characteristic: Uuid, bytes: &[u8]) -> Self {
        let decoded = decode(characteristic, bytes);
        let text = std::str::from_utf8(bytes)
            .ok()
            .filter(|s| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| !c.is_control() || c == '\n' || c == '\r' || c == '\t')
            })
            .map(str::to_string);
        ValueOut {
            hex: hex::encode(bytes),
            text,
            unit: decoded.as_ref().and_then(|d| d.unit.map(str::to_string)),
            display: decoded.as_ref().map(|d| d.text.clone()),
            decoded: decoded.map(|d| d.value),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReadResult {
    pub device: String,
    pub service: UuidOut,
    pub characteristic: UuidOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<UuidOut>,
    #[serde(flatten)]
    pub value: ValueOut,
}

impl ReadResult {
    /// A value read from a characteristic, or from one of its descriptors.
    pub fn new(
        device: &crate::ble::DeviceId,
        service: Uuid,
        characteristic: Uuid,
        descriptor: Option<Uuid>,
        bytes: &[u8],
    ) -> Self {
        ReadResult {
            device: device.to_string(),
            service: service.into(),
            characteristic: characteristic.into(),
            descriptor: descriptor.map(UuidOut::from),
            value: ValueOut::new(descriptor.unwrap_or(characteristic), bytes),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WriteResult {
    pub device: String,
    pub characteristic: UuidOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<UuidOut>,
    pub bytes_written: usize,
    pub with_response: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SubscribeResult {
    pub device: String,
    pub characteristic: UuidOut,
    pub subscribed: bool,
    /// Pass to ble_notifications to get what arrives from now on.
    pub cursor: u64,
}

#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct NotificationOut {
    /// Position in this session's notification buffer.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub device: String,
    pub service: String,
    pub characteristic: UuidOut,
    #[serde(flatten)]
    pub value: ValueOut,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct NotificationsResult {
    pub notifications: Vec<NotificationOut>,
    /// Pass back as `cursor` next time.
    pub cursor: u64,
    /// Notifications that arrived after your cursor but were dropped before you
    /// read them (the buffer is bounded): poll more often or subscribe to less.
    pub dropped: u64,
    /// Characteristics this session is subscribed to, as "device/characteristic".
    pub subscriptions: Vec<String>,
}

/// One packet-log entry, as the ble-mcp-test tools print them.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct LogEntryOut {
    pub id: u64,
    /// ISO 8601.
    pub timestamp: String,
    /// TX (to the device) or RX (from it).
    pub direction: String,
    /// Upper-case hex bytes separated by spaces.
    pub hex: String,
    pub size: usize,
    pub device: String,
    pub characteristic: String,
}

impl From<&crate::gateway::packet_log::PacketEntry> for LogEntryOut {
    fn from(e: &crate::gateway::packet_log::PacketEntry) -> Self {
        LogEntryOut {
            id: e.seq,
            timestamp: humantime::format_rfc3339_millis(e.at).to_string(),
            direction: match e.direction {
                crate::gateway::packet_log::Direction::Tx => "TX".into(),
                crate::gateway::packet_log::Direction::Rx => "RX".into(),
            },
            hex: e.spaced_hex(),
            size: e.data.len(),
            device: e.device.to_string(),
            characteristic: e.characteristic.short(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LogsResult {
    pub logs: Vec<LogEntryOut>,
    pub count: usize,
    pub truncated: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchResult {
    pub matches: Vec<LogEntryOut>,
    pub count: usize,
    pub pattern: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ConnectionStateResult {
    pub connected: bool,
    #[serde(rename = "deviceName", skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    #[serde(rename = "deviceId", skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// ISO 8601.
    #[serde(rename = "connectedAt", skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<String>,
    /// ISO 8601 time of the device's newest packet.
    #[serde(rename = "lastActivity", skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<String>,
    #[serde(rename = "packetsTransmitted")]
    pub packets_transmitted: u64,
    #[serde(rename = "packetsReceived")]
    pub packets_received: u64,
    /// Every open link (gattway shares several devices at once).
    pub connections: Vec<ConnectionOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct StatusResult {
    pub version: String,
    /// Seconds.
    pub uptime: f64,
    pub backend: String,
    /// This session's transport: stdio or http.
    pub transport: String,
    /// Whether write tools are enabled for assistants.
    pub writes_enabled: bool,
    /// Characteristics writes are limited to (empty: any).
    pub write_allow_list: Vec<String>,
    #[serde(rename = "logBufferSize")]
    pub log_buffer_size: usize,
    pub connected_devices: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct MetricsResult {
    pub uptime_seconds: f64,
    pub connected_devices: usize,
    pub device_tasks: usize,
    pub radio_subscriptions: usize,
    pub subscribers: usize,
    pub leases: usize,
    pub packets_transmitted: u64,
    pub packets_received: u64,
    pub bytes_transmitted: u64,
    pub bytes_received: u64,
    /// Tool calls this MCP session made, by tool.
    pub session_tool_calls: std::collections::BTreeMap<String, u64>,
}
