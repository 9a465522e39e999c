//! The streamable HTTP transport at `/mcp`: rmcp's `StreamableHttpService` behind an axum
//! layer that requires a bearer token.
//!
//! Invariants:
//! - No request reaches the MCP service without a token from the configured set, unless
//!   there are no tokens, the listener is on a loopback address, and the operator passed
//!   `allow_unauthenticated_loopback`. Anything else refuses to start.
//! - Tokens are compared in constant time, over SHA-256 digests so that neither the
//!   content nor the length of a configured token leaks through timing; every configured
//!   token is compared on every request.
//! - The token's *name* (never the token) is the principal: it names the caller in logs.
//! - On a non-loopback address, a database role that can write is refused unless the
//!   operator accepts the risk, because then only dbward's layers stand between a remote
//!   caller and a write.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use dbward_gateway::calls::{Abandoned, Ending};
use dbward_gateway::{ConnectionInfo, Gateway};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::auth_throttle::{AuthThrottle, Failure};
use crate::error::McpError;
use crate::server::{DbwardServer, ServerOptions};

/// Shortest token accepted: shorter ones are guessable.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Who made an HTTP request: the name of the token it presented, or `ISSUER:SUBJECT` for
/// an OAuth access token. Inserted into the request's extensions by the auth layer; tool
/// calls read it for their log line and audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub String);

/// What the auth layer verified of a request's caller (its `[access]` keys and claims),
/// inserted beside [`Principal`].
#[derive(Debug, Clone)]
pub struct VerifiedIdentity(pub dbward_gateway::access::Identity);

/// The accepted bearer tokens, each with a name. Only digests are kept.
#[derive(Default, Clone)]
pub struct TokenSet {
    tokens: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|(n, _)| n.as_str()).collect();
        write!(f, "TokenSet({names:?})")
    }
}

fn digest(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(Sha256::digest(token.as_bytes()).as_slice());
    out
}

impl TokenSet {
    /// No tokens.
    pub fn new() -> TokenSet {
        TokenSet::default()
    }

    /// Adds a named token; refuses short tokens, names with a colon, and duplicates.
    pub fn add(&mut self, name: &str, token: &SecretString) -> Result<(), McpError> {
        let t = token.expose_secret();
        if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
            return Err(McpError::Tokens(format!(
                "token name `{name}` must be non-empty, without spaces or colons"
            )));
        }
        if t.chars().count() < MIN_TOKEN_CHARS || t.chars().any(char::is_whitespace) {
            return Err(McpError::Tokens(format!(
                "token `{name}` must be at least {MIN_TOKEN_CHARS} characters without spaces (e.g. `openssl rand -hex 32`)"
            )));
        }
        if self.tokens.iter().any(|(n, _)| n == name) {
            return Err(McpError::Tokens(format!(
                "token name `{name}` appears twice"
            )));
        }
        self.tokens.push((name.to_string(), digest(t)));
        Ok(())
    }

    /// Reads a token file: one `name:token` per line; blank lines and `#` comments
    /// are skipped.
    pub fn from_file(path: &Path) -> Result<TokenSet, McpError> {
        let text = SecretString::from(
            std::fs::read_to_string(path)
                .map_err(|e| McpError::Tokens(format!("cannot read {}: {e}", path.display())))?,
        );
        let mut set = TokenSet::new();
        for (n, line) in text.expose_secret().lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Never echo the line: it holds a token.
            let (name, token) = line.split_once(':').ok_or_else(|| {
                McpError::Tokens(format!(
                    "{} line {}: expected name:token",
                    path.display(),
                    n + 1
                ))
            })?;
            set.add(name.trim(), &SecretString::from(token.trim().to_string()))?;
        }
        if set.is_empty() {
            return Err(McpError::Tokens(format!(
                "{} holds no tokens",
                path.display()
            )));
        }
        Ok(set)
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// The name of the token `presented` matches, if any. Compares against every token.
    pub fn verify(&self, presented: &str) -> Option<&str> {
        let d = digest(presented);
        let mut found = None;
        for (name, expected) in &self.tokens {
            if bool::from(expected.ct_eq(&d)) {
                found = Some(name.as_str());
            }
        }
        found
    }
}

