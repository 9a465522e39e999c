//! The web UI's sign-in through an OpenID Connect provider (`[web.oidc]`), end to end over
//! HTTP: the real `dbward demo` with a stand-in provider (`common::idp`, the one fake). A
//! person signed in is their own principal `NAME:SUB` in the child: audited as such,
//! matched by `[access]` roles through `sub:` and `claim:` members, and blocked as a
//! person whichever browser session they use. Every refused sign-in is audited with its
//! reason. Also: deleting conversations (one's own only).

mod common;

use std::path::Path;
use std::time::Duration;

use common::idp::{self, CLIENT_SECRET, Idp, Spoil};
use common::{csrf_of, get};
use serde_json::{Value, json};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    l.local_addr().expect("addr").port()
}

/// A cookie-keeping client that does not follow redirects: each test step is one hop.
fn client() -> reqwest::Client {
    common::browser()
}

/// `[web.oidc]` for `idp` (named `corp`), the UI on `port`, and `extra` TOML after it.
fn config(dir: &Path, issuer: &str, port: u16, extra: &str) -> std::path::PathBuf {
    let path = dir.join("dbward.toml");
    let text = format!(
        r#"
[web.oidc]
issuer = "{}"
client_id = "{}"
client_secret_env = "DBWARD_TEST_OIDC_SECRET"
redirect_url = "http://127.0.0.1:{port}/auth/callback"
name = "corp"
display_name = "Corp SSO"
scopes = ["openid", "email", "groups"]
{extra}
"#,
        issuer,
        idp::CLIENT_ID
    );
    std::fs::write(&path, text).expect("config written");
    path
}

struct App {
    _child: common::WebChild,
    base: String,
}

async fn start(data: &Path, idp: &Idp, extra: &str, env: &[(&str, &str)]) -> App {
    start_at(data, &idp.issuer, extra, env).await
}

