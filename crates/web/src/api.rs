//! The JSON API: `GET /api/status`, `POST /api/chat` (JSON, or server-sent events with
//! `Accept: text/event-stream`), `POST /api/check` (the policy's verdict, nothing runs).
//!
//! Invariant: every request that is not a GET passes [`api_gate`] (in the session layer):
//! no foreign `Origin`, a POST's body JSON only, and the CSRF token when the session cookie
//! came along, so a cross-site page cannot drive the API with the visitor's cookie.

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
use crate::conversations::{Conversation, Turn};
use crate::session::{Visitor, api_error};

/// How to configure a model, for the UI and the API.
pub const NO_LLM: &str = "No LLM is configured, so the assistant is off. Set DBWARD_LLM_MODEL (and DBWARD_LLM_BASE_URL for a non-OpenAI server such as Ollama or vLLM, and OPENAI_API_KEY or DBWARD_LLM_API_KEY if it needs a key), then restart. Browsing, the SQL console and the audit view work without one.";

/// Longest query the console checks or runs, in bytes.
pub(crate) const MAX_QUERY_BYTES: usize = 100 * 1024;

/// How long `/api/status` waits for the model's server.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long a probe's answer is reused.
const PROBE_REUSE: std::time::Duration = std::time::Duration::from_secs(10);

/// `GET /api/status`: whether the assistant can answer now. With a model configured, its
/// server is asked (`GET /models`); down, the message names the URL that failed (without
/// credentials) and the failure is logged.
pub(crate) async fn status(State(s): State<Arc<WebState>>) -> Response {
    let Some(assistant) = &s.assistant else {
        return axum::Json(json!({"llm": false, "ready": false, "message": NO_LLM}))
            .into_response();
    };
    let model = assistant.llm().config().model.clone();
    // One probe per PROBE_REUSE, however many pages ask (each chat page load does).
    let cached = {
        let c = s.model_probe.lock().unwrap_or_else(|p| p.into_inner());
        c.as_ref()
            .filter(|(at, _)| at.elapsed() < PROBE_REUSE)
            .map(|(_, r)| r.clone())
    };
    let probed = match cached {
        Some(r) => r,
        None => {
            let r = assistant
                .llm()
                .probe(PROBE_TIMEOUT)
                .await
                .map_err(|e| e.to_string());
            *s.model_probe.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((std::time::Instant::now(), r.clone()));
            if let Err(e) = &r {
                tracing::warn!(error = %e, "the model's server is not answering");
            }
            r
        }
    };
    match probed {
        Ok(()) => axum::Json(json!({
            "llm": true,
            "ready": true,
            "model": model,
            "message": format!("The assistant ({model}) is ready. Ask a question about the database."),
        }))
        .into_response(),
        Err(e) => {
            axum::Json(json!({
                "llm": true,
                "ready": false,
                "model": model,
                "message": format!("The assistant cannot answer now: {e}. Browsing, the SQL console and the audit view still work."),
            }))
            .into_response()
        }
    }
}

/// The gate every state-changing API request passes (called by the session layer for
/// each `/api/...` request but GET and HEAD, so a new endpoint cannot forget it): no foreign
/// `Origin`, a JSON body for a POST (a DELETE has none: no cross-site form can send one),
/// and for a request carrying the session cookie the CSRF token in `X-CSRF-Token`.
#[allow(
    clippy::result_large_err,
    reason = "the error is the handler's response, returned at once"
)]
pub(crate) fn api_gate(
    method: &axum::http::Method,
    headers: &HeaderMap,
    visitor: &Visitor,
) -> Result<(), Response> {
    same_origin(headers)?;
    if method == axum::http::Method::POST {
        json_only(headers)?;
    }
    if !visitor.api_csrf_ok(headers) {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            "csrf",
            "a request with the session cookie must carry X-CSRF-Token (the page's data-csrf)",
        ));
    }
    Ok(())
}

/// Refuses cross-origin requests.
#[allow(
    clippy::result_large_err,
    reason = "the error is the handler's response, returned at once"
)]
fn same_origin(headers: &HeaderMap) -> Result<(), Response> {
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
    Ok(())
}

