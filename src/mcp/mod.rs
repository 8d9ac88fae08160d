//! The MCP server: BLE tools for AI assistants, over stdio (`gattway mcp`) and
//! Streamable HTTP (`/mcp` on `gattway serve`). Both share the one `Gateway`, so a
//! device connected here is visible to every other front end.
//!
//! One file per tool group, each a `#[tool_router]` block merged in [`BleMcp::new`]:
//! `scan.rs` (ble_scan, scan_devices), `connection.rs` (ble_connect, ble_disconnect,
//! ble_connections, get_connection_state), `gatt.rs` (ble_services, ble_read,
//! ble_write, descriptors), `notify.rs` (ble_subscribe, ble_unsubscribe,
//! ble_notifications), `diagnostics.rs` (get_logs, search_packets, status,
//! get_metrics), `profiles.rs` (ble_profile, device_command), `collect.rs`
//! (ble_collect_start, ble_collect_stop, ble_collect_list). Wire shapes are in
//! `types.rs`; per-session state in `session.rs`; the recording the collect tools
//! start, server-wide, in `recording.rs`. On HTTP, `json_answers.rs` answers plain
//! calls as JSON and `session_end.rs` answers an ended session 204.

mod collect;
mod connection;
mod diagnostics;
mod error;
mod gatt;
pub mod json_answers;
mod lenient;
mod notify;
mod profiles;
mod recording;
mod resources;
mod scan;
mod session;
pub mod session_end;
pub mod types;

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorData, GetPromptRequestParams, GetPromptResponse,
    Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::RoleServer;
use rmcp::{tool_handler, ServerHandler, ServiceExt};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use self::error::ToolError;
use self::session::Session;
use crate::ble::{DeviceId, Uuid};
use crate::gateway::Gateway;
use crate::metrics::{ToolLabels, ToolOutcomeLabels};
use crate::profiles::ProfileSet;

/// Whether assistants may write to devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WritePolicy {
    /// On for the simulator (so demos work), off for a real radio until the user
    /// turns it on: a write can damage a real device.
    #[default]
    Auto,
    On,
    Off,
}

/// The `[mcp]` table of the config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// `auto`, `on` or `off`; `--mcp-read-only` sets `off`.
    pub writes: WritePolicy,
    /// Characteristic UUIDs writes are limited to (empty: any).
    pub write_allow_list: Vec<Uuid>,
    /// A folder of device profiles (`*.toml`) added to the built-in ones; empty:
    /// the built-ins only.
    pub profiles_dir: std::path::PathBuf,
    /// Requests a second to `/mcp` one credential (or one peer address, without
    /// credentials) may make, sustained, and the burst above it; more get 429.
    /// Each tool call may drive the radio: one caller must not starve the others.
    pub rate_per_principal: f64,
    pub burst_per_principal: f64,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            writes: WritePolicy::default(),
            write_allow_list: Vec::new(),
            profiles_dir: std::path::PathBuf::new(),
            rate_per_principal: 50.0,
            burst_per_principal: 100.0,
        }
    }
}

impl McpConfig {
    /// `profiles_dir`, when one is set.
    pub fn profiles_dir(&self) -> Option<&std::path::Path> {
        Some(self.profiles_dir.as_path()).filter(|p| !p.as_os_str().is_empty())
    }
}

/// Settings resolved at start-up, shared by every session.
#[derive(Clone)]
pub struct McpSettings {
    pub writes_enabled: bool,
    pub write_allow_list: Vec<Uuid>,
    /// "stdio" or "http", for `status`.
    pub transport: &'static str,
    /// The device profiles: resources, `ble_profile` and `device_command`.
    pub profiles: Arc<ProfileSet>,
    /// Every session's recordings (server-wide: a client that reconnects finds them).
    pub collections: Arc<recording::Collections>,
    /// The device hub's telemetry writer, when there is a hub: recordings asked to
    /// go to the hub are stored through it.
    pub telemetry: Option<crate::store::TelemetryWriter>,
}

