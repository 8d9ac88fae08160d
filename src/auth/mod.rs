//! The security layer every network front end shares: who a request is (a
//! [`Principal`], from an API key or a JWT) and what it may do (scopes, an optional
//! device allow-list). API keys are stored as SHA-256 hashes and compared in
//! constant time; JWTs are checked for signature, `exp`, `nbf`, `aud` and `iss`.
//! Secrets never reach the logs. Which devices a credential may use is one
//! [`DeviceAllowList`], with one meaning on every front end.

mod allow_list;
mod jwks;
mod jwt;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ErrorKind;

pub use self::allow_list::DeviceAllowList;
use self::jwt::verify_jwt;
pub use self::jwt::{issue_jwt, TokenRequest};

/// What a principal may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "ble:read")]
    BleRead,
    #[serde(rename = "ble:write")]
    BleWrite,
    #[serde(rename = "ble:admin")]
    BleAdmin,
    #[serde(rename = "hub:device")]
    HubDevice,
    #[serde(rename = "hub:client")]
    HubClient,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::BleRead,
        Scope::BleWrite,
        Scope::BleAdmin,
        Scope::HubDevice,
        Scope::HubClient,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::BleRead => "ble:read",
            Scope::BleWrite => "ble:write",
            Scope::BleAdmin => "ble:admin",
            Scope::HubDevice => "hub:device",
            Scope::HubClient => "hub:client",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|x| x.as_str() == s.trim())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The API key's name or the JWT's `sub`.
    pub subject: String,
    pub scopes: BTreeSet<Scope>,
    /// Devices it may see and use.
    pub devices: DeviceAllowList,
    /// Unix seconds the credential expires at (JWTs).
    pub expires_at: Option<u64>,
}

impl Principal {
    /// `ble:admin` includes `ble:read` and `ble:write`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
            || (matches!(scope, Scope::BleRead | Scope::BleWrite) && self.scopes.contains(&Scope::BleAdmin))
    }

    pub fn require(&self, scope: Scope) -> Result<(), AuthError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(AuthError::MissingScope(scope))
        }
    }

    /// The hub device a `hub:device` credential is: the single entry of its device
    /// list, or else its subject. A credential whose list names several devices, or
    /// a prefix, is no one device and is refused.
    pub fn device_identity(&self) -> Result<&str, AuthError> {
        if self.devices.is_any() {
            return Ok(&self.subject);
        }
        self.devices
            .single()
            .ok_or_else(|| AuthError::NoDeviceIdentity(self.devices.to_string()))
    }

    /// Whether the credential (a JWT, a session token) has expired by now.
    pub fn expired(&self) -> bool {
        self.time_left().is_some_and(|left| left.is_zero())
    }

    /// How long the credential holds yet; `None` for one that never expires.
    pub fn time_left(&self) -> Option<Duration> {
        let exp = self.expires_at?;
        Some(Duration::from_secs(
            exp.saturating_sub(jsonwebtoken::get_current_timestamp()),
        ))
    }
}

/// Constant-time comparison for secrets (API keys, lease and session tokens), so
/// timing does not reveal how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether an (optional) principal may see and use a device (a BLE device's id or a
/// hub device's id, and its name when it has one): no principal (no credentials
/// configured) may use any.
pub fn admits(principal: Option<&Principal>, id: impl AsRef<str>, name: Option<&str>) -> bool {
    principal.is_none_or(|p| p.devices.admits(id.as_ref(), name))
}

/// Like [`admits`], as the error front ends return.
pub fn check_device(
    principal: Option<&Principal>,
    id: impl AsRef<str>,
    name: Option<&str>,
) -> Result<(), AuthError> {
    let id = id.as_ref();
    if admits(principal, id, name) {
        Ok(())
    } else {
        Err(AuthError::DeviceNotAllowed(id.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send an API key or JWT (Authorization: Bearer …)")]
    NotAuthenticated,
    #[error("invalid API key")]
    InvalidApiKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token is for another audience")]
    WrongAudience,
    #[error("the token is from an unexpected issuer")]
    WrongIssuer,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("permission denied: this needs the {0} scope")]
    MissingScope(Scope),
    #[error("permission denied: device {0} is not in this credential's device list")]
    DeviceNotAllowed(String),
    #[error(
        "a hub:device credential is one device: its subject, or a device list of one id (this one lists {0})"
    )]
    NoDeviceIdentity(String),
    #[error("permission denied: this credential is device {credential}, not {asked}")]
    NotThisDevice { credential: String, asked: String },
}

