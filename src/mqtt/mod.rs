//! MQTT export: the hub's telemetry to a broker, as `<base>/<device>/<key>`, with
//! Home Assistant discovery (one HA device per device, retained configs), the
//! gateway's availability with a last will, and commands from MQTT
//! (`<base>/<device>/command/<name>`, JSON params; off unless `mqtt.commands`)
//! routed as hub commands with their status published back. On the broker's side
//! Mosquitto or any MQTT 3.1.1 broker; on ours rumqttc.
//!
//! The broker is a trust boundary: anyone who may publish under the base topic
//! there may send commands, so commands are opt-in and, with authentication on,
//! run as one configured API key (`mqtt.command_principal`), whose scopes and
//! device list hold for them as on `/hub` and REST.
//!
//! The store is the buffer: the exporter follows the hub's commits by point id, so
//! a broker that is down loses nothing committed. On reconnect it replays, in
//! commit order, from the last point the broker acknowledged (QoS 1; at least
//! once). A backlog past `mqtt.max_backlog` points skips the oldest, counted.
//!
//! - `export.rs`: the session with the broker and the store-following loop.
//! - `discovery.rs`: what each key is in Home Assistant, and its config.
//! - `theengs.rs`: Theengs/OpenMQTTGateway-style JSON of each advertisement.
//! - `topic.rs`: device ids, keys and command names as topic levels (escaped).
//! - `tls.rs`: `mqtts://`, with the system's roots or `mqtt.ca_file`.

mod discovery;
mod export;
mod theengs;
mod topic;

use serde::{Deserialize, Serialize};

use crate::auth::{Authenticator, Principal, Scope};

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
    /// Commands from `<base_topic>/<device>/command/<name>` (off by default):
    /// whoever may publish there on the broker may command devices.
    pub commands: bool,
    /// With authentication on, the name of the `[[auth.api_keys]]` entry commands
    /// from MQTT run as: its scopes (`hub:client`, and `ble:write` for devices
    /// that are BLE feeds) and device list apply to each. Required when
    /// `commands` is on and authentication is configured.
    pub command_principal: String,
    /// Theengs/OpenMQTTGateway-style JSON of each decoded advertisement on
    /// `home/<theengs_gateway>/BTtoMQTT/<MAC>`; empty (the default): none.
    pub theengs_gateway: String,
    /// Points waiting for the broker (committed, not yet acknowledged) beyond which
    /// the oldest are skipped, and counted (`gattway_mqtt_dropped_total`).
    pub max_backlog: u64,
    /// The largest message payload, both ways: a point whose value is longer is
    /// not exported (counted in `gattway_mqtt_skipped_total`), and a longer
    /// command is refused by the client. Keep it within the broker's limit.
    pub max_payload_bytes: usize,
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
            commands: false,
            command_principal: String::new(),
            theengs_gateway: String::new(),
            max_backlog: 1_000_000,
            max_payload_bytes: 256 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MqttError {
    #[error("mqtt.url {0:?}: expected mqtt://host[:port] or mqtts://host[:port]")]
    Url(String),
    #[error("mqtt TLS: {0}")]
    Tls(String),
    #[error("mqtt.{key} {value:?}: a topic without wildcards (+, #), empty levels or NUL")]
    Topic { key: &'static str, value: String },
    #[error(
        "mqtt.commands is on and authentication is configured: set mqtt.command_principal to the \
         name of the [[auth.api_keys]] entry whose scopes and device list MQTT commands run under"
    )]
    NoPrincipal,
    #[error("mqtt.command_principal {0:?}: no [[auth.api_keys]] entry has this name")]
    UnknownPrincipal(String),
    #[error("mqtt.command_principal {0:?}: this API key lacks the hub:client scope commands need")]
    PrincipalScope(String),
    #[error("mqtt.max_payload_bytes {0}: 1 KiB to 256 MiB")]
    PayloadLimit(usize),
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
        let valid = |t: &str| !t.split('/').any(|l| l.is_empty() || l.contains(['+', '#', '\0']));
        for (key, value, may_be_empty) in [
            ("base_topic", &self.base_topic, false),
            ("discovery_prefix", &self.discovery_prefix, true),
            ("theengs_gateway", &self.theengs_gateway, true),
        ] {
            if !(valid(value) || (may_be_empty && value.is_empty())) {
                return Err(MqttError::Topic {
                    key,
                    value: value.clone(),
                });
            }
        }
        if !(1024..=256 * 1024 * 1024).contains(&self.max_payload_bytes) {
            return Err(MqttError::PayloadLimit(self.max_payload_bytes));
        }
        Ok(Some(Broker {
            host: host.to_string(),
            port,
            tls,
        }))
    }
}

