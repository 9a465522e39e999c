//! The web UI as an OpenID Connect client (`[web.oidc]`): the authorization request with
//! PKCE (S256), the code exchange at the token endpoint, and the ID token's checks. The
//! provider's metadata, keys and signature checks are `dbward_mcp::provider`'s, shared
//! with the MCP resource server, so discovery and JWT validation exist once.
//!
//! Invariants:
//! - An ID token is accepted only with a signature from the provider's JWKS (RS256 or
//!   ES256), `iss` the configured issuer, `aud` holding the client id (and `azp` the client
//!   id when there are several audiences), unexpired, with an `iat`, and the `nonce` this
//!   sign-in sent (compared in constant time).
//! - An authorization response is used only if it is the provider's (RFC 9207): its `iss`
//!   must be the configured issuer when present, and present when the provider's metadata
//!   says it always sends it; otherwise neither its code nor its error is used.
//! - The client secret, the code, the verifier and the tokens never appear in an error,
//!   a log line, an audit entry or a page. Errors carry the reason only.

use dbward_gateway::config::OidcLoginConfig;
use dbward_mcp::HostIdentity;
use dbward_mcp::provider::{Expect, Provider, ProviderError};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::Digest;
use subtle::ConstantTimeEq;

/// Longest `sub` accepted, in bytes (as the MCP resource server).
const MAX_SUB_BYTES: usize = 256;
/// Most bytes of claims passed on to the child (its own cap is 16 KiB).
const MAX_CLAIMS_BYTES: usize = 12 * 1024;

/// Why a sign-in through the provider failed. Each message is fit for the page and the
/// audit log: it never holds a code, token, verifier or secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignInError {
    /// The configuration cannot work.
    #[error("[web.oidc]: {0}")]
    Config(String),
    /// The provider could not be reached or answered with something unusable.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The token endpoint refused the code (its OAuth error code only).
    #[error("the token endpoint refused the code: {0}")]
    TokenEndpoint(String),
    /// The ID token did not verify.
    #[error("the ID token was not accepted: {0}")]
    IdToken(String),
    /// The authorization response is not the provider's (RFC 9207: its `iss` is another
    /// issuer's, or missing from a provider that always sends it).
    #[error("the answer is not from the configured provider ({0})")]
    Response(String),
}

impl From<ProviderError> for SignInError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Config(m) => SignInError::Config(m),
            ProviderError::Unavailable(m) => SignInError::Unavailable(m),
            ProviderError::Token(m) => SignInError::IdToken(m),
        }
    }
}

/// What one sign-in keeps between the redirect and the callback (server-side only).
pub(crate) struct Secrets {
    /// Sent as `state`; the key of the pending sign-in.
    pub state: String,
    /// Sent as `nonce`; the ID token must carry it.
    pub nonce: String,
    /// The PKCE verifier; only its S256 challenge leaves before the code exchange.
    pub verifier: SecretString,
}

impl Secrets {
    /// Fresh random values (256 bits each, base64url).
    pub(crate) fn new() -> Secrets {
        Secrets {
            state: random(),
            nonce: random(),
            verifier: SecretString::from(random()),
        }
    }
}

/// 32 random bytes, base64url without padding (43 characters: a valid PKCE verifier).
pub(crate) fn random() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The S256 challenge of a verifier (RFC 7636 §4.2).
pub(crate) fn challenge(verifier: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

/// The person an ID token names.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn {
    /// What the child is told (provider, sub, claims).
    pub identity: HostIdentity,
    /// A name to show (`name`, `preferred_username` or `email`, else the subject).
    pub display: String,
}

/// The provider, as the web UI signs people in through it.
pub(crate) struct OidcLogin {
    provider: Provider,
    client_id: String,
    secret: Option<SecretString>,
    scopes: Vec<String>,
    redirect_url: String,
    short: String,
    display: String,
    leeway: u64,
}

