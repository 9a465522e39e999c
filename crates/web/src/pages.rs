//! The server-rendered pages: chat, the SQL console (the policy's verdict, then the run;
//! the script runs it asynchronously through `console_api` when it can) and the audit view,
//! and what every page shares (the frame, results, errors, tool calls as the visitor).
//! Browse lives in `browse`.
//!
//! Invariant: every database value is rendered through askama's HTML escaping (no `|safe`
//! anywhere in the templates), and every read is a tool call on the visitor's behalf
//! (`call_as` with the session label), so the child audits and limits it as that session.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use dbward_policy::Verdict;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::WebState;
use crate::session::Visitor;

/// Most rows the console asks for (the server's own cap may be lower).
const CONSOLE_ROWS: u64 = 1_000;

/// Renders a template, or a plain 500 if it cannot (a bug: our templates always render).
pub(crate) fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// What every page's frame needs.
pub(crate) struct Chrome {
    /// The active tab.
    pub nav: &'static str,
    /// The session's CSRF token, for the forms on the page.
    pub csrf: String,
    /// Whether a logout button is shown (a password is configured).
    pub login: bool,
    /// The response's style nonce (for the console's editor).
    pub style_nonce: String,
    /// The named user or person signed in (empty: none).
    pub user: String,
    /// Who the child counts this session's calls as (`stdio/<label>`, `NAME:SUB`).
    pub principal: String,
}

pub(crate) fn chrome(state: &WebState, visitor: &Visitor, nav: &'static str) -> Chrome {
    Chrome {
        nav,
        csrf: visitor.csrf.clone(),
        login: state.login_configured(),
        user: visitor.signed_in_as(),
        principal: visitor.principal(),
        style_nonce: visitor.style_nonce.clone(),
    }
}

/// A tool error as the pages show it.
pub(crate) struct ErrorView {
    pub code: String,
    pub message: String,
    pub rule: Option<String>,
}

/// One cell: its text, and whether it was NULL.
pub(crate) struct CellView {
    pub text: String,
    pub null: bool,
}

/// Rows as the pages show them.
pub(crate) struct ResultView {
    pub columns: Vec<(String, String)>,
    pub rows: Vec<Vec<CellView>>,
    pub row_count: u64,
    pub truncated: bool,
    pub elapsed_ms: u64,
    /// Shown a page at a time with a pager: the pager, not a truncation notice, says that
    /// more rows exist.
    pub paged: bool,
}

fn cell(v: &Value) -> CellView {
    match v {
        Value::Null => CellView {
            text: "NULL".into(),
            null: true,
        },
        Value::String(s) => CellView {
            text: s.clone(),
            null: false,
        },
        other => CellView {
            text: other.to_string(),
            null: false,
        },
    }
}