impl MqttConfig {
    /// Whom commands from MQTT run as: `None` when they run unchecked (commands
    /// off, or no authentication configured, as `/hub` then is), else the
    /// principal of the API key `mqtt.command_principal` names.
    pub fn command_principal(&self, auth: &Authenticator) -> Result<Option<Principal>, MqttError> {
        let name = self.command_principal.trim();
        if !self.commands {
            return Ok(None);
        }
        if name.is_empty() {
            return match auth.enabled() {
                true => Err(MqttError::NoPrincipal),
                false => Ok(None),
            };
        }
        let principal = auth
            .api_key_principal(name)
            .ok_or_else(|| MqttError::UnknownPrincipal(name.to_string()))?;
        if !principal.has(Scope::HubClient) {
            return Err(MqttError::PrincipalScope(name.to_string()));
        }
        Ok(Some(principal))
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
        for base in ["a/#", "a/+/b", "", "a//b", "a/"] {
            let wild = MqttConfig {
                base_topic: base.into(),
                ..with("mqtt://x")
            };
            assert!(
                matches!(
                    wild.broker(),
                    Err(MqttError::Topic {
                        key: "base_topic",
                        ..
                    })
                ),
                "{base:?}"
            );
        }
        let theengs = MqttConfig {
            theengs_gateway: "gw/#".into(),
            ..with("mqtt://x")
        };
        assert!(matches!(theengs.broker(), Err(MqttError::Topic { .. })));
    }

    #[test]
    fn commands_are_off_by_default_and_run_as_a_named_key_when_auth_is_on() {
        use crate::auth::{sha256_hex, ApiKeyConfig, AuthConfig};
        let key = |name: &str, scopes: Vec<Scope>| ApiKeyConfig {
            name: name.into(),
            sha256: sha256_hex(name.as_bytes()),
            scopes,
            devices: vec!["door-*".into()],
        };
        let open = Authenticator::new(&AuthConfig::default()).unwrap();
        let auth = Authenticator::new(&AuthConfig {
            api_keys: vec![
                key("mqtt", vec![Scope::HubClient]),
                key("reader", vec![Scope::BleRead]),
            ],
            ..Default::default()
        })
        .unwrap();
        let config = MqttConfig::default();
        assert!(!config.commands);
        assert_eq!(config.command_principal(&auth), Ok(None), "off: nothing to check");
        let on = MqttConfig {
            commands: true,
            ..config
        };
        assert_eq!(
            on.command_principal(&open),
            Ok(None),
            "no auth: unchecked, as /hub"
        );
        assert_eq!(on.command_principal(&auth), Err(MqttError::NoPrincipal));
        let named = |name: &str| MqttConfig {
            command_principal: name.into(),
            ..on.clone()
        };
        let p = named("mqtt").command_principal(&auth).unwrap().unwrap();
        assert_eq!(p.subject, "mqtt");
        assert!(p.devices.admits("door-1", None) && !p.devices.admits("lock-1", None));
        assert_eq!(
            named("nobody").command_principal(&auth),
            Err(MqttError::UnknownPrincipal("nobody".into()))
        );
        assert_eq!(
            named("reader").command_principal(&auth),
            Err(MqttError::PrincipalScope("reader".into()))
        );
    }
}