async fn start_at(data: &Path, issuer: &str, extra: &str, env: &[(&str, &str)]) -> App {
    let port = free_port();
    let cfg = config(data, issuer, port, extra);
    let listen = format!("127.0.0.1:{port}");
    let mut all = vec![("DBWARD_TEST_OIDC_SECRET", CLIENT_SECRET)];
    all.extend_from_slice(env);
    let child = common::start_web(
        &[
            "demo",
            "--listen",
            &listen,
            "--config",
            cfg.to_str().expect("utf-8"),
        ],
        &all,
        data,
    )
    .await;
    let base = child.url.clone();
    App {
        _child: child,
        base,
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// `/auth/login`, then the provider's `authorize`: the URL the provider sends the browser
/// back to (the callback with its code and state).
async fn to_provider_and_back(http: &reqwest::Client, base: &str) -> String {
    let r = http
        .get(format!("{base}/auth/login"))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303, "sent to the provider");
    let authorize = location(&r);
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    assert!(authorize.contains("nonce="), "{authorize}");
    let r = http.get(&authorize).send().await.expect("authorize");
    assert!(r.status().is_redirection(), "{}", r.status());
    let back = location(&r);
    assert!(
        back.starts_with(&format!("{base}/auth/callback?")),
        "{back}"
    );
    back
}

/// The whole sign-in; returns the callback's status and page.
async fn sign_in(http: &reqwest::Client, base: &str) -> (u16, String) {
    let back = to_provider_and_back(http, base).await;
    get(http, &back).await
}

/// Runs `sql` in the console API as the signed-in session.
async fn query(http: &reqwest::Client, base: &str, sql: &str) -> (u16, Value) {
    let (_, page) = get(http, &format!("{base}/console")).await;
    let r = http
        .post(format!("{base}/api/query"))
        .header("content-type", "application/json")
        .header("x-csrf-token", csrf_of(&page))
        .body(json!({"query": sql}).to_string())
        .send()
        .await
        .expect("query");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

/// Waits until the audit log has a line containing every one of `parts`.
async fn audited(data: &Path, parts: &[&str]) -> String {
    let path = data.join("audit.jsonl");
    for _ in 0..100 {
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no audit entry with {parts:?}");
}

#[tokio::test]
async fn people_sign_in_through_the_provider_and_are_their_own_principals() {
    let data = tempfile::tempdir().expect("tempdir");
    let idp = idp::start("127.0.0.1").await;
    // The web host itself may list connections; alice (by subject) may do everything;
    // auditors (by claim) may only list tables; anyone else signed in gets nothing.
    let access = r#"
[access.roles.host]
members = ["stdio"]
connections = ["default"]
tools = ["list_connections"]

[access.roles.alice]
members = ["sub:corp:alice-1"]
connections = ["default"]
tools = ["*"]

[access.roles.auditors]
members = ["claim:groups=auditors"]
connections = ["default"]
tools = ["list_tables", "list_connections"]
"#;
    let app = start(data.path(), &idp, access, &[]).await;
    let base = &app.base;

    // The login page offers the provider, and only it (no password is configured).
    let http = client();
    let (status, page) = get(&http, &format!("{base}/login")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Sign in with Corp SSO"), "{page}");
    assert!(!page.contains("type=\"password\""), "{page}");
    let (status, _) = get(&http, &format!("{base}/")).await;
    assert_eq!(status, 303, "a login is required");

    // Alice signs in: a fresh session cookie, a page that moves on to `/`.
    idp.next(
        "alice-1",
        json!({"name": "Alice Liddell", "email": "alice@example.com", "groups": ["staff"]}),
        Spoil::Nothing,
    );
    let (status, page) = sign_in(&http, base).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    assert_eq!(idp.pkce(), (1, 0), "the provider checked the PKCE verifier");
    let (status, home) = get(&http, &format!("{base}/")).await;
    assert_eq!(status, 200, "{home}");
    assert!(home.contains("Alice Liddell"), "{home}");
    assert!(home.contains("corp:alice-1"), "{home}");
    for secret in [CLIENT_SECRET, "opaque-access-token", "code-"] {
        assert!(!home.contains(secret), "no secret on the page");
    }
    let (status, body) = query(&http, base, "SELECT count(*) AS n FROM servers").await;
    assert_eq!(status, 200, "{body}");
    let line = audited(data.path(), &["\"execute_query\"", "corp:alice-1"]).await;
    assert!(line.contains("\"session\":\"corp:alice-1/"), "{line}");

    // Bob is an auditor by claim: he may list tables, not query.
    let bob = client();
    idp.next("bob-2", json!({"groups": ["auditors"]}), Spoil::Nothing);
    assert_eq!(sign_in(&bob, base).await.0, 200);
    let (status, body) = query(&bob, base, "SELECT 1").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "forbidden", "{body}");
    let (status, page) = get(&bob, &format!("{base}/browse")).await;
    assert_eq!(status, 200);
    assert!(page.contains("servers"), "list_tables is granted: {page}");
    audited(data.path(), &["corp:bob-2", "forbidden"]).await;

    // Carol holds no role: refused, even though the web host itself (stdio) has one.
    let carol = client();
    idp.next("carol-3", json!({"groups": ["staff"]}), Spoil::Nothing);
    assert_eq!(sign_in(&carol, base).await.0, 200);
    let (status, body) = query(&carol, base, "SELECT 1").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "forbidden", "{body}");

    // Nothing secret in the audit log.
    let log = std::fs::read_to_string(data.path().join("audit.jsonl")).expect("audit");
    for secret in [CLIENT_SECRET, "opaque-access-token", "code-"] {
        assert!(!log.contains(secret), "{secret} in the audit log");
    }
}

#[tokio::test]
async fn refused_sign_ins_are_explained_and_audited() {
    let data = tempfile::tempdir().expect("tempdir");
    let idp = idp::start("127.0.0.1").await;
    let app = start(data.path(), &idp, "", &[]).await;
    let base = &app.base;
    let http = client();
    get(&http, &format!("{base}/login")).await;

    // A state the server never issued.
    let (status, page) = get(&http, &format!("{base}/auth/callback?code=x&state=forged")).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("unknown, expired or already used"), "{page}");
    audited(
        data.path(),
        &["auth_refused", "unknown, expired or already used state"],
    )
    .await;

    // The provider says no.
    idp.next("alice-1", json!({}), Spoil::Deny);
    let back = to_provider_and_back(&http, base).await;
    let (status, page) = get(&http, &back).await;
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("Corp SSO did not sign you in (access_denied)"),
        "{page}"
    );
    audited(
        data.path(),
        &["auth_refused", "the provider answered access_denied"],
    )
    .await;

    // A good sign-in, then its callback replayed.
    idp.next("alice-1", json!({}), Spoil::Nothing);
    let back = to_provider_and_back(&http, base).await;
    assert_eq!(get(&http, &back).await.0, 200);
    let (status, page) = get(&http, &back).await;
    assert_eq!(status, 400, "a state is used once: {page}");

    // The callback opened in another browser than the one that started the sign-in.
    let back = to_provider_and_back(&http, base).await;
    let other = client();
    let (status, page) = get(&other, &back).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("started in another browser"), "{page}");
    audited(data.path(), &["auth_refused", "not bound to this browser"]).await;

    // ID tokens that must not be accepted.
    for (spoil, reason) in [
        (
            Spoil::WrongNonce,
            "the nonce is not the one this sign-in sent",
        ),
        (Spoil::WrongAudience, "wrong audience"),
        (Spoil::BadSignature, "signature does not verify"),
    ] {
        idp.next("alice-1", json!({}), spoil);
        let (status, page) = sign_in(&http, base).await;
        assert_eq!(status, 403, "{spoil:?}: {page}");
        assert!(page.contains(reason), "{spoil:?}: {page}");
        audited(data.path(), &["auth_refused", reason]).await;
    }
    let (status, home) = get(&http, &format!("{base}/")).await;
    assert_eq!(status, 200, "the earlier good sign-in still holds");
    assert!(home.contains("corp:alice-1"));
    let log = std::fs::read_to_string(data.path().join("audit.jsonl")).expect("audit");
    assert!(
        !log.contains(CLIENT_SECRET) && !log.contains("code-"),
        "{log}"
    );
}

