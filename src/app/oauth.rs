//! `/mcp` as an OAuth 2.1 protected resource, as the MCP authorisation spec asks:
//! its metadata (RFC 9728) at `/.well-known/oauth-protected-resource` (and the same
//! under `/mcp`, the path-specific form), naming the resource, the authorisation
//! servers that issue its tokens, and its scopes. A 401 from `/mcp` points here
//! (`http::auth::require_resource`). Served only when credentials are configured.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::AppState;
use crate::auth::Scope;
use crate::http::auth::origin;

pub async fn metadata(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let auth = &state.auth;
    if !auth.enabled() {
        return StatusCode::NOT_FOUND.into_response();
    }
    // The resource is what tokens' `aud` must name: the configured audience, or
    // this server's /mcp as the client reaches it.
    let resource = match auth.audience() {
        "" => format!("{}/mcp", origin(&headers)),
        audience => audience.to_string(),
    };
    let mut body = json!({
        "resource": resource,
        "resource_name": "gattway",
        "bearer_methods_supported": ["header"],
        "scopes_supported": [Scope::BleRead.as_str(), Scope::BleWrite.as_str(), Scope::BleAdmin.as_str()],
    });
    if !auth.authorization_servers().is_empty() {
        body["authorization_servers"] = json!(auth.authorization_servers());
    }
    Json(body).into_response()
}
