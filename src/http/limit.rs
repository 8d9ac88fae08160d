//! A per-caller rate limit for HTTP routes: one token bucket per credential
//! (its subject), or per peer address for requests without one. Answers 429
//! `RATE_LIMITED` (problem+json) with `Retry-After` when a caller's bucket is empty.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::Principal;
use crate::limits::TokenBucket;
use crate::sync::lock;

/// Buckets kept before full (idle) ones are forgotten; bounds the map however
/// many peers come and go.
const MAX_BUCKETS: usize = 10_000;

#[derive(Clone)]
pub struct RateLimit(Arc<Inner>);

struct Inner {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl RateLimit {
    /// `rate` requests a second per caller, sustained, and `burst` at once.
    pub fn new(rate: f64, burst: f64) -> Self {
        RateLimit(Arc::new(Inner {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }))
    }

    /// Takes a token for `caller`; false when its bucket is empty.
    pub fn take(&self, caller: &str) -> bool {
        let mut buckets = lock(&self.0.buckets);
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(caller) {
            buckets.retain(|_, b| !b.is_full());
        }
        buckets
            .entry(caller.to_string())
            .or_insert_with(|| TokenBucket::new(self.0.rate, self.0.burst))
            .take()
    }
}

/// The middleware: runs inside authentication, so a credential's subject is known.
pub async fn limit(State(limit): State<RateLimit>, req: Request, next: Next) -> Response {
    let caller = match req.extensions().get::<Principal>() {
        Some(p) => format!("subject:{}", p.subject),
        None => match req.extensions().get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(addr)) => format!("peer:{}", addr.ip()),
            None => "peer:unknown".to_string(),
        },
    };
    if limit.take(&caller) {
        return next.run(req).await;
    }
    let mut resp = super::problem(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        "too many requests from this caller: slow down",
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}
