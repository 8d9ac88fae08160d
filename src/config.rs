//! The one configuration: defaults, then a TOML file, then `GATTWAY_*` environment
//! variables, then command-line flags, each overriding the one before.
//!
//! Every key of the file has a variable: `GATTWAY_` + the key's path joined by `_`,
//! upper-cased: `listen` → `GATTWAY_LISTEN`, `gateway.max_connections` →
//! `GATTWAY_GATEWAY_MAX_CONNECTIONS`, `sim.time_scale` → `GATTWAY_SIM_TIME_SCALE`.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::auth::AuthConfig;
use crate::ble::sim::SimConfig;
pub use crate::ble::BackendKind;
use crate::bridge::BridgeConfig;
use crate::control::ControlConfig;
use crate::gateway::GatewayConfig;
use crate::http::HttpConfig;
use crate::hub::HubConfig;
use crate::mcp::McpConfig;

/// How logs are written (to stderr).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on. Loopback by default: exposing the radio
    /// to a network is a decision, not a default.
    pub listen: SocketAddr,
    pub backend: BackendKind,
    /// The native adapter to use ("hci0"); empty: the first one found.
    pub adapter: String,
    /// A tracing filter: `info`, `debug`, `gattway=debug,tower=warn`.
    pub log_level: String,
    /// `auto` (human on a terminal, JSON otherwise), `text` or `json`.
    pub log_format: LogFormat,
    /// What the HTTP door lets in, for every front end: allowed `Host` names and
    /// browser origins, connection limits.
    pub http: HttpConfig,
    /// How every WebSocket talks on the wire: permessage-deflate, its threshold,
    /// level and context takeover (`[websocket]`).
    pub websocket: crate::http::ws::WebSocketConfig,
    pub gateway: GatewayConfig,
    pub sim: SimConfig,
    pub mcp: McpConfig,
    pub bridge: BridgeConfig,
    pub control: ControlConfig,
    pub auth: AuthConfig,
    /// Where the hub stores telemetry and commands: `sqlite://PATH` (created when
    /// missing) or `postgres://USER@HOST/DATABASE` (an existing database; several
    /// instances may share it). `--database`, `GATTWAY_DATABASE`. Empty (the default): `gattway.db`
    /// in the data directory ([`data_dir`]).
    pub database: String,
    pub hub: HubConfig,
    /// Several instances as one hub: `cluster.nats`, `cluster.name`.
    pub cluster: crate::cluster::ClusterConfig,
    /// Several radios at once (`[[radios]]`, file only); empty: one radio from
    /// `backend` and `adapter`.
    pub radios: Vec<crate::ble::RadioConfig>,
    /// Keys of devices that encrypt their BTHome adverts (`[[bthome.keys]]`, file only).
    pub bthome: crate::adverts::DeviceKeys,
    /// Bindkeys of Xiaomi devices that encrypt their MiBeacons (`[[xiaomi.keys]]`,
    /// file only).
    pub xiaomi: crate::adverts::DeviceKeys,
    /// Serving this machine's radios as an ESPHome Bluetooth proxy (`[esphome]`).
    pub esphome: crate::esphome_proxy::EsphomeConfig,
    /// The hub's telemetry to an MQTT broker, with Home Assistant discovery (`[mqtt]`).
    pub mqtt: crate::mqtt::MqttConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            backend: BackendKind::Auto,
            adapter: String::new(),
            log_level: "info".into(),
            log_format: LogFormat::Auto,
            http: HttpConfig::default(),
            websocket: Default::default(),
            gateway: GatewayConfig::default(),
            sim: SimConfig::default(),
            mcp: McpConfig::default(),
            bridge: BridgeConfig::default(),
            control: ControlConfig::default(),
            auth: AuthConfig::default(),
            database: String::new(),
            hub: HubConfig::default(),
            cluster: Default::default(),
            radios: Vec::new(),
            bthome: Default::default(),
            xiaomi: Default::default(),
            esphome: Default::default(),
            mqtt: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {var}={value:?}: expected {expected}")]
    Env {
        var: String,
        value: String,
        expected: &'static str,
    },
    #[error("configuration: {0}")]
    Invalid(String),
}

/// The loaded configuration and the `GATTWAY_*` variables that named no key (worth
/// a warning: likely a typo).
pub struct Loaded {
    pub config: Config,
    pub unknown_env: Vec<String>,
}

/// `GATTWAY_*` variables that are not config keys: the config file's path, and the
/// build's commit, which cargo also puts in the environment of what it runs
/// (`cargo run`, `cargo test`).
const NON_KEY_VARS: &[&str] = &["GATTWAY_CONFIG", "GATTWAY_GIT_COMMIT"];

