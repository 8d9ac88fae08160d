//! MCP clients for tests: the official rmcp client, on `gattway mcp` over stdio
//! (a child process) or on `/mcp` over Streamable HTTP, and calls that must
//! succeed or fail as tool errors.

use std::sync::{Arc, Mutex};

use rmcp::model::{CallToolRequestParams, CallToolResult, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{json, Value};

use super::{within, HRM};

/// A client that records progress notifications.
#[derive(Clone, Default)]
pub struct Recorder {
    pub progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for Recorder {
    async fn on_progress(&self, params: ProgressNotificationParam, _ctx: NotificationContext<RoleClient>) {
        self.progress.lock().unwrap().push(params);
    }
}

pub type Client = RunningService<RoleClient, Recorder>;

pub async fn stdio_client(extra_args: &[&str]) -> (Client, Recorder) {
    stdio_client_with_env(extra_args, &[]).await
}

/// `gattway mcp` with these arguments and `GATTWAY_*` variables.
pub async fn stdio_client_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> (Client, Recorder) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gattway"));
    cmd.args(["--backend", "sim"])
        .args(extra_args)
        .arg("mcp")
        .env("GATTWAY_SIM_TIME_SCALE", "20")
        .env("GATTWAY_LOG_LEVEL", "warn")
        .env_remove("GATTWAY_CONFIG")
        .envs(env.iter().copied());
    let recorder = Recorder::default();
    let transport = TokioChildProcess::new(cmd).expect("spawn gattway mcp");
    let client = within("stdio handshake", recorder.clone().serve(transport))
        .await
        .expect("initialize");
    (client, recorder)
}

pub async fn http_client(url: &str, token: Option<&str>) -> Result<Client, String> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    if let Some(t) = token {
        config = config.auth_header(t);
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    within("http handshake", Recorder::default().serve(transport))
        .await
        .map_err(|e| e.to_string())
}

pub async fn call(client: &Client, tool: &str, args: Value) -> CallToolResult {
    let mut params = CallToolRequestParams::new(tool.to_string());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    within(tool, client.call_tool(params))
        .await
        .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"))
}

/// The structured result of a call that must succeed.
pub async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let r = call(client, tool, args).await;
    assert_ne!(r.is_error, Some(true), "{tool} failed: {}", text(&r));
    r.structured_content
        .unwrap_or_else(|| panic!("{tool}: no structured content"))
}

/// The message of a call that must fail as a tool error (not a protocol error).
/// The heart-rate monitor's body sensor location (0x2A38), read through MCP.
pub async fn read_body_sensor_location(client: &Client) -> Value {
    let args = json!({"device": HRM, "service": "180d", "characteristic": "2a38"});
    ok(client, "ble_read", args).await
}

pub async fn fails(client: &Client, tool: &str, args: Value) -> String {
    let r = call(client, tool, args).await;
    assert_eq!(
        r.is_error,
        Some(true),
        "{tool} should fail, got {:?}",
        r.structured_content
    );
    text(&r)
}

pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}
