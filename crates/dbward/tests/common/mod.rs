//! Shared by the end-to-end tests of the binary: the scripted OpenAI-compatible model (the
//! one allowed stand-in) and starting `dbward web` / `dbward demo` as a child process.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub mod idp;
pub mod pg;

pub const BIN: &str = env!("CARGO_BIN_EXE_dbward");

/// The scripted model's answers, in order, and every request body it received.
#[derive(Clone, Default)]
pub struct Script {
    pub answers: Arc<Mutex<VecDeque<Value>>>,
    pub seen: Arc<Mutex<Vec<Value>>>,
}

/// Serves a scripted Chat Completions API; returns its base URL (`.../v1`) and the script.
/// An answer `{"stream": [text...]}` is sent as server-sent events, one chunk per text;
/// `{"delay_ms": N, "then": ANSWER}` is a slow model. After the script: `(script ended)`.
pub async fn scripted(answers: Vec<Value>) -> (String, Script) {
    let script = Script {
        answers: Arc::new(Mutex::new(VecDeque::from(answers))),
        seen: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(script.clone());
    (model_api(app).await, script)
}

/// Serves `app` (a stand-in Chat Completions API) on a free loopback port; returns its
/// base URL (`http://ADDR/v1`).
pub async fn model_api(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

async fn completions(
    State(s): State<Script>,
    axum::Json(body): axum::Json<Value>,
) -> axum::response::Response {
    s.seen.lock().expect("seen").push(body);
    let next = s.answers.lock().expect("script").pop_front();
    let next =
        next.unwrap_or_else(|| json!({"choices": [{"message": {"content": "(script ended)"}}]}));
    let next = match next["delay_ms"].as_u64() {
        Some(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            next["then"].clone()
        }
        None => next,
    };
    if let Some(chunks) = next["stream"].as_array() {
        let mut sse = String::new();
        for c in chunks {
            let chunk = json!({"choices": [{"delta": {"content": c}}]});
            sse.push_str(&format!("data: {chunk}\n\n"));
        }
        sse.push_str("data: [DONE]\n\n");
        return ([("content-type", "text/event-stream")], sse).into_response();
    }
    axum::Json(next).into_response()
}

/// A started `dbward web` or `dbward demo`.
pub struct WebChild {
    pub child: Child,
    /// The base URL it reported (`http://ADDR:PORT`, no trailing slash).
    pub url: String,
    /// What it wrote to stderr before reporting it.
    pub early: Vec<String>,
}

/// Runs `dbward ARGS` (which must include `--listen`) with the model, database URL and
/// login settings of this environment removed, `env` added, and `data` as its data
/// directory; waits until it reports its address.
pub async fn start_web(args: &[&str], env: &[(&str, &str)], data: &Path) -> WebChild {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("DBWARD_LLM_MODEL")
        .env_remove("DBWARD_DATABASE_URL")
        .env_remove("DBWARD_WEB_PASSWORD")
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
    let mut early = Vec::new();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(u) = line.strip_prefix("dbward: web UI at ") {
                return u.trim_end_matches('/').to_string();
            }
            early.push(line);
        }
        panic!("dbward web did not report its address");
    })
    .await
    .expect("starts in time");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    WebChild { child, url, early }
}

/// `dbward web add-user NAME` with the password on standard input.
pub fn add_user(data: &std::path::Path, name: &str, password: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(BIN)
        .args(["web", "add-user", name])
        .env("DBWARD_DATA_DIR", data)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("add-user starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("password written");
    child.wait_with_output().expect("add-user ends")
}

// ---- the web UI over HTTP, as a browser would use it ----

pub async fn start_with(
    args: &[&str],
    env: &[(&str, &str)],
    data: &std::path::Path,
) -> (Child, String) {
    let mut all = args.to_vec();
    all.extend(["--listen", "127.0.0.1:0"]);
    let w = start_web(&all, env, data).await;
    (w.child, w.url)
}

pub async fn start(env: &[(&str, &str)], data: &std::path::Path) -> (Child, String) {
    start_with(&["web"], env, data).await
}

/// `dbward web` with the scripted model giving `answers`.
pub async fn start_with_model(
    answers: Vec<Value>,
    data: &std::path::Path,
) -> (Child, String, Script) {
    let (llm, script) = scripted(answers).await;
    let (child, base) = start(
        &[
            ("DBWARD_LLM_MODEL", "scripted"),
            ("DBWARD_LLM_BASE_URL", &llm),
        ],
        data,
    )
    .await;
    (child, base, script)
}

/// A browser-like client: keeps cookies, does not follow redirects (so tests see them).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub async fn get(http: &reqwest::Client, url: &str) -> (u16, String) {
    let r = http.get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

/// The CSRF token a page carries.
pub fn csrf_of(page: &str) -> String {
    let at = page
        .find("data-csrf=\"")
        .expect("page carries a CSRF token")
        + 11;
    page[at..at + 32].to_string()
}

/// POSTs JSON as the page's script does: with the session's CSRF token (read from a page
/// first, which also gives a cookie-less client its session).
pub async fn post_json(http: &reqwest::Client, url: &str, body: Value) -> reqwest::Response {
    let base = &url[..url.find("/api/").expect("an API URL")];
    let (status, page) = get(http, &format!("{base}/console")).await;
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if status == 200 {
        req = req.header("x-csrf-token", csrf_of(&page));
    }
    req.send().await.expect("POST")
}