/// Where gattway keeps its data when `database` names no place: systemd's
/// `$STATE_DIRECTORY` (the service's `StateDirectory=`, /var/lib/gattway), else
/// `$XDG_DATA_HOME/gattway`, else `~/.local/share/gattway`. Never the directory
/// gattway happens to be started from.
pub fn data_dir(var: impl Fn(&str) -> Option<String>) -> Option<std::path::PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if let Some(state) = set("STATE_DIRECTORY") {
        // systemd lists several directories colon-separated; the first is ours.
        return state.split(':').next().map(std::path::PathBuf::from);
    }
    if let Some(data) = set("XDG_DATA_HOME") {
        return Some(std::path::Path::new(&data).join("gattway"));
    }
    set("HOME").map(|home| std::path::Path::new(&home).join(".local/share/gattway"))
}

impl Config {
    /// The hub's database URL: `database`, or `gattway.db` in the data directory
    /// (made when missing).
    pub fn database_url(&self) -> Result<String, ConfigError> {
        if !self.database.trim().is_empty() {
            return Ok(self.database.clone());
        }
        let dir = data_dir(|name| std::env::var(name).ok()).ok_or_else(|| {
            ConfigError::Invalid("no data directory (HOME is not set): give --database sqlite://PATH".into())
        })?;
        std::fs::create_dir_all(&dir).map_err(|e| {
            ConfigError::Invalid(format!("cannot make the data directory {}: {e}", dir.display()))
        })?;
        Ok(format!("sqlite://{}", dir.join("gattway.db").display()))
    }

    /// Refuses to expose the radio: a non-loopback listen address needs
    /// authentication configured, or an explicit `insecure_no_auth`.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        let exposed = !self.listen.ip().is_loopback();
        let auth = crate::auth::Authenticator::new(&self.auth).map_err(ConfigError::Invalid)?;
        if exposed && !auth.enabled() && !self.auth.insecure_no_auth {
            return Err(ConfigError::Invalid(format!(
                "refusing to listen on {} with no authentication: anyone on the network could drive this \
                 machine's Bluetooth radio. Configure auth.api_keys or auth.jwt_secret (see `gattway token`), \
                 listen on 127.0.0.1, or pass --insecure-no-auth if you really mean it",
                self.listen
            )));
        }
        Ok(())
    }
}

/// Keys that moved to `[http]` (one allow-list for every front end) get a word
/// saying where they went, beside the parser's "unknown field".
fn moved_keys_hint(message: String) -> String {
    let moved = message.contains("unknown field `allowed_origins`")
        || message.contains("unknown field `allowed_hosts`");
    if moved {
        format!(
            "{message}\n(allowed_hosts and allowed_origins moved to the [http] table, for every front end)"
        )
    } else {
        message
    }
}

impl Config {
    /// Defaults ← file ← environment. Flags are applied by the caller afterwards.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let mut value = toml::Value::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(format!("defaults do not serialise: {e}")))?;
        let path_str = || file.map(|p| p.display().to_string()).unwrap_or_default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path_str(),
                source,
            })?;
            let overlay: toml::Value = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path_str(),
                message: e.to_string(),
            })?;
            merge(&mut value, overlay);
        }
        let mut unknown_env = Vec::new();
        let mut leaves = Vec::new();
        collect_leaves(&value, &mut Vec::new(), &mut leaves);
        for (var, raw) in env {
            if !var.starts_with("GATTWAY_") || NON_KEY_VARS.contains(&var.as_str()) {
                continue;
            }
            match leaves.iter().find(|(name, _)| *name == var) {
                Some((_, path)) => set_leaf(&mut value, path, &var, &raw)?,
                None => unknown_env.push(var),
            }
        }
        let config: Config = value
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: if file.is_some() {
                    path_str()
                } else {
                    "(environment)".into()
                },
                message: moved_keys_hint(e.to_string()),
            })?;
        config.validate()?;
        Ok(Loaded { config, unknown_env })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.gateway.validate().map_err(ConfigError::Invalid)?;
        self.hub.validate().map_err(ConfigError::Invalid)?;
        self.websocket.validate().map_err(ConfigError::Invalid)?;
        self.cluster.validate().map_err(ConfigError::Invalid)?;
        let auth = crate::auth::Authenticator::new(&self.auth).map_err(ConfigError::Invalid)?;
        self.mqtt
            .command_principal(&auth)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for d in &self.sim.devices {
            d.validate().map_err(ConfigError::Invalid)?;
        }
        self.esphome
            .listen_addr()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        self.mqtt
            .broker()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(())
    }
}

fn merge(base: &mut toml::Value, overlay: toml::Value) {
    match (base, overlay) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Every scalar leaf as (variable name, key path).
fn collect_leaves(v: &toml::Value, path: &mut Vec<String>, out: &mut Vec<(String, Vec<String>)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, child) in t {
                path.push(k.clone());
                collect_leaves(child, path, out);
                path.pop();
            }
        }
        toml::Value::Array(_) => {}
        _ => out.push((format!("GATTWAY_{}", path.join("_").to_uppercase()), path.clone())),
    }
}

