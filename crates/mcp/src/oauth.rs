//! dbward as an OAuth 2.1 resource server (the MCP authorization specification): access
//! tokens issued by one authorization server, each validated here against that server's
//! published keys (JWKS), and the RFC 9728 metadata that tells clients where to get one.
//!
//! Invariants:
//! - A token is accepted only if its signature verifies with a key from the issuer's JWKS
//!   under an algorithm the operator accepts (RS256, ES256; never `none` or an HMAC, whose
//!   "key" would be public), and its `iss`, `aud`, `exp`, `nbf` and scopes hold.
//! - Signatures are checked by `jsonwebtoken`; nothing here parses a signature itself.
//! - The key set is fetched again at most once a minute, when a token names a key it does
//!   not hold (rotation), so a flood of made-up `kid`s cannot make dbward flood the issuer.
//! - Rejections name their reason (for the audit log) but never echo the token.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dbward_gateway::access::Identity;
use dbward_gateway::config::OAuthConfig;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use crate::error::McpError;

/// Least time between two fetches of the key set.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// Longest access token looked at, in bytes.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Largest discovery document or key set read, in bytes.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Longest `sub` accepted, in bytes.
const MAX_SUB_BYTES: usize = 256;

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Not a valid token for this server: 401 `invalid_token`.
    Invalid(String),
    /// Valid, but without the scopes this server requires: 403 `insufficient_scope`.
    InsufficientScope(Vec<String>),
}

impl Rejection {
    /// The reason, for the audit log and `error_description`.
    pub fn reason(&self) -> String {
        match self {
            Rejection::Invalid(r) => r.clone(),
            Rejection::InsufficientScope(missing) => {
                format!("missing required scopes: {}", missing.join(" "))
            }
        }
    }
}

/// An accepted token's caller.
#[derive(Debug, Clone)]
pub struct Verified {
    /// `ISSUER:SUBJECT`, as logs and the audit name the caller.
    pub principal: String,
    /// Its identity, for `[access]` roles and session settings.
    pub identity: Identity,
}

struct Keys {
    set: JwkSet,
    /// When a token naming an unknown key last made us fetch the set (successful or not);
    /// the start-up fetch does not count, so a key rotated in just after start still works.
    refetched: Option<Instant>,
}

/// Validates access tokens of one authorization server.
pub struct OAuthVerifier {
    issuer: String,
    audience: String,
    short: String,
    algorithms: Vec<Algorithm>,
    leeway: u64,
    required_scopes: Vec<String>,
    jwks_url: Option<String>,
    http: reqwest::Client,
    keys: tokio::sync::Mutex<Keys>,
}

impl std::fmt::Debug for OAuthVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// Whether `url` may be fetched: `https`, or `http` to a loopback host.
fn fetchable(url: &str) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    match u.scheme() {
        "https" => true,
        "http" => match u.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            None => false,
        },
        _ => false,
    }
}

