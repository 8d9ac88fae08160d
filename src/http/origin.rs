//! The `Origin` check for browser WebSockets (cross-site WebSocket hijacking): a
//! page from another site must not drive this machine's radio through a visitor's
//! browser. Non-browser clients send no Origin and pass.

use axum::http::{header, HeaderMap};

/// Allowed: no Origin; a localhost origin (any port); the server's own origin; or
/// one listed in `extra`.
pub fn origin_allowed(headers: &HeaderMap, extra: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim().trim_end_matches('/');
    if extra
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
    let host = host_of(authority);
    if matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]") {
        return true;
    }
    let own = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    own.is_some_and(|h| h.eq_ignore_ascii_case(authority))
}

fn host_of(authority: &str) -> String {
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    host.to_ascii_lowercase()
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

    #[test]
    fn allows_local_and_same_origin_only() {
        assert!(origin_allowed(&h(None, "127.0.0.1:8080"), &[]));
        assert!(origin_allowed(
            &h(Some("http://localhost:5173"), "127.0.0.1:8080"),
            &[]
        ));
        assert!(origin_allowed(
            &h(Some("http://[::1]:3000"), "127.0.0.1:8080"),
            &[]
        ));
        assert!(origin_allowed(&h(Some("http://gw.lan:8080"), "gw.lan:8080"), &[]));
        assert!(!origin_allowed(
            &h(Some("https://evil.example"), "127.0.0.1:8080"),
            &[]
        ));
        assert!(!origin_allowed(
            &h(Some("http://localhost.evil.example"), "127.0.0.1:8080"),
            &[]
        ));
        assert!(!origin_allowed(&h(Some("null"), "127.0.0.1:8080"), &[]));
        assert!(origin_allowed(
            &h(Some("https://app.example"), "127.0.0.1:8080"),
            &["https://app.example".to_string()]
        ));
    }
}