/// How the HTTP transport is exposed.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Accepted bearer tokens.
    pub tokens: TokenSet,
    /// Accepted OAuth access tokens, if `[auth.oauth]` is configured.
    pub oauth: Option<Arc<crate::oauth::OAuthVerifier>>,
    /// Serve without a token; honoured only on a loopback address.
    pub allow_unauthenticated_loopback: bool,
    /// Accepted `Host` header values (names or `name:port`). Empty means the loopback
    /// names: `localhost`, `127.0.0.1`, `::1`.
    pub allowed_hosts: Vec<String>,
    /// Accepted `Origin` values (`scheme://host:port`). Empty means any request carrying
    /// an `Origin` header (i.e. from a web page) is refused; MCP clients send none.
    pub allowed_origins: Vec<String>,
    /// Largest request body accepted, in bytes (larger ones get 413). Default 1 MiB.
    pub max_body_bytes: usize,
    /// Serve on a non-loopback address even though the database role can write.
    pub accept_writable_role: bool,
    /// Reverse proxies whose `X-Forwarded-For` is believed. Empty: the header is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Failed authentications per client address per window before 429. Default 10
    /// (see [`crate::auth_throttle`]).
    pub auth_failures_per_window: u64,
    /// The authentication-failure window. Default 60 s.
    pub auth_window: std::time::Duration,
    /// Timeouts and caps of the accept loop (see [`crate::listener`]).
    pub limits: crate::listener::ConnectionLimits,
    /// Options of the MCP server itself.
    pub server: ServerOptions,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            trusted_proxies: Vec::new(),
            tokens: TokenSet::new(),
            oauth: None,
            allow_unauthenticated_loopback: false,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            max_body_bytes: 1024 * 1024,
            accept_writable_role: false,
            auth_failures_per_window: crate::auth_throttle::DEFAULT_MAX_FAILURES,
            auth_window: crate::auth_throttle::DEFAULT_WINDOW,
            limits: crate::listener::ConnectionLimits::default(),
            server: ServerOptions::default(),
        }
    }
}

/// Checks, before anything is served, that the exposure is one the operator asked for.
pub fn check_exposure(addr: SocketAddr, options: &HttpOptions) -> Result<(), McpError> {
    let loopback = addr.ip().is_loopback();
    if options.tokens.is_empty() && options.oauth.is_none() {
        if !loopback {
            return Err(McpError::Refused(format!(
                "refusing to serve HTTP on {addr} without a bearer token: anyone who can reach it could query the database. Set DBWARD_HTTP_TOKEN or --token-file (lines name:token)."
            )));
        }
        if !options.allow_unauthenticated_loopback {
            return Err(McpError::Refused(format!(
                "refusing to serve HTTP on {addr} without a bearer token. Set DBWARD_HTTP_TOKEN or --token-file, or pass --allow-unauthenticated-loopback to let any local process in."
            )));
        }
    }
    Ok(())
}

struct AuthState {
    tokens: TokenSet,
    oauth: Option<Arc<crate::oauth::OAuthVerifier>>,
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Failed authentications are security events.
    gateway: Arc<Gateway>,
    /// Failed authentications per client address.
    throttle: AuthThrottle,
    window_s: u64,
    /// An authenticated request's body must arrive within this.
    body_timeout: std::time::Duration,
    max_body_bytes: usize,
}

