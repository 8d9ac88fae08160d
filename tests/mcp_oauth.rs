//! `/mcp` as an OAuth 2.1 protected resource, as the MCP authorisation spec asks:
//! the metadata document, a 401 whose `WWW-Authenticate` points at it, JWT access
//! tokens from an authorisation server's JWKS checked for audience, scope, and a
//! rotated key picked up without a restart. The gattway binary runs with a config
//! file; the authorisation server's JWKS document is served over HTTP from this
//! test with real EC keys (made by openssl), as an IdP publishes it.

mod common;

use std::sync::{Arc, Mutex};

use base64::Engine;
use common::mcp::*;
use common::process::{listening_addr, serve_with_config, wait_for_line};
use common::*;
use serde_json::{json, Value};

const AUDIENCE: &str = "https://gattway.test/mcp";

/// An EC P-256 key pair: the private key (PKCS#8 PEM) and its public JWK.
fn ec_key(dir: &std::path::Path, kid: &str) -> (Vec<u8>, Value) {
    let pem = dir.join(format!("{kid}.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&pem)
        .status()
        .expect("openssl");
    assert!(made.success());
    let der = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&pem)
        .output()
        .expect("openssl")
        .stdout;
    // The SubjectPublicKeyInfo ends with the uncompressed point: 04 ‖ x ‖ y.
    let point = &der[der.len() - 64..];
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[..32]), "y": b64(&point[32..]),
        "kid": kid, "alg": "ES256", "use": "sig"});
    (std::fs::read(&pem).unwrap(), jwk)
}

fn token(private_pem: &[u8], kid: &str, aud: Option<&str>, scope: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    // "" for a token that names no key.
    header.kid = Some(kid.to_string()).filter(|k| !k.is_empty());
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({"sub": "assistant", "exp": now + 600, "iat": now, "scope": scope,
        "iss": "https://auth.example"});
    if let Some(aud) = aud {
        // As Keycloak writes it: a list.
        claims["aud"] = json!([aud, "account"]);
    }
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_pem(private_pem).unwrap(),
    )
    .unwrap()
}

/// Serves the JWKS document (whatever `keys` holds when asked) at /jwks.json.
async fn serve_jwks(keys: Arc<Mutex<Vec<Value>>>) -> String {
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let keys = keys.clone();
            async move { axum::Json(json!({"keys": keys.lock().unwrap().clone()})) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/jwks.json")
}

async fn post_initialize(base: &str, bearer: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}));
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

fn challenge(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn mcp_is_an_oauth_protected_resource_with_tokens_from_a_jwks() {
    let dir = TempDir::new();
    let (k1_private, k1_public) = ec_key(&dir.path, "k1");
    let (k2_private, k2_public) = ec_key(&dir.path, "k2");
    let keys = Arc::new(Mutex::new(vec![k1_public]));
    let jwks_url = serve_jwks(keys.clone()).await;
    let served = serve_with_config(&format!(
        "[auth]\njwt_audience = \"{AUDIENCE}\"\njwks_url = \"{jwks_url}\"\njwks_refresh_s = 1\n\
         authorization_servers = [\"https://auth.example\"]\n"
    ))
    .await;
    let base = served.base.clone();

    // The metadata, at the root and at the path-specific address.
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let meta: Value = reqwest::get(format!("{base}{path}"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(meta["resource"], AUDIENCE, "{meta}");
        assert_eq!(meta["authorization_servers"], json!(["https://auth.example"]));
        assert_eq!(
            meta["scopes_supported"],
            json!(["ble:read", "ble:write", "ble:admin"])
        );
        assert_eq!(meta["bearer_methods_supported"], json!(["header"]));
    }

    // No token: 401 pointing at the metadata.
    let resp = post_initialize(&base, None).await;
    assert_eq!(resp.status(), 401);
    let said = challenge(&resp);
    assert_eq!(
        said,
        format!("Bearer resource_metadata=\"{base}/.well-known/oauth-protected-resource/mcp\", scope=\"ble:read\"")
    );
    // The official MCP client, given no token, knows it must authorise (its OAuth
    // flow starts from this error and the header above).
    let refused = match http_client(&format!("{base}/mcp"), None).await {
        Ok(_) => panic!("the MCP client got in with no token"),
        Err(e) => e,
    };
    assert!(refused.contains("Auth required"), "{refused}");

    // Tokens for another resource, or for none, are refused as invalid.
    for aud in [Some("https://elsewhere.test/mcp"), None] {
        let resp = post_initialize(&base, Some(&token(&k1_private, "k1", aud, "ble:read"))).await;
        assert_eq!(resp.status(), 401, "{aud:?}");
        assert!(
            challenge(&resp).contains("error=\"invalid_token\""),
            "{}",
            challenge(&resp)
        );
    }
    // Scopes of the authorisation server's own pass unnoticed; a token with none of
    // gattway's is short of scope.
    let resp = post_initialize(
        &base,
        Some(&token(&k1_private, "k1", Some(AUDIENCE), "openid profile")),
    )
    .await;
    assert_eq!(resp.status(), 403);
    assert!(
        challenge(&resp).contains("error=\"insufficient_scope\""),
        "{}",
        challenge(&resp)
    );

    // The right audience and scope: the MCP client works.
    let good = token(&k1_private, "k1", Some(AUDIENCE), "openid ble:read ble:write");
    let client = http_client(&format!("{base}/mcp"), Some(&good))
        .await
        .expect("authorised");
    let scan = ok(&client, "ble_scan", json!({"timeout": 0.5})).await;
    assert!(!scan["devices"].as_array().unwrap().is_empty());
    client.cancel().await.unwrap();

    // A rotated key: unknown at first, known once the JWKS has it.
    let rotated = token(&k2_private, "k2", Some(AUDIENCE), "ble:read");
    let resp = post_initialize(&base, Some(&rotated)).await;
    assert_eq!(resp.status(), 401);
    keys.lock().unwrap().push(k2_public);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let status = post_initialize(&base, Some(&rotated)).await.status();
        if status.is_success() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotated key was never picked up: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn without_credentials_there_is_no_metadata_and_mcp_is_open_on_loopback() {
    let (_child, mut lines) =
        common::process::spawn_reading_stderr(&["--backend", "sim", "serve", "--listen", "127.0.0.1:0"]);
    let base = format!(
        "http://{}",
        listening_addr(&wait_for_line(&mut lines, "listening on http://").await)
    );
    let resp = reqwest::get(format!("{base}/.well-known/oauth-protected-resource"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(post_initialize(&base, None).await.status().is_success());
}

#[tokio::test]
async fn a_provider_with_one_unnamed_key_signs_tokens_that_name_none() {
    let dir = TempDir::new();
    let (private, mut public) = ec_key(&dir.path, "only");
    public.as_object_mut().unwrap().remove("kid");
    let (_, other) = ec_key(&dir.path, "second");
    let keys = Arc::new(Mutex::new(vec![public]));
    let jwks_url = serve_jwks(keys.clone()).await;
    let served = serve_with_config(&format!(
        "[auth]\njwt_audience = \"{AUDIENCE}\"\njwks_url = \"{jwks_url}\"\njwks_refresh_s = 1\n"
    ))
    .await;
    let unnamed = token(&private, "", Some(AUDIENCE), "ble:read");
    assert!(post_initialize(&served.base, Some(&unnamed))
        .await
        .status()
        .is_success());
    // With two keys, a token that names none cannot say which: refused.
    keys.lock().unwrap().push(other);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let status = post_initialize(&served.base, Some(&unnamed)).await.status();
        if status == 401 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still accepted: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
