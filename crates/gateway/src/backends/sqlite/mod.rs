//! SQLite through rusqlite (bundled). Opened read-only (`SQLITE_OPEN_READ_ONLY`, so the file
//! cannot be written even by a statement the policy missed), with `PRAGMA query_only`, an
//! authorizer that permits only reads, SELECT, recursive CTEs and functions outside a deny
//! list, and a progress handler that ends queries past their deadline.
//!
//! Connections are pooled (r2d2): opening one re-reads the schema, which cost more than the
//! query itself in a point-query benchmark. Nothing a caller can do carries over to the
//! next: the file is opened read-only with `query_only` on, the authorizer refuses every
//! action but reads (no PRAGMA, ATTACH, temporary objects or settings), and each checkout
//! installs the hooks it needs and removes the others (see [`Checkout`]).
//!
//! Invariant: user queries run only on connections with the authorizer installed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::OpenFlags;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use serde_json::Value;

use super::{Caps, Column, ColumnInfo, ForeignKey, QueryResult, TableDescription, TableInfo};
use crate::config::Limits;
use crate::error::GatewayError;

/// Functions the authorizer refuses whatever the policy said.
const DENIED_FUNCTIONS: &[&str] = &["load_extension", "readfile", "writefile", "edit", "fsdir"];

/// An SQLite database file and a pool of read-only connections to it.
#[derive(Clone)]
pub struct SqliteBackend {
    pool: r2d2::Pool<SqliteConnectionManager>,
    /// The SQLite library version.
    pub server_version: String,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("server_version", &self.server_version)
            .finish_non_exhaustive()
    }
}

/// What a pooled connection is checked out for; each sets the hooks it needs.
enum Checkout {
    /// Our own catalog queries: no authorizer (they read `pragma_*` functions), and a
    /// deadline only when given (a row count can take long on a big table).
    Catalog { deadline: Option<Instant> },
    /// A client's query: the authorizer, and a progress handler that ends it at its
    /// deadline or when the call is abandoned.
    Query {
        deadline: Instant,
        abandoned: Arc<AtomicBool>,
    },
}

fn classify(e: rusqlite::Error) -> GatewayError {
    let msg = e.to_string();
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            rusqlite::ErrorCode::OperationInterrupted => GatewayError::Timeout(0),
            rusqlite::ErrorCode::AuthorizationForStatementDenied => {
                GatewayError::PermissionDenied(msg)
            }
            rusqlite::ErrorCode::ReadOnly => GatewayError::ReadOnlyViolation(msg),
            rusqlite::ErrorCode::CannotOpen => GatewayError::ConnectionUnavailable(msg),
            _ if msg.contains("no such table") => GatewayError::UnknownTable(msg),
            _ if msg.contains("syntax error") => GatewayError::Syntax(msg),
            _ => GatewayError::Database(msg),
        },
        rusqlite::Error::MultipleStatement => {
            GatewayError::InvalidInput("more than one statement".into())
        }
        _ => GatewayError::Database(msg),
    }
}

/// Read-only opens of `path`, with `query_only` set before first use.
fn manager(path: &Path) -> SqliteConnectionManager {
    SqliteConnectionManager::file(path)
        .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_init(|c| c.pragma_update(None, "query_only", true))
}

/// The pool over `manager`; connections are opened as calls need them.
fn pool(
    manager: SqliteConnectionManager,
    limits: &Limits,
) -> Result<r2d2::Pool<SqliteConnectionManager>, GatewayError> {
    // The pools' housekeeping (idle expiry) shares one thread.
    static HOUSEKEEPING: std::sync::OnceLock<Arc<scheduled_thread_pool::ScheduledThreadPool>> =
        std::sync::OnceLock::new();
    let housekeeping = HOUSEKEEPING
        .get_or_init(|| {
            Arc::new(
                scheduled_thread_pool::ScheduledThreadPool::builder()
                    .num_threads(1)
                    .thread_name_pattern("dbward-sqlite-pool")
                    .build(),
            )
        })
        .clone();
    // r2d2 refuses zero durations.
    r2d2::Pool::builder()
        .max_size(limits.pool_max_size.max(1))
        .min_idle(Some(0))
        .idle_timeout(
            (limits.idle_timeout_s > 0).then(|| Duration::from_secs(limits.idle_timeout_s)),
        )
        .connection_timeout(Duration::from_millis(limits.acquire_timeout_ms.max(1)))
        // A read-only local file does not go stale the way a network session does.
        .test_on_check_out(false)
        .thread_pool(housekeeping)
        .build(manager)
        .map_err(|e| GatewayError::Internal(format!("cannot build the SQLite pool: {e}")))
}