impl McpSettings {
    pub fn new(
        config: &McpConfig,
        backend_is_simulated: bool,
        transport: &'static str,
        profiles: Arc<ProfileSet>,
    ) -> Self {
        McpSettings {
            writes_enabled: match config.writes {
                WritePolicy::Auto => backend_is_simulated,
                WritePolicy::On => true,
                WritePolicy::Off => false,
            },
            write_allow_list: config.write_allow_list.clone(),
            transport,
            profiles,
            collections: Arc::default(),
            telemetry: None,
        }
    }

    /// Recordings may also go to the device hub through this writer.
    pub fn with_telemetry(mut self, writer: crate::store::TelemetryWriter) -> Self {
        self.telemetry = Some(writer);
        self
    }
}

const INSTRUCTIONS: &str = "gattway shares this machine's Bluetooth LE radio. Typical flow: \
ble_scan to find devices, ble_connect by id or name prefix, ble_services to see the GATT tree, \
then ble_read / ble_write (hex in `value` or UTF-8 in `text`) and ble_subscribe + ble_notifications \
to watch values. UUIDs may be short (\"180d\") or long. Standard values (heart rate, battery, \
temperature, humidity, device information) come back decoded with units. get_logs and \
search_packets show every byte exchanged. For a device with a known protocol (the CS108 RFID reader, \
Nordic UART, heart-rate monitors …), ble_profile shows what it speaks and device_command runs its \
commands with parsed answers; the profiles are also resources (gattway://profiles/{name}).";

tokio::task_local! {
    /// The principal of the tool call being answered (over HTTP with credentials
    /// configured): a session's calls may come with different credentials, so it
    /// is per call, set by `call_tool` around the tool it runs.
    static CALLER: Option<crate::auth::Principal>;
}

/// One MCP session's server: the tools, over the shared gateway.
#[derive(Clone)]
pub struct BleMcp {
    gateway: Gateway,
    settings: Arc<McpSettings>,
    session: Arc<Session>,
    tool_router: ToolRouter<Self>,
}

impl BleMcp {
    pub fn new(gateway: Gateway, settings: Arc<McpSettings>) -> Self {
        let mut tool_router = Self::scan_router()
            + Self::connection_router()
            + Self::gatt_router()
            + Self::notify_router()
            + Self::diagnostics_router()
            + Self::profiles_router()
            + Self::collect_router();
        if !settings.writes_enabled {
            // Not offered at all: an assistant should not plan around a tool it may not use.
            tool_router.remove_route("ble_write");
            tool_router.remove_route("ble_write_descriptor");
            tool_router.remove_route("device_command");
        }
        BleMcp {
            gateway,
            settings,
            session: Session::new(),
            tool_router,
        }
    }

    /// The device a `device` argument names, as people and models write it: an id
    /// (any case), else a name, else a name prefix, each compared without regard to
    /// case, among connected devices first and then every device the radio has
    /// heard. Two devices that fit equally well are an error that lists them; no fit
    /// is the text as an id, so the operation reports "not connected" with what to do.
    fn device_arg(&self, device: &str) -> Result<DeviceId, ToolError> {
        Ok(self
            .resolve_device(device)?
            .unwrap_or_else(|| DeviceId::new(device.trim())))
    }

