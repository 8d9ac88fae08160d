//! The answer to a client ending its session (`DELETE /mcp`). rmcp answers 202
//! Accepted, but the session is gone by then, not accepted for later; MCP clients
//! read 200 or 204 as done, and the Python SDK logs "Session termination failed: 202"
//! on every close. Ended is 204 No Content.

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

pub async fn ended_is_no_content(req: Request, next: Next) -> Response {
    let delete = req.method() == Method::DELETE;
    let mut answer = next.run(req).await;
    if delete && answer.status() == StatusCode::ACCEPTED {
        *answer.status_mut() = StatusCode::NO_CONTENT;
    }
    answer
}
