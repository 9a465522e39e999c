//! Browser sessions, the login, and CSRF tokens.
//!
//! A session is a random 256-bit cookie value (never shown, never logged) mapped to a public
//! label (8 hex characters: the principal `stdio/<label>` in the child's audit), a CSRF token,
//! whether it logged in, and who: a named user (`stdio/user-NAME`), or a person signed in
//! through the identity provider (`sign_in`), whose principal is `NAME:SUB`. Scripts may
//! instead send the password as a bearer token: they share one session, labelled `api`.
//!
//! Invariants:
//! - A login rotates the cookie value (no session fixation); a logout forgets the session.
//! - Failed logins and wrong bearer tokens are limited per client address (only failures
//!   count) and reported to the child as security events (audited, counted by its detector).
//! - A flood of cookie-less requests can only displace sessions that have not logged in.
//! - The password is compared in constant time and never logged or echoed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use dbward_mcp::{HostEvent, HostEventKind};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::ExposeSecret;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::WebState;

/// The session cookie's name; with `Secure`, the `__Host-` form (no Domain, path `/`,
/// HTTPS only: a sibling subdomain cannot plant it).
pub(crate) const COOKIE: &str = "dbward_session";
const SECURE_COOKIE: &str = "__Host-dbward_session";

fn cookie_name(state: &WebState) -> &'static str {
    if state.options.secure_cookies {
        SECURE_COOKIE
    } else {
        COOKIE
    }
}
/// Most sessions kept; the least recently seen is dropped beyond it.
const MAX_SESSIONS: usize = 10_000;
/// Most sessions not (yet) logged in: a flood of cookie-less requests evicts only these,
/// never a logged-in session.
const MAX_ANONYMOUS: usize = 1_000;
/// A session unused this long is forgotten.
const IDLE: Duration = Duration::from_secs(12 * 3600);
/// Failed logins (and wrong bearer tokens) per client address per minute; past it the
/// address waits a minute before any password is checked again.
const FAILURES_PER_MINUTE: u32 = 10;

/// One browser session.
struct Session {
    /// Public: names the session in the child's audit (`stdio/<label>`).
    label: String,
    /// The token forms must carry.
    csrf: String,
    /// Logged in (always true when no password is configured).
    authenticated: bool,
    last_seen: Instant,
    /// The named user logged in, if any (the label is then `user-<name>`).
    user: Option<String>,
    /// The person signed in through the identity provider, if any.
    person: Option<Arc<Person>>,
}

/// A person signed in through the identity provider: the child is told of them with each
/// call, and counts the call as theirs (`NAME:SUB`).
#[derive(Debug)]
pub(crate) struct Person {
    /// What the child is told.
    pub identity: dbward_mcp::HostIdentity,
    /// The name shown in the page header.
    pub display: String,
}

impl Session {
    fn new(authenticated: bool) -> Session {
        Session {
            label: hex::encode(rand::random::<[u8; 8]>()),
            csrf: hex::encode(rand::random::<[u8; 16]>()),
            authenticated,
            last_seen: Instant::now(),
            user: None,
            person: None,
        }
    }
}

/// All sessions, and the login failure limiter.
pub(crate) struct Sessions {
    /// A std mutex: held for map operations only, never across an await.
    map: Mutex<HashMap<String, Session>>,
    /// Failed logins per address (only failures count: a good client is never slowed).
    failures: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses that failed too often, until when.
    locked: Mutex<HashMap<IpAddr, Instant>>,
    /// Sessions with a question running (one at a time per session), and how to stop it.
    asking: Running,
    /// Sessions with a console query running (one at a time per session).
    querying: Running,
}

impl Default for Sessions {
    fn default() -> Self {
        let quota =
            Quota::per_minute(NonZeroU32::new(FAILURES_PER_MINUTE).unwrap_or(NonZeroU32::MIN));
        Sessions {
            map: Mutex::new(HashMap::new()),
            failures: RateLimiter::keyed(quota),
            locked: Mutex::new(HashMap::new()),
            asking: Running::default(),
            querying: Running::default(),
        }
    }
}

