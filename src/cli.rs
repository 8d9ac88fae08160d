//! The command line: global flags and the subcommands. Flags override the config
//! file and `GATTWAY_*` variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{BackendKind, Config};

/// `gattway --version`: the version, the commit it was built from, and the radios
/// this build can drive.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("GATTWAY_GIT_COMMIT"),
    ")\nradios: sim (built-in simulated devices), native (btleplug: BlueZ, CoreBluetooth, WinRT), \
     esphome (ESPHome Bluetooth proxies)",
);

/// gattway: share this machine's Bluetooth LE adapter (or built-in simulated
/// devices) with AI assistants, web apps and IoT back ends.
///
/// Every config key can also be set with a GATTWAY_* environment variable
/// (e.g. GATTWAY_GATEWAY_MAX_CONNECTIONS=4); see README.md.
#[derive(Debug, Parser)]
#[command(name = "gattway", version, long_version = LONG_VERSION, about, long_about)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "GATTWAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Radio to use: sim (built-in simulated devices), native (this machine's
    /// adapter) or auto (native when an adapter exists, else sim). [default: auto]
    #[arg(long, global = true, value_enum)]
    pub backend: Option<BackendKind>,

    /// The Bluetooth adapter for the native backend, e.g. hci0. [env: GATTWAY_ADAPTER]
    /// [default: the first one found]
    #[arg(long, global = true, value_name = "NAME")]
    pub adapter: Option<String>,

    /// Log filter, e.g. info, debug, gattway=debug. Logs go to stderr. [default: info]
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Log format: auto (human on a terminal, JSON otherwise), text or json.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<crate::config::LogFormat>,

    /// Serve on a non-loopback address with no authentication (logged as a warning
    /// every minute). Same as auth.insecure_no_auth = true.
    #[arg(long, global = true)]
    pub insecure_no_auth: bool,

    /// Assistants may not write to devices (hides ble_write and
    /// ble_write_descriptor). Same as mcp.writes = "off".
    #[arg(long, global = true, conflicts_with = "mcp_allow_writes")]
    pub mcp_read_only: bool,

    /// Assistants may write to devices, on a real radio too. Same as mcp.writes = "on".
    #[arg(long, global = true)]
    pub mcp_allow_writes: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan for advertising devices and print them, strongest first.
    #[command(after_help = "Examples:\n  gattway --backend sim scan --timeout 2\n  \
                            gattway scan --service 180d --min-rssi -70 --json")]
    Scan(ScanArgs),
    /// Run the HTTP server: MCP over Streamable HTTP at /mcp, the bridge at /, the
    /// control WebSocket at /ws, REST at /api/v1, the device hub at /hub, /metrics.
    #[command(after_help = "Examples:\n  gattway --backend sim serve\n  \
                            GATTWAY_ESPHOME_LISTEN=127.0.0.1:6053 gattway serve   # also an ESPHome proxy\n  \
                            GATTWAY_MQTT_URL=mqtt://127.0.0.1:1883 gattway serve  # telemetry to MQTT")]
    Serve(ServeArgs),
    /// Serve MCP on stdin/stdout, for Claude Desktop, Claude Code, Cursor and VS Code.
    /// Logs go to stderr.
    #[command(after_help = "Example:\n  claude mcp add gattway -- /path/to/gattway --backend sim mcp")]
    Mcp,
    /// Mint credentials: a JWT signed with auth.jwt_secret, or (--api-key) a new API
    /// key with the line to add to the config.
    #[command(
        after_help = "Examples:\n  gattway token --api-key --subject ci --scope ble:read,ble:write\n  \
                            GATTWAY_AUTH_JWT_SECRET=… gattway token --subject claude --scope ble:read --ttl 8h"
    )]
    Token(TokenArgs),
    /// Check what a real radio needs (BlueZ running and its version, the D-Bus
    /// policy, each adapter present and powered, rfkill, this user's permission,
    /// the ports) and say what to do about what is wrong. Exits 1 when a check
    /// fails. Example: `gattway doctor`, or `gattway doctor --json` for scripts.
    Doctor {
        /// Print the checks as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Device profiles: check one you wrote before giving it to gattway
    /// (`mcp.profiles_dir`).
    #[command(
        subcommand,
        after_help = "Example:\n  gattway profile check profiles/my-sensor.toml"
    )]
    Profile(ProfileCommand),
    /// Print shell completions, e.g. `gattway completions bash >
    /// ~/.local/share/bash-completion/completions/gattway`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ProfileCommand {
    /// Validate a profile file and print what it matches (the rule, and which
    /// simulated devices fit it) and the commands it offers. Exits 1 when it is
    /// invalid.
    #[command(after_help = "Example:\n  gattway profile check profiles/my-sensor.toml")]
    Check {
        /// The profile's TOML file.
        file: std::path::PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// How long to scan, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    /// Only devices whose name starts with this.
    #[arg(long, value_name = "PREFIX")]
    pub name: Option<String>,
    /// Only devices advertising this service (16-, 32- or 128-bit UUID); repeatable.
    #[arg(long = "service", value_name = "UUID")]
    pub services: Vec<crate::ble::Uuid>,
    /// Only devices at least this strong (dBm, e.g. -70).
    #[arg(long, value_name = "DBM", allow_hyphen_values = true)]
    pub min_rssi: Option<i16>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Who the token is for (the JWT's `sub`, or the API key's name).
    #[arg(long, default_value = "gattway-client")]
    pub subject: String,
    /// Scopes, comma-separated: ble:read, ble:write, ble:admin, hub:device, hub:client.
    #[arg(long, value_delimiter = ',', default_value = "ble:read")]
    pub scope: Vec<String>,
    /// Devices it may use (ids or name prefixes), comma-separated; default: any.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Lifetime of a JWT, e.g. 1h, 30m, 7d.
    #[arg(long, default_value = "1h")]
    pub ttl: String,
    /// Print a new API key and its config line instead of a JWT.
    #[arg(long)]
    pub api_key: bool,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is
    /// logged). [env: GATTWAY_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// The hub's database: `sqlite://PATH` or `postgres://USER@HOST/DATABASE`.
    /// [env: GATTWAY_DATABASE]
    /// [default: gattway.db in $XDG_DATA_HOME/gattway, ~/.local/share/gattway, or the
    /// service's StateDirectory]
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
}