impl OAuthVerifier {
    /// A verifier for `config`; refuses algorithms other than RS256/ES256 and issuer or
    /// key URLs that are neither `https` nor loopback `http`.
    pub fn new(config: &OAuthConfig) -> Result<OAuthVerifier, McpError> {
        let bad = |m: String| McpError::Refused(format!("[auth.oauth]: {m}"));
        if !fetchable(&config.issuer) {
            return Err(bad(format!(
                "issuer `{}` must be an https URL (http only on a loopback address)",
                config.issuer
            )));
        }
        if let Some(u) = &config.jwks_url
            && !fetchable(u)
        {
            return Err(bad(format!(
                "jwks_url `{u}` must be an https URL (http only on a loopback address)"
            )));
        }
        if url::Url::parse(&config.audience).is_err() {
            return Err(bad(format!(
                "audience `{}` must be this server's resource URL, e.g. https://db.example.com/mcp",
                config.audience
            )));
        }
        let mut algorithms = Vec::new();
        for a in &config.algorithms {
            algorithms.push(match a.as_str() {
                "RS256" => Algorithm::RS256,
                "ES256" => Algorithm::ES256,
                other => {
                    return Err(bad(format!(
                        "algorithm `{other}` is not accepted (RS256, ES256): `none` and HMAC algorithms would let anyone holding the public key mint tokens"
                    )));
                }
            });
        }
        if algorithms.is_empty() {
            return Err(bad("algorithms is empty".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| bad(format!("HTTP client: {e}")))?;
        Ok(OAuthVerifier {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            short: config.short_name(),
            algorithms,
            leeway: config.clock_skew_s,
            required_scopes: config.required_scopes.clone(),
            jwks_url: config.jwks_url.clone(),
            http,
            keys: tokio::sync::Mutex::new(Keys {
                set: JwkSet { keys: Vec::new() },
                refetched: None,
            }),
        })
    }

    /// Where this server's protected-resource metadata is (RFC 9728 §3: the well-known
    /// path inserted before the resource's own path).
    pub fn metadata_url(&self) -> String {
        match url::Url::parse(&self.audience) {
            Ok(u) => {
                let path = u.path().trim_end_matches('/');
                format!(
                    "{}/.well-known/oauth-protected-resource{}",
                    u.origin().ascii_serialization(),
                    path
                )
            }
            Err(_) => "/.well-known/oauth-protected-resource".into(),
        }
    }

    /// The paths the metadata is served at: the RFC 9728 one for the resource, and the
    /// bare well-known path clients also try.
    pub fn metadata_paths(&self) -> Vec<String> {
        let mut paths = vec!["/.well-known/oauth-protected-resource".to_string()];
        if let Ok(u) = url::Url::parse(&self.audience) {
            let path = u.path().trim_end_matches('/');
            if !path.is_empty() {
                paths.push(format!("/.well-known/oauth-protected-resource{path}"));
            }
        }
        paths
    }

    /// The RFC 9728 protected-resource metadata document.
    pub fn metadata(&self) -> Value {
        json!({
            "resource": self.audience,
            "authorization_servers": [self.issuer],
            "scopes_supported": self.required_scopes,
            "bearer_methods_supported": ["header"],
            "resource_signing_alg_values_supported": self
                .algorithms
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>(),
            "resource_name": "dbward",
        })
    }

    /// The scopes a token must carry.
    pub fn required_scopes(&self) -> &[String] {
        &self.required_scopes
    }

    /// Fetches the key set now (at start-up), so a misconfigured issuer shows in the log at
    /// once; failures are logged, not fatal (the issuer may come up later).
    pub async fn warm(&self) {
        let mut keys = self.keys.lock().await;
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(issuer = %self.issuer, keys = set.keys.len(), "OAuth signing keys fetched");
                keys.set = set;
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "cannot fetch the OAuth signing keys yet; tokens are refused until they can be fetched");
            }
        }
    }

    /// Reads a JSON document, bounded in size and time.
    async fn get_json(&self, url: &str) -> Result<Value, String> {
        if !fetchable(url) {
            return Err(format!("{url} is neither https nor loopback http"));
        }
        let mut resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("{url}: {}", without_url(&e)))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: HTTP {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("{url}: {}", without_url(&e)))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("{url}: larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))
    }

    /// The key set's URL: configured, or from the issuer's metadata (OpenID Connect
    /// discovery, then RFC 8414), whose `issuer` must be ours.
    async fn jwks_url(&self) -> Result<String, String> {
        if let Some(u) = &self.jwks_url {
            return Ok(u.clone());
        }
        let base = self.issuer.trim_end_matches('/');
        let mut candidates = vec![format!("{base}/.well-known/openid-configuration")];
        if let Ok(u) = url::Url::parse(&self.issuer) {
            let path = u.path().trim_end_matches('/');
            candidates.push(format!(
                "{}/.well-known/oauth-authorization-server{path}",
                u.origin().ascii_serialization()
            ));
        }
        let mut last = String::new();
        for c in candidates {
            match self.get_json(&c).await {
                Ok(doc) => {
                    if doc.get("issuer").and_then(Value::as_str) != Some(self.issuer.as_str()) {
                        last = format!("{c}: its issuer is not `{}`", self.issuer);
                        continue;
                    }
                    match doc.get("jwks_uri").and_then(Value::as_str) {
                        Some(j) => return Ok(j.to_string()),
                        None => last = format!("{c}: no jwks_uri"),
                    }
                }
                Err(e) => last = e,
            }
        }
        Err(format!("no usable authorization server metadata ({last})"))
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        let url = self.jwks_url().await?;
        let doc = self.get_json(&url).await?;
        serde_json::from_value::<JwkSet>(doc).map_err(|e| format!("{url}: not a JWK set: {e}"))
    }

    /// The key a token's header names, fetching the key set again if it is unknown and
    /// the last fetch was long enough ago.
    async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Jwk, Rejection> {
        let mut keys = self.keys.lock().await;
        if let Some(k) = pick(&keys.set, kid, alg)? {
            return Ok(k);
        }
        let due = keys
            .refetched
            .is_none_or(|t| t.elapsed() >= REFETCH_INTERVAL);
        if !due {
            return Err(Rejection::Invalid(format!(
                "unknown signing key {} (the key set was fetched less than a minute ago)",
                kid.map(|k| format!("`{}`", clip(k))).unwrap_or_default()
            )));
        }
        keys.refetched = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(issuer = %self.issuer, keys = set.keys.len(), "OAuth signing keys fetched again");
                keys.set = set;
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "cannot fetch the OAuth signing keys");
                return Err(Rejection::Invalid(
                    "the issuer's signing keys cannot be fetched".into(),
                ));
            }
        }
        pick(&keys.set, kid, alg)?.ok_or_else(|| {
            Rejection::Invalid(format!(
                "unknown signing key {}",
                kid.map(|k| format!("`{}`", clip(k))).unwrap_or_default()
            ))
        })
    }

    /// Validates `token`.
    pub async fn verify(&self, token: &str) -> Result<Verified, Rejection> {
        let invalid = |m: &str| Rejection::Invalid(m.to_string());
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("token too long"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid("not a signed JWT, or its algorithm is not supported"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(Rejection::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let jwk = self.key_for(header.kid.as_deref(), header.alg).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid("unusable signing key"))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.leeway = self.leeway;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &v)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                Rejection::Invalid(
                    match e.kind() {
                        K::ExpiredSignature => "token expired",
                        K::ImmatureSignature => "token not valid yet (nbf)",
                        K::InvalidAudience => "wrong audience",
                        K::InvalidIssuer => "wrong issuer",
                        K::InvalidSignature => "signature does not verify",
                        K::MissingRequiredClaim(_) => {
                            "a required claim (exp, iss, aud, sub) is missing"
                        }
                        K::InvalidAlgorithm => "algorithm does not match the key",
                        _ => "malformed token",
                    }
                    .to_string(),
                )
            })?;
        let claims = data.claims;
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| {
                !s.is_empty() && s.len() <= MAX_SUB_BYTES && !s.chars().any(char::is_control)
            })
            .ok_or_else(|| invalid("`sub` must be a string of 1 to 256 printable bytes"))?
            .to_string();
        let held = scopes(&claims);
        let missing: Vec<String> = self
            .required_scopes
            .iter()
            .filter(|s| !held.contains(s))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(Rejection::InsufficientScope(missing));
        }
        Ok(Verified {
            principal: format!("{}:{sub}", self.short),
            identity: Identity {
                keys: vec![format!("sub:{}:{sub}", self.short)],
                sub: Some(sub),
                claims,
            },
        })
    }
}

