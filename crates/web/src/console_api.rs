//! The SQL console's JSON API: `POST /api/query` runs a query as the visitor (through the
//! child, which checks it again), `POST /api/query/cancel` cancels the visitor's running
//! query, and `GET /api/catalog` gives the table and column names for the editor's
//! completion.
//!
//! Invariants:
//! - One running query per session. Cancelling drops the tool call, which sends the child
//!   MCP's `notifications/cancelled`; the gateway then ends the work on the database (the
//!   abandoned call's cancel, then terminate) and audits the call as `cancelled`.
//! - The catalog is read with the same tools as the browse view (so the same deny-lists
//!   hold), at most [`CATALOG_TABLES`] tables, and cached for [`CATALOG_TTL`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::WebState;
use crate::session::{Visitor, api_error};

/// Most tables whose columns the catalog describes.
const CATALOG_TABLES: usize = 100;
/// How long a read catalog is reused.
const CATALOG_TTL: Duration = Duration::from_secs(300);
/// Most rows a console run asks for (the server's own cap may be lower).
const CONSOLE_ROWS: u64 = 1_000;

/// The catalog last read, and when.
#[derive(Default)]
pub(crate) struct CatalogCache(std::sync::Mutex<Option<(Instant, Value)>>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryRequest {
    query: String,
}

/// `POST /api/query`: runs the query; `{"result": ...}`, or `{"error", "message", "rule"}`
/// (422 for a refusal or database error, 409 when cancelled).
pub(crate) async fn query(
    State(s): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
    body: axum::body::Bytes,
) -> Response {
    let req: QueryRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("invalid request: {e}"),
            );
        }
    };
    if req.query.len() > crate::api::MAX_QUERY_BYTES || req.query.trim().is_empty() {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            &format!("a query is 1 to {} bytes", crate::api::MAX_QUERY_BYTES),
        );
    }
    let Some(stop) = s.sessions.start_query(&visitor.key) else {
        return api_error(
            StatusCode::TOO_MANY_REQUESTS,
            "query_running",
            "a query is still running in this session; cancel it or wait",
        );
    };
    struct Done<'a>(&'a WebState, &'a str);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.sessions.end_query(self.1);
        }
    }
    let _done = Done(s.as_ref(), &visitor.key);
    let mut args = Map::new();
    args.insert("query".into(), Value::String(req.query));
    args.insert("limit".into(), json!(CONSOLE_ROWS));
    let host = visitor.host();
    let call = s.host.call_as(Some(&host), "execute_query", args);
    // Dropping the call (on cancel) cancels it in the child, which cancels it on the
    // database.
    tokio::select! {
        out = call => match out {
            Err(e) => api_error(StatusCode::BAD_GATEWAY, "unavailable", &e.to_string()),
            Ok(out) if out.is_error => {
                let e = out.structured.as_ref().map(|v| &v["error"]);
                let text = |k: &str| e.and_then(|e| e[k].as_str()).map(String::from);
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({
                        "error": text("code").unwrap_or_else(|| "error".into()),
                        "message": text("message").unwrap_or(out.text),
                        "rule": text("rule"),
                    })),
                )
                    .into_response()
            }
            Ok(out) => axum::Json(json!({"result": out.structured.unwrap_or(Value::Null)}))
                .into_response(),
        },
        () = stop.notified() => api_error(
            StatusCode::CONFLICT,
            "cancelled",
            "cancelled: the query was stopped on the database",
        ),
    }
}

/// `POST /api/query/cancel`: cancels the session's running query.
pub(crate) async fn cancel(
    State(s): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
) -> Response {
    axum::Json(json!({"cancelled": s.sessions.stop_query(&visitor.key)})).into_response()
}

/// `GET /api/catalog`: `{"dialect", "tables": {"name": ["column", ...]}}` for completion
/// (tables outside the default schema as `schema.name`).
pub(crate) async fn catalog(
    State(s): State<Arc<WebState>>,
    axum::Extension(visitor): axum::Extension<Visitor>,
) -> Response {
    let fresh = {
        let cache = s.catalog.0.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .as_ref()
            .filter(|(at, _)| at.elapsed() < CATALOG_TTL)
            .map(|(_, v)| v.clone())
    };
    if let Some(v) = fresh {
        return axum::Json(v).into_response();
    }
    let listed = match s
        .host
        .call_as(Some(&visitor.host()), "list_tables", Map::new())
        .await
    {
        Ok(out) if !out.is_error => out.structured.unwrap_or(Value::Null),
        _ => {
            return api_error(
                StatusCode::BAD_GATEWAY,
                "unavailable",
                "the catalog could not be read",
            );
        }
    };
    let default_schemas = ["public", "main", ""];
    let mut tables = Map::new();
    for t in listed["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .take(CATALOG_TABLES)
    {
        let (Some(schema), Some(name)) = (t["schema"].as_str(), t["name"].as_str()) else {
            continue;
        };
        let mut args = Map::new();
        args.insert("table".into(), json!(name));
        if !schema.is_empty() {
            args.insert("schema".into(), json!(schema));
        }
        let columns: Vec<Value> = match s
            .host
            .call_as(Some(&visitor.host()), "describe_table", args)
            .await
        {
            Ok(out) if !out.is_error => out
                .structured
                .as_ref()
                .and_then(|d| d["columns"].as_array())
                .map(|cs| {
                    cs.iter()
                        .filter_map(|c| c["name"].as_str())
                        .map(|n| json!(n))
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        let key = if default_schemas.contains(&schema) {
            name.to_string()
        } else {
            format!("{schema}.{name}")
        };
        tables.insert(key, Value::Array(columns));
    }
    let v = json!({"dialect": crate::pages::dialect_name(s.dialect), "tables": tables});
    *s.catalog.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), v.clone()));
    axum::Json(v).into_response()
}
