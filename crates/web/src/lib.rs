//! dbward's web UI and chat API (`dbward web`, `dbward demo`): a page served from the
//! binary (no CDN, no build step) and `POST /api/chat`, over the assistant — itself an MCP
//! host of a `dbward serve` child, so this process never holds a database credential.
//!
//! Invariants: each conversation has its own history, keyed by an unguessable id; a body is
//! JSON only (a cross-site form cannot post it without a CORS preflight, and requests
//! carrying a foreign Origin are refused); without a configured LLM the API says so plainly.

#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use dbward_assistant::agent::{Assistant, MAX_QUESTION_CHARS};
use dbward_assistant::llm::ChatMessage;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

const INDEX: &str = include_str!("../assets/index.html");

/// Most conversations kept in memory; the oldest is dropped beyond it.
const MAX_CONVERSATIONS: usize = 1_000;

/// The web app's state.
pub struct WebState {
    assistant: Option<Assistant>,
    conversations: Mutex<HashMap<String, Vec<ChatMessage>>>,
    order: Mutex<Vec<String>>,
}

impl WebState {
    /// With an assistant, or `None` when no LLM is configured.
    pub fn new(assistant: Option<Assistant>) -> WebState {
        WebState {
            assistant,
            conversations: Mutex::new(HashMap::new()),
            order: Mutex::new(Vec::new()),
        }
    }
}

/// How to configure a model, for the UI and the API.
pub const NO_LLM: &str = "No LLM is configured, so the assistant is off. Set DBWARD_LLM_MODEL (and DBWARD_LLM_BASE_URL for a non-OpenAI server such as Ollama or vLLM, and OPENAI_API_KEY or DBWARD_LLM_API_KEY if it needs a key), then restart.";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatRequest {
    message: String,
    #[serde(default)]
    conversation: Option<String>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": code, "message": message})),
    )
        .into_response()
}

/// The router: `/`, `/api/status`, `/api/chat`.
pub fn router(state: Arc<WebState>) -> axum::Router {
    axum::Router::new()
        .route("/", get(|| async { Html(INDEX) }))
        .route("/api/status", get(status))
        .route("/api/chat", post(chat))
        .with_state(state)
}

async fn status(State(s): State<Arc<WebState>>) -> Response {
    let (llm, message) = match &s.assistant {
        Some(_) => (
            true,
            "The assistant is ready: ask a question about the database.",
        ),
        None => (false, NO_LLM),
    };
    axum::Json(json!({"llm": llm, "message": message})).into_response()
}

async fn chat(
    State(s): State<Arc<WebState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // Same-origin only: a browser sends Origin on cross-site POSTs.
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) && origin.split("://").nth(1) != Some(host)
    {
        return error(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "cross-site requests are refused",
        );
    }
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "json_required",
            "send JSON: {\"message\": \"...\"}",
        );
    }
    let req: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("invalid request: {e}"),
            );
        }
    };
    if req.message.trim().is_empty() || req.message.chars().count() > MAX_QUESTION_CHARS {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_question",
            &format!("a question is 1 to {MAX_QUESTION_CHARS} characters"),
        );
    }
    let Some(assistant) = &s.assistant else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no_llm", NO_LLM);
    };
    let id = match req
        .conversation
        .filter(|c| c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        Some(c) => c,
        None => hex::encode(rand::random::<[u8; 16]>()),
    };
    let mut history = s.conversations.lock().await.remove(&id).unwrap_or_default();
    let result = assistant.ask(&req.message, &mut history).await;
    {
        let mut conversations = s.conversations.lock().await;
        let mut order = s.order.lock().await;
        conversations.insert(id.clone(), history);
        order.retain(|c| c != &id);
        order.push(id.clone());
        while order.len() > MAX_CONVERSATIONS {
            let old = order.remove(0);
            conversations.remove(&old);
        }
    }
    let wants_events = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    match result {
        Ok(answer) if wants_events => {
            // The same content as the JSON answer, as events: `conversation`, one `step`
            // per tool call, then `answer`.
            use axum::response::sse::{Event, Sse};
            let mut events = vec![
                Event::default()
                    .event("conversation")
                    .data(json!({"conversation": id}).to_string()),
            ];
            for step in &answer.steps {
                events.push(
                    Event::default()
                        .event("step")
                        .data(serde_json::to_string(step).unwrap_or_default()),
                );
            }
            events.push(
                Event::default()
                    .event("answer")
                    .data(json!({"answer": answer.answer, "flags": answer.flags}).to_string()),
            );
            let stream = futures_stream(events);
            Sse::new(stream).into_response()
        }
        Ok(answer) => axum::Json(json!({
            "conversation": id,
            "steps": answer.steps,
            "answer": answer.answer,
            "flags": answer.flags,
        }))
        .into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, "assistant_error", &e.to_string()),
    }
}

/// A stream of ready events.
fn futures_stream(
    events: Vec<axum::response::sse::Event>,
) -> impl futures_core::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>
{
    tokio_stream::iter(events.into_iter().map(Ok))
}

/// Serves the app on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<WebState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
