//! `dbward web` over HTTP, for what issue 16 asked of the API: scripts continue their
//! conversations by id (kept on disk), a model server that is down is reported, errors are
//! said once, the audit keeps normalized queries, a question can be stopped (keeping the
//! steps that finished), conversations can be deleted, and named users are their own
//! principals.

use std::time::Duration;

use serde_json::{Value, json};

mod common;

use common::{add_user, browser, csrf_of, get, post_json, scripted, start, start_web, start_with};

/// A script with the password as a bearer token continues its conversation by id, with no
/// cookie and no CSRF token; the conversation is kept on disk and listed; answers come with
/// their Markdown rendered and raw HTML escaped.
#[tokio::test]
async fn bearer_scripts_continue_conversations_kept_on_disk() {
    let data = tempfile::tempdir().expect("tempdir");
    let password = "bearer-script-password-5f2a";
    let (llm, script) = scripted(vec![
        json!({"choices": [{"message": {"content": "**Five** teams. <script>window.x=1</script>"}}]}),
        json!({"choices": [{"message": {"content": "Still five."}}]}),
    ])
    .await;
    let (mut child, base) = start(
        &[
            ("DBWARD_WEB_PASSWORD", password),
            ("DBWARD_LLM_MODEL", "scripted"),
            ("DBWARD_LLM_BASE_URL", &llm),
        ],
        data.path(),
    )
    .await;
    let http = reqwest::Client::new();
    let ask = |body: Value| {
        http.post(format!("{base}/api/chat"))
            .bearer_auth(password)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let first: Value = ask(json!({"message": "How many teams are there?"}))
        .await
        .expect("chat")
        .json()
        .await
        .expect("json");
    let id = first["conversation"].as_str().expect("an id").to_string();
    let html = first["answer_html"].as_str().unwrap_or_default();
    assert!(html.contains("<strong>Five</strong>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;") && !html.contains("<script"),
        "{html}"
    );
    assert_eq!(first["model"], "scripted");
    let second: Value = ask(json!({"message": "Are you sure?", "conversation": id}))
        .await
        .expect("chat")
        .json()
        .await
        .expect("json");
    assert_eq!(second["conversation"], id.as_str(), "the same conversation");
    let seen = script.seen.lock().expect("seen").clone();
    assert!(
        seen[1].to_string().contains("How many teams are there?"),
        "the model saw the first question again"
    );
    let list: Value = http
        .get(format!("{base}/api/conversations"))
        .bearer_auth(password)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["conversations"][0]["id"], id.as_str());
    assert_eq!(
        list["conversations"][0]["title"],
        "How many teams are there?"
    );
    let whole: Value = http
        .get(format!("{base}/api/conversations/{id}"))
        .bearer_auth(password)
        .send()
        .await
        .expect("conversation")
        .json()
        .await
        .expect("json");
    assert_eq!(whole["turns"].as_array().map(Vec::len), Some(2));
    assert_eq!(whole["turns"][1]["answer"], "Still five.");
    // On disk, in the data directory, readable by the owner only.
    let files: Vec<_> = walk(&data.path().join("web/conversations"));
    assert_eq!(files.len(), 1, "{files:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files[0])
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "private: {mode:o}");
    }
    // A script deletes it the same way (no cookie, so no CSRF token needed): gone from
    // disk, and a second delete finds nothing.
    for want in [200, 404] {
        let r = http
            .delete(format!("{base}/api/conversations/{id}"))
            .bearer_auth(password)
            .send()
            .await
            .expect("delete");
        assert_eq!(r.status(), want);
    }
    assert!(walk(&data.path().join("web/conversations")).is_empty());
    child.kill().await.ok();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// With the model's server down, the status says so and names the URL (without its
/// credentials); the web process logs it to stderr, and rmcp's own lines do not print.
#[tokio::test]
async fn a_model_server_that_is_down_is_reported() {
    let data = tempfile::tempdir().expect("tempdir");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://someone:hunter2@127.0.0.1:{port}/v1");
    let w = start_web(
        &["demo", "--listen", "127.0.0.1:0"],
        &[
            ("DBWARD_LLM_MODEL", "gone-model"),
            ("DBWARD_LLM_BASE_URL", &url),
        ],
        data.path(),
    )
    .await;
    let early = w.early.join("\n");
    assert!(
        early.contains("WARN") && early.contains(&format!("127.0.0.1:{port}/v1/models")),
        "{early}"
    );
    assert!(!early.contains("rmcp::"), "{early}");
    assert!(!early.contains("hunter2"), "{early}");
    let status: Value = reqwest::get(format!("{}/api/status", w.url))
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["llm"], true);
    assert_eq!(status["ready"], false);
    assert_eq!(status["model"], "gone-model");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("http://127.0.0.1:{port}/v1/models")),
        "{message}"
    );
    assert!(
        !message.contains("hunter2") && !message.contains("someone"),
        "{message}"
    );
    let mut child = w.child;
    child.kill().await.ok();
}

