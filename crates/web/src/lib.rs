//! dbward's web UI and chat API (`dbward web`, `dbward demo`): server-rendered pages (chat,
//! browse, SQL console, audit) with a little JavaScript, all embedded in the binary (no CDN,
//! no build step), and a JSON API (`/api/chat`, `/api/check`, `/api/status`).
//!
//! Every database read goes to a `dbward serve` child over MCP (the [`ChildServer`]), so this
//! process never holds a database credential, and each browser session is its own principal
//! there (`stdio/<label>`): audited, rate-limited and blocked apart from the others.
//!
//! Invariants:
//! - Every value from the database reaches the page through askama's HTML escaping or the
//!   script's `textContent`: a `<script>` in a row is shown, never run. The model's answers
//!   are Markdown rendered here with raw HTML escaped (`markdown`), the one HTML the script
//!   inserts. The Content Security
//!   Policy allows scripts from this origin's `/assets/` only (no inline script), and styles
//!   from this origin plus the one `<style>` the editor adds with the response's nonce.
//! - A state-changing request is either a form carrying the session's CSRF token, or JSON
//!   (which a cross-site page cannot send without a preflight we never grant) with no foreign
//!   `Origin`. Cookies are `HttpOnly`, `SameSite=Strict`, and `Secure` when configured.
//! - With a password, named users or an identity provider configured every page and API
//!   call needs a login (or the password as a bearer token); the binary refuses to bind a
//!   non-loopback address without one.
//! - A person signed in through the identity provider (`sign_in`) is vouched for to the
//!   child with each call (`HostSession`); nothing a browser sends can name that person.

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod api;
mod audit_view;
mod browse;
mod console_api;
mod conversations;
mod markdown;
mod oidc;
mod pages;
mod session;
mod sign_in;
pub mod users;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use dbward_assistant::agent::Assistant;
use dbward_gateway::DbKind;
use dbward_mcp::client::ChildServer;
use dbward_policy::{Dialect, Policy};
use secrecy::SecretString;

pub use api::NO_LLM;

/// Why the web app could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The MCP child did not answer as expected.
    #[error("the database server child failed: {0}")]
    Child(String),
    /// The web UI's configuration cannot work.
    #[error("{0}")]
    Config(String),
}

/// How the web app behaves.
pub struct WebOptions {
    /// The login password (`DBWARD_WEB_PASSWORD`). `None`: no login, which the binary allows
    /// on loopback addresses only.
    pub password: Option<SecretString>,
    /// Mark cookies `Secure` (set when a TLS-terminating proxy serves the UI).
    pub secure_cookies: bool,
    /// The audit log the child writes, shown in the audit view; `None` when auditing is off.
    pub audit_path: Option<PathBuf>,
    /// The policy, for the console's verdict before running (the child checks again).
    pub policy: Policy,
    /// Host names (or addresses) the `Host` header may carry, besides the loopback names:
    /// a page on another name that resolves here (DNS rebinding) is refused.
    pub allowed_hosts: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed (for the login limit per address).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The data directory: chat conversations are kept under `web/` in it.
    pub data_dir: PathBuf,
    /// Named users (`dbward web add-user`); with any, a login is required.
    pub users: users::Users,
    /// Sign-in through an OpenID Connect provider (`[web.oidc]`); with it, a login is
    /// required.
    pub oidc: Option<dbward_gateway::config::OidcLoginConfig>,
    /// The client secret for `oidc`, read by the binary from `client_secret_env`.
    pub oidc_secret: Option<SecretString>,
}

/// The web app's state: the child, the optional assistant, the sessions.
pub struct WebState {
    host: Arc<ChildServer>,
    assistant: Option<Assistant>,
    options: WebOptions,
    /// The dialect of the child's default connection, for the verdict preview.
    dialect: Dialect,
    sessions: session::Sessions,
    /// The chat conversations, per owner, in the data directory.
    conversations: conversations::Store,
    /// Table and column names for the console's completion.
    catalog: console_api::CatalogCache,
    /// The model server's last probe (when, and its error), reused for a few seconds.
    model_probe: std::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>>,
    /// The identity provider people sign in through, if configured.
    oidc: Option<oidc::OidcLogin>,
    /// Sign-ins sent to the provider and not back yet.
    pending: sign_in::PendingSignIns,
}

