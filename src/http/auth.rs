//! Bearer-token check for routes that take one (`/mcp` when `mcp.token` is set).
//! The full security layer (API keys, JWT, scopes) is its own issue; this keeps a
//! configured token from being decorative meanwhile.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::gateway::constant_time_eq;

/// The expected token; empty means no check.
#[derive(Clone)]
pub struct BearerToken(Arc<str>);

impl BearerToken {
    pub fn new(token: &str) -> Self {
        BearerToken(Arc::from(token.trim()))
    }
}

pub async fn require_bearer(State(expected): State<BearerToken>, req: Request, next: Next) -> Response {
    if expected.0.is_empty() {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.trim().as_bytes(), expected.0.as_bytes()) {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [
            (header::WWW_AUTHENTICATE, "Bearer"),
            (header::CONTENT_TYPE, "application/problem+json"),
        ],
        r#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"this endpoint requires Authorization: Bearer <token>"}"#,
    )
        .into_response()
}
