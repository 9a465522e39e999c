//! Sign-in through the identity provider (`[web.oidc]`): `GET /auth/login` sends the
//! browser to the provider with a fresh `state`, `nonce` and PKCE challenge;
//! `GET /auth/callback` takes the provider's answer, exchanges the code and signs the
//! person in under a new session cookie.
//!
//! Why a second cookie: the session cookie is `SameSite=Strict`, so a browser coming back
//! from the provider (another site) does not send it. The pending sign-in is bound instead
//! to a random value in a short-lived `SameSite=Lax` cookie (sent on that top-level GET),
//! whose hash the server keeps with the `state`. For the same reason the callback answers
//! with a page that moves on to `/` itself (a same-site navigation, which carries the new
//! Strict cookie) rather than with a redirect chained to the provider's.
//!
//! Invariants:
//! - A `state` is used at most once, within [`PENDING_TTL`], and only by the browser that
//!   started the sign-in (the binding cookie, compared in constant time).
//! - Signing in always issues a new session cookie value and forgets the session the
//!   callback came with (no session fixation).
//! - Every refused sign-in (the provider's error, a bad or replayed `state`, a failed code
//!   exchange, an ID token that does not verify) is reported to the child, which audits
//!   it with its reason, and counts against the address's failure limit.
//! - No code, token, verifier, secret or cookie value reaches a log line, a page or the
//!   audit log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use dbward_mcp::{HostEvent, HostEventKind};
use secrecy::SecretString;
use serde::Deserialize;
use sha2::Digest;
use subtle::ConstantTimeEq;

use crate::WebState;
use crate::oidc::{SignInError, error_code};
use crate::session::{Peer, Person, Visitor};

/// How long a sign-in may take at the provider.
pub(crate) const PENDING_TTL: Duration = Duration::from_secs(600);
/// Most sign-ins pending at once; the oldest is dropped beyond it.
const MAX_PENDING: usize = 10_000;
/// What a refused sign-in's page says to do next.
const AGAIN: &str = "Start again from the login page.";
/// Longest `code` or `state` looked at.
const MAX_PARAM_BYTES: usize = 2048;
/// The binding cookie; with `Secure`, the `__Host-` form.
const BINDING: &str = "dbward_signin";
const SECURE_BINDING: &str = "__Host-dbward_signin";

/// One sign-in sent to the provider.
struct Pending {
    /// SHA-256 of the binding cookie's value.
    binding: [u8; 32],
    nonce: String,
    verifier: SecretString,
    started: Instant,
}

/// The sign-ins sent to the provider and not back yet, by `state`.
#[derive(Default)]
pub(crate) struct PendingSignIns(Mutex<HashMap<String, Pending>>);

impl PendingSignIns {
    fn add(&self, state: String, pending: Pending) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, p| p.started.elapsed() < PENDING_TTL);
        if map.len() >= MAX_PENDING
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, p)| p.started)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(state, pending);
    }

    /// The pending sign-in of `state`, removed (single use); `None` if unknown or expired.
    fn take(&self, state: &str) -> Option<Pending> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(state)
            .filter(|p| p.started.elapsed() < PENDING_TTL)
    }
}

fn binding_name(state: &WebState) -> &'static str {
    if state.options.secure_cookies {
        SECURE_BINDING
    } else {
        BINDING
    }
}

/// The binding cookie (`SameSite=Lax`: sent when the provider sends the browser back).
fn binding_cookie(state: &WebState, value: String, remove: bool) -> HeaderValue {
    let mut c = Cookie::build((binding_name(state), value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.options.secure_cookies)
        .build();
    if remove {
        c.make_removal();
    }
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A binding value as the browser holds it: 43 base64url characters.
fn valid_binding(v: &str) -> bool {
    v.len() == 43
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    title: &'static str,
    message: String,
    failed: bool,
    /// Where the page moves on to by itself (after a successful sign-in).
    go_to: Option<&'static str>,
}

fn page(status: StatusCode, title: &'static str, message: String) -> Response {
    let mut r = crate::pages::render(&SignInPage {
        title,
        message,
        failed: true,
        go_to: None,
    });
    *r.status_mut() = status;
    r
}

/// `GET /auth/login`: sends the browser to the provider.
pub(crate) async fn start(State(state): State<Arc<WebState>>, headers: HeaderMap) -> Response {
    let Some(oidc) = &state.oidc else {
        return (StatusCode::NOT_FOUND, "No identity provider is configured.").into_response();
    };
    let secrets = crate::oidc::Secrets::new();
    let url = match oidc.authorization_url(&secrets).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "web sign-in cannot start");
            return page(
                StatusCode::BAD_GATEWAY,
                "Sign-in is unavailable",
                format!(
                    "{} cannot be reached now ({e}). Try again in a moment.",
                    oidc.display()
                ),
            );
        }
    };
    // One binding per browser, so sign-ins started in two tabs both complete.
    let jar = CookieJar::from_headers(&headers);
    let binding = jar
        .get(binding_name(&state))
        .map(|c| c.value().to_string())
        .filter(|v| valid_binding(v))
        .unwrap_or_else(crate::oidc::random);
    state.pending.add(
        secrets.state.clone(),
        Pending {
            binding: sha2::Sha256::digest(binding.as_bytes()).into(),
            nonce: secrets.nonce,
            verifier: secrets.verifier,
            started: Instant::now(),
        },
    );
    let mut response = Redirect::to(&url).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, binding_cookie(&state, binding, false));
    response
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    /// The issuer the answer says it comes from (RFC 9207).
    #[serde(default)]
    iss: Option<String>,
}

