//! `dbward web` / `dbward demo` end to end over HTTP: the pages (chat, browse, console,
//! audit), the chat API as JSON and as streamed events with a scripted model, sessions and
//! their isolation, the login, CSRF, escaping of hostile values, and the refusal to bind
//! off loopback without a login. A real `dbward serve` child serves the SQLite demo.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

mod common;

use common::{
    BIN, browser, csrf_of, get, post_json, start, start_web, start_with, start_with_model,
};

#[tokio::test]
async fn chat_api_answers_with_steps_and_streams_tokens() {
    let data = tempfile::tempdir().expect("tempdir");
    let (mut child, base, script) = start_with_model(
        vec![
        json!({"choices": [{"message": {"tool_calls": [{"function": {"name": "execute_query",
            "arguments": "{\"query\": \"SELECT name FROM departments ORDER BY id LIMIT 2\"}"}}]}}]}),
        json!({"choices": [{"message": {"content": "Engineering and Finance come first."}}]}),
        json!({"choices": [{"message": {"tool_calls": [{"function": {"name": "execute_query",
            "arguments": "{\"query\": \"DELETE FROM departments\"}"}}]}}]}),
        json!({"stream": ["Str", "eamed ", "answer."]}),
        ],
        data.path(),
    )
    .await;
    let http = browser();
    let (status, page) = get(&http, &format!("{base}/")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Ask the database") && page.contains("/assets/app.js"));
    let status: Value = http
        .get(format!("{base}/api/status"))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["llm"], true);
    let r = post_json(
        &http,
        &format!("{base}/api/chat"),
        json!({"message": "Which departments come first?"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["answer"], "Engineering and Finance come first.");
    assert_eq!(body["steps"][0]["tool"], "execute_query");
    assert_eq!(body["steps"][0]["verdict"], "allowed");
    assert_eq!(body["steps"][0]["row_count"], 2);
    assert_eq!(body["conversation"].as_str().map(str::len), Some(32));
    // The same as server-sent events, continuing the conversation: the refused step, then
    // the answer token by token, then the whole answer.
    let r = http
        .post(format!("{base}/api/chat"))
        .header("content-type", "application/json")
        .header("x-csrf-token", csrf_of(&page))
        .header("accept", "text/event-stream")
        .body(json!({"message": "And then?", "conversation": body["conversation"]}).to_string())
        .send()
        .await
        .expect("chat");
    assert_eq!(r.status(), 200);
    let events = r.text().await.expect("events");
    let conversation = body["conversation"].as_str().unwrap_or("?");
    assert!(events.contains("event: conversation") && events.contains(conversation));
    let step = events.find("event: step").expect("a step event");
    let first_token = events.find("event: token").expect("token events");
    let answer = events.find("event: answer").expect("an answer event");
    assert!(step < first_token && first_token < answer, "{events}");
    assert_eq!(events.matches("event: token").count(), 3, "{events}");
    assert!(events.contains("statement.kind"), "{events}");
    assert!(events.contains("Streamed answer."), "{events}");
    // The model saw the first exchange again (the conversation continued) and was asked
    // to stream.
    let seen = script.seen.lock().expect("seen").clone();
    let last = seen.last().expect("requests");
    assert_eq!(last["stream"], true);
    assert!(last.to_string().contains("Which departments come first?"));
    // A cross-site post is refused; a form post is not JSON and is refused too.
    let r = http
        .post(format!("{base}/api/chat"))
        .header("content-type", "application/json")
        .header("origin", "https://evil.example")
        .body(json!({"message": "hi"}).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    let r = http
        .post(format!("{base}/api/chat"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("message=hi")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 415);
    child.kill().await.ok();
}

#[tokio::test]
async fn sessions_are_isolated_from_each_other() {
    let data = tempfile::tempdir().expect("tempdir");
    let (mut child, base, script) = start_with_model(
        vec![
            json!({"choices": [{"message": {"content": "Answer for A."}}]}),
            json!({"choices": [{"message": {"content": "Answer for B."}}]}),
        ],
        data.path(),
    )
    .await;
    let (a, b) = (browser(), browser());
    let ra: Value = post_json(
        &a,
        &format!("{base}/api/chat"),
        json!({"message": "secret question of A"}),
    )
    .await
    .json()
    .await
    .expect("json");
    // B presents A's conversation id: it is not found in B's session, so B starts afresh
    // and the model never sees A's question in B's request.
    let rb: Value = post_json(
        &b,
        &format!("{base}/api/chat"),
        json!({"message": "question of B", "conversation": ra["conversation"]}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(rb["answer"], "Answer for B.");
    let seen = script.seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 2);
    assert!(!seen[1].to_string().contains("secret question of A"));
    // Each session has its own label, and so its own principal in the child's audit.
    let (_, pa) = get(&a, &format!("{base}/browse")).await;
    let (_, pb) = get(&b, &format!("{base}/browse")).await;
    let label = |p: &str| {
        let at = p.find("session stdio/").expect("label") + 14;
        p[at..at + 16].to_string()
    };
    assert_ne!(label(&pa), label(&pb));
    let audit = std::fs::read_to_string(data.path().join("audit.jsonl")).expect("audit");
    assert!(audit.contains(&format!("\"client\":\"stdio/{} (dbward-web)\"", label(&pa))));
    assert!(audit.contains(&format!("\"client\":\"stdio/{} (dbward-web)\"", label(&pb))));
    child.kill().await.ok();
}

#[tokio::test]
async fn without_an_llm_browse_console_and_audit_work() {
    let data = tempfile::tempdir().expect("tempdir");
    let (mut child, base) = start_with(&["demo"], &[], data.path()).await;
    let http = browser();
    let status: Value = http
        .get(format!("{base}/api/status"))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["llm"], false);
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("DBWARD_LLM_MODEL")
    );
    let r = post_json(&http, &format!("{base}/api/chat"), json!({"message": "hi"})).await;
    assert_eq!(r.status(), 503);
    let (_, chat) = get(&http, &format!("{base}/")).await;
    assert!(chat.contains("No LLM is configured") && chat.contains("disabled"));

    // Browse: the tables, then one table's columns, keys, indexes and a page of rows.
    let (status, browse) = get(&http, &format!("{base}/browse")).await;
    assert_eq!(status, 200);
    for t in ["departments", "servers", "applications", "incidents"] {
        assert!(browse.contains(&format!(">{t}</a>")), "{t} listed");
    }
    let (status, table) = get(
        &http,
        &format!("{base}/browse/table?schema=main&table=servers&page=1"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(table.contains("hostname") && table.contains(">PK<"));
    assert!(table.contains("departments</a>.id"), "the foreign key");
    assert!(table.contains("servers_department_idx"), "an index");
    assert!(table.contains("Rows 51–100"), "page 2 of the preview");
    assert!(table.contains("id=\"prev\"") && table.contains("id=\"next\""));
    let (status, missing) = get(&http, &format!("{base}/browse/table?table=nope")).await;
    assert_eq!(status, 404);
    assert!(missing.contains("class=\"error\""));

    // Console: the verdict before running, then the run, with the truncation notice.
    let (_, console) = get(&http, &format!("{base}/console")).await;
    let csrf = csrf_of(&console);
    let check: Value = post_json(
        &http,
        &format!("{base}/api/check"),
        json!({"query": "DELETE FROM servers"}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(check["allowed"], false);
    assert_eq!(check["verdict"]["reasons"][0]["rule"], "statement.kind");
    // With the session cookie but without the page's token, the API refuses (CSRF); a
    // foreign Host is refused outright (DNS rebinding).
    let r = http
        .post(format!("{base}/api/check"))
        .header("content-type", "application/json")
        .body(json!({"query": "SELECT 1"}).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    let r = http
        .get(format!("{base}/browse"))
        .header("host", "rebound.evil.example")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 421);
    let form = |query: &str, action: &str, csrf: &str| {
        vec![
            ("query".to_string(), query.to_string()),
            ("action".to_string(), action.to_string()),
            ("csrf".to_string(), csrf.to_string()),
        ]
    };
    let page = http
        .post(format!("{base}/console"))
        .form(&form("SELECT id, hostname FROM servers", "check", &csrf))
        .send()
        .await
        .expect("post")
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("verdict allowed") && !page.contains("result-meta"),
        "checked, not run"
    );
    let page = http
        .post(format!("{base}/console"))
        .form(&form("SELECT id, hostname FROM servers", "run", &csrf))
        .send()
        .await
        .expect("post")
        .text()
        .await
        .expect("body");
    assert!(
        page.contains("1000 rows") && page.contains("truncated"),
        "capped at the console's 1,000"
    );
    assert!(page.contains("Export rows as CSV"));
    let page = http
        .post(format!("{base}/console"))
        .form(&form("DROP TABLE servers", "run", &csrf))
        .send()
        .await
        .expect("post")
        .text()
        .await
        .expect("body");
    assert!(page.contains("verdict refused") && page.contains("policy_refused"));
    assert!(page.contains("<code class=\"rule\">statement.kind</code>"));
    // Without the CSRF token the form is refused and nothing runs.
    let r = http
        .post(format!("{base}/console"))
        .form(&form("SELECT 1", "run", "0000"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);

    // Audit: this session's calls, newest first; filters by session and level.
    let (_, audit) = get(&http, &format!("{base}/audit")).await;
    assert!(audit.contains("execute_query") && audit.contains("policy_refused"));
    let (_, refused) = get(&http, &format!("{base}/audit?session=nobody-else")).await;
    assert!(refused.contains("No entries match."));
    let (_, events) = get(&http, &format!("{base}/audit?level=high&events=1")).await;
    assert!(
        !events.contains("<td>execute_query</td>"),
        "calls are not events"
    );
    child.kill().await.ok();
}

#[tokio::test]
async fn hostile_values_render_as_text() {
    let data = tempfile::tempdir().expect("tempdir");
    let db = data.path().join("xss.db");
    rusqlite::Connection::open(&db)
        .expect("create")
        .execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
             INSERT INTO notes (body) VALUES ('<script>alert(1)</script>'), ('\"><img src=x onerror=alert(2)>');",
        )
        .expect("fixture");
    let url = format!("sqlite://{}", db.display());
    let (mut child, base) = start(&[("DBWARD_DATABASE_URL", &url)], data.path()).await;
    let http = browser();
    let (_, page) = get(&http, &format!("{base}/browse/table?table=notes")).await;
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{page}"
    );
    assert!(!page.contains("<script>alert"));
    assert!(!page.contains("<img src=x"));
    let (_, console) = get(&http, &format!("{base}/console")).await;
    let page = http
        .post(format!("{base}/console"))
        .form(&[
            ("query", "SELECT body FROM notes"),
            ("action", "run"),
            ("csrf", &csrf_of(&console)),
        ])
        .send()
        .await
        .expect("post")
        .text()
        .await
        .expect("body");
    assert!(page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
    assert!(!page.contains("<script>alert") && !page.contains("<img src=x"));
    child.kill().await.ok();
}

#[tokio::test]
async fn a_password_requires_a_login_and_failures_are_audited() {
    let data = tempfile::tempdir().expect("tempdir");
    let password = "correct horse battery staple 7c1e";
    let (mut child, base) = start(&[("DBWARD_WEB_PASSWORD", password)], data.path()).await;
    let http = browser();
    let r = http
        .get(format!("{base}/browse"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let r = post_json(
        &http,
        &format!("{base}/api/check"),
        json!({"query": "SELECT 1"}),
    )
    .await;
    assert_eq!(r.status(), 401);
    let (status, login) = get(&http, &format!("{base}/login")).await;
    assert_eq!(status, 200);
    let at = login.find("name=\"csrf\" value=\"").expect("csrf") + 19;
    let csrf = login[at..at + 32].to_string();
    // Wrong passwords: refused, reported; the fifth makes an audited security event.
    for _ in 0..5 {
        let r = http
            .post(format!("{base}/login"))
            .form(&[("password", "guess"), ("csrf", &csrf)])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 401);
    }
    // Without the form's CSRF token even the right password is refused.
    let r = http
        .post(format!("{base}/login"))
        .form(&[("password", password), ("csrf", "forged")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    let r = http
        .post(format!("{base}/login"))
        .form(&[("password", password), ("csrf", &csrf)])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 303);
    let rotated = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert_ne!(
        rotated.split(';').next(),
        cookie.split(';').next(),
        "a login issues a new cookie value"
    );
    let (status, browse) = get(&http, &format!("{base}/browse")).await;
    assert_eq!(status, 200);
    assert!(browse.contains("Log out"));
    // Scripts may send the password as a bearer token; a wrong one is refused.
    let api = reqwest::Client::new();
    let r = api
        .post(format!("{base}/api/check"))
        .bearer_auth(password)
        .header("content-type", "application/json")
        .body(json!({"query": "SELECT 1"}).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let r = api
        .post(format!("{base}/api/check"))
        .bearer_auth("wrong")
        .header("content-type", "application/json")
        .body(json!({"query": "SELECT 1"}).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    // Logging out forgets the session.
    let csrf = csrf_of(&browse);
    let r = http
        .post(format!("{base}/logout"))
        .form(&[("csrf", &csrf)])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 303);
    let r = http
        .get(format!("{base}/browse"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 303, "logged out");
    // The failures reached the child's audit log as a security event; the password did not.
    let audit = std::fs::read_to_string(data.path().join("audit.jsonl")).expect("audit");
    assert!(audit.contains("\"detector\":\"auth_failure\""), "{audit}");
    assert!(audit.contains("web-login:127.0.0.1"), "{audit}");
    assert!(!audit.contains(password));
    child.kill().await.ok();
    // Ten attempts a minute per address: the rate limit answers 429 after that.
    let (mut child, base) = start(&[("DBWARD_WEB_PASSWORD", password)], data.path()).await;
    let http = browser();
    let (_, login) = get(&http, &format!("{base}/login")).await;
    let at = login.find("name=\"csrf\" value=\"").expect("csrf") + 19;
    let csrf = login[at..at + 32].to_string();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = http
            .post(format!("{base}/login"))
            .form(&[("password", "guess"), ("csrf", &csrf)])
            .send()
            .await
            .expect("post");
        statuses.push(r.status().as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429));
    child.kill().await.ok();
}

#[tokio::test]
async fn off_loopback_needs_a_password() {
    let out = Command::new(BIN)
        .args(["web", "--listen", "0.0.0.0:0"])
        .env_remove("DBWARD_LLM_MODEL")
        .env_remove("DBWARD_WEB_PASSWORD")
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without a login") && err.contains("DBWARD_WEB_PASSWORD"),
        "{err}"
    );
}

#[tokio::test]
async fn off_loopback_with_a_password_serves_behind_a_login() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut w = start_web(
        &["demo", "--listen", "0.0.0.0:0"],
        &[("DBWARD_WEB_PASSWORD", "a long enough password 93b1")],
        data.path(),
    )
    .await;
    let port = w
        .url
        .strip_prefix("http://0.0.0.0:")
        .expect("bound to every address")
        .to_string();
    assert!(
        w.early
            .iter()
            .any(|l| l.contains("without --secure-cookies")),
        "it warns that cookies are not Secure without --secure-cookies: {:?}",
        w.early
    );
    let r = browser()
        .get(format!("http://127.0.0.1:{port}/console"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login");
    w.child.kill().await.ok();
}

#[tokio::test]
async fn one_question_at_a_time_per_session() {
    let data = tempfile::tempdir().expect("tempdir");
    let (mut child, base, _) = start_with_model(
        vec![
        json!({"delay_ms": 1500, "then": {"choices": [{"message": {"content": "Slow answer."}}]}}),
        json!({"choices": [{"message": {"content": "Other session's answer."}}]}),
        json!({"choices": [{"message": {"content": "Next answer."}}]}),
        ],
        data.path(),
    )
    .await;
    let (a, b) = (browser(), browser());
    let url = format!("{base}/api/chat");
    // Give both clients their sessions first, so the timing below is only the question's.
    get(&a, &format!("{base}/console")).await;
    get(&b, &format!("{base}/console")).await;
    let first = {
        let (a, url) = (a.clone(), url.clone());
        tokio::spawn(async move { post_json(&a, &url, json!({"message": "slow one"})).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = post_json(&a, &url, json!({"message": "impatient"})).await;
    assert_eq!(
        r.status(),
        429,
        "a second question in the same session waits"
    );
    let other: Value = post_json(&b, &url, json!({"message": "meanwhile"}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        other["answer"], "Other session's answer.",
        "other sessions are not held up"
    );
    let first: Value = first.await.expect("joined").json().await.expect("json");
    assert_eq!(first["answer"], "Slow answer.");
    let next: Value = post_json(&a, &url, json!({"message": "next"}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(next["answer"], "Next answer.");
    child.kill().await.ok();
}