    /// The device a `device` argument names (see [`Self::device_arg`]), or `None`
    /// when no device connected or heard fits it.
    fn resolve_device(&self, device: &str) -> Result<Option<DeviceId>, ToolError> {
        /// A device an argument may name: its id and name.
        type Candidate = (DeviceId, Option<String>);
        let device = device.trim();
        if device.is_empty() {
            return Err(ToolError(
                "argument device is empty: give a device id or name prefix".into(),
            ));
        }
        let connected: Vec<Candidate> = (self.gateway.connections().into_iter())
            .map(|c| (c.id, c.name))
            .collect();
        let heard: Vec<Candidate> = (self.gateway.known_devices().into_iter())
            .map(|d| (d.id, d.name))
            .collect();
        let wanted = device.to_lowercase();
        let id_is = |(id, _): &&Candidate| id.as_str().eq_ignore_ascii_case(device);
        let name_is = |(_, name): &&Candidate| name.as_deref().is_some_and(|n| n.to_lowercase() == wanted);
        let name_starts = |(_, name): &&Candidate| {
            name.as_deref()
                .is_some_and(|n| n.to_lowercase().starts_with(&wanted))
        };
        let rules: [&dyn Fn(&&Candidate) -> bool; 3] = [&id_is, &name_is, &name_starts];
        for rule in rules {
            for pool in [&connected, &heard] {
                let mut fits: Vec<&Candidate> = pool.iter().filter(rule).collect();
                fits.dedup_by(|a, b| a.0 == b.0);
                match fits.as_slice() {
                    [] => {}
                    [(id, _)] => return Ok(Some(id.clone())),
                    several => {
                        let list: Vec<String> = several
                            .iter()
                            .map(|(id, name)| match name {
                                Some(n) => format!("{n} ({id})"),
                                None => id.to_string(),
                            })
                            .collect();
                        return Err(ToolError(format!(
                            "{device:?} matches several devices: {}; give one of their ids",
                            list.join(", ")
                        )));
                    }
                }
            }
        }
        Ok(None)
    }

    /// The devices the caller of the current tool may see (every device over stdio
    /// or without credentials).
    fn visible(&self) -> crate::gateway::DeviceFilter {
        CALLER
            .try_with(|p| self.gateway.device_filter(p.as_ref()))
            .unwrap_or_else(|_| crate::gateway::DeviceFilter::all())
    }

    /// Whether the caller of the current tool may see this device.
    fn may_see(&self, id: &DeviceId, name: Option<&str>) -> bool {
        CALLER
            .try_with(|p| crate::auth::admits(p.as_ref(), id, name))
            .unwrap_or(true)
    }

    /// The (device, service, characteristic) three arguments name.
    fn char_target(
        &self,
        device: &str,
        service: &str,
        characteristic: &str,
    ) -> Result<(DeviceId, Uuid, Uuid), ToolError> {
        Ok((
            self.device_arg(device)?,
            error::uuid_arg("service", service)?,
            error::uuid_arg("characteristic", characteristic)?,
        ))
    }

    /// Why a credential may not make this call, if it may not: writes need
    /// `ble:write`, and a device outside the credential's device list is refused,
    /// as on every front end.
    fn denied(
        &self,
        tool: &str,
        principal: Option<&crate::auth::Principal>,
        request: &CallToolRequestParams,
    ) -> Option<String> {
        let principal = principal?;
        if matches!(tool, "ble_write" | "ble_write_descriptor" | "device_command")
            && !principal.has(crate::auth::Scope::BleWrite)
        {
            return Some(
                "permission denied: this credential lacks the ble:write scope; ask the user for one that has it"
                    .into(),
            );
        }
        let device = request.arguments.as_ref()?.get("device")?.as_str()?;
        let id = self.device_arg(device).ok()?;
        let name = self.gateway.name_of(&id);
        crate::auth::check_device(Some(principal), &id, name.as_deref())
            .err()
            .map(|e| format!("{e}; ask the user for a credential that covers it"))
    }

    fn check_write_allowed(&self, characteristic: Uuid) -> Result<(), ToolError> {
        if !self.settings.writes_enabled {
            return Err(ToolError(
                "writes are disabled for assistants on this gateway (mcp.writes = off, or a real radio \
                 without mcp.writes = on)"
                    .into(),
            ));
        }
        let allow = &self.settings.write_allow_list;
        if !allow.is_empty() && !allow.contains(&characteristic) {
            let list: Vec<String> = allow.iter().map(|u| u.short()).collect();
            return Err(ToolError(format!(
                "writing to {} is not allowed: this gateway allows writes only to {}",
                characteristic.short(),
                list.join(", ")
            )));
        }
        Ok(())
    }
}

/// The metric label of a call to a tool this server does not have.
const UNKNOWN_TOOL: &str = "unknown";

