//! Signing keys from an authorisation server's JWKS document (`auth.jwks_url`), as
//! Keycloak or any OIDC provider publishes them. Fetched when gattway starts, again
//! every `auth.jwks_refresh_s`, and again (at most every ten seconds) when a token
//! names a key id the cache does not hold: that is how a rotated key is picked up
//! without a restart. Verification never waits on the network; a token whose key is
//! not (yet) known is refused and its client retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Notify;

use super::AuthError;
use crate::sync::AbortOnDrop;

/// The least time between two fetches a token's unknown key id asks for.
const MIN_REFETCH: Duration = Duration::from_secs(10);

/// The largest JWKS document taken.
const MAX_DOCUMENT: usize = 1 << 20;

/// The cached keys, by key id.
pub struct Jwks {
    url: String,
    uri: Uri,
    ca_file: String,
    refresh: Duration,
    keys: RwLock<HashMap<String, (DecodingKey, Algorithm)>>,
    wanted: Arc<Notify>,
    /// The refresher; it goes when the keys do.
    started: Mutex<Option<AbortOnDrop>>,
    last_fetch: Mutex<Option<Instant>>,
}

impl Jwks {
    pub fn new(url: &str, ca_file: &str, refresh: Duration) -> Result<Self, String> {
        let uri = url
            .parse::<Uri>()
            .map_err(|e| format!("auth.jwks_url {url:?}: {e}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "auth.jwks_url {url:?} must be an http:// or https:// URL"
            ));
        }
        Ok(Jwks {
            url: url.to_string(),
            uri,
            ca_file: ca_file.to_string(),
            refresh: refresh.max(Duration::from_secs(1)),
            keys: RwLock::new(HashMap::new()),
            wanted: Arc::new(Notify::new()),
            started: Mutex::new(None),
            last_fetch: Mutex::new(None),
        })
    }

    /// Fetches the keys once and keeps them fresh from then on. Called when the
    /// server starts; the first fetch's error is returned (and retried behind).
    pub async fn start(self: &Arc<Self>) -> Result<usize, String> {
        let tls = match self.uri.scheme_str() {
            Some("https") => Some(crate::tls::client_config(&self.ca_file, "auth.jwks_ca_file")?),
            _ => None,
        };
        let first = self.fetch(tls.clone()).await;
        let mut started = crate::sync::lock(&self.started);
        if started.is_none() {
            let me = Arc::downgrade(self);
            let (refresh, wanted) = (self.refresh, self.wanted.clone());
            *started = Some(AbortOnDrop(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(refresh) => {}
                        _ = wanted.notified() => {}
                    }
                    let Some(jwks) = me.upgrade() else { return };
                    if let Err(e) = jwks.fetch(tls.clone()).await {
                        tracing::warn!(url = %jwks.url, error = %e, "JWKS refresh failed; keeping the keys held");
                    }
                }
            })));
        }
        first
    }

    /// One fetch; the keys held are replaced only by a document that parses.
    async fn fetch(&self, tls: Option<Arc<rustls::ClientConfig>>) -> Result<usize, String> {
        *crate::sync::lock(&self.last_fetch) = Some(Instant::now());
        let body = tokio::time::timeout(Duration::from_secs(10), get(&self.uri, tls))
            .await
            .map_err(|_| format!("fetching {}: no answer within 10 s", self.url))?
            .map_err(|e| format!("fetching {}: {e}", self.url))?;
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| format!("{} is not a JWKS document: {e}", self.url))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            // A key without an id is kept under "": a provider with a single key may
            // name none, and its tokens then name none either.
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (_, Some(alg)) => alg.to_string().parse::<Algorithm>().ok(),
                (AlgorithmParameters::RSA(_), None) => Some(Algorithm::RS256),
                (AlgorithmParameters::EllipticCurve(_), None) => Some(Algorithm::ES256),
                _ => None,
            };
            // Keys of kinds gattway does not verify (encryption keys, say) are skipped.
            if let (Some(algorithm), Ok(key)) = (algorithm, DecodingKey::from_jwk(jwk)) {
                keys.insert(kid, (key, algorithm));
            }
        }
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        tracing::debug!(url = %self.url, keys = n, "JWKS fetched");
        Ok(n)
    }

    /// The key a token's `kid` names; a token that names none takes the document's
    /// only key, when it has exactly one. An unknown id asks for a fetch.
    pub fn key(&self, kid: Option<&str>) -> Result<(DecodingKey, Algorithm), AuthError> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let Some(kid) = kid else {
            // A token that names no key takes the document's only key, if it has one.
            return match keys.values().collect::<Vec<_>>().as_slice() {
                [only] => Ok((*only).clone()),
                _ => Err(AuthError::InvalidToken(format!(
                    "the token names no key id (kid), and {} holds {} keys",
                    self.url,
                    keys.len()
                ))),
            };
        };
        if let Some(found) = keys.get(kid) {
            return Ok(found.clone());
        }
        drop(keys);
        let due = crate::sync::lock(&self.last_fetch).is_none_or(|t| t.elapsed() >= MIN_REFETCH);
        if due {
            self.wanted.notify_one();
        }
        Err(AuthError::InvalidToken(format!(
            "unknown signing key {kid:?}: not in {} (refetched at most every {} s)",
            self.url,
            MIN_REFETCH.as_secs()
        )))
    }
}

/// One GET, over TLS for `https`: the body of a 200 answer. A JWKS fetch is one
/// small document now and then, so a connection each time is plenty.
async fn get(uri: &Uri, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Bytes, String> {
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if tls.is_some() { 443 } else { 80 });
    let request = hyper::Request::get(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header(
            hyper::header::HOST,
            uri.authority().map(|a| a.as_str()).unwrap_or(host),
        )
        .header(
            hyper::header::USER_AGENT,
            concat!("gattway/", env!("CARGO_PKG_VERSION")),
        )
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let response = match tls {
        Some(config) => {
            let name =
                rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            send(TokioIo::new(stream), request).await?
        }
        None => send(TokioIo::new(tcp), request).await?,
    };
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    Limited::new(response.into_body(), MAX_DOCUMENT)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| e.to_string())
}

async fn send<I>(io: I, request: hyper::Request<Empty<Bytes>>) -> Result<hyper::Response<Incoming>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    // Drives the connection until the answer's body has been read.
    tokio::spawn(connection);
    sender.send_request(request).await.map_err(|e| e.to_string())
}