/// RFC 9207: the provider names itself (`iss`) in every answer and says so in its
/// metadata. An answer naming another issuer, or none, is not this provider's (a mix-up:
/// the browser was sent to another provider too): its code is never exchanged, its error
/// never repeated as this provider's.
#[tokio::test]
async fn an_answer_from_another_provider_is_refused() {
    let data = tempfile::tempdir().expect("tempdir");
    let idp = idp::start("127.0.0.1").await;
    let app = start(data.path(), &idp, "", &[]).await;
    let base = &app.base;
    let http = client();
    get(&http, &format!("{base}/login")).await;
    let ours = format!("iss={}", idp.issuer.replace(':', "%3A").replace('/', "%2F"));
    let exchanges = || {
        let (matched, refused) = idp.pkce();
        matched + refused
    };

    idp.next("alice-1", json!({}), Spoil::Nothing);
    let back = to_provider_and_back(&http, base).await;
    assert!(back.contains(&ours), "the stand-in names itself: {back}");
    let other = back.replace(&ours, "iss=https%3A%2F%2Fevil.example.com");
    let (status, page) = get(&http, &other).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("names another issuer"), "{page}");
    audited(data.path(), &["auth_refused", "names another issuer"]).await;
    assert_eq!(
        exchanges(),
        0,
        "the code of a mixed-up answer is not exchanged"
    );

    // An answer without iss, from a provider whose metadata says it always sends one.
    let back = to_provider_and_back(&http, base).await;
    let (status, page) = get(&http, &back.replace(&format!("&{ours}"), "")).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("has no iss"), "{page}");
    audited(data.path(), &["auth_refused", "has no iss"]).await;
    assert_eq!(exchanges(), 0);

    // Another provider's error is not reported as this one's.
    idp.next("alice-1", json!({}), Spoil::Deny);
    let back = to_provider_and_back(&http, base).await;
    let (status, page) = get(
        &http,
        &back.replace(&ours, "iss=https%3A%2F%2Fevil.example.com"),
    )
    .await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("names another issuer"), "{page}");
    assert!(!page.contains("access_denied"), "{page}");

    // The provider's own answer still signs in.
    idp.next("alice-1", json!({}), Spoil::Nothing);
    let (status, page) = sign_in(&http, base).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(exchanges(), 1);
    let (_, home) = get(&http, &format!("{base}/")).await;
    assert!(home.contains("corp:alice-1"), "{home}");
}

