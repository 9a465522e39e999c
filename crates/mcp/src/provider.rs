//! One OAuth 2.0 / OpenID Connect provider as dbward talks to it: its metadata
//! (`/.well-known/openid-configuration`, then RFC 8414), its signing keys (JWKS), JWTs it
//! signed checked against them, and form posts to its endpoints. Shared by the MCP
//! resource server (`oauth`, access tokens) and the web UI's sign-in (ID tokens).
//!
//! Invariants:
//! - Only `https` URLs, or `http` to a loopback host, are ever fetched; redirects are not
//!   followed; every answer is capped at [`MAX_DOCUMENT_BYTES`] and 5 seconds.
//! - A JWT is accepted only if its signature verifies with a key of the provider's JWKS
//!   under an algorithm the operator accepts (RS256, ES256; never `none` or an HMAC, whose
//!   "key" would be public). Signatures are checked by `jsonwebtoken`, never here.
//! - The key set is fetched again at most once a minute, when a token names a key it does
//!   not hold (rotation), so a flood of made-up `kid`s cannot make dbward flood the issuer.
//! - Errors name the URL and what failed, never a token, code, secret or query string.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Least time between two fetches of the key set.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// Longest a discovered metadata document is reused.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Longest JWT looked at, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Largest document (metadata, key set, token response) read, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Longest any request to the provider may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Why the provider could not be used, or a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The configuration cannot work (an unsafe URL, an algorithm that is not accepted).
    #[error("{0}")]
    Config(String),
    /// The provider could not be reached, or answered with something unusable.
    #[error("{0}")]
    Unavailable(String),
    /// A token was not accepted: the reason, never the token.
    #[error("{0}")]
    Token(String),
}

/// Whether `url` may be fetched: `https`, or `http` to a loopback host.
pub fn fetchable(url: &str) -> bool {
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

/// The accepted algorithms named in a configuration (`what` names the section).
pub fn algorithms(what: &str, names: &[String]) -> Result<Vec<Algorithm>, ProviderError> {
    let mut out = Vec::new();
    for a in names {
        out.push(match a.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            other => {
                return Err(ProviderError::Config(format!(
                    "{what}: algorithm `{other}` is not accepted (RS256, ES256): `none` and HMAC algorithms would let anyone holding the public key mint tokens"
                )));
            }
        });
    }
    if out.is_empty() {
        return Err(ProviderError::Config(format!(
            "{what}: algorithms is empty"
        )));
    }
    Ok(out)
}

/// What the provider's metadata says of it (the fields dbward uses).
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// Its issuer identifier (equal to the configured one).
    pub issuer: String,
    /// Where its signing keys are.
    pub jwks_uri: Option<String>,
    /// Where a browser is sent to sign in.
    pub authorization_endpoint: Option<String>,
    /// Where a code is exchanged for tokens.
    pub token_endpoint: Option<String>,
    /// The PKCE methods it says it supports (empty: it does not say).
    pub code_challenge_methods: Vec<String>,
    /// It names itself in every authorization response (`iss`, RFC 9207:
    /// `authorization_response_iss_parameter_supported`), so an answer without it is not
    /// its.
    pub iss_in_authorization_response: bool,
}

struct Keys {
    set: JwkSet,
    /// When a token naming an unknown key last made us fetch the set (successful or not);
    /// the start-up fetch does not count, so a key rotated in just after start still works.
    refetched: Option<Instant>,
}

/// What a JWT must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// One of its `aud` values.
    pub audience: &'a str,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: u64,
    /// Claims that must be present (`exp`, `iss`, `aud`, `sub`, `nbf` are checked by
    /// `jsonwebtoken`; others only for presence).
    pub required: &'a [&'a str],
}