/// Refuses non-JSON bodies.
#[allow(
    clippy::result_large_err,
    reason = "the error is the handler's response, returned at once"
)]
fn json_only(headers: &HeaderMap) -> Result<(), Response> {
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

/// What a finished question sends back (JSON body, or the `answer` event's data).
fn answer_json(
    id: &str,
    model: &str,
    answer: &dbward_assistant::agent::Answer,
) -> serde_json::Value {
    json!({
        "conversation": id,
        "model": model,
        "steps": answer.steps,
        "answer": answer.answer,
        "answer_html": crate::markdown::to_html(&answer.answer),
        "flags": answer.flags,
    })
}

/// `POST /api/chat`: a question, in a new conversation or continuing one of the visitor's
/// own (by id; someone else's id is not found, and a new conversation starts).
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
    let Some(assistant) = &s.assistant else {
        return api_error(StatusCode::SERVICE_UNAVAILABLE, "no_llm", crate::NO_LLM);
    };
    let model = assistant.llm().config().model.clone();
    // A conversation id is only looked up among the visitor's own.
    let conversation = req
        .conversation
        .as_deref()
        .and_then(|c| s.conversations.load(&visitor.owner, c))
        .unwrap_or_else(|| Conversation::new(&req.message, &model));
    let id = conversation.id.clone();
    let wants_events = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    // One question at a time per session: a second one waits for the first to finish
    // (each costs model calls and database work, and they would share the history).
    let Some(stop) = s.sessions.start_question(&visitor.key) else {
        return api_error(
            StatusCode::TOO_MANY_REQUESTS,
            "question_running",
            "a question is still running in this session; wait for its answer",
        );
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let state = s.clone();
    let visitor_owner = visitor.owner.clone();
    let question = req.message.clone();
    // The question runs in its own task: a client that goes away does not cut a tool call
    // in half, and the conversation is saved whatever happens.
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
        let mut conversation = conversation;
        let mut history = std::mem::take(&mut conversation.history);
        let before = history.clone();
        // The steps pass through here on their way to the page, so that a stopped question
        // keeps the ones that finished.
        let (inner, mut progress) = tokio::sync::mpsc::unbounded_channel::<Progress>();
        let mut finished: Vec<dbward_assistant::agent::Step> = Vec::new();
        let pass_on = |p: Progress, finished: &mut Vec<_>| {
            if let Progress::Step(step) = &p {
                finished.push(step.clone());
            }
            let _ = tx.send(p);
        };
        // The stop button drops the question where it is (a running tool call ends on the
        // database like any abandoned call); the model's history is left as it was.
        let host = visitor.host();
        let result = {
            let ask = assistant.ask(&question, &mut history, Some(&host), Some(&inner));
            tokio::pin!(ask);
            loop {
                tokio::select! {
                    r = &mut ask => break Some(r),
                    Some(p) = progress.recv() => pass_on(p, &mut finished),
                    () = stop.notified() => break None,
                }
            }
        };
        while let Ok(p) = progress.try_recv() {
            pass_on(p, &mut finished);
        }
        let (turn, outcome) = match result {
            Some(Ok(answer)) => (
                Turn {
                    question: question.clone(),
                    steps: answer
                        .steps
                        .iter()
                        .filter_map(|st| serde_json::to_value(st).ok())
                        .collect(),
                    answer: answer.answer.clone(),
                    error: None,
                    stopped: false,
                },
                Ok(answer),
            ),
            Some(Err(e)) => {
                let e = e.to_string();
                (
                    Turn {
                        question: question.clone(),
                        error: Some(e.clone()),
                        ..Turn::default()
                    },
                    Err(e),
                )
            }
            None => {
                history = before;
                (
                    Turn {
                        question: question.clone(),
                        steps: finished
                            .iter()
                            .filter_map(|st| serde_json::to_value(st).ok())
                            .collect(),
                        error: Some(STOPPED.into()),
                        stopped: true,
                        ..Turn::default()
                    },
                    Err(STOPPED.to_string()),
                )
            }
        };
        conversation.history = history;
        conversation.push(turn);
        if let Err(e) = state.conversations.save(&visitor.owner, &conversation) {
            tracing::warn!(error = %e, "conversation not saved");
        }
        outcome
    });
    if wants_events {
        // `conversation`, then `step` per tool call and `token` per piece of the answer as
        // they happen, then `answer` (the whole answer, and its Markdown as HTML) or `error`.
        let head = tokio_stream::once(Ok::<Event, Infallible>(
            Event::default()
                .event("conversation")
                .data(json!({"conversation": id, "model": model}).to_string()),
        ));
        let progress = tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(|p| match p {
            Progress::Step(step) => Ok(Event::default()
                .event("step")
                .data(serde_json::to_string(&step).unwrap_or_default())),
            Progress::Token(t) => Ok(Event::default()
                .event("token")
                .data(json!({"text": t}).to_string())),
        });
        let tail = tokio_stream::once(task).then(move |joined| {
            let (id, model) = (id.clone(), model.clone());
            async move {
                let event = match joined.await {
                    Ok(Ok(answer)) => Event::default()
                        .event("answer")
                        .data(answer_json(&id, &model, &answer).to_string()),
                    Ok(Err(e)) if e == STOPPED => Event::default()
                        .event("error")
                        .data(json!({"error": "stopped", "message": e}).to_string()),
                    Ok(Err(e)) => Event::default()
                        .event("error")
                        .data(json!({"error": "assistant_error", "message": e}).to_string()),
                    Err(_) => Event::default().event("error").data(
                        json!({"error": "assistant_error", "message": "the question failed"})
                            .to_string(),
                    ),
                };
                Ok(event)
            }
        });
        return Sse::new(head.chain(progress).chain(tail)).into_response();
    }
    drop(rx);
    match task.await {
        Ok(Ok(answer)) => axum::Json(answer_json(&id, &model, &answer)).into_response(),
        Ok(Err(e)) if e == STOPPED => {
            // What finished before the stop is kept in the conversation; say so.
            let steps = s
                .conversations
                .load(&visitor_owner, &id)
                .and_then(|c| c.turns.last().map(|t| t.steps.clone()))
                .unwrap_or_default();
            (
                StatusCode::CONFLICT,
                axum::Json(json!({
                    "error": "stopped",
                    "message": e,
                    "conversation": id,
                    "steps": steps,
                })),
            )
                .into_response()
        }
        Ok(Err(e)) => api_error(StatusCode::BAD_GATEWAY, "assistant_error", &e),
        Err(_) => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "assistant_error",
            "the question failed",
        ),
    }
}

