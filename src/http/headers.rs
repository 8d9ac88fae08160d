//! Headers on every response that keep a browser from misusing what this server
//! sends: no other site may frame a page (the dashboard drives the radio; with
//! credentials off, a framed dashboard is a click away from a write), nothing is
//! sniffed into another type, and a page runs only the scripts and styles this
//! server serves (no inline script, no other origin's).

use axum::extract::Request;
use axum::http::header::{CONTENT_SECURITY_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// What a page of this server may load and who may frame it. The dashboard's
/// scripts and style sheets are files of this server and it talks only to this
/// server (`connect-src 'self'` admits its own `ws:`); its one image is the empty
/// `data:` icon. Scripts set styles through the CSSOM, which `style-src` allows.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the headers to every response that does not set its own.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let headers = resp.headers_mut();
    headers
        .entry(CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE));
    headers
        .entry(X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    headers
        .entry(X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    resp
}