impl AuthError {
    /// What kind of failure this is, for front ends to turn into their wire code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AuthError::NotAuthenticated => ErrorKind::NotAuthenticated,
            AuthError::InvalidApiKey => ErrorKind::InvalidApiKey,
            AuthError::Expired => ErrorKind::Expired,
            AuthError::NotYetValid
            | AuthError::WrongAudience
            | AuthError::WrongIssuer
            | AuthError::InvalidToken(_) => ErrorKind::InvalidToken,
            AuthError::MissingScope(_)
            | AuthError::DeviceNotAllowed(_)
            | AuthError::NoDeviceIdentity(_)
            | AuthError::NotThisDevice { .. } => ErrorKind::Forbidden,
        }
    }

    /// 401 for "who are you", 403 for "you may not".
    pub fn http_status(&self) -> u16 {
        match self.kind() {
            ErrorKind::Forbidden => 403,
            _ => 401,
        }
    }
}

/// One configured API key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who holds it (the principal's subject; shows in logs, never the key).
    pub name: String,
    /// SHA-256 of the key, hex (`gattway token --api-key` prints it).
    pub sha256: String,
    pub scopes: Vec<Scope>,
    /// Devices it may use: ids, names, or prefixes ending in `*`; empty: any.
    pub devices: Vec<String>,
}

/// The `[auth]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub api_keys: Vec<ApiKeyConfig>,
    /// HS256 secret for JWTs (prefer `GATTWAY_AUTH_JWT_SECRET`).
    pub jwt_secret: String,
    /// PEM public key (RSA or EC) for RS256/ES256 JWTs, instead of a secret.
    pub jwt_public_key: String,
    /// Expected `aud`; when set, a token without it is refused (empty: not checked).
    pub jwt_audience: String,
    /// Expected `iss`; when set, a token without it is refused (empty: not checked).
    pub jwt_issuer: String,
    /// Serve on a non-loopback address with no authentication (warned every minute).
    pub insecure_no_auth: bool,
    /// An authorisation server's JWKS document (Keycloak, any OIDC provider): JWTs
    /// whose `kid` it names are verified with its keys. Needs `jwt_audience`.
    pub jwks_url: String,
    /// How often the JWKS is fetched again, in seconds.
    pub jwks_refresh_s: u64,
    /// The CA (PEM) an `https://` JWKS URL is trusted with (empty: the system's roots).
    pub jwks_ca_file: String,
    /// The authorisation servers (issuer URLs) `/mcp`'s protected-resource metadata
    /// names, where MCP clients get their tokens.
    pub authorization_servers: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            api_keys: Vec::new(),
            jwt_secret: String::new(),
            jwt_public_key: String::new(),
            jwt_audience: String::new(),
            jwt_issuer: String::new(),
            insecure_no_auth: false,
            jwks_url: String::new(),
            jwks_refresh_s: 300,
            jwks_ca_file: String::new(),
            authorization_servers: Vec::new(),
        }
    }
}

struct Key {
    name: String,
    hash: [u8; 32],
    scopes: BTreeSet<Scope>,
    devices: DeviceAllowList,
}

