//! The HTTP server every network front end mounts on: one router, one listener,
//! graceful shutdown. Mounted now: `/healthz` and MCP over Streamable HTTP at `/mcp`.

mod auth;

use std::future::Future;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::gateway::Gateway;
use crate::mcp::{self, McpConfig, McpSettings};

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub gateway: Gateway,
    pub mcp: McpConfig,
    /// Cancelled at shutdown: ends long-lived streams (MCP SSE) so the server can stop.
    pub shutdown: CancellationToken,
}

pub fn router(state: AppState) -> Router {
    let settings = McpSettings::new(&state.mcp, state.gateway.is_simulated(), "http");
    let mcp_service = mcp::http_service(
        state.gateway.clone(),
        settings,
        &state.mcp,
        state.shutdown.clone(),
    );
    let mcp_routes =
        Router::new()
            .nest_service("/mcp", mcp_service)
            .layer(axum::middleware::from_fn_with_state(
                auth::BearerToken::new(&state.mcp.token),
                auth::require_bearer,
            ));
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(state)
        .merge(mcp_routes)
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
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