/// A pooled connection with the hooks `purpose` needs installed, and no others.
fn checkout(
    pool: &r2d2::Pool<SqliteConnectionManager>,
    purpose: Checkout,
) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, GatewayError> {
    let conn = pool.get().map_err(|e| {
        GatewayError::ConnectionUnavailable(format!("no SQLite connection became free: {e}"))
    })?;
    match purpose {
        Checkout::Catalog { deadline } => {
            conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>)
                .map_err(classify)?;
            match deadline {
                Some(deadline) => {
                    conn.progress_handler(1_000, Some(move || Instant::now() > deadline))
                }
                None => conn.progress_handler(0, None::<fn() -> bool>),
            }
            .map_err(classify)?;
        }
        Checkout::Query {
            deadline,
            abandoned,
        } => {
            conn.authorizer(Some(authorize)).map_err(classify)?;
            conn.progress_handler(
                1_000,
                Some(move || abandoned.load(Ordering::Relaxed) || Instant::now() > deadline),
            )
            .map_err(classify)?;
        }
    }
    Ok(conn)
}

fn authorize(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Select | AuthAction::Read { .. } | AuthAction::Recursive => {
            Authorization::Allow
        }
        AuthAction::Function { function_name } => {
            if DENIED_FUNCTIONS
                .iter()
                .any(|d| d.eq_ignore_ascii_case(function_name))
            {
                Authorization::Deny
            } else {
                Authorization::Allow
            }
        }
        _ => Authorization::Deny,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GatewayError> + Send + 'static,
) -> Result<T, GatewayError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| GatewayError::Internal(format!("the SQLite worker failed: {e}")))?
}

impl SqliteBackend {
    /// Checks that the file exists and opens read-only.
    pub async fn connect(path: &Path, limits: &Limits) -> Result<SqliteBackend, GatewayError> {
        if !path.is_file() {
            return Err(GatewayError::ConnectionUnavailable(
                "the SQLite database file does not exist".into(),
            ));
        }
        let manager = manager(path);
        // One open now, so an unreadable file fails at once with a clear error (a pool
        // would retry until its acquire timeout).
        let (manager, version) = blocking(move || {
            let conn = r2d2::ManageConnection::connect(&manager).map_err(|e| {
                GatewayError::ConnectionUnavailable(format!("cannot open the database file: {e}"))
            })?;
            let version = conn
                .query_row("SELECT sqlite_version()", [], |r| r.get::<_, String>(0))
                .map_err(classify)?;
            Ok((manager, version))
        })
        .await?;
        let pool = pool(manager, limits)?;
        Ok(SqliteBackend {
            pool,
            server_version: format!("SQLite {version}"),
        })
    }

    /// Pooled connections and idle ones, for metrics.
    pub fn pool_stats(&self) -> (u32, usize) {
        let state = self.pool.state();
        (state.connections, state.idle_connections as usize)
    }

    /// Runs a policy-approved query under the caps.
    pub async fn execute(
        &self,
        sql: &str,
        params: &[Value],
        caps: Caps,
    ) -> Result<QueryResult, GatewayError> {
        let pool = self.pool.clone();
        let sql = sql.to_string();
        let params = params.to_vec();
        // If this call is dropped (the client cancelled it), the flag ends the statement at
        // the progress handler's next tick instead of letting it run to its deadline.
        let mut abandon = AbandonOnDrop {
            flag: Arc::new(AtomicBool::new(false)),
            armed: true,
        };
        let flag = abandon.flag.clone();
        let r = blocking(move || run(&pool, &sql, &params, caps, flag)).await;
        abandon.armed = false;
        r
    }