/// One provider: its issuer, the algorithms accepted from it, its keys.
pub struct Provider {
    issuer: String,
    /// The key set's URL when configured (otherwise from the metadata).
    jwks_url: Option<String>,
    algorithms: Vec<Algorithm>,
    http: reqwest::Client,
    keys: tokio::sync::Mutex<Keys>,
    metadata: tokio::sync::Mutex<Option<(Instant, Metadata)>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// A provider at `issuer`; refuses URLs that are neither `https` nor loopback `http`.
    pub fn new(
        issuer: &str,
        jwks_url: Option<&str>,
        algorithms: Vec<Algorithm>,
    ) -> Result<Provider, ProviderError> {
        if !fetchable(issuer) {
            return Err(ProviderError::Config(format!(
                "issuer `{issuer}` must be an https URL (http only on a loopback address)"
            )));
        }
        if let Some(u) = jwks_url
            && !fetchable(u)
        {
            return Err(ProviderError::Config(format!(
                "jwks_url `{u}` must be an https URL (http only on a loopback address)"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProviderError::Config(format!("HTTP client: {e}")))?;
        Ok(Provider {
            issuer: issuer.to_string(),
            jwks_url: jwks_url.map(String::from),
            algorithms,
            http,
            keys: tokio::sync::Mutex::new(Keys {
                set: JwkSet { keys: Vec::new() },
                refetched: None,
            }),
            metadata: tokio::sync::Mutex::new(None),
        })
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The accepted algorithms.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// Reads a response body, bounded in size; `url` names it in errors.
    async fn body(url: &str, mut resp: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("{url}: {}", without_url(&e))))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(ProviderError::Unavailable(format!(
                    "{url}: larger than {MAX_DOCUMENT_BYTES} bytes"
                )));
            }
        }
        Ok(body)
    }

    /// Reads a JSON document, bounded in size and time.
    pub async fn get_json(&self, url: &str) -> Result<Value, ProviderError> {
        if !fetchable(url) {
            return Err(ProviderError::Unavailable(format!(
                "{url} is neither https nor loopback http"
            )));
        }
        let resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("{url}: {}", without_url(&e))))?;
        if !resp.status().is_success() {
            return Err(ProviderError::Unavailable(format!(
                "{url}: HTTP {}",
                resp.status()
            )));
        }
        let body = Self::body(url, resp).await?;
        serde_json::from_slice(&body)
            .map_err(|e| ProviderError::Unavailable(format!("{url}: not JSON: {e}")))
    }

    /// Posts a form (`application/x-www-form-urlencoded`), with HTTP Basic client
    /// authentication when `basic` is given (each part form-encoded first, RFC 6749
    /// §2.3.1); returns the status and the JSON answer. Bounded like [`Self::get_json`].
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<(u16, Value), ProviderError> {
        if !fetchable(url) {
            return Err(ProviderError::Unavailable(format!(
                "{url} is neither https nor loopback http"
            )));
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = self
            .http
            .post(url)
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some((id, secret)) = basic {
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(id), Some(enc(secret)));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("{url}: {}", without_url(&e))))?;
        let status = resp.status().as_u16();
        let body = Self::body(url, resp).await?;
        let json = serde_json::from_slice(&body).map_err(|_| {
            ProviderError::Unavailable(format!("{url}: HTTP {status}, and not JSON"))
        })?;
        Ok((status, json))
    }

    /// The provider's metadata (OpenID Connect discovery, then RFC 8414), whose `issuer`
    /// must be ours; reused for an hour once read.
    pub async fn metadata(&self) -> Result<Metadata, ProviderError> {
        let mut cached = self.metadata.lock().await;
        if let Some((at, m)) = cached.as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
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
                    let s = |k: &str| doc.get(k).and_then(Value::as_str).map(String::from);
                    let m = Metadata {
                        issuer: self.issuer.clone(),
                        jwks_uri: s("jwks_uri"),
                        authorization_endpoint: s("authorization_endpoint"),
                        token_endpoint: s("token_endpoint"),
                        code_challenge_methods: doc
                            .get("code_challenge_methods_supported")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .map(String::from)
                                    .collect()
                            })
                            .unwrap_or_default(),
                        iss_in_authorization_response: doc
                            .get("authorization_response_iss_parameter_supported")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    };
                    *cached = Some((Instant::now(), m.clone()));
                    return Ok(m);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(ProviderError::Unavailable(format!(
            "no usable authorization server metadata ({last})"
        )))
    }

    /// The key set's URL: configured, or from the metadata.
    async fn jwks_url(&self) -> Result<String, ProviderError> {
        if let Some(u) = &self.jwks_url {
            return Ok(u.clone());
        }
        let m = self.metadata().await?;
        m.jwks_uri.ok_or_else(|| {
            ProviderError::Unavailable(format!(
                "no usable authorization server metadata ({}: no jwks_uri)",
                self.issuer
            ))
        })
    }

    async fn fetch(&self) -> Result<JwkSet, ProviderError> {
        let url = self.jwks_url().await?;
        let doc = self.get_json(&url).await?;
        serde_json::from_value::<JwkSet>(doc)
            .map_err(|e| ProviderError::Unavailable(format!("{url}: not a JWK set: {e}")))
    }

    /// Fetches the key set now (at start-up), so a misconfigured issuer shows in the log
    /// at once; failures are logged, not fatal (the issuer may come up later).
    pub async fn warm(&self) {
        let mut keys = self.keys.lock().await;
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(issuer = %self.issuer, keys = set.keys.len(), "signing keys fetched");
                keys.set = set;
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "cannot fetch the signing keys yet; tokens are refused until they can be fetched");
            }
        }
    }

    /// The key a token's header names, fetching the key set again if it is unknown and
    /// the last fetch was long enough ago.
    async fn key_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Jwk, ProviderError> {
        let mut keys = self.keys.lock().await;
        if let Some(k) = pick(&keys.set, kid, alg)? {
            return Ok(k);
        }
        let due = keys
            .refetched
            .is_none_or(|t| t.elapsed() >= REFETCH_INTERVAL);
        if !due {
            return Err(ProviderError::Token(format!(
                "unknown signing key {} (the key set was fetched less than a minute ago)",
                kid.map(|k| format!("`{}`", clip(k))).unwrap_or_default()
            )));
        }
        keys.refetched = Some(Instant::now());
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(issuer = %self.issuer, keys = set.keys.len(), "signing keys fetched again");
                keys.set = set;
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "cannot fetch the signing keys");
                return Err(ProviderError::Token(
                    "the issuer's signing keys cannot be fetched".into(),
                ));
            }
        }
        pick(&keys.set, kid, alg)?.ok_or_else(|| {
            ProviderError::Token(format!(
                "unknown signing key {}",
                kid.map(|k| format!("`{}`", clip(k))).unwrap_or_default()
            ))
        })
    }

    /// Checks a JWT this provider signed: algorithm, signature, `iss`, `aud`, `exp`,
    /// `nbf`, and the presence of `expect.required`; returns its claims.
    pub async fn verify(
        &self,
        token: &str,
        expect: &Expect<'_>,
    ) -> Result<Map<String, Value>, ProviderError> {
        let invalid = |m: &str| ProviderError::Token(m.to_string());
        if token.len() > MAX_TOKEN_BYTES {
            return Err(invalid("token too long"));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| invalid("not a signed JWT, or its algorithm is not supported"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(ProviderError::Token(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let jwk = self.key_for(header.kid.as_deref(), header.alg).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid("unusable signing key"))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[expect.audience]);
        v.leeway = expect.leeway;
        v.validate_nbf = true;
        let spec: Vec<&str> = expect
            .required
            .iter()
            .copied()
            .filter(|c| matches!(*c, "exp" | "nbf" | "aud" | "iss" | "sub"))
            .collect();
        v.set_required_spec_claims(&spec);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            invalid(match e.kind() {
                K::ExpiredSignature => "token expired",
                K::ImmatureSignature => "token not valid yet (nbf)",
                K::InvalidAudience => "wrong audience",
                K::InvalidIssuer => "wrong issuer",
                K::InvalidSignature => "signature does not verify",
                K::MissingRequiredClaim(_) => "a required claim (exp, iss, aud, sub) is missing",
                K::InvalidAlgorithm => "algorithm does not match the key",
                _ => "malformed token",
            })
        })?;
        for c in expect.required {
            if !data.claims.contains_key(*c) {
                return Err(ProviderError::Token(format!(
                    "the required claim `{c}` is missing"
                )));
            }
        }
        Ok(data.claims)
    }
}