impl std::fmt::Debug for OidcLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcLogin")
            .field("issuer", &self.provider.issuer())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl OidcLogin {
    /// The client for `config`, with the client secret read from its variable by the
    /// binary (`secret`).
    pub(crate) fn new(
        config: &OidcLoginConfig,
        secret: Option<SecretString>,
    ) -> Result<OidcLogin, SignInError> {
        let algorithms = dbward_mcp::provider::algorithms("[web.oidc]", &config.algorithms)?;
        let provider = Provider::new(&config.issuer, None, algorithms)?;
        let redirect = url::Url::parse(&config.redirect_url).map_err(|_| {
            SignInError::Config(format!(
                "redirect_url `{}` is not a URL (it is this UI's address with /auth/callback)",
                config.redirect_url
            ))
        })?;
        if redirect.path() != "/auth/callback"
            || !dbward_mcp::provider::fetchable(redirect.as_str())
        {
            return Err(SignInError::Config(format!(
                "redirect_url `{}` must be https (http only on loopback) and end in /auth/callback",
                config.redirect_url
            )));
        }
        let mut scopes = vec!["openid".to_string()];
        scopes.extend(config.scopes.iter().filter(|s| *s != "openid").cloned());
        Ok(OidcLogin {
            provider,
            client_id: config.client_id.clone(),
            secret,
            scopes,
            redirect_url: config.redirect_url.clone(),
            short: config.short_name(),
            display: config.display(),
            leeway: config.clock_skew_s,
        })
    }

    /// The provider's name on the login page.
    pub(crate) fn display(&self) -> &str {
        &self.display
    }

    /// Reads the provider's metadata and keys now, so a misconfiguration shows at start.
    pub(crate) async fn warm(&self) {
        match self.provider.metadata().await {
            Ok(_) => self.provider.warm().await,
            Err(e) => {
                tracing::warn!(error = %e, "the web sign-in's identity provider cannot be read yet")
            }
        }
    }

    /// Where to send the browser: the authorization endpoint with this sign-in's `state`,
    /// `nonce` and S256 `code_challenge`.
    pub(crate) async fn authorization_url(&self, s: &Secrets) -> Result<String, SignInError> {
        let m = self.provider.metadata().await?;
        let endpoint = m.authorization_endpoint.ok_or_else(|| {
            SignInError::Unavailable("the provider's metadata has no authorization_endpoint".into())
        })?;
        if !m.code_challenge_methods.is_empty()
            && !m.code_challenge_methods.iter().any(|c| c == "S256")
        {
            return Err(SignInError::Unavailable(
                "the provider does not support PKCE with S256".into(),
            ));
        }
        let mut url = url::Url::parse(&endpoint).map_err(|_| {
            SignInError::Unavailable("the provider's authorization_endpoint is not a URL".into())
        })?;
        if !dbward_mcp::provider::fetchable(url.as_str()) {
            return Err(SignInError::Unavailable(
                "the provider's authorization_endpoint is neither https nor loopback http".into(),
            ));
        }
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_url)
            .append_pair("scope", &self.scopes.join(" "))
            .append_pair("state", &s.state)
            .append_pair("nonce", &s.nonce)
            .append_pair("code_challenge", &challenge(s.verifier.expose_secret()))
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    /// RFC 9207: an authorization response that names an issuer must name the configured
    /// one (simple string comparison), and a provider whose metadata says it always names
    /// itself must have done so. Otherwise the response may come from another provider the
    /// browser was sent to (a mix-up attack), and neither its code nor its error is used.
    pub(crate) async fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), SignInError> {
        match iss {
            Some(i) if i == self.provider.issuer() => Ok(()),
            Some(_) => Err(SignInError::Response("its iss names another issuer".into())),
            None if self
                .provider
                .metadata()
                .await?
                .iss_in_authorization_response =>
            {
                Err(SignInError::Response(
                    "it has no iss, which this provider always sends".into(),
                ))
            }
            None => Ok(()),
        }
    }

    /// Exchanges `code` (with the verifier) at the token endpoint and checks the ID token
    /// it returns against `nonce`.
    pub(crate) async fn finish(
        &self,
        code: &str,
        verifier: &SecretString,
        nonce: &str,
    ) -> Result<SignedIn, SignInError> {
        let m = self.provider.metadata().await?;
        let endpoint = m.token_endpoint.ok_or_else(|| {
            SignInError::Unavailable("the provider's metadata has no token_endpoint".into())
        })?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_url.as_str()),
            ("code_verifier", verifier.expose_secret()),
        ];
        if self.secret.is_none() {
            form.push(("client_id", self.client_id.as_str()));
        }
        let basic = self
            .secret
            .as_ref()
            .map(|s| (self.client_id.as_str(), s.expose_secret()));
        let (status, body) = self.provider.post_form(&endpoint, &form, basic).await?;
        if !(200..300).contains(&status) {
            let code = body
                .get("error")
                .and_then(Value::as_str)
                .map(error_code)
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(SignInError::TokenEndpoint(code));
        }
        let id_token = body
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| SignInError::TokenEndpoint("no id_token in the answer".into()))?;
        self.verify_id_token(id_token, nonce).await
    }

    /// The ID token's checks (OpenID Connect Core §3.1.3.7).
    async fn verify_id_token(&self, token: &str, nonce: &str) -> Result<SignedIn, SignInError> {
        let expect = Expect {
            audience: &self.client_id,
            leeway: self.leeway,
            required: &["exp", "iss", "aud", "sub", "iat", "nonce"],
        };
        let claims = self.provider.verify(token, &expect).await?;
        let bad = |m: &str| SignInError::IdToken(m.to_string());
        let sent = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !bool::from(sent.as_bytes().ct_eq(nonce.as_bytes())) {
            return Err(bad("the nonce is not the one this sign-in sent"));
        }
        if let Some(Value::Array(auds)) = claims.get("aud")
            && auds.len() > 1
            && claims.get("azp").and_then(Value::as_str) != Some(self.client_id.as_str())
        {
            return Err(bad("several audiences and `azp` is not this client"));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if claims
            .get("iat")
            .and_then(Value::as_u64)
            .is_none_or(|iat| iat > now + self.leeway)
        {
            return Err(bad("`iat` is missing or in the future"));
        }
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| {
                !s.is_empty() && s.len() <= MAX_SUB_BYTES && !s.chars().any(char::is_control)
            })
            .ok_or_else(|| bad("`sub` must be a string of 1 to 256 printable bytes"))?
            .to_string();
        let display = ["name", "preferred_username", "email"]
            .iter()
            .find_map(|k| claims.get(*k).and_then(Value::as_str))
            .filter(|s| !s.trim().is_empty())
            .unwrap_or(&sub)
            .chars()
            .filter(|c| !c.is_control())
            .take(80)
            .collect();
        Ok(SignedIn {
            identity: HostIdentity {
                provider: self.short.clone(),
                sub,
                claims: identity_claims(claims),
            },
            display,
        })
    }
}

