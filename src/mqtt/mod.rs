//! MQTT export: the hub's telemetry to a broker, as `<base>/<device>/<key>`, with
//! Home Assistant discovery (one HA device per device, retained configs), the
//! gateway's availability with a last will, and commands from MQTT
//! (`<base>/<device>/command/<name>`, JSON params) routed as hub commands with
//! their status published back. On the broker's side Mosquitto or any MQTT 3.1.1
//! broker; on ours rumqttc.
//!
//! The store is the buffer: the exporter follows the hub's commits by point id, so
//! a broker that is down loses nothing committed. On reconnect it replays, in
//! commit order, from the last point the broker acknowledged (QoS 1; at least
//! once). A backlog past `mqtt.max_backlog` points skips the oldest, counted.
//!
//! - `export.rs`: the session with the broker and the store-following loop.
//! - `discovery.rs`: what each key is in Home Assistant, and its config.
//! - `theengs.rs`: Theengs/OpenMQTTGateway-style JSON of each advertisement.
//! - `tls.rs`: `mqtts://`, with the system's roots or `mqtt.ca_file`.

mod discovery;
mod export;
mod theengs;

use serde::{Deserialize, Serialize};

pub use export::spawn;

/// `[mqtt]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:1883`, or `mqtts://host:8883` for TLS; empty (the default): no
    /// export. `GATTWAY_MQTT_URL`.
    pub url: String,
    /// With `mqtts://`: the CA certificate(s) that sign the broker's, PEM; empty:
    /// the system's roots.
    pub ca_file: String,
    pub username: String,
    pub password: String,
    /// The client id at the broker (one session per id).
    pub client_id: String,
    /// Telemetry goes to `<base_topic>/<device>/<key>`.
    pub base_topic: String,
    /// Home Assistant discovery, under this prefix; empty: none.
    pub discovery_prefix: String,
    /// Commands from `<base_topic>/<device>/command/<name>`.
    pub commands: bool,
    /// Theengs/OpenMQTTGateway-style JSON of each decoded advertisement on
    /// `home/<theengs_gateway>/BTtoMQTT/<MAC>`; empty (the default): none.
    pub theengs_gateway: String,
    /// Points waiting for the broker (committed, not yet acknowledged) beyond which
    /// the oldest are skipped, and counted (`gattway_mqtt_dropped_total`).
    pub max_backlog: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: String::new(),
            ca_file: String::new(),
            username: String::new(),
            password: String::new(),
            client_id: "gattway".into(),
            base_topic: "gattway".into(),
            discovery_prefix: "homeassistant".into(),
            commands: true,
            theengs_gateway: String::new(),
            max_backlog: 1_000_000,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MqttError {
    #[error("mqtt.url {0:?}: expected mqtt://host[:port] or mqtts://host[:port]")]
    Url(String),
    #[error("mqtt TLS: {0}")]
    Tls(String),
    #[error("mqtt.base_topic {0:?}: a topic without wildcards (+, #), not empty")]
    Topic(String),
}

impl MqttConfig {
    /// The broker: host, port and whether it speaks TLS; `None` when export is off.
    pub fn broker(&self) -> Result<Option<Broker>, MqttError> {
        let url = self.url.trim();
        if url.is_empty() {
            return Ok(None);
        }
        let bad = || MqttError::Url(self.url.clone());
        let (rest, tls) = match url.split_once("://") {
            Some(("mqtt" | "tcp", rest)) => (rest, false),
            Some(("mqtts" | "ssl", rest)) => (rest, true),
            _ => return Err(bad()),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() || host.contains(['/', '@', '?']) {
            return Err(bad());
        }
        let base = &self.base_topic;
        if base.is_empty() || base.contains(['+', '#']) {
            return Err(MqttError::Topic(base.clone()));
        }
        Ok(Some(Broker {
            host: host.to_string(),
            port,
            tls,
        }))
    }
}

/// Where the broker is.
#[derive(Clone, Debug, PartialEq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_are_checked() {
        let with = |url: &str| MqttConfig {
            url: url.into(),
            ..Default::default()
        };
        let broker = |host: &str, port, tls| {
            Ok(Some(Broker {
                host: host.into(),
                port,
                tls,
            }))
        };
        assert_eq!(MqttConfig::default().broker(), Ok(None));
        assert_eq!(
            with("mqtt://127.0.0.1:1883").broker(),
            broker("127.0.0.1", 1883, false)
        );
        assert_eq!(
            with("mqtt://broker.lan").broker(),
            broker("broker.lan", 1883, false)
        );
        assert_eq!(
            with("mqtts://broker.lan").broker(),
            broker("broker.lan", 8883, true)
        );
        assert!(matches!(with("http://x").broker(), Err(MqttError::Url(_))));
        assert!(matches!(
            with("mqtt://x:notaport").broker(),
            Err(MqttError::Url(_))
        ));
        let wild = MqttConfig {
            base_topic: "a/#".into(),
            ..with("mqtt://x")
        };
        assert!(matches!(wild.broker(), Err(MqttError::Topic(_))));
    }
}