impl Cli {
    /// Applies the flags over a loaded configuration.
    pub fn apply(&self, config: &mut Config) {
        if let Some(b) = self.backend {
            config.backend = b;
        }
        if let Some(a) = &self.adapter {
            config.adapter = a.clone();
        }
        if let Some(l) = &self.log_level {
            config.log_level = l.clone();
        }
        if let Some(f) = self.log_format {
            config.log_format = f;
        }
        if let Command::Serve(args) = &self.command {
            if let Some(addr) = args.listen {
                config.listen = addr;
            }
            if let Some(url) = &args.database {
                config.database = url.clone();
            }
        }
        if self.insecure_no_auth {
            config.auth.insecure_no_auth = true;
        }
        if self.mcp_read_only {
            config.mcp.writes = crate::mcp::WritePolicy::Off;
        }
        if self.mcp_allow_writes {
            config.mcp.writes = crate::mcp::WritePolicy::On;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_override_config() {
        let cli = Cli::parse_from(["gattway", "--backend", "sim", "serve", "--listen", "127.0.0.1:0"]);
        let mut c = Config::default();
        cli.apply(&mut c);
        assert_eq!(c.backend, BackendKind::Sim);
        assert_eq!(c.listen.port(), 0);
    }

    #[test]
    fn scan_takes_filters() {
        let cli = Cli::parse_from([
            "gattway",
            "scan",
            "--service",
            "180d",
            "--min-rssi",
            "-70",
            "--json",
        ]);
        let Command::Scan(args) = cli.command else {
            panic!("not scan")
        };
        assert_eq!(args.services, vec![crate::ble::Uuid::from_u16(0x180d)]);
        assert_eq!(args.min_rssi, Some(-70));
        assert!(args.json);
    }
}
