//! Opening dbward's SQLite connections and checking them out: read-only flags, `query_only`,
//! the length limits that bound every value and every step, and the hooks each checkout
//! installs (see [`Checkout`]).
//!
//! Invariants:
//! - Every connection has `SQLITE_LIMIT_LENGTH` set to [`length_limit`] of the byte cap and
//!   `SQLITE_LIMIT_LIKE_PATTERN_LENGTH` to [`LIKE_PATTERN_BYTES`] before its first use, and
//!   the quadratic builtins replaced by linear ones ([`super::functions`]).
//! - A query checkout always has the authorizer; a catalog checkout never does.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::OpenFlags;
use rusqlite::hooks::{AuthContext, Authorization};
use rusqlite::limits::Limit;

use super::authorizer::ReadRules;
use crate::config::Limits;
use crate::error::GatewayError;

/// Longest LIKE or GLOB pattern, in bytes. Matching costs up to (value length x pattern
/// length) inside one VDBE step, which neither the progress handler nor an interrupt can
/// stop; with values bounded by [`length_limit`] this bounds the step.
pub(super) const LIKE_PATTERN_BYTES: i32 = 100;

/// Largest string or blob SQLite may build or read on dbward's connections: the byte cap
/// (a value over it could not be returned anyway), at least 64 KiB and at most 16 MiB (the
/// ceiling keeps the worst single step short when the cap is configured very large).
pub fn length_limit(max_bytes: usize) -> i32 {
    max_bytes.clamp(64 << 10, 16 << 20) as i32
}

pub(super) fn classify(e: rusqlite::Error) -> GatewayError {
    let msg = e.to_string();
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            rusqlite::ErrorCode::OperationInterrupted => GatewayError::Timeout(0),
            rusqlite::ErrorCode::AuthorizationForStatementDenied => {
                GatewayError::PermissionDenied(msg)
            }
            rusqlite::ErrorCode::ReadOnly => GatewayError::ReadOnlyViolation(msg),
            rusqlite::ErrorCode::CannotOpen => GatewayError::ConnectionUnavailable(msg),
            rusqlite::ErrorCode::TooBig => GatewayError::Database(format!(
                "{msg}: dbward's SQLite connections build and read no value larger than the byte cap"
            )),
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

/// Read-only opens of `path`, with `query_only`, the limits and the linear builtins set
/// before first use.
pub(super) fn manager(path: &Path, limits: &Limits) -> SqliteConnectionManager {
    let length = length_limit(limits.max_bytes);
    SqliteConnectionManager::file(path)
        .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .with_init(move |c| {
            c.pragma_update(None, "query_only", true)?;
            c.set_limit(Limit::SQLITE_LIMIT_LENGTH, length)?;
            c.set_limit(Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH, LIKE_PATTERN_BYTES)?;
            // dbward's queries are at most tens of kilobytes; nothing is ever attached;
            // a sort uses the calling thread only.
            c.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, 256 << 10)?;
            c.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
            c.set_limit(Limit::SQLITE_LIMIT_WORKER_THREADS, 0)?;
            super::functions::install(c, length)
        })
}

/// The pool over `manager`; connections are opened as calls need them.
pub(super) fn pool(
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

/// What a pooled connection is checked out for; each sets the hooks it needs.
pub(super) enum Checkout {
    /// Our own catalog queries: no authorizer (they read `pragma_*` functions), and a
    /// progress handler that ends them at the deadline or when the call is abandoned.
    Catalog {
        deadline: Instant,
        abandoned: Arc<AtomicBool>,
    },
    /// A client's query: the authorizer with the read rules, and a progress handler that
    /// ends it at its deadline or when the call is abandoned.
    Query {
        deadline: Instant,
        abandoned: Arc<AtomicBool>,
        rules: Arc<ReadRules>,
    },
}

/// The least a checkout waits for a connection being opened for it.
const OPEN_AT_LEAST: Duration = Duration::from_secs(1);

/// A pooled connection with the hooks `purpose` needs installed, and no others.
pub(super) fn checkout(
    pool: &r2d2::Pool<SqliteConnectionManager>,
    purpose: Checkout,
) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, GatewayError> {
    // The acquire timeout bounds the wait for a busy connection. When none is idle and
    // the pool has room, the wait is for one to be opened (on the housekeeping thread):
    // that gets at least OPEN_AT_LEAST, so a short timeout (0 is taken as 1 ms) does not
    // fail the first call on a loaded machine.
    let state = pool.state();
    let opening = state.idle_connections == 0 && state.connections < pool.max_size();
    let wait = if opening {
        pool.connection_timeout().max(OPEN_AT_LEAST)
    } else {
        pool.connection_timeout()
    };
    let conn = pool.get_timeout(wait).map_err(|e| {
        GatewayError::ConnectionUnavailable(format!("no SQLite connection became free: {e}"))
    })?;
    match purpose {
        Checkout::Catalog {
            deadline,
            abandoned,
        } => {
            conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>)
                .map_err(classify)?;
            conn.progress_handler(
                1_000,
                Some(move || abandoned.load(Ordering::Relaxed) || Instant::now() > deadline),
            )
            .map_err(classify)?;
        }
        Checkout::Query {
            deadline,
            abandoned,
            rules,
        } => {
            // The catalog part of the rules is re-read (without the authorizer) when the
            // schema changed since they were computed, inside the read transaction the
            // query then runs in (`execute::ReadTxn` ends it): the schema the rules were
            // computed from is the schema the statement is prepared and stepped against.
            // Between a refresh and a prepare in autocommit, another process's
            // `ALTER TABLE ... ADD COLUMN ... GENERATED ... AS (denied_column)` went unseen:
            // 35 of 3,000 calls returned the denied values that way.
            conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>)
                .map_err(classify)?;
            if !conn.is_autocommit() {
                conn.execute_batch("ROLLBACK").map_err(classify)?;
            }
            conn.execute_batch("BEGIN DEFERRED").map_err(classify)?;
            // The refresh's first read (`PRAGMA schema_version`) starts the transaction.
            if let Err(e) = rules.refresh(&conn) {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
            conn.authorizer(Some(move |ctx: AuthContext<'_>| rules.authorize(&ctx)))
                .map_err(classify)?;
            conn.progress_handler(
                1_000,
                Some(move || abandoned.load(Ordering::Relaxed) || Instant::now() > deadline),
            )
            .map_err(classify)?;
        }
    }
    Ok(conn)
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GatewayError> + Send + 'static,
) -> Result<T, GatewayError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| GatewayError::Internal(format!("the SQLite worker failed: {e}")))?
}