impl Sessions {
    /// Whether `ip` must wait before a password is checked again.
    pub(crate) fn locked_out(&self, ip: IpAddr) -> bool {
        let mut locked = self.locked.lock().unwrap_or_else(|p| p.into_inner());
        match locked.get(&ip) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                locked.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Counts a failure from `ip`; `true` when it is one too many (the address is then
    /// locked out for a minute).
    pub(crate) fn failed(&self, ip: IpAddr) -> bool {
        if self.failures.check_key(&ip).is_ok() {
            return false;
        }
        let mut locked = self.locked.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if locked.len() > MAX_SESSIONS {
            locked.retain(|_, until| *until > now);
            self.failures.retain_recent();
        }
        locked.insert(ip, now + Duration::from_secs(60));
        true
    }
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The visitor for a cookie value, if that session exists.
    fn find(&self, key: &str) -> Option<Visitor> {
        let mut map = self.lock();
        let s = map.get_mut(key)?;
        if s.last_seen.elapsed() > IDLE {
            map.remove(key);
            return None;
        }
        s.last_seen = Instant::now();
        Some(Visitor::of(key, s))
    }

    /// The one session of scripts (bearer clients, or cookie-less API calls when no login
    /// is configured), labelled `api`.
    fn api(&self) -> Visitor {
        match self.find("api") {
            Some(v) => v,
            None => self.insert("api".into(), {
                let mut s = Session::new(true);
                s.label = "api".into();
                s
            }),
        }
    }

    /// The session of a script signed in as a named user (bearer `NAME:PASSWORD`): the
    /// user's principal, like their browser sessions.
    fn api_user(&self, name: &str) -> Visitor {
        let key = format!("api:user:{name}");
        match self.find(&key) {
            Some(v) => v,
            None => self.insert(key, {
                let mut s = Session::new(true);
                s.label = format!("user-{name}");
                s.user = Some(name.to_string());
                s
            }),
        }
    }

    /// Signs `person` in under a fresh cookie value; the session the callback arrived
    /// with (`old`), if any, is forgotten, so a value planted before is worthless after.
    pub(crate) fn sign_in_person(&self, old: Option<&str>, person: Person) -> Visitor {
        if let Some(old) = old {
            self.lock().remove(old);
        }
        let mut s = Session::new(true);
        s.person = Some(Arc::new(person));
        self.insert(hex::encode(rand::random::<[u8; 32]>()), s)
    }

    /// A new session under a fresh cookie value.
    fn create(&self, authenticated: bool) -> Visitor {
        let key = hex::encode(rand::random::<[u8; 32]>());
        self.insert(key, Session::new(authenticated))
    }

    fn insert(&self, key: String, session: Session) -> Visitor {
        let visitor = Visitor::of(&key, &session);
        let mut map = self.lock();
        let anonymous = !session.authenticated;
        let over = |map: &HashMap<String, Session>| {
            if anonymous {
                // (The count is only taken once the map could hold that many.)
                map.len() >= MAX_ANONYMOUS
                    && map.values().filter(|s| !s.authenticated).count() >= MAX_ANONYMOUS
            } else {
                map.len() >= MAX_SESSIONS
            }
        };
        if over(&map) {
            map.retain(|_, s| s.last_seen.elapsed() <= IDLE);
            // An anonymous newcomer only ever displaces another anonymous session.
            if over(&map)
                && let Some(oldest) = map
                    .iter()
                    .filter(|(_, s)| !anonymous || !s.authenticated)
                    .min_by_key(|(_, s)| s.last_seen)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(key, session);
        visitor
    }

    /// Marks a question running for the session: what stops it, or `None` if one already
    /// runs.
    pub(crate) fn start_question(&self, key: &str) -> Option<Arc<tokio::sync::Notify>> {
        self.asking.start(key)
    }

    /// Stops the session's running question; `false` if none runs.
    pub(crate) fn stop_question(&self, key: &str) -> bool {
        self.asking.stop(key)
    }

    /// Marks the session's question finished.
    pub(crate) fn end_question(&self, key: &str) {
        self.asking.end(key)
    }

    /// Marks a console query running for the session (see [`Sessions::start_question`]).
    pub(crate) fn start_query(&self, key: &str) -> Option<Arc<tokio::sync::Notify>> {
        self.querying.start(key)
    }

    /// Cancels the session's running console query; `false` if none runs.
    pub(crate) fn stop_query(&self, key: &str) -> bool {
        self.querying.stop(key)
    }

    /// Marks the session's console query finished.
    pub(crate) fn end_query(&self, key: &str) {
        self.querying.end(key)
    }
}

/// Work running per session (one at a time), each with what stops it.
#[derive(Default)]
struct Running(Mutex<HashMap<String, Arc<tokio::sync::Notify>>>);

impl Running {
    fn start(&self, key: &str) -> Option<Arc<tokio::sync::Notify>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.contains_key(key) {
            return None;
        }
        let stop = Arc::new(tokio::sync::Notify::new());
        map.insert(key.to_string(), stop.clone());
        Some(stop)
    }

    fn stop(&self, key: &str) -> bool {
        match self.0.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
            Some(stop) => {
                stop.notify_one();
                true
            }
            None => false,
        }
    }

    fn end(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// Who is asking: the session a request belongs to.
#[derive(Debug, Clone)]
pub(crate) struct Visitor {
    /// The cookie value (secret; `api` for bearer-token clients).
    pub key: String,
    /// The public label.
    pub label: String,
    /// The CSRF token forms must carry.
    pub csrf: String,
    /// Logged in, or no login needed.
    pub authenticated: bool,
    /// The named user signed in, if any.
    pub user: Option<String>,
    /// The person signed in through the identity provider, if any.
    pub person: Option<Arc<Person>>,
    /// This response's style nonce (see `StyleNonce`), for the page's editor.
    pub style_nonce: String,
    /// Whose conversations these are: `user:<name>` for a named user, `oidc:<NAME:SUB>`
    /// for a person signed in through the provider, `api` for scripts, else
    /// `session:<label>` (the browser session).
    pub owner: String,
    /// The request presented this session's cookie (so a browser may have sent it on a
    /// cross-site request: JSON API calls must then carry the CSRF token in a header).
    pub from_cookie: bool,
}

impl Visitor {
    /// The visitor of session `s`, stored under cookie value `key`.
    fn of(key: &str, s: &Session) -> Visitor {
        Visitor {
            key: key.to_string(),
            label: s.label.clone(),
            csrf: s.csrf.clone(),
            authenticated: s.authenticated,
            style_nonce: String::new(),
            user: s.user.clone(),
            person: s.person.clone(),
            owner: match (&s.user, &s.person) {
                (_, Some(p)) => format!("oidc:{}:{}", p.identity.provider, p.identity.sub),
                (Some(name), None) => format!("user:{name}"),
                (None, None) if s.label == "api" => "api".into(),
                (None, None) => format!("session:{}", s.label),
            },
            from_cookie: false,
        }
    }

    /// Whether a JSON API request may proceed: a request without the session cookie is
    /// not a browser's cross-site request; one with it must echo the CSRF token in
    /// `X-CSRF-Token`.
    pub fn api_csrf_ok(&self, headers: &HeaderMap) -> bool {
        !self.from_cookie
            || headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| self.csrf_ok(t))
    }

    /// The session as the child is told of it with each call.
    pub fn host(&self) -> dbward_mcp::HostSession {
        dbward_mcp::HostSession {
            label: self.label.clone(),
            identity: self.person.as_ref().map(|p| p.identity.clone()),
        }
    }

    /// Who the child counts this session's calls as.
    pub fn principal(&self) -> String {
        match &self.person {
            Some(p) => format!("{}:{}", p.identity.provider, p.identity.sub),
            None => format!("stdio/{}", self.label),
        }
    }

    /// The name shown as signed in (empty: nobody).
    pub fn signed_in_as(&self) -> String {
        match (&self.person, &self.user) {
            (Some(p), _) => p.display.clone(),
            (None, Some(u)) => u.clone(),
            (None, None) => String::new(),
        }
    }

    /// Whether a form's CSRF token is this session's (constant time).
    pub fn csrf_ok(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// The session cookie; `remove` builds one that deletes it.
pub(crate) fn cookie(state: &WebState, value: String, remove: bool) -> HeaderValue {
    let mut c = Cookie::build((cookie_name(state), value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.options.secure_cookies)
        .build();
    if remove {
        c.make_removal();
    }
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Compares digests in constant time, so neither the content nor the length of the
/// password shows in the timing.
fn password_matches(state: &WebState, presented: &str) -> bool {
    use sha2::Digest;
    state.options.password.as_ref().is_some_and(|p| {
        let a = sha2::Sha256::digest(presented.as_bytes());
        let b = sha2::Sha256::digest(p.expose_secret().as_bytes());
        bool::from(a.as_slice().ct_eq(b.as_slice()))
    })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Reports a failed login from `peer` to the child (audited there).
async fn report_login_failure(state: &WebState, peer: IpAddr) {
    let event = HostEvent {
        session: None,
        identity: None,
        kind: HostEventKind::LoginFailed {
            peer: peer.to_string(),
        },
    };
    if let Err(e) = state.host.report(&event).await {
        tracing::warn!(error = %e, "login failure not delivered to the server");
    }
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The session middleware: finds or creates the request's session, sets its cookie, and
/// sends visitors who must log in to `/login` (pages) or answers 401 (API).
pub(crate) async fn layer(
    State(state): State<Arc<WebState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/assets/") {
        return next.run(req).await;
    }
    // Behind a configured proxy, the client is the right-most untrusted X-Forwarded-For
    // entry; otherwise the peer.
    let ip =
        dbward_mcp::http::client_address(peer.ip(), req.headers(), &state.options.trusted_proxies);
    let mut set_cookie = None;
    let visitor = if state.login_configured()
        && let Some(token) = bearer(req.headers())
    {
        if state.sessions.locked_out(ip) {
            return api_error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many failed logins from this address; wait a minute",
            );
        }
        // `NAME:PASSWORD` for a named user, else the shared password.
        let user = token
            .split_once(':')
            .filter(|(name, _)| crate::users::valid_name(name))
            .filter(|(name, password)| state.options.users.verify(name, password))
            .map(|(name, _)| name.to_string());
        if user.is_none() && !password_matches(&state, token) {
            tracing::warn!(peer = %ip, "web API bearer token refused");
            report_login_failure(&state, ip).await;
            let status = if state.sessions.failed(ip) {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::UNAUTHORIZED
            };
            return api_error(status, "unauthorized", "wrong token");
        }
        match user {
            Some(name) => state.sessions.api_user(&name),
            None => state.sessions.api(),
        }
    } else if !state.login_configured()
        && is_api(&path)
        && !req.headers().contains_key(header::COOKIE)
    {
        // No login configured (loopback only) and no cookie: a script, like a bearer
        // client, and like it one session, so that it can continue its conversations.
        state.sessions.api()
    } else {
        let jar = CookieJar::from_headers(req.headers());
        match jar.get(cookie_name(&state)).and_then(|c| {
            state
                .sessions
                .find(c.value())
                .filter(|_| c.value() != "api")
        }) {
            Some(mut v) => {
                v.from_cookie = true;
                v
            }
            None => {
                let v = state.sessions.create(!state.login_configured());
                set_cookie = Some(cookie(&state, v.key.clone(), false));
                v
            }
        }
    };
    let open = matches!(
        path.as_str(),
        "/login" | "/api/status" | "/auth/login" | "/auth/callback"
    );
    if !visitor.authenticated && !open {
        let mut response = if is_api(&path) {
            api_error(
                StatusCode::UNAUTHORIZED,
                "login_required",
                "log in first (POST /login), or send the password as a bearer token",
            )
        } else {
            Redirect::to("/login").into_response()
        };
        if let Some(c) = set_cookie {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
        return response;
    }
    let reads = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if !reads
        && is_api(&path)
        && let Err(refused) = crate::api::api_gate(req.method(), req.headers(), &visitor)
    {
        return refused;
    }
    let mut visitor = visitor;
    if let Some(n) = req.extensions().get::<crate::StyleNonce>() {
        visitor.style_nonce = n.0.clone();
    }
    req.extensions_mut().insert(visitor);
    req.extensions_mut().insert(Peer(ip));
    let mut response = next.run(req).await;
    if let Some(c) = set_cookie
        && !response.headers().contains_key(header::SET_COOKIE)
    {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    response
}

/// The client's address, for the login rate limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub IpAddr);

pub(crate) fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    error: Option<String>,
    login_required: bool,
    /// Named users exist: the form asks for a name.
    named_users: bool,
    /// A password or named users exist: the form is shown.
    password_form: bool,
    /// The identity provider's name ("Sign in with NAME"); empty: none.
    provider: String,
}

impl LoginPage {
    fn new(state: &WebState, csrf: String, error: Option<String>) -> LoginPage {
        LoginPage {
            csrf,
            error,
            login_required: state.login_configured(),
            named_users: !state.options.users.is_empty(),
            password_form: state.options.password.is_some() || !state.options.users.is_empty(),
            provider: state
                .oidc
                .as_ref()
                .map(|o| o.display().to_string())
                .unwrap_or_default(),
        }
    }
}

/// `GET /login`.
pub(crate) async fn login_page(
    State(state): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
) -> Response {
    if visitor.authenticated {
        return Redirect::to("/").into_response();
    }
    crate::pages::render(&LoginPage::new(&state, visitor.csrf, None))
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    /// A named user's name; empty for the shared password.
    #[serde(default)]
    username: String,
    password: String,
    csrf: String,
}

/// `POST /login`: checks the CSRF token and the password; on success rotates the cookie.
pub(crate) async fn login(
    State(state): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    axum::Extension(Peer(peer)): axum::Extension<Peer>,
    Form(form): Form<LoginForm>,
) -> Response {
    let again = |status: StatusCode, error: &str| {
        let mut r = crate::pages::render(&LoginPage::new(
            &state,
            visitor.csrf.clone(),
            Some(error.to_string()),
        ));
        *r.status_mut() = status;
        r
    };
    if !visitor.csrf_ok(&form.csrf) {
        return again(StatusCode::FORBIDDEN, "The form expired; please try again.");
    }
    if state.options.password.is_none() && state.options.users.is_empty() {
        return again(
            StatusCode::FORBIDDEN,
            "This server signs people in through its identity provider only.",
        );
    }
    if state.sessions.locked_out(peer) {
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts from this address; wait a minute.",
        );
    }
    let name = form.username.trim().to_ascii_lowercase();
    let user = if name.is_empty() {
        None
    } else if crate::users::valid_name(&name) && state.options.users.verify(&name, &form.password) {
        Some(name)
    } else {
        Some(String::new())
    };
    let ok = match &user {
        None => password_matches(&state, &form.password),
        Some(n) => !n.is_empty(),
    };
    if !ok {
        tracing::warn!(peer = %peer, "web login failed");
        report_login_failure(&state, peer).await;
        if state.sessions.failed(peer) {
            return again(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts from this address; wait a minute.",
            );
        }
        return again(
            StatusCode::UNAUTHORIZED,
            if user.is_some() {
                "Wrong name or password."
            } else {
                "Wrong password."
            },
        );
    }
    // A new cookie value for the logged-in session: a value planted before the login is
    // worthless after it.
    let old = state.sessions.lock().remove(&visitor.key);
    let mut session = old.unwrap_or_else(|| Session::new(true));
    session.authenticated = true;
    session.csrf = hex::encode(rand::random::<[u8; 16]>());
    // A named user is their own principal, whichever browser session they use: what the
    // detector counts, limits or blocks follows the person.
    if let Some(name) = user.filter(|n| !n.is_empty()) {
        session.label = format!("user-{name}");
        session.user = Some(name);
    }
    let key = hex::encode(rand::random::<[u8; 32]>());
    let fresh = state.sessions.insert(key, session);
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookie(&state, fresh.key, false));
    response
}

#[derive(Deserialize)]
pub(crate) struct LogoutForm {
    csrf: String,
}

/// `POST /logout`: forgets the session.
pub(crate) async fn logout(
    State(state): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    Form(form): Form<LogoutForm>,
) -> Response {
    if !visitor.csrf_ok(&form.csrf) {
        return (StatusCode::FORBIDDEN, "CSRF token mismatch").into_response();
    }
    state.sessions.lock().remove(&visitor.key);
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookie(&state, String::new(), true));
    response
}