/// Verifies credentials against the configuration.
pub struct Authenticator {
    keys: Vec<Key>,
    jwt: Option<(DecodingKey, Validation)>,
    /// Keys from `auth.jwks_url`, and the checks their tokens get (the algorithm is
    /// each key's own).
    jwks: Option<(Arc<jwks::Jwks>, Validation)>,
    /// `auth.jwt_audience`: also the identifier of `/mcp` as a protected resource.
    audience: String,
    authorization_servers: Vec<String>,
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Result<Self, String> {
        let mut keys = Vec::new();
        for k in &config.api_keys {
            let bytes = hex::decode(k.sha256.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| format!("auth.api_keys {:?}: sha256 must be 64 hex digits", k.name))?;
            keys.push(Key {
                name: k.name.clone(),
                hash: bytes,
                scopes: k.scopes.iter().copied().collect(),
                devices: DeviceAllowList::new(&k.devices),
            });
        }
        let jwt = match (config.jwt_secret.trim(), config.jwt_public_key.trim()) {
            ("", "") => None,
            (secret, "") => Some((
                DecodingKey::from_secret(secret.as_bytes()),
                Validation::new(Algorithm::HS256),
            )),
            ("", pem) => match DecodingKey::from_ec_pem(pem.as_bytes()) {
                Ok(key) => Some((key, Validation::new(Algorithm::ES256))),
                Err(_) => Some((
                    DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| {
                        format!("auth.jwt_public_key is neither an EC nor an RSA public key: {e}")
                    })?,
                    Validation::new(Algorithm::RS256),
                )),
            },
            _ => return Err("give auth.jwt_secret or auth.jwt_public_key, not both".into()),
        };
        let jwt = jwt.map(|(key, v)| (key, claim_checks(v, config)));
        let jwks = match config.jwks_url.trim() {
            "" => None,
            // An authorisation server signs tokens for many resources; without an
            // audience to check, one meant for any of them would be taken here.
            _ if config.jwt_audience.trim().is_empty() => {
                return Err(
                    "auth.jwks_url is set but auth.jwt_audience is empty: tokens from an \
                     authorisation server must name this server in `aud`. Set auth.jwt_audience to \
                     this server's /mcp URL as clients reach it (https://gw.example.com/mcp), the \
                     resource its OAuth metadata advertises"
                        .into(),
                )
            }
            url => Some((
                Arc::new(jwks::Jwks::new(
                    url,
                    &config.jwks_ca_file,
                    Duration::from_secs(config.jwks_refresh_s),
                )?),
                claim_checks(Validation::new(Algorithm::RS256), config),
            )),
        };
        Ok(Authenticator {
            keys,
            jwt,
            jwks,
            audience: config.jwt_audience.trim().to_string(),
            authorization_servers: config.authorization_servers.clone(),
        })
    }

    /// Whether any credential is configured (else the server runs open, which is
    /// only allowed on loopback).
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty() || self.jwt.is_some() || self.jwks.is_some()
    }

    /// The audience tokens must carry (`auth.jwt_audience`; empty: not checked).
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Where clients get tokens (`auth.authorization_servers`).
    pub fn authorization_servers(&self) -> &[String] {
        &self.authorization_servers
    }

    /// Fetches the JWKS (when `auth.jwks_url` is set) and keeps it fresh; the first
    /// fetch's error is returned, and fetching goes on behind it.
    pub async fn start(&self) -> Result<(), String> {
        match &self.jwks {
            Some((jwks, _)) => jwks.start().await.map(|_| ()),
            None => Ok(()),
        }
    }

    /// The principal of the API key configured under `name`, for a front end that
    /// acts as that key without being presented it (commands from MQTT run as
    /// `mqtt.command_principal`).
    pub fn api_key_principal(&self, name: &str) -> Option<Principal> {
        self.keys.iter().find(|k| k.name == name).map(|k| Principal {
            subject: k.name.clone(),
            scopes: k.scopes.clone(),
            devices: k.devices.clone(),
            expires_at: None,
        })
    }

    /// Who presents this credential: a JWT (three dot-separated parts) or an API key.
    pub fn verify(&self, credential: &str) -> Result<Principal, AuthError> {
        let credential = credential.trim();
        if credential.is_empty() {
            return Err(AuthError::NotAuthenticated);
        }
        if credential.split('.').count() == 3 {
            let kid = jsonwebtoken::decode_header(credential).ok().and_then(|h| h.kid);
            // A token naming a key id is the authorisation server's, when there is one;
            // so is one naming none when gattway has no key of its own.
            let server_signed = kid.is_some() || self.jwt.is_none();
            if let Some((jwks, checks)) = self.jwks.as_ref().filter(|_| server_signed) {
                let (key, algorithm) = jwks.key(kid.as_deref())?;
                let mut checks = checks.clone();
                checks.algorithms = vec![algorithm];
                return verify_jwt(credential, &key, &checks);
            }
            if let Some((key, validation)) = &self.jwt {
                return verify_jwt(credential, key, validation);
            }
        }
        let hash = Sha256::digest(credential.as_bytes());
        // Check every key, matched or not, so timing does not tell which one.
        let mut found = None;
        for k in &self.keys {
            if constant_time_eq(&hash, &k.hash) {
                found = Some(k);
            }
        }
        found
            .map(|k| Principal {
                subject: k.name.clone(),
                scopes: k.scopes.clone(),
                devices: k.devices.clone(),
                expires_at: None,
            })
            .ok_or(AuthError::InvalidApiKey)
    }
}