    /// Tables and views.
    pub async fn list_tables(&self, max: usize) -> Result<Vec<TableInfo>, GatewayError> {
        let pool = self.pool.clone();
        blocking(move || {
            let conn = checkout(&pool, Checkout::Catalog { deadline: None })?;
            let mut stmt = conn
                .prepare(
                    "SELECT name, type FROM sqlite_schema WHERE type IN ('table','view') \
                     AND name NOT LIKE 'sqlite_%' ORDER BY name LIMIT ?1",
                )
                .map_err(classify)?;
            let rows = stmt
                .query_map([max as i64], |r| {
                    Ok(TableInfo {
                        schema: "main".into(),
                        name: r.get(0)?,
                        kind: r.get(1)?,
                    })
                })
                .map_err(classify)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(classify)
        })
        .await
    }

    /// Columns, keys and indexes of one table (names checked against the catalog).
    pub async fn describe_table(&self, table: &str) -> Result<TableDescription, GatewayError> {
        let pool = self.pool.clone();
        let table = table.to_string();
        blocking(move || {
            let conn = checkout(&pool, Checkout::Catalog { deadline: None })?;
            let exists: Option<String> = conn
                .query_row(
                    "SELECT name FROM sqlite_schema WHERE type IN ('table','view') AND name = ?1",
                    [&table],
                    |r| r.get(0),
                )
                .ok();
            let Some(name) = exists else {
                return Err(GatewayError::UnknownTable(table));
            };
            let mut stmt = conn
                .prepare("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid")
                .map_err(classify)?;
            let mut pk: Vec<(i64, String)> = Vec::new();
            let mut columns = Vec::new();
            let rows = stmt
                .query_map([&name], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .map_err(classify)?;
            for row in rows {
                let (col, ty, notnull, default, pkpos) = row.map_err(classify)?;
                if pkpos > 0 {
                    pk.push((pkpos, col.clone()));
                }
                columns.push(ColumnInfo {
                    name: col,
                    type_name: ty,
                    nullable: notnull == 0,
                    default,
                    comment: None,
                });
            }
            pk.sort();
            let mut stmt = conn
                .prepare("SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list(?1)")
                .map_err(classify)?;
            let foreign_keys = stmt
                .query_map([&name], |r| {
                    Ok(ForeignKey {
                        column: r.get(0)?,
                        references_table: r.get(1)?,
                        references_column: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    })
                })
                .map_err(classify)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(classify)?;
            let mut stmt = conn
                .prepare("SELECT coalesce(sql, name) FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?1 ORDER BY name")
                .map_err(classify)?;
            let indexes = stmt
                .query_map([&name], |r| r.get(0))
                .map_err(classify)?
                .collect::<Result<Vec<String>, _>>()
                .map_err(classify)?;
            Ok(TableDescription {
                schema: "main".into(),
                name,
                columns,
                primary_key: pk.into_iter().map(|p| p.1).collect(),
                foreign_keys,
                indexes,
                comment: None,
            })
        })
        .await
    }
}

impl SqliteBackend {
    /// Tables and columns whose names match a LIKE pattern (escaped with `\`).
    pub async fn search(
        &self,
        pattern: &str,
        max: usize,
    ) -> Result<Vec<crate::tools::search_tables::SearchMatch>, GatewayError> {
        let pool = self.pool.clone();
        let pattern = pattern.to_string();
        blocking(move || {
            let conn = checkout(&pool, Checkout::Catalog { deadline: None })?;
            let mut stmt = conn
                .prepare(
                    "SELECT * FROM ( \
                       SELECT m.name AS t, NULL AS c, NULL AS ty FROM sqlite_schema m \
                       WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%' AND m.name LIKE ?1 ESCAPE '\\' \
                       UNION ALL \
                       SELECT m.name, p.name, p.type FROM sqlite_schema m JOIN pragma_table_info(m.name) p \
                       WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%' AND p.name LIKE ?1 ESCAPE '\\' \
                     ) ORDER BY t, c NULLS FIRST LIMIT ?2",
                )
                .map_err(classify)?;
            let rows = stmt
                .query_map(rusqlite::params![pattern, max as i64], |r| {
                    Ok(crate::tools::search_tables::SearchMatch {
                        schema: "main".into(),
                        table: r.get(0)?,
                        column: r.get(1)?,
                        column_type: r.get(2)?,
                    })
                })
                .map_err(classify)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(classify)
        })
        .await
    }