/// The claims passed on to the child for `claim:` members and `{claim:NAME}` settings:
/// the ID token's, without the values that bind the token itself (`nonce`, hashes), and
/// without the largest ones if they would not fit.
fn identity_claims(mut claims: Map<String, Value>) -> Map<String, Value> {
    for k in ["nonce", "at_hash", "c_hash", "s_hash"] {
        claims.remove(k);
    }
    let size = |c: &Map<String, Value>| serde_json::to_vec(c).map(|v| v.len()).unwrap_or(0);
    while size(&claims) > MAX_CLAIMS_BYTES {
        let largest = claims
            .iter()
            .max_by_key(|(_, v)| v.to_string().len())
            .map(|(k, _)| k.clone());
        match largest {
            Some(k) => {
                claims.remove(&k);
            }
            None => break,
        }
    }
    claims
}

/// An OAuth error code as the provider sent it, kept only if it is one (`[a-z_]`, short):
/// it may be shown and audited.
pub(crate) fn error_code(code: &str) -> String {
    if !code.is_empty()
        && code.len() <= 40
        && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        code.to_string()
    } else {
        "an unrecognized error".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_base64url_of_sha256() {
        // Computed independently: base64.urlsafe_b64encode(hashlib.sha256(v).digest()).
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r0W4Gmw4Rdg_eg"),
            "LhNIDeCfRnDQYl239PXzfg17ZN7uzeMsKC4bmMAUceM"
        );
        assert_eq!(random().len(), 43);
        assert_ne!(random(), random());
    }

    #[test]
    fn only_oauth_error_codes_are_repeated() {
        assert_eq!(error_code("access_denied"), "access_denied");
        assert_eq!(error_code("<script>"), "an unrecognized error");
        assert_eq!(error_code(""), "an unrecognized error");
    }

    #[test]
    fn binding_claims_are_not_passed_on() {
        let claims = serde_json::json!({"sub": "a", "nonce": "n", "at_hash": "h", "groups": ["x"]});
        let kept = identity_claims(claims.as_object().cloned().unwrap_or_default());
        assert!(kept.contains_key("groups") && kept.contains_key("sub"));
        assert!(!kept.contains_key("nonce") && !kept.contains_key("at_hash"));
    }

    fn config() -> OidcLoginConfig {
        OidcLoginConfig {
            issuer: "https://idp.example.com".into(),
            client_id: "dbward".into(),
            client_secret_env: None,
            scopes: vec!["openid".into(), "email".into()],
            redirect_url: "https://db.example.com/auth/callback".into(),
            display_name: None,
            name: Some("corp".into()),
            algorithms: vec!["RS256".into()],
            clock_skew_s: 60,
        }
    }

    #[test]
    fn unsafe_configurations_are_refused() {
        assert!(OidcLogin::new(&config(), None).is_ok());
        let mut c = config();
        c.redirect_url = "http://db.example.com/auth/callback".into();
        assert!(OidcLogin::new(&c, None).is_err());
        let mut c = config();
        c.redirect_url = "https://db.example.com/elsewhere".into();
        assert!(OidcLogin::new(&c, None).is_err());
        let mut c = config();
        c.algorithms = vec!["HS256".into()];
        assert!(OidcLogin::new(&c, None).is_err());
        let mut c = config();
        c.issuer = "http://idp.example.com".into();
        assert!(OidcLogin::new(&c, None).is_err());
    }
}
