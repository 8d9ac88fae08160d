//! The HTTP server every network front end mounts on: one router, one listener,
//! graceful shutdown. For now it serves the liveness endpoint.

use std::future::Future;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::gateway::Gateway;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub gateway: Gateway,
}

pub fn router(state: AppState) -> Router {
    Router::new().route("/healthz", get(healthz)).with_state(state)
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
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