impl WebState {
    /// Builds the state over a started child (and an assistant over the same child, when an
    /// LLM is configured); asks the child for its default connection's kind.
    pub async fn new(
        host: Arc<ChildServer>,
        assistant: Option<Assistant>,
        options: WebOptions,
    ) -> Result<WebState, WebError> {
        let out = host
            .call("list_connections", serde_json::Map::new())
            .await
            .map_err(|e| WebError::Child(e.to_string()))?;
        let structured = out.structured.unwrap_or_default();
        let default = structured["default_connection_id"].as_str().unwrap_or("");
        let kind = structured["connections"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["id"].as_str() == Some(default)))
            .map(|c| c["type"].clone())
            .and_then(|t| serde_json::from_value::<DbKind>(t).ok())
            .ok_or_else(|| WebError::Child("no default connection of a known type".into()))?;
        let dialect = kind.dialect();
        let oidc = match &options.oidc {
            Some(c) => {
                let o = oidc::OidcLogin::new(c, options.oidc_secret.clone())
                    .map_err(|e| WebError::Config(e.to_string()))?;
                o.warm().await;
                Some(o)
            }
            None => None,
        };
        Ok(WebState {
            oidc,
            pending: sign_in::PendingSignIns::default(),
            host,
            assistant,
            conversations: conversations::Store::new(&options.data_dir),
            catalog: console_api::CatalogCache::default(),
            model_probe: std::sync::Mutex::new(None),
            options,
            dialect,
            sessions: session::Sessions::default(),
        })
    }
}

impl WebState {
    /// Whether a login is required: a shared password, named users or an identity
    /// provider are configured.
    pub(crate) fn login_configured(&self) -> bool {
        self.options.password.is_some() || !self.options.users.is_empty() || self.oidc.is_some()
    }
}

const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");
/// CodeMirror 6 with SQL, bundled from its npm release by `crates/web/editor` (see its
/// `package.json`); served from the binary like the rest.
const EDITOR_JS: &str = include_str!("../assets/editor.js");

/// The router: pages, assets and the API.
pub fn router(state: Arc<WebState>) -> axum::Router {
    axum::Router::new()
        .route("/", get(pages::chat))
        .route("/browse", get(browse::browse))
        .route("/browse/table", get(browse::table))
        .route("/console", get(pages::console).post(pages::console_post))
        .route("/audit", get(pages::audit))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/auth/login", get(sign_in::start))
        .route("/auth/callback", get(sign_in::callback))
        .route(
            "/conversations/{id}/delete",
            post(pages::delete_conversation),
        )
        .route("/api/status", get(api::status))
        .route("/api/chat", post(api::chat))
        .route("/api/chat/stop", post(api::stop))
        .route("/api/conversations", get(api::conversations))
        .route("/api/query", post(console_api::query))
        .route("/api/query/cancel", post(console_api::cancel))
        .route("/api/catalog", get(console_api::catalog))
        .route(
            "/api/conversations/{id}",
            get(api::conversation).delete(api::delete_conversation),
        )
        .route("/api/check", post(api::check))
        .route(
            "/assets/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    APP_JS,
                )
            }),
        )
        .route(
            "/assets/editor.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=86400"),
                    ],
                    EDITOR_JS,
                )
            }),
        )
        .route(
            "/assets/app.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS) }),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            check_host,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// The host part of a `Host` header value (`[::1]:8080` -> `::1`, `a.b:80` -> `a.b`).
fn host_name(value: &str) -> String {
    let v = value.trim().to_ascii_lowercase();
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    match v.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h.to_string(),
        _ => v,
    }
}

/// Refuses a request whose `Host` is not a loopback name or an allowed host (DNS
/// rebinding: a hostile page re-resolving its own name to this address would otherwise be
/// same-origin with the UI).
async fn check_host(
    axum::extract::State(state): axum::extract::State<Arc<WebState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(host_name);
    let ok = host.as_deref().is_some_and(|h| {
        matches!(h, "localhost" | "127.0.0.1" | "::1")
            || state
                .options
                .allowed_hosts
                .iter()
                .any(|a| a.eq_ignore_ascii_case(h))
    });
    if ok {
        return next.run(req).await;
    }
    tracing::warn!(host = ?host, "web request refused: Host not allowed");
    (
        axum::http::StatusCode::MISDIRECTED_REQUEST,
        "This Host is not served here. Start dbward web with --allowed-host NAME for the name you use.",
    )
        .into_response()
}

/// A random value per response that lets the page's own editor add its stylesheet
/// (CodeMirror builds its base styles at run time): `style-src 'self' 'nonce-...'`.
/// Scripts stay `'self'` only.
#[derive(Debug, Clone)]
pub(crate) struct StyleNonce(pub String);

/// Headers on every response: a strict CSP (scripts from this origin only; styles from this
/// origin and the response's nonce), no framing, no sniffing, no referrer.
async fn security_headers(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    req.extensions_mut().insert(StyleNonce(nonce.clone()));
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Serves the app on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<WebState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
