//! JWTs: the claims gattway reads and writes, verification (signature, `exp`,
//! `nbf`, `aud`, `iss`; scopes from `scope`, devices from `devices`), and signing
//! for `gattway token`.

use std::collections::BTreeSet;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{AuthError, DeviceAllowList, Principal, Scope};

/// `aud` as authorisation servers write it: one string, or several.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Several(Vec<String>),
}

/// JWT claims gattway reads and writes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Space-separated, as OAuth 2 writes it.
    #[serde(default)]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<String>>,
}

pub fn verify_jwt(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Principal, AuthError> {
    use jsonwebtoken::errors::ErrorKind;
    let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| match e.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthError::WrongIssuer,
        _ => AuthError::InvalidToken(e.to_string()),
    })?;
    let c = data.claims;
    let mut scopes = BTreeSet::new();
    // An authorisation server adds scopes of its own (`openid`, `profile`): they
    // grant nothing here and are passed over.
    scopes.extend(c.scope.split_whitespace().filter_map(Scope::parse));
    Ok(Principal {
        subject: c.sub,
        scopes,
        devices: DeviceAllowList::new(c.devices.as_deref().unwrap_or_default()),
        expires_at: Some(c.exp),
    })
}

/// What `gattway token` needs to sign a JWT.
pub struct TokenRequest<'a> {
    pub subject: &'a str,
    pub scopes: &'a [Scope],
    pub devices: &'a [String],
    pub ttl: Duration,
    pub audience: Option<&'a str>,
    pub issuer: Option<&'a str>,
}

/// Signs an HS256 JWT with the configured secret.
pub fn issue_jwt(secret: &str, req: &TokenRequest<'_>) -> Result<String, String> {
    if secret.trim().is_empty() {
        return Err("no JWT secret: set auth.jwt_secret or GATTWAY_AUTH_JWT_SECRET".into());
    }
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: req.subject.to_string(),
        exp: now + req.ttl.as_secs(),
        nbf: Some(now),
        iat: Some(now),
        aud: req.audience.map(|a| Audience::One(a.to_string())),
        iss: req.issuer.map(str::to_string),
        scope: req
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        devices: (!req.devices.is_empty()).then(|| req.devices.to_vec()),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.trim().as_bytes()),
    )
    .map_err(|e| format!("signing the token failed: {e}"))
}