/// The key for `kid` (or the only key usable with `alg` when the token names none).
fn pick(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Result<Option<Jwk>, Rejection> {
    let usable = |k: &&Jwk| {
        k.common
            .key_algorithm
            .is_none_or(|ka| format!("{ka:?}") == format!("{alg:?}"))
    };
    match kid {
        Some(kid) => Ok(set
            .keys
            .iter()
            .filter(usable)
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .cloned()),
        None => {
            let candidates: Vec<&Jwk> = set.keys.iter().filter(usable).collect();
            match candidates.as_slice() {
                [] => Ok(None),
                [one] => Ok(Some((*one).clone())),
                _ => Err(Rejection::Invalid(
                    "the token names no key (`kid`) and the issuer has several".into(),
                )),
            }
        }
    }
}

/// The scopes a token carries: `scope` (space-separated, RFC 8693/9068) or `scp` (a list
/// or a string, as some issuers write it).
fn scopes(claims: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => out.extend(s.split_whitespace().map(String::from)),
            Some(Value::Array(a)) => {
                out.extend(a.iter().filter_map(Value::as_str).map(String::from))
            }
            _ => {}
        }
    }
    out
}

fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// A reqwest error without its URL (ours, but it may carry a query string).
fn without_url(e: &reqwest::Error) -> String {
    let e = e.to_string();
    e.split(" for url").next().unwrap_or(&e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OAuthConfig {
        OAuthConfig {
            issuer: "https://idp.example.com".into(),
            audience: "https://db.example.com/mcp".into(),
            jwks_url: None,
            algorithms: vec!["RS256".into(), "ES256".into()],
            clock_skew_s: 60,
            required_scopes: vec!["dbward".into()],
            name: None,
        }
    }

    #[test]
    fn unsafe_algorithms_and_urls_are_refused() {
        for alg in ["none", "HS256", "HS512"] {
            let mut c = config();
            c.algorithms = vec![alg.into()];
            let e = OAuthVerifier::new(&c).expect_err(alg);
            assert!(e.to_string().contains("not accepted"), "{e}");
        }
        let mut c = config();
        c.issuer = "http://idp.example.com".into();
        assert!(OAuthVerifier::new(&c).is_err());
        c.issuer = "http://127.0.0.1:9000".into();
        assert!(OAuthVerifier::new(&c).is_ok());
    }

    #[test]
    fn metadata_follows_rfc_9728() {
        let v = OAuthVerifier::new(&config()).expect("verifier");
        assert_eq!(
            v.metadata_url(),
            "https://db.example.com/.well-known/oauth-protected-resource/mcp"
        );
        let m = v.metadata();
        assert_eq!(m["resource"], "https://db.example.com/mcp");
        assert_eq!(m["authorization_servers"][0], "https://idp.example.com");
        assert_eq!(m["bearer_methods_supported"][0], "header");
        assert_eq!(v.metadata_paths().len(), 2);
    }

    #[test]
    fn scopes_from_scope_or_scp() {
        let c = json!({"scope": "a b", "scp": ["c"]});
        assert_eq!(
            scopes(c.as_object().expect("object")),
            vec!["a".to_string(), "b".into(), "c".into()]
        );
    }
}