pub(crate) fn result_view(s: &Value) -> ResultView {
    let columns = s["columns"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or("").to_string(),
                        c["type"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let rows = s["rows"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    r.as_array()
                        .map(|r| r.iter().map(cell).collect())
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    ResultView {
        columns,
        rows,
        row_count: s["row_count"].as_u64().unwrap_or(0),
        truncated: s["truncated"].as_bool().unwrap_or(false),
        elapsed_ms: s["elapsed_ms"].as_u64().unwrap_or(0),
        paged: false,
    }
}

fn error_view(s: Option<&Value>, text: &str) -> ErrorView {
    let e = s.map(|s| &s["error"]).filter(|e| e.is_object());
    ErrorView {
        code: e
            .and_then(|e| e["code"].as_str())
            .unwrap_or("error")
            .to_string(),
        message: e
            .and_then(|e| e["message"].as_str())
            .unwrap_or(text)
            .to_string(),
        rule: e.and_then(|e| e["rule"].as_str()).map(String::from),
    }
}

/// Calls a tool as the visitor: the structured result, or the error to show.
pub(crate) async fn call(
    state: &WebState,
    visitor: &Visitor,
    tool: &str,
    args: Value,
) -> Result<Value, ErrorView> {
    let Value::Object(map) = args else {
        return Err(ErrorView {
            code: "bad_request".into(),
            message: "arguments must be an object".into(),
            rule: None,
        });
    };
    match state.host.call_as(Some(&visitor.host()), tool, map).await {
        Err(e) => Err(ErrorView {
            code: "unavailable".into(),
            message: e.to_string(),
            rule: None,
        }),
        Ok(out) if out.is_error => Err(error_view(out.structured.as_ref(), &out.text)),
        Ok(out) => Ok(out.structured.unwrap_or(Value::Null)),
    }
}

/// A connection id from a query string: 32 hex characters, else none (the default).
pub(crate) fn connection_arg(c: Option<&str>) -> Option<String> {
    c.filter(|c| c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(String::from)
}

pub(crate) fn with_connection(mut args: Value, connection: &Option<String>) -> Value {
    if let (Some(c), Value::Object(m)) = (connection, &mut args) {
        m.insert("connection_id".into(), Value::String(c.clone()));
    }
    args
}

// ---- chat ----

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage {
    chrome: Chrome,
    llm: bool,
    llm_message: &'static str,
    /// The model's name (empty without one).
    model: String,
    /// The visitor's conversations, most recent first.
    conversations: Vec<crate::conversations::Summary>,
    /// The conversation shown (`?c=ID`), loaded by the script; empty for a new one.
    current: String,
}

#[derive(Deserialize)]
pub(crate) struct ChatQuery {
    #[serde(default)]
    c: String,
}

/// `GET /`: the chat, with the visitor's conversations.
pub(crate) async fn chat(
    State(state): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    Query(q): Query<ChatQuery>,
) -> Response {
    let conversations = state.conversations.list(&visitor.owner);
    let current = if conversations.iter().any(|c| c.id == q.c) {
        q.c
    } else {
        String::new()
    };
    render(&ChatPage {
        chrome: chrome(&state, &visitor, "chat"),
        llm: state.assistant.is_some(),
        llm_message: if state.assistant.is_some() {
            "Ask a question about the database. Each step shows the tool, the SQL, the verdict and the rows."
        } else {
            crate::NO_LLM
        },
        model: state
            .assistant
            .as_ref()
            .map(|a| a.llm().config().model.clone())
            .unwrap_or_default(),
        conversations,
        current,
    })
}

#[derive(Deserialize)]
pub(crate) struct DeleteForm {
    csrf: String,
}

/// `POST /conversations/{id}/delete`: the chat list's delete button (a form with the
/// session's CSRF token); deletes one of the visitor's own conversations.
pub(crate) async fn delete_conversation(
    State(state): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    axum::extract::Path(id): axum::extract::Path<String>,
    Form(form): Form<DeleteForm>,
) -> Response {
    if !visitor.csrf_ok(&form.csrf) {
        return (StatusCode::FORBIDDEN, "CSRF token mismatch").into_response();
    }
    match state.conversations.delete(&visitor.owner, &id) {
        Ok(true) => axum::response::Redirect::to("/").into_response(),
        Ok(false) => (StatusCode::NOT_FOUND, "No such conversation.").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "conversation not deleted");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}

// ---- console ----

struct ReasonView {
    rule: String,
    message: String,
    position: String,
}

struct VerdictView {
    allowed: bool,
    kind: String,
    reasons: Vec<ReasonView>,
    tables: Vec<String>,
    unknown_functions: Vec<String>,
}

fn verdict_view(v: &Verdict) -> VerdictView {
    let value = serde_json::to_value(v).unwrap_or(Value::Null);
    let names = |key: &str| -> Vec<String> {
        value[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| match (t["schema"].as_str(), t["name"].as_str()) {
                (Some(s), Some(n)) => format!("{s}.{n}"),
                (None, Some(n)) => n.to_string(),
                _ => t.to_string(),
            })
            .collect()
    };
    VerdictView {
        allowed: v.is_allowed(),
        kind: value["kind"].as_str().unwrap_or("").to_string(),
        reasons: v
            .reasons
            .iter()
            .map(|r| ReasonView {
                rule: r.rule.id().to_string(),
                message: r.message.clone(),
                position: r.position.map(|p| p.to_string()).unwrap_or_default(),
            })
            .collect(),
        tables: names("tables"),
        unknown_functions: names("unknown_functions"),
    }
}

pub(crate) fn dialect_name(d: dbward_policy::Dialect) -> &'static str {
    match d {
        dbward_policy::Dialect::Postgres => "postgres",
        dbward_policy::Dialect::Mysql => "mysql",
        dbward_policy::Dialect::Sqlite => "sqlite",
    }
}

#[derive(Template)]
#[template(path = "console.html")]
struct ConsolePage {
    chrome: Chrome,
    /// `postgres`, `mysql` or `sqlite`, for the editor's SQL dialect.
    dialect: &'static str,
    query: String,
    verdict: Option<VerdictView>,
    result: Option<ResultView>,
    error: Option<ErrorView>,
    ran: bool,
}

#[derive(Deserialize)]
pub(crate) struct ConsoleQuery {
    #[serde(default)]
    query: String,
}

/// `GET /console`: the console (a `query` in the URL is filled in and checked, not run).
pub(crate) async fn console(
    State(state): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    Query(q): Query<ConsoleQuery>,
) -> Response {
    let verdict = (!q.query.trim().is_empty() && q.query.len() <= crate::api::MAX_QUERY_BYTES)
        .then(|| verdict_view(&state.options.policy.check(state.dialect, &q.query)));
    render(&ConsolePage {
        chrome: chrome(&state, &visitor, "console"),
        dialect: dialect_name(state.dialect),
        query: q.query,
        verdict,
        result: None,
        error: None,
        ran: false,
    })
}

#[derive(Deserialize)]
pub(crate) struct ConsoleForm {
    query: String,
    csrf: String,
    #[serde(default)]
    action: String,
}

/// `POST /console`: `action=check` shows the verdict; `action=run` also runs the query
/// through the child (which checks it again) and shows the rows.
pub(crate) async fn console_post(
    State(state): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    Form(form): Form<ConsoleForm>,
) -> Response {
    if !visitor.csrf_ok(&form.csrf) {
        return (
            StatusCode::FORBIDDEN,
            "The form expired or came from another site; reload the page.",
        )
            .into_response();
    }
    let mut page = ConsolePage {
        chrome: chrome(&state, &visitor, "console"),
        dialect: dialect_name(state.dialect),
        query: form.query.clone(),
        verdict: None,
        result: None,
        error: None,
        ran: false,
    };
    if form.query.len() > crate::api::MAX_QUERY_BYTES {
        page.error = Some(ErrorView {
            code: "too_large".into(),
            message: format!("a query is at most {} bytes", crate::api::MAX_QUERY_BYTES),
            rule: None,
        });
        page.query.truncate(0);
        return render(&page);
    }
    if form.query.trim().is_empty() {
        return render(&page);
    }
    page.verdict = Some(verdict_view(
        &state.options.policy.check(state.dialect, &form.query),
    ));
    if form.action == "run" {
        page.ran = true;
        let mut args = Map::new();
        args.insert("query".into(), Value::String(form.query.clone()));
        args.insert("limit".into(), json!(CONSOLE_ROWS));
        match call(&state, &visitor, "execute_query", Value::Object(args)).await {
            Ok(r) => page.result = Some(result_view(&r)),
            Err(mut e) => {
                // The verdict above already gives the policy's reasons: say them once.
                if e.code == "policy_refused"
                    && let Some(v) = &page.verdict
                    && !v.allowed
                    && e.rule
                        .as_ref()
                        .is_some_and(|r| v.reasons.iter().any(|x| &x.rule == r))
                {
                    e.message = "not run: the policy refused it for the reasons above".into();
                }
                page.error = Some(e);
            }
        }
    }
    render(&page)
}

// ---- audit ----

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Chrome,
    enabled: bool,
    path: String,
    entries: Vec<crate::audit_view::Row>,
    session: String,
    level: String,
    events_only: bool,
    scanned: usize,
    error: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    session: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    events: Option<String>,
}

/// `GET /audit`: recent audit entries and security events, newest first, filtered by
/// session and by event level.
pub(crate) async fn audit(
    State(state): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let filter = crate::audit_view::Filter {
        session: q.session.chars().take(100).collect(),
        level: crate::audit_view::level_rank(&q.level),
        events_only: q.events.is_some(),
    };
    let mut page = AuditPage {
        chrome: chrome(&state, &visitor, "audit"),
        enabled: state.options.audit_path.is_some(),
        path: state
            .options
            .audit_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        entries: Vec::new(),
        session: filter.session.clone(),
        level: q.level.clone(),
        events_only: filter.events_only,
        scanned: 0,
        error: None,
    };
    if let Some(path) = &state.options.audit_path {
        match crate::audit_view::recent(path, &filter).await {
            Ok((rows, scanned)) => {
                page.entries = rows;
                page.scanned = scanned;
            }
            Err(e) => page.error = Some(e),
        }
    }
    render(&page)
}