/// Serves MCP at `/mcp` on `listener` until `shutdown` completes.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    default_connection: ConnectionInfo,
    options: HttpOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), McpError> {
    let addr = listener.local_addr()?;
    check_exposure(addr, &options)?;
    let loopback = addr.ip().is_loopback();
    if !loopback {
        let posture = gateway
            .security_posture(default_connection.id.as_str())
            .await?;
        if posture.role.can_write {
            if !options.accept_writable_role {
                return Err(McpError::Refused(format!(
                    "refusing to serve HTTP on {addr}: the database role `{}` can write ({} writable tables{}{}), so only dbward's own layers would stand between a remote caller and a write. Connect as a read-only role (`dbward setup-role` prints the SQL), or pass --accept-writable-role to take the risk.",
                    posture.role.role,
                    posture.role.writable_tables,
                    if posture.role.superuser {
                        ", superuser"
                    } else {
                        ""
                    },
                    if posture.role.can_create {
                        ", can create objects"
                    } else {
                        ""
                    },
                )));
            }
            tracing::warn!(
                role = %posture.role.role,
                "serving on a non-loopback address with a role that can write (--accept-writable-role)"
            );
        }
    }
    let hosts: Vec<String> = if options.allowed_hosts.is_empty() {
        if !loopback {
            tracing::warn!(
                %addr,
                "only loopback Host names are allowed; remote clients need --allowed-host NAME"
            );
        }
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
    } else {
        options.allowed_hosts.clone()
    };
    let ct = CancellationToken::new();
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(options.allowed_origins.clone())
        .enforce_origin_validation()
        .with_max_request_body_bytes(options.max_body_bytes)
        // Every request is served on its own, whatever protocol version the client
        // negotiated: no MCP session is kept (dbward keeps nothing per MCP session; callers
        // are told apart, audited, limited and blocked by their token's principal), and a
        // request whose handler sends nothing before its answer gets one JSON body instead
        // of an SSE stream: less to frame, buffer and parse, for the server and the client.
        // A client that disconnects before the answer still cancels the call.
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_cancellation_token(ct.clone());
    let server = DbwardServer::new(gateway.clone(), default_connection, options.server.clone());
    let service: StreamableHttpService<DbwardServer, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
    if let Some(v) = &options.oauth {
        v.warm().await;
    }
    let auth = Arc::new(AuthState {
        tokens: options.tokens.clone(),
        oauth: options.oauth.clone(),
        trusted_proxies: options.trusted_proxies.clone(),
        gateway: gateway.clone(),
        throttle: AuthThrottle::new(options.auth_failures_per_window, options.auth_window),
        window_s: options.auth_window.as_secs(),
        body_timeout: options.limits.body_timeout,
        max_body_bytes: options.max_body_bytes,
    });
    let metrics_gateway = gateway.clone();
    let app = axum::Router::new()
        .nest_service("/mcp", service)
        // Prometheus text format, behind the same bearer token as the tools.
        .route(
            "/metrics",
            axum::routing::get(move || {
                let g = metrics_gateway.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        g.metrics_text(),
                    )
                }
            }),
        )
        .layer(middleware::from_fn_with_state(auth, require_token));
    // RFC 9728 protected-resource metadata: public, so a client can learn where to get a
    // token before it has one.
    let app = match &options.oauth {
        Some(v) => {
            let doc = v.metadata().to_string();
            let mut app = app;
            for path in v.metadata_paths() {
                let doc = doc.clone();
                app = app.route(
                    &path,
                    axum::routing::get(move || {
                        let doc = doc.clone();
                        async move { ([(header::CONTENT_TYPE, "application/json")], doc) }
                    }),
                );
            }
            app
        }
        None => app,
    };
    tracing::info!(
        %addr,
        tokens = options.tokens.len(),
        oauth = options.oauth.is_some(),
        unauthenticated = options.tokens.is_empty() && options.oauth.is_none(),
        "serving MCP over HTTP at /mcp"
    );
    // Shutdown: stop accepting at once; let running calls finish until the drain deadline
    // (then they are cancelled and answer `shutdown`); a second later, connections still
    // open (a half-sent request, an idle client) are closed rather than waited on.
    let stop = CancellationToken::new();
    let closing = CancellationToken::new();
    let connections = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let accepting = tokio::spawn(crate::listener::accept_loop(
        listener,
        app,
        options.limits.clone(),
        stop.clone(),
        closing.clone(),
        connections.clone(),
    ));
    shutdown.await;
    let drain = options.server.drain.clone();
    tracing::info!(running = drain.running(), "shutting down: draining calls");
    stop.cancel();
    let all_closed = async {
        while connections.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    let drained = async {
        drain.drain(options.server.drain_deadline).await;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    tokio::select! {
        () = all_closed => {}
        () = drained => tracing::info!("connections still open after the drain were closed"),
    }
    closing.cancel();
    // Ends open SSE streams.
    ct.cancel();
    let _ = accepting.await;
    Ok(())
}

/// Marks a request's calls `client_gone` if dropped while still armed.
struct ClientGone(Option<Ending>);

impl Drop for ClientGone {
    fn drop(&mut self) {
        if let Some(e) = self.0.take() {
            e.set(Abandoned::ClientGone);
        }
    }
}

/// The `Authorization: Bearer` value, if well-formed.
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Why a request was not authenticated.
struct AuthRejection {
    /// For the audit log (never the token).
    reason: String,
    /// An OAuth token was looked at (and the answer names OAuth's errors).
    oauth: bool,
    /// The 403 `insufficient_scope` case: these scopes are missing.
    missing_scopes: Option<Vec<String>>,
    /// A credential was presented (401 `invalid_token` rather than a bare challenge).
    presented: bool,
}

impl AuthRejection {
    /// The answer: 401 with a `WWW-Authenticate` challenge pointing at the resource
    /// metadata when OAuth is on (RFC 6750 §3, RFC 9728 §5.1), or 403 for missing scopes.
    fn response(&self, oauth: Option<&crate::oauth::OAuthVerifier>) -> Response {
        let quote = |s: &str| s.replace(['"', '\\'], "'");
        let (status, challenge, body) = match (oauth, &self.missing_scopes) {
            (Some(v), Some(missing)) => (
                StatusCode::FORBIDDEN,
                format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{}\"",
                    quote(&v.required_scopes().join(" ")),
                    v.metadata_url()
                ),
                serde_json::json!({"error": "insufficient_scope", "message": format!("the access token lacks the scopes {}", missing.join(" "))}),
            ),
            (Some(v), None) if self.presented => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\", resource_metadata=\"{}\"",
                    quote(&self.reason),
                    v.metadata_url()
                ),
                serde_json::json!({"error": "invalid_token", "message": self.reason}),
            ),
            (Some(v), None) => (
                StatusCode::UNAUTHORIZED,
                format!("Bearer resource_metadata=\"{}\"", v.metadata_url()),
                serde_json::json!({"error": "unauthorized", "message": "an access token is required (Authorization: Bearer <token>)"}),
            ),
            (None, _) => (
                StatusCode::UNAUTHORIZED,
                "Bearer realm=\"dbward\"".to_string(),
                serde_json::json!({"error": "unauthorized", "message": "a valid bearer token is required (Authorization: Bearer <token>)"}),
            ),
        };
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

