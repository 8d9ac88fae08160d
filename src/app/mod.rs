//! The application: every network front end mounted behind the one door
//! (`http`), on one router and one listener, with graceful shutdown. Mounted:
//! `/healthz`, `/readyz`, `/health`, `/metrics`, `/api/v1/packets`, REST under
//! `/api/v1` (with the hub's), MCP over Streamable HTTP at `/mcp`, the control
//! WebSocket `/ws`, the hub `/hub`, and the WebSocket bridge (an upgrade on `/` or
//! `/ws/bridge`; a plain GET of `/` is the index page).
//!
//! - `upgrades.rs`: the WebSocket upgrades of the bridge, `/ws` and `/hub`.
//! - `index.rs`: the index page and `/healthz`.
//! - `ops.rs`: the operators' endpoints.
//! - `openapi.rs`: what the OpenAPI document says of every operation.

mod index;
mod oauth;
mod openapi;
mod ops;
mod upgrades;
mod web;

use std::future::Future;

use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use crate::auth::{Authenticator, Scope};
use crate::bridge::{Bridge, BridgeConfig};
use crate::control::{self, Control, ControlConfig};
use crate::gateway::Gateway;
use crate::http::{auth, guard, limit, server, Guard, HttpConfig};
use crate::hub::Hub;
use crate::mcp::{self, McpConfig, McpSettings};
use crate::profiles::ProfileSet;

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
    /// `/hub`'s connection slots (`hub.max_connections`), held by connections
    /// that authenticated; those still to authenticate wait in the door's budget.
    pub hub_slots: crate::http::ws::Slots,
    /// `Host` and `Origin` allow-lists and connection limits (`[http]`).
    pub guard: Guard,
    /// How WebSockets are accepted: compression (`[websocket]`).
    pub upgrade: crate::http::ws::Upgrade,
    /// Device profiles MCP offers (the built-ins unless `with_profiles`).
    pub profiles: Arc<ProfileSet>,
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
            hub_slots: crate::http::ws::Slots::new(0),
            guard: Guard::default(),
            upgrade: Default::default(),
            profiles: Arc::new(ProfileSet::builtin()),
            shutdown: CancellationToken::new(),
        }
    }

    /// Sets the `[http]` table (allowed hosts and origins, connection limits).
    pub fn with_http(mut self, http: HttpConfig) -> Self {
        self.guard = Guard::new(http);
        self
    }

    /// Sets the `[websocket]` table (permessage-deflate and its settings).
    pub fn with_websocket(mut self, websocket: &crate::http::ws::WebSocketConfig) -> Self {
        self.upgrade = crate::http::ws::Upgrade::new(websocket);
        self
    }

    /// The device profiles MCP offers (`mcp.profiles_dir` loaded).
    pub fn with_profiles(mut self, profiles: ProfileSet) -> Self {
        self.profiles = Arc::new(profiles);
        self
    }

    /// Mounts the device hub.
    pub fn with_hub(mut self, hub: Hub) -> Self {
        self.hub_slots = crate::http::ws::Slots::new(hub.config().max_connections);
        self.hub = Some(hub);
        self
    }
}

pub fn router(state: AppState) -> Router {
    let mut settings = McpSettings::new(
        &state.mcp,
        state.gateway.is_simulated(),
        "http",
        state.profiles.clone(),
    );
    if let Some(hub) = &state.hub {
        settings = settings.with_telemetry(hub.writer().clone());
    }
    let mcp_service = mcp::http_service(state.gateway.clone(), settings, state.shutdown.clone());
    let mcp_rate = limit::RateLimit::new(state.mcp.rate_per_principal, state.mcp.burst_per_principal);
    let mcp_routes = Router::new()
        .nest_service("/mcp", mcp_service)
        .layer(axum::middleware::from_fn(mcp::json_answers::prefer_json))
        .layer(axum::middleware::from_fn(mcp::session_end::ended_is_no_content))
        // Inside authentication, so the credential's subject is the caller.
        .layer(axum::middleware::from_fn_with_state(mcp_rate, limit::limit))
        .layer(axum::middleware::from_fn_with_state(
            auth::Requirement {
                auth: state.auth.clone(),
                scope: Scope::BleRead,
            },
            auth::require_resource,
        ));
    let (rest, mut openapi) = control::rest::router(control::rest::RestState {
        gateway: state.gateway.clone(),
        control: state.control.clone(),
    });
    let hub_routes = state.hub.clone().map(|hub| {
        let (routes, api) = crate::hub_api::rest::router(hub.clone());
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
            .layer(axum::middleware::from_fn(crate::http::problem_errors))
    });
    // Finished once: the document is the same for every request.
    let openapi = Arc::new(openapi::finish(
        serde_json::to_value(&openapi).unwrap_or_default(),
    ));
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
        ))
        .layer(axum::middleware::from_fn(crate::http::problem_errors));
    Router::new()
        .route("/", get(upgrades::index_or_bridge))
        .route("/ws/bridge", get(upgrades::index_or_bridge))
        .route("/ws", get(upgrades::control_socket))
        .route("/hub", get(upgrades::hub_socket))
        .route("/healthz", get(index::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .route("/webbluetooth.js", get(web::polyfill))
        .route("/dashboard.js", get(web::dashboard_js))
        .route("/dashboard.css", get(web::dashboard_css))
        .route("/vendor/uPlot.iife.min.js", get(web::uplot_js))
        .route("/vendor/uPlot.min.css", get(web::uplot_css))
        .route("/.well-known/oauth-protected-resource", get(oauth::metadata))
        .route("/.well-known/oauth-protected-resource/mcp", get(oauth::metadata))
        .with_state(state.clone())
        .merge(mcp_routes)
        .merge(rest_routes)
        .merge(hub_routes.unwrap_or_default())
        // Outermost: no route sees a request for a foreign Host or Origin.
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            guard::check,
        ))
        // Refusals included: a 403 page is framed no more than the dashboard.
        .layer(axum::middleware::from_fn(crate::http::headers::security_headers))
        .layer(axum::middleware::from_fn(request_span))
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