/// The claim checks every JWT gets: `nbf`, a little leeway, and a configured
/// audience or issuer that must be present, not merely correct when present
/// (jsonwebtoken checks only the claims it is told are required).
fn claim_checks(mut v: Validation, config: &AuthConfig) -> Validation {
    v.validate_nbf = true;
    v.leeway = 5;
    let mut required = vec!["exp"];
    if config.jwt_audience.trim().is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(&[config.jwt_audience.trim()]);
        required.push("aud");
    }
    if !config.jwt_issuer.trim().is_empty() {
        v.set_issuer(&[config.jwt_issuer.trim()]);
        required.push("iss");
    }
    v.set_required_spec_claims(&required);
    v
}

/// A new random API key (32 random bytes, hex) and its SHA-256.
pub fn new_api_key() -> (String, String) {
    let bytes: [u8; 32] = std::array::from_fn(|_| secure_random_byte());
    let key = format!("gw_{}", hex::encode(bytes));
    let hash = sha256_hex(key.as_bytes());
    (key, hash)
}

/// A byte from the OS's CSPRNG (a UUID v4 draws from it), never from a seeded PRNG.
fn secure_random_byte() -> u8 {
    uuid::Uuid::new_v4().as_bytes()[0]
}

#[cfg(test)]
mod tests {
    use super::jwt::{Audience, Claims};
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    fn config_with(key: &str) -> AuthConfig {
        AuthConfig {
            api_keys: vec![ApiKeyConfig {
                name: "ci".into(),
                sha256: sha256_hex(key.as_bytes()),
                scopes: vec![Scope::BleRead],
                devices: vec!["CS108*".into()],
            }],
            jwt_secret: "s3cret".into(),
            jwt_audience: "gattway".into(),
            ..Default::default()
        }
    }

    fn token(req: TokenRequest<'_>, secret: &str) -> String {
        issue_jwt(secret, &req).unwrap()
    }

    fn req<'a>(scopes: &'a [Scope], aud: Option<&'a str>, ttl: u64) -> TokenRequest<'a> {
        TokenRequest {
            subject: "alice",
            scopes,
            devices: &[],
            ttl: Duration::from_secs(ttl),
            audience: aud,
            issuer: None,
        }
    }

    #[test]
    fn api_keys_match_by_hash_only() {
        let a = Authenticator::new(&config_with("k1")).unwrap();
        let p = a.verify("k1").unwrap();
        assert_eq!(p.subject, "ci");
        assert!(p.has(Scope::BleRead) && !p.has(Scope::BleWrite));
        assert!(admits(Some(&p), "X", Some("CS108Reader")));
        assert!(!admits(Some(&p), "X", Some("CS10")));
        assert!(!admits(Some(&p), "X", Some("Gattway HRM")));
        assert_eq!(a.verify("k2").unwrap_err(), AuthError::InvalidApiKey);
        assert_eq!(a.verify("").unwrap_err(), AuthError::NotAuthenticated);
    }

