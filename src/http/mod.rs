//! The one door every network front end stands on: what a request passes before a
//! front end sees it, and the pieces every front end's HTTP and WebSocket code
//! shares. It knows no front end; `app` mounts them all behind it.
//!
//! - `guard.rs`: `Host` and `Origin` checks on every route, and the `[http]` table.
//! - `auth.rs`: credentials on routes and at WebSocket upgrades.
//! - `limit.rs`: per-caller rate limits for HTTP routes.
//! - `ws.rs`: the WebSocket connection layer (limits, deadlines, metrics, close).
//! - `server.rs`: the accept loop, with a connection cap and a header deadline.

pub mod auth;
pub mod guard;
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