/// Errors are said once and plainly; the verdict's kind is one lowercase string; the audit
/// keeps the query with placeholders for its values (not the values).
#[tokio::test]
async fn errors_are_said_once_and_the_audit_keeps_normalized_queries() {
    let data = tempfile::tempdir().expect("tempdir");
    let (mut child, base) = start_with(&["demo"], &[], data.path()).await;
    let http = browser();
    let (_, page) = get(&http, &format!("{base}/console")).await;
    let csrf = csrf_of(&page);
    let run = |q: &str| {
        http.post(format!("{base}/console"))
            .form(&[("query", q), ("csrf", csrf.as_str()), ("action", "run")])
            .send()
    };
    let page = run("SELECT * FROM serverz")
        .await
        .expect("run")
        .text()
        .await
        .expect("page");
    assert!(page.contains("no such table: serverz"), "{page}");
    assert!(!page.contains("unknown table `no such"), "{page}");
    let page = run("SELEC 1")
        .await
        .expect("run")
        .text()
        .await
        .expect("page");
    assert!(page.contains("syntax error"), "{page}");
    assert!(!page.contains("syntax error: syntax error"), "{page}");
    assert!(!page.contains("only reads"), "{page}");
    let page = run("DELETE FROM servers")
        .await
        .expect("run")
        .text()
        .await
        .expect("page");
    assert_eq!(
        page.matches("DELETE statements are not allowed").count(),
        1,
        "the reason once: {page}"
    );
    assert!(page.contains("policy_refused"), "{page}");
    for (q, kind) in [("DELETE FROM servers", "delete"), ("SELECT 1", "select")] {
        let v: Value = post_json(&http, &format!("{base}/api/check"), json!({"query": q}))
            .await
            .json()
            .await
            .expect("json");
        assert_eq!(v["verdict"]["kind"], kind, "{v}");
    }
    run("SELECT hostname FROM servers WHERE hostname = 'secret-host-77' LIMIT 3")
        .await
        .expect("run");
    let audit = std::fs::read_to_string(data.path().join("audit.jsonl")).expect("audit");
    assert!(
        audit.contains(
            "\"query_normalized\":\"SELECT hostname FROM servers WHERE hostname = ? LIMIT ?\""
        ),
        "{audit}"
    );
    assert!(
        !audit.contains("secret-host-77"),
        "values stay out by default"
    );
    let (_, view) = get(&http, &format!("{base}/audit")).await;
    assert!(
        view.contains("WHERE hostname = ? LIMIT ?"),
        "the view shows it"
    );
    assert!(
        view.contains("<td>SELECT</td>") && view.contains("<td>DELETE</td>"),
        "kinds"
    );
    child.kill().await.ok();
}

/// Logs `client` in as `name`; the response status.
async fn login_as(http: &reqwest::Client, base: &str, name: &str, password: &str) -> u16 {
    let (_, page) = get(http, &format!("{base}/login")).await;
    let at = page.find("name=\"csrf\" value=\"").expect("csrf") + 19;
    let csrf = page[at..at + 32].to_string();
    http.post(format!("{base}/login"))
        .form(&[("username", name), ("password", password), ("csrf", &csrf)])
        .send()
        .await
        .expect("login")
        .status()
        .as_u16()
}

