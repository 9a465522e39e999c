//! The server-rendered pages: chat, browse (connections, tables, a table's columns, keys,
//! indexes, stats and a paginated preview), the SQL console (the policy's verdict, then the
//! run, with the truncation notice and CSV export of the shown rows) and the audit view.
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

/// Rows per preview page in the table view.
const PAGE_ROWS: u64 = 50;
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
    /// The session's public label.
    pub label: String,
    /// The response's style nonce (for the console's editor).
    pub style_nonce: String,
    /// The named user signed in (empty: none).
    pub user: String,
}

fn chrome(state: &WebState, visitor: &Visitor, nav: &'static str) -> Chrome {
    Chrome {
        nav,
        csrf: visitor.csrf.clone(),
        login: state.login_configured(),
        user: visitor.user.clone().unwrap_or_default(),
        label: visitor.label.clone(),
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

fn result_view(s: &Value) -> ResultView {
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
async fn call(
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
    match state.host.call_as(Some(&visitor.label), tool, map).await {
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
fn connection_arg(c: Option<&str>) -> Option<String> {
    c.filter(|c| c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(String::from)
}

fn with_connection(mut args: Value, connection: &Option<String>) -> Value {
    if let (Some(c), Value::Object(m)) = (connection, &mut args) {
        m.insert("connection_id".into(), Value::String(c.clone()));
    }
    args
}

// ---- chat ----

#[cfg(test)]
mod tests {
    #[test]
    fn statistics_read_as_people_say_them() {
        use super::{distinct_text, grouped, null_text};
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(999), "999");
        assert_eq!(distinct_text(-1.0, Some(1200)), "unique");
        assert_eq!(distinct_text(-0.5, Some(1200)), "≈ 600 (50% of rows)");
        assert_eq!(distinct_text(-0.25, None), "25% of rows");
        assert_eq!(distinct_text(3.0, Some(1200)), "3");
        assert_eq!(null_text(0.0), "none");
        assert_eq!(null_text(0.001), "<1%");
        assert_eq!(null_text(0.25), "25%");
    }
}

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

// ---- browse ----

struct ConnectionView {
    id: String,
    name: String,
    kind: String,
    target: String,
    version: String,
    role: String,
    role_can_write: bool,
    selected: bool,
}

struct TableRowView {
    schema: String,
    name: String,
    kind: String,
}

#[derive(Template)]
#[template(path = "browse.html")]
struct BrowsePage {
    chrome: Chrome,
    connections: Vec<ConnectionView>,
    connection: String,
    tables: Vec<TableRowView>,
    error: Option<ErrorView>,
}

#[derive(Deserialize)]
pub(crate) struct BrowseQuery {
    connection: Option<String>,
}

/// `GET /browse`: the connections and the tables of one.
pub(crate) async fn browse(
    State(state): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    Query(q): Query<BrowseQuery>,
) -> Response {
    let mut error = None;
    let mut connections = Vec::new();
    let selected = connection_arg(q.connection.as_deref());
    match call(&state, &visitor, "list_connections", json!({})).await {
        Ok(s) => {
            let default = s["default_connection_id"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let chosen = selected.clone().unwrap_or(default);
            for c in s["connections"].as_array().into_iter().flatten() {
                let id = c["id"].as_str().unwrap_or("").to_string();
                connections.push(ConnectionView {
                    selected: id == chosen,
                    name: c["name"].as_str().unwrap_or("(unnamed)").to_string(),
                    kind: c["type"].as_str().unwrap_or("").to_string(),
                    target: c["target"].as_str().unwrap_or("").to_string(),
                    version: c["server_version"].as_str().unwrap_or("").to_string(),
                    role: c["role"].as_str().unwrap_or("").to_string(),
                    role_can_write: c["role_can_write"].as_bool().unwrap_or(false),
                    id,
                });
            }
        }
        Err(e) => error = Some(e),
    }
    let mut tables = Vec::new();
    if error.is_none() {
        match call(
            &state,
            &visitor,
            "list_tables",
            with_connection(json!({}), &selected),
        )
        .await
        {
            Ok(s) => {
                for t in s["tables"].as_array().into_iter().flatten() {
                    tables.push(TableRowView {
                        schema: t["schema"].as_str().unwrap_or("").to_string(),
                        name: t["name"].as_str().unwrap_or("").to_string(),
                        kind: t["kind"].as_str().unwrap_or("").to_string(),
                    });
                }
            }
            Err(e) => error = Some(e),
        }
    }
    render(&BrowsePage {
        chrome: chrome(&state, &visitor, "browse"),
        connections,
        connection: selected.unwrap_or_default(),
        tables,
        error,
    })
}

struct ColumnView {
    name: String,
    type_name: String,
    nullable: bool,
    default: String,
    comment: String,
    primary: bool,
    null_fraction: String,
    distinct: String,
}

struct ForeignKeyView {
    column: String,
    table: String,
    references: String,
}

struct IndexView {
    name: String,
    definition: String,
    size: String,
}

#[derive(Template)]
#[template(path = "table.html")]
struct TablePage {
    chrome: Chrome,
    connection: String,
    schema: String,
    table: String,
    comment: String,
    columns: Vec<ColumnView>,
    foreign_keys: Vec<ForeignKeyView>,
    indexes: Vec<IndexView>,
    row_estimate: String,
    total_size: String,
    preview: Option<ResultView>,
    page: u64,
    first_row: u64,
    /// The last row on this page (1-based).
    last_row: u64,
    /// "1,000" or "about 1,200" (empty when unknown).
    total: String,
    /// The last page, when the row count is exact.
    last_page: Option<u64>,
    has_next: bool,
    error: Option<ErrorView>,
}

#[derive(Deserialize)]
pub(crate) struct TableQuery {
    connection: Option<String>,
    schema: Option<String>,
    table: String,
    #[serde(default)]
    page: u64,
}

fn human_bytes(n: Option<i64>) -> String {
    match n {
        None => String::new(),
        Some(b) if b < 1024 => format!("{b} B"),
        Some(b) if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        Some(b) => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// `1234567` -> `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A column's NULL fraction as the page shows it.
fn null_text(f: f64) -> String {
    if f <= 0.0 {
        "none".into()
    } else if f < 0.005 {
        "<1%".into()
    } else {
        format!("{:.0}%", f * 100.0)
    }
}

/// A distinct-values estimate as the page shows it. PostgreSQL's negative `n_distinct` is
/// a fraction of the rows: -1 means every value differs (unique).
fn distinct_text(d: f64, rows: Option<i64>) -> String {
    if d <= -0.999 {
        "unique".into()
    } else if d < 0.0 {
        match rows.filter(|r| *r > 0) {
            Some(r) => format!(
                "≈ {} ({:.0}% of rows)",
                grouped((-d * r as f64).round() as u64),
                -d * 100.0
            ),
            None => format!("{:.0}% of rows", -d * 100.0),
        }
    } else {
        grouped(d.round() as u64)
    }
}

/// `GET /browse/table`: a table's columns, keys, indexes, stats and a page of rows.
pub(crate) async fn table(
    State(state): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    Query(q): Query<TableQuery>,
) -> Response {
    let connection = connection_arg(q.connection.as_deref());
    let page = q.page.min(1_000_000);
    let mut target = json!({ "table": q.table });
    if let Some(s) = q.schema.as_ref().filter(|s| !s.is_empty()) {
        target["schema"] = json!(s);
    }
    let target = with_connection(target, &connection);
    let mut out = TablePage {
        chrome: chrome(&state, &visitor, "browse"),
        connection: connection.clone().unwrap_or_default(),
        schema: q.schema.clone().unwrap_or_default(),
        table: q.table.clone(),
        comment: String::new(),
        columns: Vec::new(),
        foreign_keys: Vec::new(),
        indexes: Vec::new(),
        row_estimate: String::new(),
        total_size: String::new(),
        preview: None,
        page,
        first_row: page * PAGE_ROWS + 1,
        last_row: 0,
        total: String::new(),
        last_page: None,
        has_next: false,
        error: None,
    };
    let described = call(&state, &visitor, "describe_table", target.clone()).await;
    let d = match described {
        Ok(d) => d,
        Err(e) => {
            out.error = Some(e);
            let mut r = render(&out);
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        }
    };
    out.schema = d["schema"].as_str().unwrap_or("").to_string();
    out.comment = d["comment"].as_str().unwrap_or("").to_string();
    let pk: Vec<&str> = d["primary_key"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let stats = call(&state, &visitor, "get_table_stats", target.clone())
        .await
        .unwrap_or(Value::Null);
    for c in d["columns"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("").to_string();
        let st = stats["columns"]
            .as_array()
            .and_then(|cs| cs.iter().find(|s| s["column"].as_str() == Some(&name)));
        out.columns.push(ColumnView {
            primary: pk.contains(&name.as_str()),
            type_name: c["type"].as_str().unwrap_or("").to_string(),
            nullable: c["nullable"].as_bool().unwrap_or(true),
            default: c["default"].as_str().unwrap_or("").to_string(),
            comment: c["comment"].as_str().unwrap_or("").to_string(),
            null_fraction: st
                .and_then(|s| s["null_fraction"].as_f64())
                .map(null_text)
                .unwrap_or_default(),
            distinct: st
                .and_then(|s| s["distinct_estimate"].as_f64())
                .map(|d| distinct_text(d, stats["row_estimate"].as_i64()))
                .unwrap_or_default(),
            name,
        });
    }
    for fk in d["foreign_keys"].as_array().into_iter().flatten() {
        out.foreign_keys.push(ForeignKeyView {
            column: fk["column"].as_str().unwrap_or("").to_string(),
            table: fk["references_table"].as_str().unwrap_or("").to_string(),
            references: fk["references_column"].as_str().unwrap_or("").to_string(),
        });
    }
    let stat_indexes: Vec<&Value> = stats["indexes"].as_array().into_iter().flatten().collect();
    if stat_indexes.is_empty() {
        for i in d["indexes"].as_array().into_iter().flatten() {
            out.indexes.push(IndexView {
                name: i.as_str().unwrap_or("").to_string(),
                definition: String::new(),
                size: String::new(),
            });
        }
    } else {
        for i in stat_indexes {
            out.indexes.push(IndexView {
                name: i["name"].as_str().unwrap_or("").to_string(),
                definition: i["definition"].as_str().unwrap_or("").to_string(),
                size: human_bytes(i["size_bytes"].as_i64()),
            });
        }
    }
    if let Some(n) = stats["row_estimate"].as_i64().filter(|n| *n >= 0) {
        let n = n as u64;
        let exact = stats["exact"].as_bool().unwrap_or(false);
        out.row_estimate = if exact {
            format!("{} rows", grouped(n))
        } else {
            format!("about {} rows", grouped(n))
        };
        out.total = if exact {
            grouped(n)
        } else {
            format!("about {}", grouped(n))
        };
        if exact {
            out.last_page = Some(n.saturating_sub(1) / PAGE_ROWS);
        }
    }
    out.total_size = human_bytes(stats["total_bytes"].as_i64());
    let mut read = target;
    read["limit"] = json!(PAGE_ROWS);
    read["offset"] = json!(page * PAGE_ROWS);
    match call(&state, &visitor, "read_table", read).await {
        Ok(r) => {
            let mut view = result_view(&r);
            view.paged = true;
            out.has_next = view.truncated;
            out.last_row = out.first_row + view.rows.len() as u64 - 1;
            if out.last_page.is_some_and(|l| l <= page) {
                out.last_page = None;
            }
            out.preview = Some(view);
        }
        Err(e) => out.error = Some(e),
    }
    render(&out)
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
