//! The `gattway` binary as a user runs it: started with arguments and environment,
//! its stderr read line by line for what it says it is doing.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Reads stderr lines until one contains `needle`; returns it. Fails after 20 s.
pub async fn wait_for_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    needle: &str,
) -> String {
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(needle) {
                return line;
            }
        }
        panic!("stderr ended before {needle:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} within 20 s"))
}

pub type StderrLines = tokio::io::Lines<BufReader<tokio::process::ChildStderr>>;

/// Starts `gattway ARGS` with stderr piped for reading.
pub fn spawn_reading_stderr(args: &[&str]) -> (tokio::process::Child, StderrLines) {
    let mut command = gattway();
    command.args(args);
    reading_stderr(command)
}

/// Starts `command` (a [`gattway`] with its own arguments and environment) with
/// stderr piped for reading.
pub fn reading_stderr(mut command: Command) -> (tokio::process::Child, StderrLines) {
    let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    (child, lines)
}

/// The address in a "listening on http://ADDR" line.
pub fn listening_addr(line: &str) -> String {
    let rest = line.split("listening on http://").nth(1).expect("listening line");
    rest.split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('"')
        .to_string()
}

/// The JSON body of a GET.
pub async fn get_json(url: &str) -> serde_json::Value {
    let resp = reqwest::get(url).await.unwrap();
    resp.json().await.unwrap()
}

pub fn gattway() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gattway"));
    c.env_remove("GATTWAY_CONFIG")
        .env("GATTWAY_SIM_TIME_SCALE", "10")
        .env("GATTWAY_DATABASE", "sqlite::memory:")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// `gattway serve` on the simulator (time scale 20, port 0) with a config file of
/// this text, as an operator runs it; stopped when dropped.
pub struct Served {
    pub child: tokio::process::Child,
    pub lines: StderrLines,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub config: std::path::PathBuf,
    _dir: super::TempDir,
}

pub async fn serve_with_config(config_text: &str) -> Served {
    let dir = super::TempDir::new();
    let config = dir.path.join("gattway.toml");
    std::fs::write(&config, config_text).unwrap();
    let mut command = gattway();
    command
        .arg("--config")
        .arg(&config)
        .args(["--backend", "sim", "serve", "--listen", "127.0.0.1:0"])
        .env("GATTWAY_SIM_TIME_SCALE", "20");
    let (child, mut lines) = reading_stderr(command);
    let base = format!(
        "http://{}",
        listening_addr(&wait_for_line(&mut lines, "listening on http://").await)
    );
    Served {
        child,
        lines,
        base,
        config,
        _dir: dir,
    }
}

impl Served {
    /// A JWT from `gattway token` with the server's config (its secret, audience).
    pub async fn token(&self, subject: &str, scopes: &str) -> String {
        let out = gattway()
            .arg("--config")
            .arg(&self.config)
            .args(["token", "--subject", subject, "--scope", scopes, "--ttl", "10m"])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// `gattway serve` on the simulator with the hub's simulator and advert feeds off,
/// listening on `listen` (`127.0.0.1:0` for any port), text logs; the store is the
/// caller's to choose.
pub fn hub_server_command(listen: &str) -> Command {
    let mut command = gattway();
    command
        .args([
            "--backend",
            "sim",
            "--log-format",
            "text",
            "serve",
            "--listen",
            listen,
        ])
        .env("GATTWAY_HUB_SIM_FEED", "false")
        .env("GATTWAY_HUB_ADVERT_FEED", "false");
    command
}

/// [`hub_server_command`] with the hub on `database` and more environment from
/// `env`. Returns the process and its address; stderr keeps being read, so the
/// server never blocks on a full pipe.
pub async fn serve_hub(
    database: &str,
    listen: &str,
    env: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    let mut command = hub_server_command(listen);
    command.args(["--database", database]).envs(env.iter().copied());
    let (child, mut lines) = reading_stderr(command);
    let addr = listening_addr(&wait_for_line(&mut lines, "listening on").await);
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// The whole-number values stored for `device`'s `key` (up to 10,000), as REST
/// gives them.
pub async fn stored_values(addr: &str, device: &str, key: &str) -> Vec<u64> {
    let history = get_json(&format!(
        "http://{addr}/api/v1/devices/{device}/telemetry?key={key}&limit=10000"
    ))
    .await;
    history["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["value"].as_u64().expect("a whole number"))
        .collect()
}
