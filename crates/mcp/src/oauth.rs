//! dbward as an OAuth 2.1 resource server (the MCP authorization specification): access
//! tokens issued by one authorization server, each validated here against that server's
//! published keys (JWKS), and the RFC 9728 metadata that tells clients where to get one.
//!
//! Invariants:
//! - A token is accepted only if its signature verifies with a key from the issuer's JWKS
//!   under an algorithm the operator accepts (RS256, ES256; never `none` or an HMAC, whose
//!   "key" would be public), and its `iss`, `aud`, `exp`, `nbf` and scopes hold.
//! - Signatures are checked by `jsonwebtoken` (through `provider`, shared with the web UI's
//!   sign-in); nothing here parses a signature itself.
//! - The key set is fetched again at most once a minute, when a token names a key it does
//!   not hold (rotation), so a flood of made-up `kid`s cannot make dbward flood the issuer.
//! - Rejections name their reason (for the audit log) but never echo the token.

use dbward_gateway::access::Identity;
use dbward_gateway::config::OAuthConfig;
use serde_json::{Value, json};

use crate::error::McpError;
use crate::provider::{Expect, Provider, ProviderError};

pub use crate::provider::REFETCH_INTERVAL;

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

/// Validates access tokens of one authorization server.
pub struct OAuthVerifier {
    audience: String,
    short: String,
    leeway: u64,
    required_scopes: Vec<String>,
    provider: Provider,
}

impl std::fmt::Debug for OAuthVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthVerifier")
            .field("issuer", &self.provider.issuer())
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl OAuthVerifier {
    /// A verifier for `config`; refuses algorithms other than RS256/ES256 and issuer or
    /// key URLs that are neither `https` nor loopback `http`.
    pub fn new(config: &OAuthConfig) -> Result<OAuthVerifier, McpError> {
        let bad = |m: String| McpError::Refused(format!("[auth.oauth]: {m}"));
        if url::Url::parse(&config.audience).is_err() {
            return Err(bad(format!(
                "audience `{}` must be this server's resource URL, e.g. https://db.example.com/mcp",
                config.audience
            )));
        }
        let algorithms = crate::provider::algorithms("[auth.oauth]", &config.algorithms)
            .map_err(|e| McpError::Refused(e.to_string()))?;
        let provider = Provider::new(&config.issuer, config.jwks_url.as_deref(), algorithms)
            .map_err(|e| bad(e.to_string()))?;
        Ok(OAuthVerifier {
            audience: config.audience.clone(),
            short: config.short_name(),
            leeway: config.clock_skew_s,
            required_scopes: config.required_scopes.clone(),
            provider,
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
            "authorization_servers": [self.provider.issuer()],
            "scopes_supported": self.required_scopes,
            "bearer_methods_supported": ["header"],
            "resource_signing_alg_values_supported": self
                .provider
                .algorithms()
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
        self.provider.warm().await;
    }

    /// Validates `token`.
    pub async fn verify(&self, token: &str) -> Result<Verified, Rejection> {
        let invalid = |m: &str| Rejection::Invalid(m.to_string());
        let expect = Expect {
            audience: &self.audience,
            leeway: self.leeway,
            required: &["exp", "iss", "aud", "sub"],
        };
        let claims = self
            .provider
            .verify(token, &expect)
            .await
            .map_err(|e| match e {
                ProviderError::Token(r) => Rejection::Invalid(r),
                other => Rejection::Invalid(other.to_string()),
            })?;
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
