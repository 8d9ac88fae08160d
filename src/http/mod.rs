//! The HTTP server every network front end mounts on: one router, one listener,
//! graceful shutdown. Mounted now: `/healthz`, `/readyz`, `/health`, `/metrics`,
//! `/api/v1/packets`, MCP over Streamable HTTP at `/mcp`, and the WebSocket bridge
//! (an upgrade on `/` or `/ws/bridge`; a plain GET of `/` is the index page).
//!
//! - `guard.rs`: `Host` and `Origin` checks on every route, and the `[http]` table.
//! - `auth.rs`: credentials on routes and upgrades.
//! - `server.rs`: the accept loop, with a connection cap and a header deadline.
//! - `ops.rs`: the operators' endpoints.

mod auth;
pub mod guard;
mod limit;
mod ops;
mod server;
pub mod ws;

use std::future::Future;

use std::collections::HashMap;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use self::guard::Guard;
pub use self::guard::HttpConfig;
use crate::auth::{Authenticator, Principal, Scope};
use crate::bridge::{self, Bridge, BridgeConfig};
use crate::control::{self, Control, ControlConfig};
use crate::gateway::Gateway;
use crate::hub::{self as device_hub, Hub};
use crate::mcp::{self, McpConfig, McpSettings};

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub gateway: Gateway,
    pub mcp: McpConfig,
    pub bridge: Bridge,
    pub control: Control,
    pub auth: Arc<Authenticator>,
    /// The device hub at `/hub` (with its REST routes), when a store is configured.
    pub hub: Option<Hub>,
    /// `Host` and `Origin` allow-lists and connection limits (`[http]`).
    pub guard: Guard,
    /// Cancelled at shutdown: ends long-lived streams (MCP SSE, WebSockets) so the
    /// server can stop.
    pub shutdown: CancellationToken,
}

impl AppState {
    pub fn new(gateway: Gateway, mcp: McpConfig, bridge: BridgeConfig, auth: Arc<Authenticator>) -> Self {
        Self::with_control(gateway, mcp, bridge, ControlConfig::default(), auth)
    }

    pub fn with_control(
        gateway: Gateway,
        mcp: McpConfig,
        bridge: BridgeConfig,
        control: ControlConfig,
        auth: Arc<Authenticator>,
    ) -> Self {
        AppState {
            bridge: Bridge::new(gateway.clone(), bridge),
            control: Control::new(gateway.clone(), auth.clone(), control),
            gateway,
            mcp,
            auth,
            hub: None,
            guard: Guard::default(),
            shutdown: CancellationToken::new(),
        }
    }

    /// Sets the `[http]` table (allowed hosts and origins, connection limits).
    pub fn with_http(mut self, http: HttpConfig) -> Self {
        self.guard = Guard::new(http);
        self
    }

    /// Mounts the device hub.
    pub fn with_hub(mut self, hub: Hub) -> Self {
        self.hub = Some(hub);
        self
    }
}

pub fn router(state: AppState) -> Router {
    let settings = McpSettings::new(&state.mcp, state.gateway.is_simulated(), "http");
    let mcp_service = mcp::http_service(state.gateway.clone(), settings, state.shutdown.clone());
    let mcp_routes =
        Router::new()
            .nest_service("/mcp", mcp_service)
            .layer(axum::middleware::from_fn_with_state(
                auth::Requirement {
                    auth: state.auth.clone(),
                    scope: Scope::BleRead,
                },
                auth::require,
            ));
    let (rest, mut openapi) = control::rest::router(control::rest::RestState {
        gateway: state.gateway.clone(),
        control: state.control.clone(),
    });
    let hub_routes = state.hub.clone().map(|hub| {
        let (routes, api) = device_hub::rest::router(hub.clone());
        openapi.merge(api);
        let c = hub.config();
        let rate = limit::RateLimit::new(c.rest_rate_per_principal, c.rest_burst_per_principal);
        Router::new()
            .nest("/api/v1", routes)
            // Inside authentication (layers run outermost last-added first), so the
            // credential's subject is the caller.
            .layer(axum::middleware::from_fn_with_state(rate, limit::limit))
            .layer(axum::middleware::from_fn_with_state(
                auth::Requirement {
                    auth: state.auth.clone(),
                    scope: Scope::HubClient,
                },
                auth::require,
            ))
    });
    let openapi = Arc::new(openapi);
    let rest_routes = Router::new()
        .nest("/api/v1", rest)
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let api = openapi.clone();
                async move { Json(api.as_ref().clone()) }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            auth::Requirement {
                auth: state.auth.clone(),
                scope: Scope::BleRead,
            },
            auth::require,
        ));
    Router::new()
        .route("/", get(index_or_bridge))
        .route("/ws/bridge", get(index_or_bridge))
        .route("/ws", get(control_socket))
        .route("/hub", get(hub_socket))
        .route("/healthz", get(healthz))
        .route("/readyz", get(ops::readyz))
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .route(
            "/api/v1/packets",
            get(ops::packets).route_layer(axum::middleware::from_fn_with_state(
                auth::Requirement {
                    auth: state.auth.clone(),
                    scope: Scope::BleRead,
                },
                auth::require,
            )),
        )
        .with_state(state.clone())
        .merge(mcp_routes)
        .merge(rest_routes)
        .merge(hub_routes.unwrap_or_default())
        // Outermost: no route sees a request for a foreign Host or Origin.
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            guard::check,
        ))
        .layer(axum::middleware::from_fn(request_span))
}

