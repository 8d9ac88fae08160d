//! The bridge's wire format, compatible with ble-mcp-test clients (its Web Bluetooth
//! mock and `NodeBleClient`): the connection's query parameters, the JSON messages
//! each way, and the close codes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ble::Uuid;

/// Close codes ble-mcp-test clients understand.
pub mod close {
    pub const DEVICE_NOT_FOUND: u16 = 4001;
    pub const GATT_CONNECTION_FAILED: u16 = 4002;
    pub const SERVICE_NOT_FOUND: u16 = 4003;
    pub const CHARACTERISTICS_NOT_FOUND: u16 = 4004;
    pub const DEVICE_DISCONNECTED: u16 = 4005;
    pub const CLEANUP_IN_PROGRESS: u16 = 4006;
    /// Standard "try again later": the device is held by another session.
    pub const BUSY: u16 = 1013;
    pub const NORMAL: u16 = 1000;
    /// Standard "message too big", for frames beyond the hard limit.
    pub const TOO_BIG: u16 = 1009;
}

/// What a client asks for when it opens the socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectParams {
    pub service: Uuid,
    pub write: Uuid,
    pub notify: Uuid,
    /// Name prefix (`device` or `deviceName`).
    pub device_name: Option<String>,
    pub device_id: Option<String>,
    /// Resume this session's BLE connection if it is still held.
    pub session: Option<String>,
    /// The `token` of the session's `connected` message: proves a resuming client
    /// is the one that opened it (`session_token=`). The credential that opened it
    /// proves the same.
    pub session_token: Option<String>,
    /// Take the device over from whoever holds it.
    pub force: bool,
    /// Connection timeout, milliseconds.
    pub timeout_ms: Option<u64>,
    /// The client's version marker; logged only.
    pub client_version: Option<String>,
}

pub const MISSING_PARAMS: &str = "Missing required parameters: service, write, notify";

impl ConnectParams {
    /// Parses the query string; the error is the text to send before closing.
    pub fn from_query(q: &HashMap<String, String>) -> Result<Self, String> {
        let get = |k: &str| q.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let (Some(service), Some(write), Some(notify)) = (get("service"), get("write"), get("notify")) else {
            return Err(MISSING_PARAMS.to_string());
        };
        let uuid = |name: &str, v: &str| -> Result<Uuid, String> {
            v.parse().map_err(|e| format!("Invalid {name} UUID: {e}"))
        };
        let timeout_ms = match get("timeout") {
            None => None,
            Some(t) => Some(
                t.parse::<u64>()
                    .map_err(|_| format!("Invalid timeout {t:?}: expected milliseconds"))?,
            ),
        };
        Ok(ConnectParams {
            service: uuid("service", service)?,
            write: uuid("write", write)?,
            notify: uuid("notify", notify)?,
            device_name: get("device").or(get("deviceName")).map(str::to_string),
            device_id: get("deviceId").map(str::to_string),
            session: get("session").map(str::to_string),
            session_token: get("session_token").map(str::to_string),
            force: get("force") == Some("true"),
            timeout_ms,
            client_version: get("_mv").map(str::to_string),
        })
    }
}

/// Client → server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Bytes to write to the `write` characteristic.
    Data {
        data: Vec<Value>,
    },
    /// The client is done with the device: release it now.
    Disconnect,
    /// Release this session's device now and confirm.
    Cleanup,
    Keepalive,
    /// Release a session by its token (or every session on this device).
    ForceCleanup {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        all_sessions: bool,
    },
    AdminCleanup {
        #[serde(default)]
        auth: Option<String>,
        #[serde(default)]
        action: Option<String>,
    },
    CheckPressure,
    Health,
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Connected {
        device: String,
        token: String,
    },
    Data {
        data: Vec<u8>,
    },
    Disconnected {
        reason: String,
    },
    Error {
        error: String,
        /// Machine-readable kind: `invalid_message`, `busy`, `write_failed`, ...
        code: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        blocking_session_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        device: Option<String>,
    },
    /// An interstitial notice; clients keep waiting for the outcome.
    Warning {
        warning: String,
    },
    EvictionWarning {
        grace_period_ms: u64,
        reason: String,
    },
    KeepaliveAck {
        timestamp: u64,
    },
    CleanupComplete {
        message: String,
    },
    ForceCleanupComplete {
        message: String,
    },
    AdminCleanupComplete {
        message: String,
        action: String,
    },
    PressureReport {
        sessions: usize,
        connected_devices: usize,
        leases: usize,
        radio_subscriptions: usize,
        resident_memory_bytes: Option<u64>,
    },
    Health {
        status: &'static str,
        timestamp: u64,
        session: String,
        state: String,
    },
}