/// Who sent `req`: a configured token's name, or an OAuth access token's subject.
async fn authenticate(
    auth: &AuthState,
    token: Option<&str>,
    presented: bool,
) -> Result<(String, dbward_gateway::access::Identity), AuthRejection> {
    use dbward_gateway::access::Identity;
    if auth.tokens.is_empty() && auth.oauth.is_none() {
        // Only reachable on loopback with --allow-unauthenticated-loopback (check_exposure).
        let name = "unauthenticated-loopback";
        return Ok((name.to_string(), Identity::keyed(name)));
    }
    let Some(token) = token else {
        return Err(AuthRejection {
            reason: "no bearer token".into(),
            oauth: auth.oauth.is_some(),
            missing_scopes: None,
            presented,
        });
    };
    if let Some(name) = auth.tokens.verify(token) {
        return Ok((name.to_string(), Identity::keyed(format!("token:{name}"))));
    }
    let Some(oauth) = &auth.oauth else {
        return Err(AuthRejection {
            reason: "unknown bearer token".into(),
            oauth: false,
            missing_scopes: None,
            presented: true,
        });
    };
    match oauth.verify(token).await {
        Ok(v) => Ok((v.principal, v.identity)),
        Err(r) => Err(AuthRejection {
            reason: r.reason(),
            oauth: true,
            missing_scopes: match r {
                crate::oauth::Rejection::InsufficientScope(m) => Some(m),
                crate::oauth::Rejection::Invalid(_) => None,
            },
            presented: true,
        }),
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy, in which case
/// the right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its
/// left were written by the client and prove nothing).
pub fn client_address(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[std::net::IpAddr],
) -> std::net::IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let entries: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|e| e.trim().parse().ok())
        .collect();
    entries
        .iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .copied()
        .unwrap_or(peer)
}