/// The key for `kid` (or the only key usable with `alg` when the token names none).
fn pick(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Result<Option<Jwk>, ProviderError> {
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
                _ => Err(ProviderError::Token(
                    "the token names no key (`kid`) and the issuer has several".into(),
                )),
            }
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// A reqwest error without its URL (ours, but it may carry a query string).
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let e = e.to_string();
    e.split(" for url").next().unwrap_or(&e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_fetched() {
        assert!(fetchable("https://idp.example.com"));
        assert!(fetchable("http://127.0.0.1:9000/x"));
        assert!(fetchable("http://localhost:9000"));
        assert!(fetchable("http://[::1]:9000"));
        assert!(!fetchable("http://idp.example.com"));
        assert!(!fetchable("ftp://127.0.0.1"));
        assert!(!fetchable("not a url"));
    }

    #[test]
    fn unsafe_algorithms_are_refused() {
        for alg in ["none", "HS256", "HS512"] {
            let e = algorithms("[x]", &[alg.to_string()]).expect_err(alg);
            assert!(e.to_string().contains("not accepted"), "{e}");
        }
        assert!(algorithms("[x]", &[]).is_err());
        assert_eq!(
            algorithms("[x]", &["RS256".into(), "ES256".into()]).expect("ok"),
            vec![Algorithm::RS256, Algorithm::ES256]
        );
    }
}