    /// An exact row count (SQLite keeps no estimate), under the timeout, and the indexes.
    pub async fn table_stats(
        &self,
        table: &str,
        timeout_ms: u64,
    ) -> Result<crate::tools::table_stats::TableStats, GatewayError> {
        use crate::tools::table_stats::{IndexStats, TableStats};
        let pool = self.pool.clone();
        let table = table.to_string();
        blocking(move || {
            let deadline = Instant::now() + Duration::from_millis(timeout_ms);
            let conn = checkout(
                &pool,
                Checkout::Catalog {
                    deadline: Some(deadline),
                },
            )?;
            // `table` was resolved in the catalog by the caller; quoted all the same.
            let count: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM \"{}\"", table.replace('"', "\"\"")),
                    [],
                    |r| r.get(0),
                )
                .map_err(classify)?;
            let mut stmt = conn
                .prepare("SELECT name, coalesce(sql, '') FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?1 ORDER BY name")
                .map_err(classify)?;
            let indexes = stmt
                .query_map([&table], |r| {
                    Ok(IndexStats {
                        name: r.get(0)?,
                        size_bytes: None,
                        definition: r.get(1)?,
                    })
                })
                .map_err(classify)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(classify)?;
            Ok(TableStats {
                schema: "main".into(),
                table,
                row_estimate: count,
                exact: true,
                table_bytes: None,
                total_bytes: None,
                columns: Vec::new(),
                indexes,
            })
        })
        .await
    }
}

/// Sets its flag when dropped while armed: the call was abandoned mid-run.
struct AbandonOnDrop {
    flag: Arc<AtomicBool>,
    armed: bool,
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.flag.store(true, Ordering::Relaxed);
        }
    }
}

fn run(
    pool: &r2d2::Pool<SqliteConnectionManager>,
    sql: &str,
    params: &[Value],
    caps: Caps,
    abandoned: Arc<AtomicBool>,
) -> Result<QueryResult, GatewayError> {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(caps.timeout_ms);
    let conn = checkout(
        pool,
        Checkout::Query {
            deadline,
            abandoned,
        },
    )?;
    let mut stmt = conn.prepare(sql).map_err(classify)?;
    if !stmt.readonly() {
        return Err(GatewayError::ReadOnlyViolation(
            "SQLite reports the statement would write".into(),
        ));
    }
    let columns: Vec<Column> = stmt
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            type_name: c.decl_type().unwrap_or("").to_ascii_lowercase(),
        })
        .collect();
    let bound: Vec<rusqlite::types::Value> = params.iter().map(json_to_sqlite).collect();
    let mut rows_iter = stmt
        .query(rusqlite::params_from_iter(bound.iter()))
        .map_err(|e| timeout_or(e, caps))?;
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut truncated = false;
    while let Some(row) = rows_iter.next().map_err(|e| timeout_or(e, caps))? {
        if rows.len() == caps.max_rows {
            truncated = true;
            break;
        }
        let mut out = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            let v = match row.get_ref(i).map_err(classify)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => {
                    bytes += 8;
                    Value::from(n)
                }
                ValueRef::Real(f) => {
                    bytes += 8;
                    serde_json::Number::from_f64(f)
                        .map(Value::Number)
                        .unwrap_or(Value::Null)
                }
                ValueRef::Text(t) => {
                    bytes += t.len();
                    Value::String(String::from_utf8_lossy(t).into_owned())
                }
                ValueRef::Blob(b) => {
                    bytes += b.len();
                    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
                }
            };
            out.push(v);
        }
        if bytes > caps.max_bytes {
            truncated = true;
            break;
        }
        rows.push(out);
    }
    Ok(QueryResult {
        row_count: rows.len(),
        columns,
        rows,
        truncated,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

fn timeout_or(e: rusqlite::Error, caps: Caps) -> GatewayError {
    match classify(e) {
        GatewayError::Timeout(_) => GatewayError::Timeout(caps.timeout_ms),
        other => other,
    }
}

fn json_to_sqlite(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match v {
        Value::Null => S::Null,
        Value::Bool(b) => S::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => S::Integer(i),
            None => S::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => S::Text(s.clone()),
        other => S::Text(other.to_string()),
    }
}