#[tool_handler(router = self.tool_router)]
impl ServerHandler for BleMcp {
    /// Every tool call goes through here: counted per session, and recorded in the
    /// tool metrics with its duration and outcome.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = request.name.to_string();
        // Labels (and the session's counts) come from a fixed set: the tools this
        // server has. A name a caller made up is counted as `unknown`; as its own
        // label, each new one grew `/metrics` and memory for good.
        let label = match self.tool_router.has_route(&tool) {
            true => tool.clone(),
            false => UNKNOWN_TOOL.to_string(),
        };
        self.session.count_call(&label);
        let started = std::time::Instant::now();
        // Over HTTP with credentials configured, the middleware put the caller's
        // principal in the request; writes need ble:write like on every front end.
        let principal = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<crate::auth::Principal>())
            .cloned();
        let denied = self.denied(&tool, principal.as_ref(), &request);
        let result = if let Some(why) = denied {
            Ok(CallToolResponse::Complete(rmcp::model::CallToolResult::error(
                vec![rmcp::model::ContentBlock::text(why)],
            )))
        } else {
            CALLER
                .scope(
                    principal,
                    self.tool_router
                        .call(ToolCallContext::new(self, request, context)),
                )
                .await
        };
        let outcome = match &result {
            Err(_) => "protocol_error",
            Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => "error",
            Ok(_) => "ok",
        };
        let m = self.gateway.metrics();
        m.mcp_tool_calls
            .get_or_create(&ToolOutcomeLabels {
                tool: label.clone(),
                outcome,
            })
            .inc();
        m.mcp_tool_duration
            .get_or_create(&ToolLabels { tool: label })
            .observe(started.elapsed().as_secs_f64());
        result
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(self.resources()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            self.resource_templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.read(&request.uri).map(ReadResourceResponse::from)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(Self::prompts()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        Self::prompt(&request.name, &request.arguments.unwrap_or_default()).map(GetPromptResponse::from)
    }

    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_prompts()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("gattway", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}

/// Serves MCP on stdin/stdout until the client closes it.
pub async fn serve_stdio(gateway: Gateway, settings: McpSettings) -> Result<(), std::io::Error> {
    let server = BleMcp::new(gateway, Arc::new(settings));
    #[cfg(unix)]
    if let Some((stdin, stdout)) = stdio_pipes() {
        return run_stdio(server, (stdin, stdout)).await;
    }
    run_stdio(server, rmcp::transport::stdio()).await
}

async fn run_stdio<R, W>(server: BleMcp, io: (R, W)) -> Result<(), std::io::Error>
where
    R: tokio::io::AsyncRead + Send + Unpin + 'static,
    W: tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let running = server
        .serve(io)
        .await
        .map_err(|e| std::io::Error::other(format!("MCP handshake on stdio failed: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| std::io::Error::other(format!("MCP stdio session ended with an error: {e}")))?;
    Ok(())
}

/// Stdin and stdout as non-blocking pipes driven by the reactor, when they are
/// pipes (as MCP clients launch servers). Tokio's portable stdin/stdout hand every
/// read and write to a blocking helper thread; at thousands of calls a second those
/// hand-offs cost more than the calls themselves.
#[cfg(unix)]
fn stdio_pipes() -> Option<(tokio::net::unix::pipe::Receiver, tokio::net::unix::pipe::Sender)> {
    use std::os::fd::AsFd;
    let stdin = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    // Both fail (and we fall back) unless the descriptor is a pipe or FIFO.
    let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(stdin).ok()?;
    let tx = tokio::net::unix::pipe::Sender::from_owned_fd(stdout).ok()?;
    Some((rx, tx))
}

/// The Streamable HTTP service for `/mcp`: one `BleMcp` per MCP session.
pub fn http_service(
    gateway: Gateway,
    settings: McpSettings,
    shutdown: CancellationToken,
) -> StreamableHttpService<BleMcp, LocalSessionManager> {
    let settings = Arc::new(settings);
    // Host and Origin are checked for every route, this one included, by the
    // HTTP guard (`[http]`): one list, one meaning.
    let http_config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_cancellation_token(shutdown);
    StreamableHttpService::new(
        move || Ok(BleMcp::new(gateway.clone(), settings.clone())),
        Arc::new(LocalSessionManager::default()),
        http_config,
    )
}