/// Named users: stored as argon2id hashes, each their own principal, so a user the
/// detector blocked stays blocked in a new browser session while others are not.
#[tokio::test]
async fn named_users_are_their_own_principals_across_sessions() {
    let data = tempfile::tempdir().expect("tempdir");
    let (alice_pw, bob_pw) = ("alice's long password", "bob's long password");
    assert!(add_user(data.path(), "alice", alice_pw).status.success());
    assert!(add_user(data.path(), "bob", bob_pw).status.success());
    let short = add_user(data.path(), "carol", "short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least"));
    let users = std::fs::read_to_string(data.path().join("web/users.json")).expect("users");
    assert!(users.contains("$argon2id$") && !users.contains("long password"));
    let (mut child, base) = start(&[], data.path()).await;
    // A login is required now, and names the user.
    let anonymous = browser();
    let r = anonymous.get(format!("{base}/")).send().await.expect("GET");
    assert_eq!(r.status(), 303);
    assert_eq!(login_as(&anonymous, &base, "alice", bob_pw).await, 401);
    let a1 = browser();
    assert_eq!(login_as(&a1, &base, "alice", alice_pw).await, 303);
    let (_, page) = get(&a1, &format!("{base}/console")).await;
    assert!(page.contains("signed in as <strong id=\"user\">alice</strong>"));
    assert!(page.contains("session stdio/user-alice"));
    let query = |http: reqwest::Client, sql: &'static str| {
        let base = base.clone();
        async move {
            let r = post_json(&http, &format!("{base}/api/query"), json!({"query": sql})).await;
            r.json::<Value>().await.expect("json")
        }
    };
    // Alice probes with writes until the detector blocks her.
    let mut blocked = false;
    let mut codes = Vec::new();
    for _ in 0..15 {
        let v = query(a1.clone(), "DELETE FROM servers").await;
        codes.push(v["error"].as_str().unwrap_or("?").to_string());
        if v["error"] == "blocked" {
            blocked = true;
            break;
        }
    }
    assert_eq!(codes[0], "policy_refused", "{codes:?}");
    assert!(blocked, "the detector blocks alice");
    // A new browser session does not help her; bob is not affected.
    let a2 = browser();
    assert_eq!(login_as(&a2, &base, "alice", alice_pw).await, 303);
    let v = query(a2.clone(), "SELECT 1").await;
    assert_eq!(v["error"], "blocked", "{v}");
    let b = browser();
    assert_eq!(login_as(&b, &base, "bob", bob_pw).await, 303);
    let v = query(b.clone(), "SELECT 1").await;
    assert!(v["result"]["rows"].is_array(), "{v}");
    // Scripts sign in as a user with NAME:PASSWORD as the bearer token.
    let r = reqwest::Client::new()
        .get(format!("{base}/api/conversations"))
        .bearer_auth(format!("bob:{bob_pw}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
    let audit = std::fs::read_to_string(data.path().join("audit.jsonl")).expect("audit");
    assert!(audit.contains("\"client\":\"stdio/user-alice (dbward-web)\""));
    assert!(audit.contains("\"client\":\"stdio/user-bob (dbward-web)\""));
    assert!(!audit.contains("long password"));
    child.kill().await.ok();
}

/// The stop button: a question waiting on a slow model ends at once as `stopped`, the
/// session can ask again, and the conversation keeps the stopped turn.
#[tokio::test]
async fn a_running_question_can_be_stopped() {
    let data = tempfile::tempdir().expect("tempdir");
    let (llm, _) = scripted(vec![
        json!({"delay_ms": 20_000, "then": {"choices": [{"message": {"content": "Too late."}}]}}),
        json!({"choices": [{"message": {"content": "Next answer."}}]}),
    ])
    .await;
    let (mut child, base) = start(
        &[
            ("DBWARD_LLM_MODEL", "scripted"),
            ("DBWARD_LLM_BASE_URL", &llm),
        ],
        data.path(),
    )
    .await;
    let http = browser();
    let url = format!("{base}/api/chat");
    get(&http, &format!("{base}/")).await;
    let slow = {
        let (http, url) = (http.clone(), url.clone());
        tokio::spawn(async move { post_json(&http, &url, json!({"message": "slow one"})).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let r: Value = post_json(&http, &format!("{base}/api/chat/stop"), json!({}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(r["stopped"], true);
    let slow = slow.await.expect("joined");
    assert_eq!(slow.status(), 409);
    let body: Value = slow.json().await.expect("json");
    assert_eq!(body["error"], "stopped");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let next: Value = post_json(&http, &url, json!({"message": "next"}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(next["answer"], "Next answer.");
    let list: Value = http
        .get(format!("{base}/api/conversations"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let titles: Vec<&str> = list["conversations"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["title"].as_str())
        .collect();
    assert!(titles.contains(&"slow one"), "{titles:?}");
    child.kill().await.ok();
}

/// A question stopped after a tool call finished keeps that step, shown and stored, and
/// marked as stopped; the model's history is left as it was before the question.
#[tokio::test]
async fn a_stopped_question_keeps_its_finished_steps() {
    let data = tempfile::tempdir().expect("tempdir");
    let (llm, _) = scripted(vec![
        json!({"choices": [{"message": {"tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "execute_query", "arguments": "{\"query\": \"SELECT count(*) AS n FROM servers\"}"}}]}}]}),
        json!({"delay_ms": 20_000, "then": {"choices": [{"message": {"content": "Too late."}}]}}),
    ])
    .await;
    let (mut child, base) = start(
        &[
            ("DBWARD_LLM_MODEL", "scripted"),
            ("DBWARD_LLM_BASE_URL", &llm),
        ],
        data.path(),
    )
    .await;
    let http = browser();
    let url = format!("{base}/api/chat");
    get(&http, &format!("{base}/")).await;
    let slow = {
        let (http, url) = (http.clone(), url.clone());
        tokio::spawn(async move { post_json(&http, &url, json!({"message": "count them"})).await })
    };
    // The step has finished once its call is in the audit log.
    let audit = data.path().join("audit.jsonl");
    for _ in 0..100 {
        if std::fs::read_to_string(&audit).is_ok_and(|l| l.contains("SELECT count(*) AS n")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r: Value = post_json(&http, &format!("{base}/api/chat/stop"), json!({}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(r["stopped"], true);
    let slow = slow.await.expect("joined");
    assert_eq!(slow.status(), 409);
    let body: Value = slow.json().await.expect("json");
    assert_eq!(body["error"], "stopped");
    assert_eq!(body["steps"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["steps"][0]["tool"], "execute_query", "{body}");
    let id = body["conversation"].as_str().expect("id");
    let stored: Value = http
        .get(format!("{base}/api/conversations/{id}"))
        .send()
        .await
        .expect("conversation")
        .json()
        .await
        .expect("json");
    let turn = &stored["turns"][0];
    assert_eq!(turn["stopped"], true, "{stored}");
    assert_eq!(turn["steps"][0]["row_count"], 1, "{stored}");
    assert_eq!(turn["answer"], "", "{stored}");
    child.kill().await.ok();
}