/// What a stopped question says.
const STOPPED: &str = "stopped before the answer";

/// `POST /api/chat/stop`: stops the session's running question.
pub(crate) async fn stop(
    State(s): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
) -> Response {
    axum::Json(json!({"stopped": s.sessions.stop_question(&visitor.key)})).into_response()
}

/// `GET /api/conversations`: the visitor's conversations, most recent first.
pub(crate) async fn conversations(
    State(s): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
) -> Response {
    axum::Json(json!({"conversations": s.conversations.list(&visitor.owner)})).into_response()
}

/// `GET /api/conversations/{id}`: one of the visitor's conversations, each answer with its
/// Markdown rendered (safely) as HTML.
pub(crate) async fn conversation(
    State(s): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let Some(c) = s.conversations.load(&visitor.owner, &id) else {
        return api_error(StatusCode::NOT_FOUND, "not_found", "no such conversation");
    };
    let turns: Vec<serde_json::Value> = c
        .turns
        .iter()
        .map(|t| {
            json!({
                "question": t.question,
                "steps": t.steps,
                "answer": t.answer,
                "answer_html": crate::markdown::to_html(&t.answer),
                "error": t.error,
                "stopped": t.stopped,
            })
        })
        .collect();
    axum::Json(json!({
        "conversation": c.id,
        "title": c.title,
        "model": c.model,
        "turns": turns,
    }))
    .into_response()
}

/// `DELETE /api/conversations/{id}`: deletes one of the visitor's own conversations (an
/// id of someone else's is not found).
pub(crate) async fn delete_conversation(
    State(s): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match s.conversations.delete(&visitor.owner, &id) {
        Ok(true) => axum::Json(json!({"deleted": id})).into_response(),
        Ok(false) => api_error(StatusCode::NOT_FOUND, "not_found", "no such conversation"),
        Err(e) => {
            tracing::warn!(error = %e, "conversation not deleted");
            api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "not_deleted",
                &e.to_string(),
            )
        }
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
