//! The LLM client against a scripted OpenAI-compatible server (the one stand-in the project
//! allows: the real API is out of reach). Each test scripts the answers in order.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dbward_assistant::llm::{ChatMessage, LlmClient, LlmConfig, LlmError, ToolSpec};
use secrecy::SecretString;
use serde_json::{Value, json};

const KEY: &str = "sk-test-Unmistakable-Key-91";

#[derive(Clone)]
enum Answer {
    Status(u16),
    Json(Value),
    Slow(Duration),
}

/// Each request seen: its Authorization header and its JSON body.
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    seen: Seen,
}

async fn completions(
    State(s): State<Script>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    s.seen.lock().expect("seen").push((auth, body.0));
    let next = s.answers.lock().expect("script").pop_front();
    match next {
        Some(Answer::Status(code)) => StatusCode::from_u16(code).expect("status").into_response(),
        Some(Answer::Json(v)) => axum::Json(v).into_response(),
        Some(Answer::Slow(d)) => {
            tokio::time::sleep(d).await;
            axum::Json(json!({"choices": [{"message": {"content": "late"}}]})).into_response()
        }
        None => StatusCode::GONE.into_response(),
    }
}

async fn scripted(answers: Vec<Answer>) -> (String, Script) {
    let script = Script {
        answers: Arc::new(Mutex::new(answers.into())),
        ..Default::default()
    };
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, script)
}

fn client(url: &str) -> LlmClient {
    let mut c = LlmConfig::new(url, "test-model");
    c.api_key = Some(SecretString::from(KEY));
    c.backoff = Duration::from_millis(10);
    c.timeout = Duration::from_millis(500);
    c.max_retries = 2;
    LlmClient::new(c)
}

fn question() -> Vec<ChatMessage> {
    vec![ChatMessage {
        role: "user".into(),
        content: Some("How many servers?".into()),
        ..Default::default()
    }]
}

fn tools() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "execute_query".into(),
        description: "Run a read-only query".into(),
        parameters: json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
    }]
}

#[tokio::test]
async fn a_tool_call_comes_back_after_a_429() {
    let (url, script) = scripted(vec![
        Answer::Status(429),
        Answer::Json(json!({"choices": [{"message": {"role": "assistant", "tool_calls": [
            {"function": {"name": "execute_query", "arguments": "{\"query\": \"SELECT count(*) FROM servers\"}"}}
        ]}}]})),
    ])
    .await;
    let m = client(&url)
        .chat(&question(), &tools())
        .await
        .expect("completion");
    assert_eq!(m.tool_calls.len(), 1);
    assert_eq!(m.tool_calls[0].function.name, "execute_query");
    assert!(!m.tool_calls[0].id.is_empty());
    let seen = script.seen.lock().expect("seen");
    assert_eq!(seen.len(), 2, "one retry after the 429");
    assert_eq!(seen[1].0.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(seen[1].1["model"], "test-model");
    assert_eq!(seen[1].1["tools"][0]["function"]["name"], "execute_query");
    assert_eq!(seen[1].1["messages"][0]["content"], "How many servers?");
}

#[tokio::test]
async fn timeouts_and_5xx_retry_then_give_up_without_the_key() {
    let (url, script) = scripted(vec![
        Answer::Slow(Duration::from_secs(2)),
        Answer::Status(503),
        Answer::Status(502),
    ])
    .await;
    let e = client(&url)
        .chat(&question(), &[])
        .await
        .expect_err("gives up");
    assert!(
        matches!(e, LlmError::Unavailable { retries: 2, .. }),
        "{e:?}"
    );
    assert!(!format!("{e} {e:?}").contains(KEY));
    assert_eq!(script.seen.lock().expect("seen").len(), 3);
}

#[tokio::test]
async fn refused_credentials_are_not_retried() {
    let (url, script) = scripted(vec![Answer::Status(401), Answer::Status(200)]).await;
    let e = client(&url)
        .chat(&question(), &[])
        .await
        .expect_err("unauthorized");
    assert!(matches!(e, LlmError::Unauthorized(401)));
    assert!(!format!("{e} {e:?}").contains(KEY));
    assert_eq!(script.seen.lock().expect("seen").len(), 1);
    let debug = format!("{:?}", client(&url).config());
    assert!(!debug.contains(KEY), "{debug}");
}

#[tokio::test]
async fn a_malformed_answer_is_a_clear_error() {
    let (url, _) = scripted(vec![Answer::Json(json!({"unexpected": true}))]).await;
    let e = client(&url)
        .chat(&question(), &[])
        .await
        .expect_err("malformed");
    assert!(matches!(e, LlmError::Malformed(_)), "{e:?}");
}
