//! The browse pages: the connections and a connection's tables, and one table's columns,
//! keys, indexes, statistics (read as people say them) and its rows fifty at a time, with
//! a pager that lands on the rows.
//!
//! Invariant: like every page, values render through askama's escaping, and every read is
//! a tool call as the visitor.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::WebState;
use crate::pages::{
    Chrome, ErrorView, ResultView, call, chrome, connection_arg, render, result_view,
    with_connection,
};
use crate::session::Visitor;

/// Rows per preview page in the table view.
const PAGE_ROWS: u64 = 50;

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
