//! The JSON API: `GET /api/status`, `POST /api/chat` (JSON, or server-sent events with
//! `Accept: text/event-stream`), `POST /api/check` (the policy's verdict, nothing runs).
//!
//! Invariant: every POST passes [`api_gate`] (in the session layer): JSON only, no foreign
//! `Origin`, and the CSRF token when the session cookie came along, so a cross-site page
//! cannot drive the API with the visitor's cookie.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use dbward_assistant::agent::{MAX_QUESTION_CHARS, Progress};
use serde::Deserialize;
use serde_json::json;
use tokio_stream::StreamExt as _;

use crate::WebState;
use crate::session::{Visitor, api_error};

/// How to configure a model, for the UI and the API.
pub const NO_LLM: &str = "No LLM is configured, so the assistant is off. Set DBWARD_LLM_MODEL (and DBWARD_LLM_BASE_URL for a non-OpenAI server such as Ollama or vLLM, and OPENAI_API_KEY or DBWARD_LLM_API_KEY if it needs a key), then restart. Browsing, the SQL console and the audit view work without one.";

/// Longest query the console checks or runs, in bytes.
pub(crate) const MAX_QUERY_BYTES: usize = 100 * 1024;

pub(crate) async fn status(State(s): State<Arc<WebState>>) -> Response {
    let (llm, message) = match &s.assistant {
        Some(_) => (
            true,
            "The assistant is ready: ask a question about the database.",
        ),
        None => (false, NO_LLM),
    };
    axum::Json(json!({"llm": llm, "message": message})).into_response()
}

/// The gate every state-changing API request passes (called by the session layer for
/// each `POST /api/...`, so a new endpoint cannot forget it): no foreign `Origin`, a JSON
/// body, and for a request carrying the session cookie the CSRF token in `X-CSRF-Token`.
#[allow(
    clippy::result_large_err,
    reason = "the error is the handler's response, returned at once"
)]
pub(crate) fn api_gate(headers: &HeaderMap, visitor: &Visitor) -> Result<(), Response> {
    json_only(headers)?;
    if !visitor.api_csrf_ok(headers) {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            "csrf",
            "a request with the session cookie must carry X-CSRF-Token (the page's data-csrf)",
        ));
    }
    Ok(())
}

/// Refuses cross-origin requests and non-JSON bodies.
#[allow(
    clippy::result_large_err,
    reason = "the error is the handler's response, returned at once"
)]
fn json_only(headers: &HeaderMap) -> Result<(), Response> {
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) && origin.split("://").nth(1) != Some(host)
    {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "cross-site requests are refused",
        ));
    }
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_body {
        return Err(api_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "json_required",
            "send JSON with Content-Type: application/json",
        ));
    }
    Ok(())
}

#[allow(
    clippy::result_large_err,
    reason = "the error is the handler's response, returned at once"
)]
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        api_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            &format!("invalid request: {e}"),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatRequest {
    message: String,
    #[serde(default)]
    conversation: Option<String>,
}

pub(crate) async fn chat(
    State(s): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let req: ChatRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.message.trim().is_empty() || req.message.chars().count() > MAX_QUESTION_CHARS {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_question",
            &format!("a question is 1 to {MAX_QUESTION_CHARS} characters"),
        );
    }
    if s.assistant.is_none() {
        return api_error(StatusCode::SERVICE_UNAVAILABLE, "no_llm", crate::NO_LLM);
    }
    // A conversation id is only looked up in the visitor's own session.
    let id = match req
        .conversation
        .filter(|c| c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        Some(c) => c,
        None => hex::encode(rand::random::<[u8; 16]>()),
    };
    let wants_events = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    // One question at a time per session: a second one waits for the first to finish
    // (each costs model calls and database work, and they would share the history).
    if !s.sessions.start_question(&visitor.key) {
        return api_error(
            StatusCode::TOO_MANY_REQUESTS,
            "question_running",
            "a question is still running in this session; wait for its answer",
        );
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let state = s.clone();
    let question = req.message.clone();
    let conversation = id.clone();
    // The question runs in its own task: a client that goes away does not cut a tool call
    // in half, and the history is put back whatever happens.
    let task = tokio::spawn(async move {
        // Ends the session's question however the task ends (answer, error or panic).
        struct Done(Arc<WebState>, String);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.sessions.end_question(&self.1);
            }
        }
        let _done = Done(state.clone(), visitor.key.clone());
        let Some(assistant) = &state.assistant else {
            return Err("no LLM".to_string());
        };
        let mut history = state.sessions.take_history(&visitor.key, &conversation);
        let result = assistant
            .ask(&question, &mut history, Some(&visitor.label), Some(&tx))
            .await;
        state
            .sessions
            .put_history(&visitor.key, &conversation, history);
        result.map_err(|e| e.to_string())
    });
    if wants_events {
        // `conversation`, then `step` per tool call and `token` per piece of the answer as
        // they happen, then `answer` (the whole answer) or `error`.
        let head = tokio_stream::once(Ok::<Event, Infallible>(
            Event::default()
                .event("conversation")
                .data(json!({"conversation": id}).to_string()),
        ));
        let progress = tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(|p| match p {
            Progress::Step(step) => Ok(Event::default()
                .event("step")
                .data(serde_json::to_string(&step).unwrap_or_default())),
            Progress::Token(t) => Ok(Event::default()
                .event("token")
                .data(json!({"text": t}).to_string())),
        });
        let tail = tokio_stream::once(task).then(|joined| async move {
            let event = match joined.await {
                Ok(Ok(answer)) => Event::default().event("answer").data(
                    json!({"answer": answer.answer, "flags": answer.flags, "steps": answer.steps.len()})
                        .to_string(),
                ),
                Ok(Err(e)) => Event::default()
                    .event("error")
                    .data(json!({"error": "assistant_error", "message": e}).to_string()),
                Err(_) => Event::default().event("error").data(
                    json!({"error": "assistant_error", "message": "the question failed"})
                        .to_string(),
                ),
            };
            Ok(event)
        });
        return Sse::new(head.chain(progress).chain(tail)).into_response();
    }
    drop(rx);
    match task.await {
        Ok(Ok(answer)) => axum::Json(json!({
            "conversation": id,
            "steps": answer.steps,
            "answer": answer.answer,
            "flags": answer.flags,
        }))
        .into_response(),
        Ok(Err(e)) => api_error(StatusCode::BAD_GATEWAY, "assistant_error", &e),
        Err(_) => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "assistant_error",
            "the question failed",
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    query: String,
}

/// `POST /api/check`: the policy's verdict on a query, before running it.
pub(crate) async fn check(State(s): State<Arc<WebState>>, body: axum::body::Bytes) -> Response {
    let req: CheckRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.query.len() > MAX_QUERY_BYTES {
        return api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            &format!("a query is at most {MAX_QUERY_BYTES} bytes"),
        );
    }
    let verdict = s.options.policy.check(s.dialect, &req.query);
    axum::Json(json!({
        "allowed": verdict.is_allowed(),
        "verdict": verdict,
    }))
    .into_response()
}