#[tokio::test]
async fn a_code_without_its_verifier_is_refused() {
    // The provider refuses a code exchanged without the verifier whose challenge it saw;
    // dbward sends it (the provider counted it), and a refusal reads as such.
    let data = tempfile::tempdir().expect("tempdir");
    let idp = idp::start("127.0.0.1").await;
    let app = start(data.path(), &idp, "", &[]).await;
    let base = &app.base;
    let http = client();
    idp.next("alice-1", json!({}), Spoil::Nothing);
    let back = to_provider_and_back(&http, base).await;
    let code = back
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .expect("a code")
        .to_string();
    // Someone holding the code but not the verifier cannot exchange it.
    let r = reqwest::Client::new()
        .post(format!("{}/token", idp.issuer))
        .basic_auth(idp::CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", &format!("{base}/auth/callback")),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(r.status(), 400);
    assert_eq!(idp.pkce(), (0, 1));
    // ... and the code is then spent: dbward's exchange with the right verifier fails
    // (invalid_grant), shown and audited.
    let (status, page) = get(&http, &back).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("invalid_grant"), "{page}");
    audited(data.path(), &["auth_refused", "invalid_grant"]).await;
}

#[tokio::test]
async fn a_blocked_person_stays_blocked_in_a_new_browser_session() {
    let data = tempfile::tempdir().expect("tempdir");
    let idp = idp::start("127.0.0.1").await;
    let detector = r#"
[detector]
probing_refusals = 2
medium = "block"
"#;
    let app = start(data.path(), &idp, detector, &[]).await;
    let base = &app.base;
    let first = client();
    idp.next("mallory-9", json!({}), Spoil::Nothing);
    assert_eq!(sign_in(&first, base).await.0, 200);
    for _ in 0..3 {
        query(&first, base, "DELETE FROM servers").await;
    }
    let (_, body) = query(&first, base, "SELECT 1").await;
    assert_eq!(body["error"], "blocked", "{body}");
    // A new browser (no cookie), the same person: still blocked.
    let second = client();
    idp.next("mallory-9", json!({}), Spoil::Nothing);
    assert_eq!(sign_in(&second, base).await.0, 200);
    let (_, body) = query(&second, base, "SELECT 1").await;
    assert_eq!(body["error"], "blocked", "{body}");
    // Someone else is not.
    let other = client();
    idp.next("trent-4", json!({}), Spoil::Nothing);
    assert_eq!(sign_in(&other, base).await.0, 200);
    let (status, body) = query(&other, base, "SELECT 1 AS one").await;
    assert_eq!(status, 200, "{body}");
    audited(data.path(), &["corp:mallory-9", "blocked"]).await;
}