fn set_leaf(root: &mut toml::Value, path: &[String], var: &str, raw: &str) -> Result<(), ConfigError> {
    let mut cur = root;
    for key in path {
        // collect_leaves found this path in this very tree.
        let Some(next) = cur.get_mut(key.as_str()) else {
            return Err(ConfigError::Invalid(format!("{var} names no key")));
        };
        cur = next;
    }
    let bad = |expected| ConfigError::Env {
        var: var.to_string(),
        value: raw.to_string(),
        expected,
    };
    *cur = match cur {
        toml::Value::Integer(_) => toml::Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?),
        toml::Value::Float(_) => toml::Value::Float(raw.trim().parse().map_err(|_| bad("a number"))?),
        toml::Value::Boolean(_) => toml::Value::Boolean(match raw.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => return Err(bad("true or false")),
        }),
        _ => toml::Value::String(raw.to_string()),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let dir = std::env::temp_dir().join(format!("gattway-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("g.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\n[gateway]\nmax_connections = 3\nop_timeout_ms = 500\n[sim]\ntime_scale = 10.0\n",
        )
        .unwrap();
        let loaded = Config::load(
            Some(&file),
            env(&[
                ("GATTWAY_GATEWAY_MAX_CONNECTIONS", "5"),
                ("GATTWAY_SIM_BUILTIN", "false"),
                ("GATTWAY_BACKEND", "sim"),
                ("GATTWAY_TYPO", "1"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        let c = loaded.config;
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.gateway.max_connections, 5, "env beats file");
        assert_eq!(c.gateway.op_timeout_ms, 500, "file beats default");
        assert_eq!(
            c.gateway.connect_retries,
            GatewayConfig::default().connect_retries
        );
        assert!(!c.sim.builtin);
        assert_eq!(c.sim.time_scale, 10.0);
        assert_eq!(c.backend, BackendKind::Sim);
        assert_eq!(loaded.unknown_env, vec!["GATTWAY_TYPO".to_string()]);
    }

    #[test]
    fn bad_values_are_named() {
        let e = Config::load(None, env(&[("GATTWAY_GATEWAY_MAX_CONNECTIONS", "many")]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("GATTWAY_GATEWAY_MAX_CONNECTIONS"), "{e}");
        let e = Config::load(None, env(&[("GATTWAY_BACKEND", "bluetooth")]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("backend"), "{e}");
        let e = Config::load(None, env(&[("GATTWAY_GATEWAY_MAX_CONNECTIONS", "0")]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("max_connections"), "{e}");
    }

    #[test]
    fn a_moved_allow_list_says_where_it_went() {
        let path = std::env::temp_dir().join(format!("gattway-old-{}.toml", std::process::id()));
        std::fs::write(&path, "[bridge]\nallowed_origins = [\"https://app.example\"]\n").unwrap();
        let e = Config::load(Some(&path), env(&[])).err().unwrap().to_string();
        let _ = std::fs::remove_file(&path);
        assert!(e.contains("allowed_origins") && e.contains("[http]"), "{e}");
    }

    #[test]
    fn the_data_directory_is_the_services_then_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let dir = |pairs| data_dir(env(pairs)).map(|p| p.display().to_string());
        assert_eq!(
            dir(&[("STATE_DIRECTORY", "/var/lib/gattway:/x"), ("HOME", "/home/a")]).as_deref(),
            Some("/var/lib/gattway")
        );
        assert_eq!(
            dir(&[("XDG_DATA_HOME", "/d"), ("HOME", "/home/a")]).as_deref(),
            Some("/d/gattway")
        );
        assert_eq!(
            dir(&[("HOME", "/home/a")]).as_deref(),
            Some("/home/a/.local/share/gattway")
        );
        assert_eq!(dir(&[]), None);
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = std::env::temp_dir().join(format!("gattway-config-typo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("g.toml");
        std::fs::write(&file, "[gateway]\nmax_conections = 3\n").unwrap();
        let e = Config::load(Some(&file), env(&[])).err().unwrap();
        assert!(e.to_string().contains("max_conections"), "{e}");
    }

    #[test]
    fn simulated_devices_come_from_the_file() {
        let dir = std::env::temp_dir().join(format!("gattway-config-dev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("g.toml");
        std::fs::write(
            &file,
            r#"
[[sim.devices]]
name = "Probe"
address = "AA:BB:CC:00:00:01"
[[sim.devices.services]]
uuid = "181a"
[[sim.devices.services.characteristics]]
uuid = "2a6e"
properties = ["read", "notify"]
value = "3408"
generator = { kind = "temperature", period_ms = 500 }
"#,
        )
        .unwrap();
        let c = Config::load(Some(&file), env(&[])).unwrap().config;
        assert_eq!(c.sim.devices.len(), 1);
        assert_eq!(
            c.sim.devices[0].services[0].characteristics[0]
                .initial_value()
                .unwrap(),
            vec![0x34, 0x08]
        );
    }
}
