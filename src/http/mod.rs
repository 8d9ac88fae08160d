//! The one door every network front end stands on: what a request passes before a
//! front end sees it, and the pieces every front end's HTTP and WebSocket code
//! shares. It knows no front end; `app` mounts them all behind it.
//!
//! - `guard.rs`: `Host` and `Origin` checks on every route, and the `[http]` table.
//! - `auth.rs`: credentials on routes and at WebSocket upgrades.
//! - `limit.rs`: per-caller rate limits for HTTP routes.
//! - `headers.rs`: the browser's rules on every response (CSP, no framing, no sniffing).
//! - `ws/`: the WebSocket connection layer: the handshake and its limits, one
//!   `Connection` type, deadlines, metrics, close.
//! - `server.rs`: the accept loop, with a connection cap and a header deadline.

pub mod auth;
pub mod guard;
pub mod headers;
pub mod limit;
pub mod server;
pub mod ws;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use self::guard::{Guard, HttpConfig};

/// An RFC 9457 `application/problem+json` response with the machine-readable `code`
/// every gattway error carries.
pub fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
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

/// Error answers that are not problem JSON yet (axum's own rejections of a bad
/// path, query or body: plain text, 400/415/422) become problem JSON, so every
/// error a REST client sees has one shape and a `code`. A 422 (a body of the
/// wrong shape) is a 400 `INVALID_PARAMS` like any other bad argument.
pub async fn problem_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return resp;
    }
    let body = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let (status, code) = match status {
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
            (StatusCode::BAD_REQUEST, "INVALID_PARAMS")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (status, "UNSUPPORTED_MEDIA_TYPE"),
        StatusCode::PAYLOAD_TOO_LARGE => (status, "PAYLOAD_TOO_LARGE"),
        StatusCode::NOT_FOUND => (status, "NOT_FOUND"),
        StatusCode::METHOD_NOT_ALLOWED => (status, "METHOD_NOT_ALLOWED"),
        _ if status.is_server_error() => (status, "INTERNAL"),
        _ => (status, "INVALID_REQUEST"),
    };
    let detail = if body.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        body
    };
    problem(status, code, &detail)
}