    #[test]
    fn jwts_are_checked_for_signature_expiry_and_audience() {
        let a = Authenticator::new(&config_with("k1")).unwrap();
        let scopes = [Scope::BleWrite];
        let p = a
            .verify(&token(req(&scopes, Some("gattway"), 60), "s3cret"))
            .unwrap();
        assert_eq!(p.subject, "alice");
        assert!(p.has(Scope::BleWrite));
        assert_eq!(
            a.verify(&token(req(&scopes, Some("other"), 60), "s3cret"))
                .unwrap_err(),
            AuthError::WrongAudience
        );
        assert!(matches!(
            a.verify(&token(req(&scopes, Some("gattway"), 60), "wrong"))
                .unwrap_err(),
            AuthError::InvalidToken(_)
        ));
        // Expired well beyond the leeway.
        let mut old = Claims {
            sub: "old".into(),
            exp: jsonwebtoken::get_current_timestamp() - 3600,
            nbf: None,
            iat: None,
            aud: Some(Audience::One("gattway".into())),
            iss: None,
            scope: "ble:read".into(),
            devices: None,
        };
        let enc = EncodingKey::from_secret(b"s3cret");
        let expired = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &old, &enc).unwrap();
        assert_eq!(a.verify(&expired).unwrap_err(), AuthError::Expired);
        old.exp += 7200;
        old.nbf = Some(jsonwebtoken::get_current_timestamp() + 600);
        let early = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &old, &enc).unwrap();
        assert_eq!(a.verify(&early).unwrap_err(), AuthError::NotYetValid);
        assert_eq!(AuthError::Expired.kind(), ErrorKind::Expired);
    }

    #[test]
    fn a_configured_audience_or_issuer_must_be_present() {
        let mut config = config_with("k1");
        config.jwt_issuer = "https://issuer.example".into();
        let a = Authenticator::new(&config).unwrap();
        let scopes = [Scope::BleRead];
        let with = |aud: Option<&'static str>, iss: Option<&'static str>| TokenRequest {
            issuer: iss,
            ..req(&scopes, aud, 60)
        };
        assert!(a
            .verify(&token(
                with(Some("gattway"), Some("https://issuer.example")),
                "s3cret"
            ))
            .is_ok());
        assert_eq!(
            a.verify(&token(with(None, Some("https://issuer.example")), "s3cret"))
                .unwrap_err(),
            AuthError::WrongAudience,
            "no aud at all"
        );
        assert_eq!(
            a.verify(&token(with(Some("gattway"), None), "s3cret"))
                .unwrap_err(),
            AuthError::WrongIssuer,
            "no iss at all"
        );
    }

    #[test]
    fn a_device_credential_is_one_device() {
        let p = |devices: &[&str]| Principal {
            subject: "sensor-7".into(),
            scopes: [Scope::HubDevice].into_iter().collect(),
            devices: DeviceAllowList::new(devices),
            expires_at: None,
        };
        assert_eq!(p(&[]).device_identity(), Ok("sensor-7"));
        assert_eq!(p(&["boiler"]).device_identity(), Ok("boiler"));
        assert!(matches!(
            p(&["a", "b"]).device_identity(),
            Err(AuthError::NoDeviceIdentity(_))
        ));
        assert!(p(&["sensor-*"]).device_identity().is_err());
    }

    #[test]
    fn admin_implies_read_and_write() {
        let p = Principal {
            subject: "root".into(),
            scopes: [Scope::BleAdmin].into_iter().collect(),
            devices: DeviceAllowList::any(),
            expires_at: None,
        };
        assert!(p.has(Scope::BleRead) && p.has(Scope::BleWrite) && !p.has(Scope::HubClient));
        assert_eq!(p.require(Scope::HubDevice).unwrap_err().http_status(), 403);
    }

    #[test]
    fn new_api_keys_are_distinct_and_hash_to_their_line() {
        let (k1, h1) = new_api_key();
        let (k2, _) = new_api_key();
        assert_ne!(k1, k2);
        assert_eq!(sha256_hex(k1.as_bytes()), h1);
        assert_eq!(k1.len(), 3 + 64);
    }
}
