//! `dbward web` end to end: the page, the status without and with an LLM, the chat API with a
//! scripted model and a real `dbward serve` child, and the refusal to bind off loopback.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_dbward");

async fn scripted(answers: Vec<Value>) -> String {
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            post(|State(a): State<Arc<Mutex<VecDeque<Value>>>>| async move {
                let next = a.lock().expect("script").pop_front();
                axum::Json(
                    next.unwrap_or_else(|| json!({"choices": [{"message": {"content": "(end)"}}]})),
                )
            }),
        )
        .with_state(answers);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

/// Starts `dbward web` on a free port; returns the child and the base URL.
async fn start(env: &[(&str, &str)], data: &std::path::Path) -> (Child, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["web", "--listen", "127.0.0.1:0"])
        .env_remove("DBWARD_LLM_MODEL")
        .env_remove("DBWARD_DATABASE_URL")
        .env("DBWARD_DATA_DIR", data)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("dbward web starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(u) = line.strip_prefix("dbward: web UI at ") {
                return u.trim_end_matches('/').to_string();
            }
        }
        panic!("dbward web did not report its address");
    })
    .await
    .expect("starts in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

#[tokio::test]
async fn chat_api_answers_with_steps_through_the_real_server() {
    let data = tempfile::tempdir().expect("tempdir");
    let llm = scripted(vec![
        json!({"choices": [{"message": {"tool_calls": [{"function": {"name": "execute_query",
            "arguments": "{\"query\": \"SELECT name FROM departments ORDER BY id LIMIT 2\"}"}}]}}]}),
        json!({"choices": [{"message": {"content": "Engineering and Finance come first."}}]}),
        json!({"choices": [{"message": {"content": "Streamed answer."}}]}),
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
    let http = reqwest::Client::new();
    let page = http
        .get(format!("{base}/"))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("body");
    assert!(page.contains("dbward assistant") && page.contains("textContent"));
    let status: Value = http
        .get(format!("{base}/api/status"))
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert_eq!(status["llm"], true);
    let r = http
        .post(format!("{base}/api/chat"))
        .header("content-type", "application/json")
        .body(json!({"message": "Which departments come first?"}).to_string())
        .send()
        .await
        .expect("chat");
    assert_eq!(r.status(), 200);
    let body: Value = r
        .text()
        .await
        .map(|t| serde_json::from_str::<Value>(&t).expect("json"))
        .expect("body");
    assert_eq!(body["answer"], "Engineering and Finance come first.");
    assert_eq!(body["steps"][0]["tool"], "execute_query");
    assert_eq!(body["steps"][0]["verdict"], "allowed");
    assert_eq!(body["steps"][0]["row_count"], 2);
    assert_eq!(body["conversation"].as_str().map(str::len), Some(32));
    // The same as server-sent events, continuing the conversation.
    let r = http
        .post(format!("{base}/api/chat"))
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(json!({"message": "And then?", "conversation": body["conversation"]}).to_string())
        .send()
        .await
        .expect("chat");
    assert_eq!(r.status(), 200);
    let events = r.text().await.expect("events");
    assert!(events.contains("event: conversation"), "{events}");
    assert!(
        events.contains(body["conversation"].as_str().unwrap_or("?")),
        "{events}"
    );
    assert!(
        events.contains("event: answer") && events.contains("Streamed answer."),
        "{events}"
    );
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
async fn without_an_llm_the_ui_says_how_to_configure_one() {
    let data = tempfile::tempdir().expect("tempdir");
    let (mut child, base) = start(&[], data.path()).await;
    let http = reqwest::Client::new();
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
    let r = http
        .post(format!("{base}/api/chat"))
        .header("content-type", "application/json")
        .body(json!({"message": "hi"}).to_string())
        .send()
        .await
        .expect("chat");
    assert_eq!(r.status(), 503);
    child.kill().await.ok();
}

#[tokio::test]
async fn off_loopback_is_refused_until_logins_exist() {
    let out = Command::new(BIN)
        .args(["web", "--listen", "0.0.0.0:0"])
        .env_remove("DBWARD_LLM_MODEL")
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only loopback"));
}
