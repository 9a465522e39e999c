//! The web sign-in through an OpenID Connect provider in a real headless Chromium: the
//! stand-in provider (`common::idp`) runs on `localhost` and the UI on `127.0.0.1`, two
//! different sites to the browser, so the way back from the provider is cross-site as in
//! production (the session cookie is `SameSite=Strict`). Then, as the signed-in person: a
//! question stopped after its first step keeps that step (also after a reload), the
//! conversation list, and deleting a conversation from it. The login page and the chat
//! with its list pass the layout and axe-core checks at 1,366 and 390 px; screenshots go to
//! `target/browser-screenshots/`.

mod browser_support;
mod common;

use std::time::Duration;

use browser_support::*;
use common::idp::{self, Spoil};
use fantoccini::Locator;
use serde_json::json;

fn conversation_files(data: &std::path::Path) -> usize {
    fn walk(dir: &std::path::Path, n: &mut usize) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, n);
                } else if p.extension().is_some_and(|x| x == "json") {
                    *n += 1;
                }
            }
        }
    }
    let mut n = 0;
    walk(&data.join("web/conversations"), &mut n);
    n
}

#[tokio::test]
async fn people_sign_in_through_the_provider_in_chromium() {
    if !browser_present() {
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    // A named user too: the login page offers both ways.
    assert!(
        common::add_user(data.path(), "bob", "bob's long password")
            .status
            .success()
    );
    let provider = idp::start("localhost").await;
    provider.next(
        "alice-1",
        json!({"name": "Alice Liddell", "groups": ["staff"]}),
        Spoil::Nothing,
    );
    let (llm, _) = common::scripted(vec![
        json!({"choices": [{"message": {"tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "execute_query",
            "arguments": "{\"query\": \"SELECT status, count(*) AS servers FROM servers GROUP BY status ORDER BY servers DESC\"}"}}]}}]}),
        json!({"delay_ms": 30_000, "then": {"choices": [{"message": {"content": "Too late."}}]}}),
        json!({"choices": [{"message": {"content": "**Engineering** runs the most servers."}}]}),
    ])
    .await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let config = data.path().join("dbward.toml");
    std::fs::write(
        &config,
        format!(
            r#"[web.oidc]
issuer = "{}"
client_id = "{}"
client_secret_env = "DBWARD_TEST_OIDC_SECRET"
redirect_url = "http://127.0.0.1:{port}/auth/callback"
name = "corp"
display_name = "Corp SSO"
"#,
            provider.issuer,
            idp::CLIENT_ID
        ),
    )
    .expect("config");
    let listen = format!("127.0.0.1:{port}");
    let app = common::start_web(
        &[
            "demo",
            "--listen",
            &listen,
            "--config",
            config.to_str().expect("utf-8"),
        ],
        &[
            ("DBWARD_TEST_OIDC_SECRET", idp::CLIENT_SECRET),
            ("DBWARD_LLM_MODEL", "scripted"),
            ("DBWARD_LLM_BASE_URL", &llm),
        ],
        data.path(),
    )
    .await;
    let base = app.url.clone();
    let (_driver, driver_url) = chromedriver().await;
    let c = browser(&driver_url).await;
    c.set_window_size(1366, 900).await.expect("resized");

    // The login page offers the provider, and the password form of named users.
    c.goto(&format!("{base}/")).await.expect("home");
    let button = text_of(&c, "#oidc-login").await;
    assert_eq!(button, "Sign in with Corp SSO");
    c.find(Locator::Css("#login input[name=password]"))
        .await
        .expect("the password form too");
    check_layouts(&c, "login-oidc").await;

    // Through the provider (another site) and back, signed in as the person.
    c.find(Locator::Css("#oidc-login"))
        .await
        .expect("the button")
        .click()
        .await
        .expect("clicked");
    let user = wait_text(&c, "#user", "Alice Liddell").await;
    assert_eq!(user, "Alice Liddell");
    let who = text_of(&c, ".who").await;
    assert!(who.contains("corp:alice-1"), "{who}");
    assert_eq!(provider.pkce(), (1, 0));

    // A question stopped after its first step keeps the step, marked as stopped.
    c.find(Locator::Css("#question"))
        .await
        .expect("question box")
        .send_keys("How are the servers spread by status?\u{E007}")
        .await
        .expect("typed, then Enter");
    let step = wait_text(&c, ".steps .step", "execute_query").await;
    assert!(step.contains("GROUP BY status"), "{step}");
    c.find(Locator::Css("#stop"))
        .await
        .expect("Stop")
        .click()
        .await
        .expect("clicked");
    let note = wait_text(&c, ".stopped-note", "Stopped").await;
    assert!(note.contains("step that finished is kept"), "{note}");
    shot(&c, "chat-stopped").await;
    c.refresh().await.expect("reloaded");
    let note = wait_text(&c, ".stopped-note", "Stopped").await;
    assert!(note.contains("kept"), "{note}");
    let kept = text_of(&c, ".steps.stopped .step").await;
    assert!(
        kept.contains("GROUP BY status"),
        "kept after a reload: {kept}"
    );

    // A second conversation; the list holds both.
    c.goto(&format!("{base}/")).await.expect("new conversation");
    c.find(Locator::Css("#question"))
        .await
        .expect("question box")
        .send_keys("Which department runs the most servers?\u{E007}")
        .await
        .expect("typed, then Enter");
    wait_text(&c, ".answer.md", "Engineering").await;
    c.goto(&format!("{base}/")).await.expect("chat");
    let list = text_of(&c, "#conversations").await;
    assert!(
        list.contains("How are the servers") && list.contains("Which department"),
        "{list}"
    );
    assert_eq!(conversation_files(data.path()), 2);
    check_layouts(&c, "chat-conversations").await;

    // Deleting one, from the list (the script asks first).
    c.find(Locator::XPath(
        "//ul[@id='conversations']/li[a[contains(., 'How are the servers')]]//form[@class='delete-conversation']/button",
    ))
        .await
        .expect("a delete button")
        .click()
        .await
        .expect("clicked");
    let asked = c.get_alert_text().await.expect("the confirmation");
    assert!(asked.contains("How are the servers"), "{asked}");
    c.accept_alert().await.expect("accepted");
    for _ in 0..50 {
        if conversation_files(data.path()) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(conversation_files(data.path()), 1, "removed from disk");
    let list = text_of(&c, "#conversations").await;
    assert!(!list.contains("How are the servers"), "{list}");
    assert!(list.contains("Which department"), "{list}");
    shot(&c, "chat-after-delete").await;

    // The audit names the person.
    c.goto(&format!("{base}/audit")).await.expect("audit");
    let audit = text_of(&c, "#audit").await;
    assert!(audit.contains("corp:alice-1"), "{audit}");
    c.close().await.expect("closed");
}
