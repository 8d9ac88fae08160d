//! Endpoints for operators: `/metrics` (Prometheus), `/readyz` and `/health` (the
//! ble-mcp-test shape, for clients that poll it).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;

pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.gateway.render_metrics().await,
    )
        .into_response()
}

/// Ready when the radio is there and powered and the hub's store answers. 503
/// otherwise, with each check's detail.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let adapter = state.gateway.adapter_status().await;
    let store = match &state.hub {
        Some(hub) => Some(hub.ready().await),
        None => None,
    };
    let ready = adapter.is_ok() && store.as_ref().is_none_or(|s| s.is_ok());
    let mut body = json!({
        "status": if ready { "ready" } else { "unready" },
        "checks": {
            "adapter": {
                "ok": adapter.is_ok(),
                "backend": state.gateway.backend_name(),
                "detail": match &adapter { Ok(()) => "powered".to_string(), Err(e) => e.to_string() },
            },
        },
    });
    if let Some(store) = store {
        body["checks"]["store"] = store_check(&store);
    }
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// The ble-mcp-test shape, and the hub's store: `status` is `degraded` while the
/// store fails.
pub async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    let stats = state.gateway.stats();
    let store = match &state.hub {
        Some(hub) => Some(hub.ready().await),
        None => None,
    };
    let store_ok = store.as_ref().is_none_or(|s| s.is_ok());
    let mut body = json!({
        "status": if store_ok { "ok" } else { "degraded" },
        "timestamp": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        "hostname": hostname(),
        "version": env!("CARGO_PKG_VERSION"),
        "bridge": {
            "sessions": state.bridge.session_count(),
            "connected_devices": stats.connected,
            "leases": stats.leases,
            "state": if state.bridge.session_count() > 0 { "ACTIVE" } else { "IDLE" },
        },
    });
    if let Some(store) = store {
        body["store"] = store_check(&store);
    }
    Json(body)
}

fn store_check(store: &Result<(), crate::hub::Unready>) -> serde_json::Value {
    json!({
        "ok": store.is_ok(),
        "detail": match store { Ok(()) => "answering".to_string(), Err(e) => e.to_string() },
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}