#[tokio::test]
async fn people_delete_their_own_conversations_only() {
    let data = tempfile::tempdir().expect("tempdir");
    let idp = idp::start("127.0.0.1").await;
    let (llm, _) = common::scripted(vec![
        json!({"choices": [{"message": {"content": "Alice's answer."}}]}),
        json!({"choices": [{"message": {"content": "Bob's answer."}}]}),
    ])
    .await;
    let app = start(
        data.path(),
        &idp,
        "",
        &[
            ("DBWARD_LLM_MODEL", "scripted"),
            ("DBWARD_LLM_BASE_URL", &llm),
        ],
    )
    .await;
    let base = &app.base;
    let ask = |http: reqwest::Client, q: &'static str| {
        let base = base.clone();
        async move {
            let (_, page) = get(&http, &format!("{base}/")).await;
            let r: Value = http
                .post(format!("{base}/api/chat"))
                .header("content-type", "application/json")
                .header("x-csrf-token", csrf_of(&page))
                .body(json!({"message": q}).to_string())
                .send()
                .await
                .expect("chat")
                .json()
                .await
                .expect("json");
            r["conversation"].as_str().expect("an id").to_string()
        }
    };
    let (alice, bob) = (client(), client());
    idp.next("alice-1", json!({}), Spoil::Nothing);
    assert_eq!(sign_in(&alice, base).await.0, 200);
    idp.next("bob-2", json!({}), Spoil::Nothing);
    assert_eq!(sign_in(&bob, base).await.0, 200);
    let alices = ask(alice.clone(), "alice asks").await;
    let bobs = ask(bob.clone(), "bob asks").await;
    let files = |id: &str| {
        walk(&data.path().join("web/conversations"))
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n == format!("{id}.json").as_str())
            })
            .count()
    };
    assert_eq!((files(&alices), files(&bobs)), (1, 1));

    // Bob cannot delete Alice's, by the API or by the page's form.
    let (_, page) = get(&bob, &format!("{base}/")).await;
    let csrf = csrf_of(&page);
    let r = bob
        .delete(format!("{base}/api/conversations/{alices}"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 404);
    let r = bob
        .post(format!("{base}/conversations/{alices}/delete"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("form");
    assert_eq!(r.status(), 404);
    assert_eq!(files(&alices), 1, "still on disk");
    // Without the CSRF token a cookie-carrying request is refused.
    let r = alice
        .delete(format!("{base}/api/conversations/{alices}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 403);
    assert_eq!(files(&alices), 1);
    // Alice deletes hers: gone from her list and from disk; Bob's stays.
    let (_, page) = get(&alice, &format!("{base}/")).await;
    assert!(page.contains("alice asks"), "listed: {page}");
    let r = alice
        .delete(format!("{base}/api/conversations/{alices}"))
        .header("x-csrf-token", csrf_of(&page))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 200);
    assert_eq!((files(&alices), files(&bobs)), (0, 1));
    let (_, page) = get(&alice, &format!("{base}/")).await;
    assert!(!page.contains("alice asks"), "{page}");
    // Bob deletes his with the page's form.
    let (_, page) = get(&bob, &format!("{base}/")).await;
    let r = bob
        .post(format!("{base}/conversations/{bobs}/delete"))
        .form(&[("csrf", csrf_of(&page).as_str())])
        .send()
        .await
        .expect("form");
    assert_eq!(r.status(), 303);
    assert_eq!(files(&bobs), 0);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn a_provider_that_cannot_be_reached_is_said_so() {
    let data = tempfile::tempdir().expect("tempdir");
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let app = start_at(data.path(), &nobody, "", &[]).await;
    let http = client();
    let (status, page) = get(&http, &format!("{}/login", app.base)).await;
    assert_eq!(status, 200);
    assert!(page.contains("Sign in with Corp SSO"), "{page}");
    let (status, page) = get(&http, &format!("{}/auth/login", app.base)).await;
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("Corp SSO cannot be reached now"), "{page}");
    assert!(
        page.contains(&nobody),
        "the URL that failed is named: {page}"
    );
}