/// An RFC 9457 `application/problem+json` response with the machine-readable `code`
/// every gattway error carries.
pub(crate) fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
    });
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// Every request runs in a span with an id, so its log lines can be told apart.
async fn request_span(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use std::sync::atomic::{AtomicU64, Ordering};
    use tracing::Instrument;
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let span = tracing::info_span!(
        "request",
        id = NEXT.fetch_add(1, Ordering::Relaxed),
        method = %req.method(),
        path = %req.uri().path()
    );
    next.run(req).instrument(span).await
}

/// Bytes of hub frames gathered before a write (a flush writes what is there).
const HUB_WRITE_BUFFER: usize = 32 * 1024;

/// A WebSocket upgrade is a bridge client; a plain GET is a person.
async fn index_or_bridge(
    State(state): State<AppState>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    Query(query): Query<HashMap<String, String>>,
    axum::extract::RawQuery(raw_query): axum::extract::RawQuery,
    headers: HeaderMap,
) -> Response {
    let Ok(ws) = ws else {
        return index(&state, &headers, raw_query.as_deref()).into_response();
    };
    // The bridge writes to the device, so a credential (when configured) must allow it.
    let principal = match check_upgrade(&state, &headers, raw_query.as_deref(), Some(Scope::BleWrite)) {
        Ok(p) => p,
        Err(refusal) => return *refusal,
    };
    // Up to `bridge.max_frame_bytes` frames are handled; a client that overshoots
    // gets an `error` and carries on (as ble-mcp-test answers); a frame past 8×
    // that (at least 64 KiB) closes the socket (1009) before it is buffered whole.
    let limit = (state.bridge.config().max_frame_bytes * 8).max(64 * 1024);
    ws::upgrade(ws, limit, 0).on_upgrade(move |socket| {
        bridge::handle_socket(
            state.bridge.clone(),
            socket,
            query,
            principal,
            state.shutdown.clone(),
        )
    })
}

/// The control WebSocket. A credential at the upgrade (header or `access_token=`)
/// authenticates the connection; without one, AUTHENTICATE must come first.
async fn control_socket(
    State(state): State<AppState>,
    ws: WebSocketUpgrade,
    axum::extract::RawQuery(raw_query): axum::extract::RawQuery,
    headers: HeaderMap,
) -> Response {
    // Without a credential here, AUTHENTICATE must be the first request.
    let principal = match check_upgrade(&state, &headers, raw_query.as_deref(), None) {
        Ok(p) => p,
        Err(refusal) => return *refusal,
    };
    let slot = state.control.slot();
    let max = state.control.config().max_message_bytes.max(1024) * 4;
    ws::upgrade(ws, max, 0).on_upgrade(move |socket| {
        control::handle_socket(
            state.control.clone(),
            socket,
            principal,
            slot,
            state.guard.auth_deadline(),
            state.shutdown.clone(),
        )
    })
}