/// Reports a refused sign-in to the child (audited there with its reason), counts it
/// against the address, and says why on a page.
async fn refuse(
    state: &WebState,
    peer: IpAddr,
    status: StatusCode,
    reason: String,
    message: String,
) -> Response {
    tracing::warn!(peer = %peer, reason = %reason, "web sign-in refused");
    let event = HostEvent {
        session: None,
        identity: None,
        kind: HostEventKind::SignInRefused {
            peer: peer.to_string(),
            reason,
        },
    };
    if let Err(e) = state.host.report(&event).await {
        tracing::warn!(error = %e, "sign-in refusal not delivered to the server");
    }
    let status = if state.sessions.failed(peer) {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        status
    };
    let mut r = page(status, "Sign-in failed", message);
    r.headers_mut().append(
        header::SET_COOKIE,
        binding_cookie(state, String::new(), true),
    );
    r
}

/// [`refuse`] for a sign-in the provider's side failed: a provider that cannot be reached
/// is a bad gateway, anything else forbidden; the page says why.
async fn refuse_failed(state: &WebState, peer: IpAddr, name: &str, e: SignInError) -> Response {
    let status = match e {
        SignInError::Unavailable(_) => StatusCode::BAD_GATEWAY,
        _ => StatusCode::FORBIDDEN,
    };
    refuse(
        state,
        peer,
        status,
        e.to_string(),
        format!("{name} could not sign you in: {e}. {AGAIN}"),
    )
    .await
}

/// `GET /auth/callback`: the provider's answer.
pub(crate) async fn callback(
    State(state): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    axum::Extension(Peer(peer)): axum::Extension<Peer>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(oidc) = &state.oidc else {
        return (StatusCode::NOT_FOUND, "No identity provider is configured.").into_response();
    };
    let name = oidc.display().to_string();
    if state.sessions.locked_out(peer) {
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            "Sign-in failed",
            "Too many failed sign-ins from this address; wait a minute.".into(),
        );
    }
    // The state is used up whatever comes next.
    let pending = q
        .state
        .as_deref()
        .filter(|s| s.len() <= MAX_PARAM_BYTES)
        .and_then(|s| state.pending.take(s));
    // Whose answer this is comes first (for a live sign-in, or an error): a code or an
    // error from another provider is not used, nor repeated as this provider's.
    let answered = pending.is_some() || q.error.is_some();
    if answered && let Err(e) = oidc.check_response_issuer(q.iss.as_deref()).await {
        return refuse_failed(&state, peer, &name, e).await;
    }
    if let Some(error) = &q.error {
        let code = error_code(error);
        return refuse(
            &state,
            peer,
            StatusCode::FORBIDDEN,
            format!("the provider answered {code}"),
            format!("{name} did not sign you in ({code}). {AGAIN}"),
        )
        .await;
    }
    let code = q
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= MAX_PARAM_BYTES);
    let (Some(code), Some(pending)) = (code, pending) else {
        let reason = if q.state.is_none() || code.is_none() {
            "the answer has no state or no code"
        } else {
            "unknown, expired or already used state"
        };
        return refuse(
            &state,
            peer,
            StatusCode::BAD_REQUEST,
            reason.into(),
            format!("This sign-in is unknown, expired or already used. {AGAIN}"),
        )
        .await;
    };
    let jar = CookieJar::from_headers(&headers);
    let bound = jar.get(binding_name(&state)).is_some_and(|c| {
        let h: [u8; 32] = sha2::Sha256::digest(c.value().as_bytes()).into();
        bool::from(h.ct_eq(&pending.binding))
    });
    if !bound {
        return refuse(
            &state,
            peer,
            StatusCode::BAD_REQUEST,
            "the state is not bound to this browser".into(),
            format!("This sign-in was started in another browser. {AGAIN}"),
        )
        .await;
    }
    let signed_in = match oidc.finish(code, &pending.verifier, &pending.nonce).await {
        Ok(p) => p,
        Err(e) => return refuse_failed(&state, peer, &name, e).await,
    };
    tracing::info!(
        provider = %signed_in.identity.provider,
        sub = %signed_in.identity.sub,
        "web sign-in through the identity provider"
    );
    let old = visitor.from_cookie.then_some(visitor.key.as_str());
    let fresh = state.sessions.sign_in_person(
        old,
        Person {
            identity: signed_in.identity,
            display: signed_in.display,
        },
    );
    let mut r = crate::pages::render(&SignInPage {
        title: "Signed in",
        message: format!("Signed in through {name}."),
        failed: false,
        go_to: Some("/"),
    });
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        crate::session::cookie(&state, fresh.key, false),
    );
    h.append(
        header::SET_COOKIE,
        binding_cookie(&state, String::new(), true),
    );
    r
}
