//! Authentication on HTTP routes: when credentials are configured, a request must
//! carry one (`Authorization: Bearer <API key or JWT>`) whose principal has the
//! route's scope. With none configured the server is loopback-only (see
//! `Config::check_exposure`) and routes are open.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::{AuthError, Authenticator, Principal, Scope};
use crate::error::ErrorKind;

/// What a route requires.
#[derive(Clone)]
pub struct Requirement {
    pub auth: Arc<Authenticator>,
    pub scope: Scope,
}

/// The credential of a request: `Authorization: Bearer …`, or `access_token=` (or
/// `token=`) in the query (browsers cannot set headers on WebSockets).
pub fn credential(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_string());
    bearer.or_else(|| {
        query?
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| matches!(*k, "access_token" | "token"))
            .map(|(_, v)| v.to_string())
    })
}

/// The principal a credential names, if it holds `scope`.
pub fn authorize(
    auth: &Authenticator,
    credential: Option<String>,
    scope: Scope,
) -> Result<Principal, AuthError> {
    let p = auth.verify(&credential.ok_or(AuthError::NotAuthenticated)?)?;
    p.require(scope)?;
    Ok(p)
}

/// Checks the request and stores its [`Principal`] in the request extensions.
pub async fn require(State(r): State<Requirement>, req: Request, next: Next) -> Response {
    admit(&r, req, next, |e, _| problem(e)).await
}

/// A route that is an OAuth 2.1 protected resource (`/mcp`, as the MCP
/// authorisation spec asks): like [`require`], but a refusal's `WWW-Authenticate`
/// points at the resource's metadata (RFC 9728), says the scope it needs, and says
/// `invalid_token` or `insufficient_scope` (RFC 6750) when a credential was given.
pub async fn require_resource(State(r): State<Requirement>, req: Request, next: Next) -> Response {
    let scope = r.scope;
    admit(&r, req, next, |e, req| {
        let metadata = format!(
            "{}/.well-known/oauth-protected-resource{}",
            origin(req.headers()),
            req.uri().path()
        );
        let mut challenge = format!(
            "Bearer resource_metadata=\"{metadata}\", scope=\"{}\"",
            scope.as_str()
        );
        match e {
            AuthError::NotAuthenticated => {}
            AuthError::MissingScope(_) => challenge.push_str(", error=\"insufficient_scope\""),
            _ => challenge.push_str(", error=\"invalid_token\""),
        }
        let mut resp = problem(e);
        if let Ok(value) = header::HeaderValue::from_str(&challenge) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        resp
    })
    .await
}

/// The one check both middlewares make: with credentials configured, the request's
/// credential must hold the route's scope; its principal goes into the request's
/// extensions, and a refusal is answered by `refuse`.
async fn admit(
    r: &Requirement,
    mut req: Request,
    next: Next,
    refuse: impl FnOnce(&AuthError, &Request) -> Response,
) -> Response {
    if !r.auth.enabled() {
        return next.run(req).await;
    }
    match authorize(&r.auth, credential(req.headers(), req.uri().query()), r.scope) {
        Ok(p) => {
            tracing::debug!(subject = %p.subject, path = %req.uri().path(), "authenticated");
            req.extensions_mut().insert::<Principal>(p);
            next.run(req).await
        }
        Err(e) => refuse(&e, &req),
    }
}

/// This server's origin as the client reached it: `Host` (the guard vetted it),
/// and the scheme a TLS-terminating proxy says in `X-Forwarded-Proto`, else http.
pub fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| matches!(*p, "http" | "https"))
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// An `application/problem+json` answer for an authentication failure.
pub fn problem(e: &AuthError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut resp = super::problem(status, problem_code(e), &e.to_string());
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    resp
}

/// The problem's `code`: the names the control protocol gives these failures too.
fn problem_code(e: &AuthError) -> &'static str {
    match e.kind() {
        ErrorKind::NotAuthenticated => "NOT_AUTHENTICATED",
        ErrorKind::InvalidApiKey => "INVALID_API_KEY",
        ErrorKind::Expired => "SESSION_EXPIRED",
        ErrorKind::InvalidToken => "INVALID_TOKEN",
        // Forbidden, the one kind of an AuthError left: the credential may not.
        _ => "FORBIDDEN",
    }
}

/// The credential check of a WebSocket upgrade (the guard checked `Host` and
/// `Origin` already). With `required`, a credential with that scope must be
/// present; without, a credential is optional but must be valid when given (a
/// protocol that authenticates in-band takes it later). The refusal is the HTTP
/// answer to send instead of upgrading.
pub fn upgrade_credential(
    auth: &Authenticator,
    headers: &HeaderMap,
    raw_query: Option<&str>,
    required: Option<Scope>,
) -> Result<Option<Principal>, Box<Response>> {
    if !auth.enabled() {
        return Ok(None);
    }
    let result = match (required, credential(headers, raw_query)) {
        (Some(scope), credential) => authorize(auth, credential, scope).map(Some),
        (None, Some(c)) => auth.verify(&c).map(Some),
        (None, None) => Ok(None),
    };
    result.map_err(|e| Box::new(problem(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_credential_is_a_session_expired_problem() {
        assert_eq!(problem_code(&AuthError::Expired), "SESSION_EXPIRED");
        assert_eq!(
            problem_code(&AuthError::MissingScope(Scope::BleWrite)),
            "FORBIDDEN"
        );
    }
}