impl ServerMessage {
    pub fn error(code: &'static str, error: impl Into<String>) -> Self {
        ServerMessage::Error {
            error: error.into(),
            code,
            blocking_session_id: None,
            device: None,
        }
    }
}

/// Parses the bytes of a `data` message: every element an integer 0..=255.
pub fn data_bytes(data: &[Value]) -> Result<Vec<u8>, String> {
    data.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_u64()
                .filter(|b| *b <= 255)
                .map(|b| b as u8)
                .ok_or_else(|| format!("data[{i}] = {v} is not a byte (an integer 0..255)"))
        })
        .collect()
}

/// Parses one text frame.
pub fn parse_client(text: &str) -> Result<ClientMessage, (&'static str, String)> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| ("invalid_message", format!("Invalid JSON: {e}")))?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    serde_json::from_value(value).map_err(|e| {
        if kind.is_empty() {
            ("invalid_message", "Message has no \"type\"".to_string())
        } else if e.to_string().contains("unknown variant") {
            ("unknown_type", format!("Unknown message type {kind:?}"))
        } else {
            ("invalid_message", format!("Invalid {kind} message: {e}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_the_connection_query() {
        let p = ConnectParams::from_query(&q(&[
            ("service", "9800"),
            ("write", "9900"),
            ("notify", "0000990100001000800000805f9b34fb"),
            ("device", "CS108"),
            ("force", "true"),
            ("timeout", "5000"),
            ("_mv", "0.7.0"),
        ]))
        .unwrap();
        assert_eq!(p.service, Uuid::from_u16(0x9800));
        assert_eq!(p.notify, Uuid::from_u16(0x9901));
        assert_eq!(p.device_name.as_deref(), Some("CS108"));
        assert!(p.force);
        assert_eq!(p.timeout_ms, Some(5000));
        assert_eq!(
            ConnectParams::from_query(&q(&[("service", "9800")])).unwrap_err(),
            MISSING_PARAMS
        );
        assert!(ConnectParams::from_query(&q(&[("service", "x"), ("write", "1"), ("notify", "2")])).is_err());
    }

    #[test]
    fn parses_messages_and_rejects_bad_ones() {
        assert_eq!(
            parse_client(r#"{"type":"data","data":[1,2,255]}"#).unwrap(),
            ClientMessage::Data {
                data: vec![1.into(), 2.into(), 255.into()]
            }
        );
        assert_eq!(
            parse_client(r#"{"type":"keepalive"}"#).unwrap(),
            ClientMessage::Keepalive
        );
        assert_eq!(parse_client("nope").unwrap_err().0, "invalid_message");
        assert_eq!(parse_client(r#"{"type":"dance"}"#).unwrap_err().0, "unknown_type");
        assert_eq!(parse_client(r#"{"data":[1]}"#).unwrap_err().0, "invalid_message");
        assert!(data_bytes(&[256.into()]).is_err());
        assert!(data_bytes(&[(-1).into()]).is_err());
        assert!(data_bytes(&["a".into()]).is_err());
        assert_eq!(data_bytes(&[0.into(), 255.into()]).unwrap(), vec![0, 255]);
    }

    #[test]
    fn server_messages_keep_the_wire_shape() {
        let s = serde_json::to_value(ServerMessage::Connected {
            device: "CS108Reader000001".into(),
            token: "t".into(),
        })
        .unwrap();
        assert_eq!(
            s,
            serde_json::json!({"type":"connected","device":"CS108Reader000001","token":"t"})
        );
        let e = serde_json::to_value(ServerMessage::EvictionWarning {
            grace_period_ms: 5000,
            reason: "idle".into(),
        })
        .unwrap();
        assert_eq!(e["type"], "eviction_warning");
        assert_eq!(e["grace_period_ms"], 5000);
    }
}
