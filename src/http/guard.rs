//! The checks every request passes before any route sees it, and the `[http]`
//! table that configures them for all front ends alike:
//!
//! - `Host` (DNS rebinding): a page on a domain that resolves to 127.0.0.1 is
//!   same-origin with the gateway as far as the browser knows, and could drive the
//!   radio. The `Host` must be a loopback name, an IP literal (a browser sends one
//!   only when the user typed the address: no rebinding) or a configured name.
//! - `Origin` (cross-site requests and WebSocket hijacking): a page from another
//!   site must not drive this machine's radio through a visitor's browser.
//!   Non-browser clients send no `Origin` and pass.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

/// The `[http]` table: what the one door lets in, for every front end.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `Host` names accepted besides `localhost` (and `*.localhost`) and IP
    /// literals: the names this server is reached by, e.g. `"gw.lan"`. `"*"`
    /// accepts any (behind a proxy that checks it).
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted besides localhost ones (any port) and the server's
    /// own, e.g. `"https://app.example"`.
    pub allowed_origins: Vec<String>,
    /// Open HTTP connections at once (WebSockets included); more wait in the
    /// kernel's backlog. Bounds what a flood of idle sockets can hold.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (slowloris).
    pub header_read_timeout_ms: u64,
    /// With credentials configured, time a WebSocket that gave none at the upgrade
    /// has to authenticate in-band (`/ws` AUTHENTICATE, `/hub` `auth`) before it
    /// is closed (1008). It sees no events meanwhile.
    pub auth_deadline_ms: u64,
    /// WebSockets waiting to authenticate in-band at once, over every front end.
    /// They hold none of a front end's slots (`control.max_connections`), so
    /// sockets that never authenticate cannot keep an authenticated client out;
    /// past this budget, a socket without a credential at the upgrade is refused.
    pub max_unauthenticated_websockets: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            max_connections: 25_000,
            header_read_timeout_ms: 10_000,
            auth_deadline_ms: 10_000,
            max_unauthenticated_websockets: 256,
        }
    }
}

/// The allow-lists, shared by the middleware and the WebSocket upgrades, and the
/// budget of WebSockets waiting to authenticate.
#[derive(Clone, Debug)]
pub struct Guard(Arc<HttpConfig>, super::ws::Waiting);

impl Default for Guard {
    fn default() -> Self {
        Guard::new(HttpConfig::default())
    }
}

impl Guard {
    pub fn new(config: HttpConfig) -> Self {
        let waiting = super::ws::Waiting::new(config.max_unauthenticated_websockets);
        Guard(Arc::new(config), waiting)
    }

    /// The places of WebSockets waiting to authenticate, shared by every front end.
    pub fn waiting(&self) -> &super::ws::Waiting {
        &self.1
    }

    pub fn config(&self) -> &HttpConfig {
        &self.0
    }

    /// How long an unauthenticated WebSocket may stay open.
    pub fn auth_deadline(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.auth_deadline_ms.max(1))
    }

    /// Whether the request's `Host` is one this server answers to.
    pub fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST) else {
            // HTTP/1.0 clients may omit it; browsers always send it.
            return true;
        };
        let Some(host) = host.to_str().ok().map(host_of) else {
            return false;
        };
        if host == "localhost" || host.ends_with(".localhost") {
            return true;
        }
        if host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok()
        {
            return true;
        }
        self.0
            .allowed_hosts
            .iter()
            .any(|h| h == "*" || host_of(h) == host)
    }

    /// Allowed: no `Origin`; a localhost origin (any port); the server's own origin;
    /// or one listed in `allowed_origins`.
    pub fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
            return headers.get(header::ORIGIN).is_none();
        };
        let origin = origin.trim().trim_end_matches('/');
        if self
            .0
            .allowed_origins
            .iter()
            .any(|e| e.trim_end_matches('/').eq_ignore_ascii_case(origin))
        {
            return true;
        }
        let Some(authority) = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
        else {
            return false;
        };
        if matches!(host_of(authority).as_str(), "localhost" | "127.0.0.1" | "[::1]") {
            return true;
        }
        // The server's own origin; the Host itself was checked before this.
        let own = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        own.is_some_and(|h| h.eq_ignore_ascii_case(authority))
    }
}

/// The host part of an authority (`name:port`, `[v6]:port`), lower-cased.
fn host_of(authority: &str) -> String {
    let authority = authority.trim();
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Refuses a request whose `Host` or `Origin` is not allowed, before any route.
pub async fn check(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if !guard.host_allowed(headers) {
        tracing::warn!(host = ?headers.get(header::HOST), path = %req.uri().path(), "request for a foreign Host refused (DNS rebinding?)");
        return super::problem(
            StatusCode::FORBIDDEN,
            "HOST_NOT_ALLOWED",
            "this server does not answer to that Host name: add it to http.allowed_hosts",
        );
    }
    if !guard.origin_allowed(headers) {
        tracing::warn!(origin = ?headers.get(header::ORIGIN), path = %req.uri().path(), "request from a foreign Origin refused");
        return super::problem(
            StatusCode::FORBIDDEN,
            "ORIGIN_NOT_ALLOWED",
            "cross-origin request refused: add the origin to http.allowed_origins",
        );
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        if let Some(o) = origin {
            m.insert(header::ORIGIN, o.parse().unwrap());
        }
        m.insert(header::HOST, host.parse().unwrap());
        m
    }

    fn guard(hosts: &[&str], origins: &[&str]) -> Guard {
        Guard::new(HttpConfig {
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }

    #[test]
    fn hosts_are_loopback_names_ip_literals_or_configured() {
        let g = guard(&["gw.lan"], &[]);
        for ok in [
            "localhost:8080",
            "LOCALHOST",
            "app.localhost:3000",
            "127.0.0.1:8080",
            "192.168.1.5:8080",
            "[::1]:8080",
            "gw.lan:8080",
            "GW.LAN.",
        ] {
            assert!(g.host_allowed(&h(None, ok)), "{ok}");
        }
        for bad in [
            "evil.test:8080",
            "localhost.evil.test",
            "127.0.0.1.nip.io",
            "gw.lan.evil.test",
        ] {
            assert!(!g.host_allowed(&h(None, bad)), "{bad}");
        }
        assert!(guard(&["*"], &[]).host_allowed(&h(None, "anything.example")));
    }

    #[test]
    fn origins_are_local_same_or_configured() {
        let g = guard(&[], &["https://app.example"]);
        assert!(g.origin_allowed(&h(None, "127.0.0.1:8080")));
        assert!(g.origin_allowed(&h(Some("http://localhost:5173"), "127.0.0.1:8080")));
        assert!(g.origin_allowed(&h(Some("http://[::1]:3000"), "127.0.0.1:8080")));
        assert!(g.origin_allowed(&h(Some("http://gw.lan:8080"), "gw.lan:8080")));
        assert!(g.origin_allowed(&h(Some("https://app.example"), "127.0.0.1:8080")));
        assert!(!g.origin_allowed(&h(Some("https://evil.example"), "127.0.0.1:8080")));
        assert!(!g.origin_allowed(&h(Some("http://localhost.evil.example"), "127.0.0.1:8080")));
        assert!(!g.origin_allowed(&h(Some("null"), "127.0.0.1:8080")));
    }
}