async fn require_token(
    State(auth): State<Arc<AuthState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    // (Read out of the request first: the body is not `Sync`, so no reference to the
    // request may live across an await.)
    let token = bearer(&req).map(str::to_string);
    let presented = req.headers().contains_key(header::AUTHORIZATION);
    let verdict = authenticate(&auth, token.as_deref(), presented).await;
    match verdict {
        Ok((name, identity)) => {
            let mut req = req;
            req.extensions_mut().insert(Principal(name));
            req.extensions_mut().insert(VerifiedIdentity(identity));
            // If this future is dropped before it answers, the client went away: the call
            // it carried is audited as `client_gone`.
            let ending = Ending::default();
            req.extensions_mut().insert(ending.clone());
            if let Some(slot) = req.extensions().get::<crate::listener::ConnectionSlot>() {
                slot.authenticated();
            }
            // The body must arrive within the body timeout (read here, once, bounded).
            let (parts, body) = req.into_parts();
            let body = match tokio::time::timeout(
                auth.body_timeout,
                axum::body::to_bytes(body, auth.max_body_bytes),
            )
            .await
            {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(_)) => {
                    return (
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request body too large or unreadable",
                    )
                        .into_response();
                }
                Err(_) => {
                    return (
                        StatusCode::REQUEST_TIMEOUT,
                        "request body not received in time",
                    )
                        .into_response();
                }
            };
            if parts.method == axum::http::Method::POST
                && let Err(crate::malformed::Malformed(answer)) = crate::malformed::check(&body)
            {
                return (
                    StatusCode::BAD_REQUEST,
                    [(header::CONTENT_TYPE, "application/json")],
                    answer.to_string(),
                )
                    .into_response();
            }
            let req = Request::from_parts(parts, axum::body::Body::from(body));
            let mut gone = ClientGone(Some(ending));
            let response = next.run(req).await;
            gone.0 = None;
            response
        }
        Err(rejection) => {
            let peer = client_address(peer.ip(), req.headers(), &auth.trusted_proxies);
            let who = format!("peer:{peer}");
            let (log, flood, previous) = match auth.throttle.fail(peer) {
                Failure::Throttled { retry_after } => {
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [
                            (header::CONTENT_TYPE, "application/json".to_string()),
                            (header::RETRY_AFTER, retry_after.to_string()),
                        ],
                        r#"{"error":"too_many_failed_authentications","message":"too many requests without a valid bearer token from this address; retry later"}"#,
                    )
                        .into_response();
                }
                Failure::Unauthorized {
                    log,
                    flood,
                    previous,
                } => (log, flood, previous),
            };
            if log {
                tracing::warn!(
                    %peer,
                    path = %req.uri().path(),
                    presented = req.headers().contains_key(header::AUTHORIZATION),
                    "HTTP request refused: missing or wrong bearer token (further failures from this address in this window are counted, not logged)"
                );
            }
            // No principal could be established: the peer address stands in for it.
            if let Some(n) = previous {
                auth.gateway
                    .record_auth_flood(&who, "HTTP bearer token, previous window", n, auth.window_s)
                    .await;
            }
            if let Some(n) = flood {
                tracing::warn!(%peer, failures = n, "failed authentications throttled: answering 429 until the window ends");
                auth.gateway
                    .record_auth_flood(&who, "HTTP bearer token", n, auth.window_s)
                    .await;
            }
            let what = if rejection.oauth {
                "OAuth access token"
            } else {
                "HTTP bearer token"
            };
            auth.gateway
                .record_auth_refusal(&who, what, &rejection.reason)
                .await;
            rejection.response(auth.oauth.as_deref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: std::net::IpAddr = "10.0.0.2".parse().expect("ip");
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7, 10.0.0.2".parse().expect("hv"),
        );
        // From the trusted proxy: the right-most entry that is not a trusted proxy.
        assert_eq!(
            client_address(proxy, &h, &[proxy]).to_string(),
            "203.0.113.7"
        );
        // From anyone else: the header is ignored.
        let other: std::net::IpAddr = "198.51.100.9".parse().expect("ip");
        assert_eq!(client_address(other, &h, &[proxy]), other);
        // No trusted proxies configured: ignored.
        assert_eq!(client_address(proxy, &h, &[]), proxy);
    }

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[test]
    fn tokens_verify_by_name_and_refuse_short_ones() {
        let mut set = TokenSet::new();
        set.add("alice", &secret("alice-token-0123456789"))
            .expect("added");
        set.add("bob", &secret("bob-token-0123456789abc"))
            .expect("added");
        assert_eq!(set.verify("alice-token-0123456789"), Some("alice"));
        assert_eq!(set.verify("bob-token-0123456789abc"), Some("bob"));
        assert_eq!(set.verify("alice-token-012345678"), None);
        assert_eq!(set.verify(""), None);
        assert!(set.add("carol", &secret("short")).is_err());
        assert!(set.add("alice", &secret("another-long-token-xyz")).is_err());
        assert!(!format!("{set:?}").contains("token-0123"));
    }

    #[test]
    fn token_file_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens");
        std::fs::write(
            &path,
            "# comment\n\nci:ci-token-aaaaaaaaaaaaaaaa\nlaptop: laptop-token-bbbbbbbbbbbb \n",
        )
        .expect("write");
        let set = TokenSet::from_file(&path).expect("parsed");
        assert_eq!(set.verify("laptop-token-bbbbbbbbbbbb"), Some("laptop"));
        std::fs::write(&path, "no-colon-here-secret-value\n").expect("write");
        let e = TokenSet::from_file(&path).expect_err("malformed");
        assert!(!e.to_string().contains("secret-value"), "{e}");
    }

    #[test]
    fn exposure_rules() {
        let lo: SocketAddr = "127.0.0.1:8808".parse().expect("addr");
        let any: SocketAddr = "0.0.0.0:8808".parse().expect("addr");
        let mut o = HttpOptions::default();
        assert!(check_exposure(lo, &o).is_err());
        assert!(check_exposure(any, &o).is_err());
        o.allow_unauthenticated_loopback = true;
        assert!(check_exposure(lo, &o).is_ok());
        let e = check_exposure(any, &o).expect_err("never without a token off loopback");
        assert!(e.to_string().contains("without a bearer token"), "{e}");
        o.tokens
            .add("x", &secret("x-token-0123456789abcdef"))
            .expect("added");
        assert!(check_exposure(any, &o).is_ok());
    }
}
