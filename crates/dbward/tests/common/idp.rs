//! A stand-in OpenID Connect provider for the web sign-in tests (the identity provider is
//! the one thing outside dbward these tests fake): discovery, a key set, an `authorize`
//! endpoint that approves at once (redirecting back with a code), and a `token` endpoint
//! that checks the client, the redirect URI and the PKCE verifier (S256) before it returns
//! an ID token signed with a key the test generated (`openssl genpkey`).
//!
//! `Idp::next` says who signs in next and how the answer is spoiled, if at all, so that
//! each of dbward's checks can be seen refusing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The client id and secret dbward is registered with.
pub const CLIENT_ID: &str = "dbward-web";
pub const CLIENT_SECRET: &str = "s3cret-client-value-0123456789";

/// How the next answer goes wrong (or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Spoil {
    #[default]
    Nothing,
    /// `authorize` answers `error=access_denied`.
    Deny,
    /// The ID token carries another nonce.
    WrongNonce,
    /// The ID token is for another client.
    WrongAudience,
    /// The ID token is signed by a key not in the key set (under the published `kid`).
    BadSignature,
}

/// Who signs in next, with which claims, and what goes wrong.
#[derive(Debug, Clone, Default)]
pub struct Next {
    pub sub: String,
    pub claims: Value,
    pub spoil: Spoil,
}

struct Grant {
    redirect_uri: String,
    challenge: String,
    nonce: String,
    next: Next,
}

#[derive(Clone)]
struct Shared {
    issuer: String,
    key: Arc<EncodingKey>,
    rogue: Arc<EncodingKey>,
    public: Jwk,
    next: Arc<Mutex<Next>>,
    grants: Arc<Mutex<HashMap<String, Grant>>>,
    /// Token requests whose PKCE verifier matched, and those refused for it.
    pub pkce: Arc<Mutex<(usize, usize)>>,
}

/// The running provider.
pub struct Idp {
    pub issuer: String,
    shared: Shared,
}

impl Idp {
    /// Who signs in next.
    pub fn next(&self, sub: &str, claims: Value, spoil: Spoil) {
        *self.shared.next.lock().expect("next") = Next {
            sub: sub.to_string(),
            claims,
            spoil,
        };
    }

    /// (token requests whose verifier matched, token requests refused for it).
    pub fn pkce(&self) -> (usize, usize) {
        *self.shared.pkce.lock().expect("pkce")
    }
}

fn rsa_key() -> EncodingKey {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl genpkey runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    EncodingKey::from_rsa_pem(&out.stdout).expect("PEM key")
}

/// Starts the provider on `host` (`127.0.0.1` or `localhost`: a browser counts the two as
/// different sites) and a free port.
pub async fn start(host: &str) -> Idp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let issuer = format!("http://{host}:{port}");
    let key = rsa_key();
    let mut public = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("public JWK");
    public.common.key_id = Some("k1".into());
    public.common.key_algorithm = Some(KeyAlgorithm::RS256);
    let shared = Shared {
        issuer: issuer.clone(),
        key: Arc::new(key),
        rogue: Arc::new(rsa_key()),
        public,
        next: Arc::default(),
        grants: Arc::default(),
        pkce: Arc::default(),
    };
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(discovery),
        )
        .route("/jwks", axum::routing::get(jwks))
        .route("/authorize", axum::routing::get(authorize))
        .route("/token", axum::routing::post(token))
        .with_state(shared.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.ok();
    });
    Idp { issuer, shared }
}

async fn discovery(State(s): State<Shared>) -> Response {
    let iss = &s.issuer;
    axum::Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/jwks"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

async fn jwks(State(s): State<Shared>) -> Response {
    axum::Json(
        serde_json::to_value(JwkSet {
            keys: vec![s.public.clone()],
        })
        .expect("jwks"),
    )
    .into_response()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn s256(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

async fn authorize(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    assert_eq!(get("response_type"), "code");
    assert_eq!(get("client_id"), CLIENT_ID);
    assert_eq!(get("code_challenge_method"), "S256", "PKCE with S256");
    assert!(get("scope").split(' ').any(|s| s == "openid"));
    let redirect = get("redirect_uri");
    let state = get("state");
    let next = s.next.lock().expect("next").clone();
    let sep = if redirect.contains('?') { '&' } else { '?' };
    // Every answer names its issuer (RFC 9207), form-encoded.
    let iss = s.issuer.replace(':', "%3A").replace('/', "%2F");
    if next.spoil == Spoil::Deny {
        return Redirect::to(&format!(
            "{redirect}{sep}error=access_denied&error_description=The+user+said+no&state={state}&iss={iss}"
        ))
        .into_response();
    }
    let code = format!("code-{}", rand_hex());
    s.grants.lock().expect("grants").insert(
        code.clone(),
        Grant {
            redirect_uri: redirect.clone(),
            challenge: get("code_challenge"),
            nonce: get("nonce"),
            next,
        },
    );
    Redirect::to(&format!(
        "{redirect}{sep}code={code}&state={state}&iss={iss}"
    ))
    .into_response()
}

fn rand_hex() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn token(
    State(s): State<Shared>,
    headers: axum::http::HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let refuse = |error: &str| {
        (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": error})),
        )
            .into_response()
    };
    // The client authenticates with HTTP Basic (client_secret_basic).
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(String::from)
        .unwrap_or_default();
    let expected = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    };
    if basic != expected {
        return refuse("invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return refuse("unsupported_grant_type");
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let Some(grant) = s.grants.lock().expect("grants").remove(&code) else {
        return refuse("invalid_grant");
    };
    if form.get("redirect_uri") != Some(&grant.redirect_uri) {
        return refuse("invalid_grant");
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if verifier.len() < 43 || s256(&verifier) != grant.challenge {
        s.pkce.lock().expect("pkce").1 += 1;
        return refuse("invalid_grant");
    }
    s.pkce.lock().expect("pkce").0 += 1;
    let next = grant.next;
    let mut claims = json!({
        "iss": s.issuer, "aud": CLIENT_ID, "sub": next.sub,
        "iat": now(), "exp": now() + 300, "nonce": grant.nonce,
    });
    match next.spoil {
        Spoil::WrongNonce => claims["nonce"] = json!("someone-elses-nonce"),
        Spoil::WrongAudience => claims["aud"] = json!("another-client"),
        _ => {}
    }
    if let (Some(c), Some(extra)) = (claims.as_object_mut(), next.claims.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let key = if next.spoil == Spoil::BadSignature {
        &s.rogue
    } else {
        &s.key
    };
    let id_token = jsonwebtoken::encode(&header, &claims, key).expect("signs");
    axum::Json(json!({
        "access_token": "opaque-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}