/// The device hub. Devices and clients authenticate at the upgrade (header,
/// `token=` or `access_token=`) or with an `auth` message first.
async fn hub_socket(
    State(state): State<AppState>,
    ws: WebSocketUpgrade,
    Query(query): Query<HashMap<String, String>>,
    axum::extract::RawQuery(raw_query): axum::extract::RawQuery,
    remote: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let Some(hub) = state.hub.clone() else {
        return problem(
            StatusCode::NOT_FOUND,
            "HUB_DISABLED",
            "this server runs without the device hub",
        );
    };
    let principal = match check_upgrade(&state, &headers, raw_query.as_deref(), None) {
        Ok(p) => p,
        Err(refusal) => return *refusal,
    };
    let hello = device_hub::Hello {
        principal,
        role: query.get("role").cloned(),
        device: query.get("device").cloned(),
        remote: remote.map(|r| r.0 .0.to_string()),
        batch: query.get("batch").is_some_and(|v| v == "1" || v == "true"),
        auth_deadline: state.guard.auth_deadline(),
    };
    let slot = hub.slot();
    let max = hub.config().max_message_bytes.max(1024) * 2;
    // Frames a client is sent back to back are written together; the buffer
    // exists only once something was sent.
    ws::upgrade(ws, max, HUB_WRITE_BUFFER)
        .on_upgrade(move |socket| device_hub::handle_socket(hub, socket, hello, slot, state.shutdown.clone()))
}

/// The credential check of a WebSocket upgrade (the guard checked `Host` and
/// `Origin` already). With `required`, a credential with that scope must be
/// present; without, a credential is optional but must be valid when given.
fn check_upgrade(
    state: &AppState,
    headers: &HeaderMap,
    raw_query: Option<&str>,
    required: Option<Scope>,
) -> Result<Option<Principal>, Box<Response>> {
    if !state.auth.enabled() {
        return Ok(None);
    }
    let credential = auth::credential(headers, raw_query);
    let result = match (required, credential) {
        (Some(scope), credential) => auth::authorize(&state.auth, credential, scope).map(Some),
        (None, Some(c)) => state.auth.verify(&c).map(Some),
        (None, None) => Ok(None),
    };
    result.map_err(|e| Box::new(auth::problem(&e)))
}

/// The index page. With credentials configured, device data (ids, names, lease
/// holders) is shown only to a request carrying a `ble:read` credential, and only
/// the devices its list admits.
fn index(state: &AppState, headers: &HeaderMap, raw_query: Option<&str>) -> Html<String> {
    let viewer = match state.auth.enabled() {
        false => Ok(None),
        true => auth::authorize(&state.auth, auth::credential(headers, raw_query), Scope::BleRead).map(Some),
    };
    let connections = match &viewer {
        Ok(p) => state
            .gateway
            .connections()
            .into_iter()
            .filter(|c| crate::auth::admits(p.as_ref(), &c.id, c.name.as_deref()))
            .collect(),
        Err(_) => Vec::new(),
    };
    let rows: String = connections
        .iter()
        .map(|c| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td></tr>",
                escape(c.id.as_str()),
                escape(c.name.as_deref().unwrap_or("")),
                c.state,
                escape(c.lease_holder.as_deref().unwrap_or(""))
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><html><head><meta charset=utf-8><title>gattway</title></head><body>\
         <h1>gattway {}</h1><p>Radio: {}.</p><ul>\
         <li><code>/mcp</code>: MCP (Streamable HTTP) for AI assistants</li>\
         <li><code>ws://…/?service=&amp;write=&amp;notify=</code>: the ble-mcp-test compatible bridge</li>\
         <li><code>/ws</code>: the control WebSocket; <a href=\"/api/v1/openapi.json\">/api/v1</a>: REST (OpenAPI)</li>{hub}\
         <li><a href=\"/metrics\">/metrics</a>, <a href=\"/healthz\">/healthz</a>, <a href=\"/readyz\">/readyz</a>, <a href=\"/health\">/health</a></li>\
         </ul><h2>Connections</h2>{table}</body></html>",
        env!("CARGO_PKG_VERSION"),
        escape(state.gateway.backend_name()),
        table = match viewer {
            Ok(_) => format!(
                "<table><tr><th>id</th><th>name</th><th>state</th><th>held by</th></tr>{rows}</table>"
            ),
            Err(_) => "<p>Sign in to see devices: send a credential with the ble:read scope \
                       (<code>Authorization: Bearer …</code> or <code>?access_token=…</code>).</p>"
                .to_string(),
        },
        hub = if state.hub.is_some() {
            "<li><code>/hub</code>: the device hub, telemetry in and commands out \
             (<a href=\"/api/v1/hub/devices\">devices</a>)</li>"
        } else {
            ""
        },
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Liveness: the process is up and the gateway answers.
async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let stats = state.gateway.stats();
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "backend": state.gateway.backend_name(),
        "connected_devices": stats.connected,
    }))
}

/// Serves until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let token = state.shutdown.clone();
    let shutdown = async move {
        shutdown.await;
        token.cancel();
    };
    let http = state.guard.config().clone();
    server::run(listener, router(state), &http, shutdown).await
}
