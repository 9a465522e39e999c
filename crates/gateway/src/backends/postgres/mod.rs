//! PostgreSQL through sqlx.
//!
//! Sessions start with `default_transaction_read_only=on` and `application_name=dbward`.
//! Each query runs in `BEGIN READ ONLY ISOLATION LEVEL READ COMMITTED` with `statement_timeout`, `lock_timeout` and
//! `idle_in_transaction_session_timeout` set locally (and `SET LOCAL ROLE` when a reader role
//! is configured), as `DECLARE ... NO SCROLL CURSOR` over the extended protocol (one
//! statement per message: a second statement cannot ride along), then one `FETCH` of at most
//! the row cap plus one, read as it streams until the byte cap, and always rolled back, with
//! session-level advisory locks released (everything else a read-only statement can change
//! is undone by the rollback). Before the DECLARE, in the same transaction, the query's
//! names are resolved in the catalog and judged (`resolve.rs`). The first call of a query's
//! names takes two round trips: the BEGIN with the resolution, whose verdict must come back
//! before the query is sent; then the DECLARE, the FETCH and the end in one flush (the
//! driver's `fetch_pipelined`, `vendor/README.md`). The answer is kept, and later calls are
//! one round trip: the BEGIN, a guard that fails unless the database proves the kept answer
//! is still the one it would give (`guard::guard`), the DECLARE, the FETCH and the end,
//! all in one flush; when the guard fails, nothing of the query has run and the call
//! resolves afresh. (By default the guard fails after any commit in the cluster; where a
//! superuser installed dbward's catalog version, `guard::CATALOG_VERSION_SQL`, only after
//! a DDL command in the database.) String parameters add one round trip (`params.rs`), session settings
//! one; both resolve on every call. The pool takes a connection back without a round trip
//! (`quiet_idle_ping`).
//!
//! The `FETCH` is our own constant text; it goes over the simple protocol so that every
//! value of every type comes back in its text form (and is then converted to JSON by type
//! name). No client text ever reaches the simple protocol.
//!
//! Invariant: a connection that saw an error, a timeout or a cancellation is closed, never
//! returned to the pool, so nothing (a lock, a setting, a cursor) carries over.
//!
//! Files: `execute.rs` runs client queries (the call's first message, the judgement, the
//! checks around the DECLARE, the retry); `fetch.rs` declares the cursor and reads it under
//! the caps; `session.rs` starts and ends the transaction and ends an abandoned call on the
//! server; `resolve.rs` asks what a query's names resolve to, inside that transaction;
//! `guard.rs` proves a kept answer still holds (the fingerprint, the guard, the recheck,
//! dbward's catalog version); `kept.rs` keeps answers and runs calls on them; `params.rs`
//! types string parameters as the database infers; `catalog.rs` and `catalog_conn.rs` read
//! the catalog for the tools; `grants.rs` is the privilege side of the posture and of
//! `setup-role`; `types.rs` turns text values into JSON.

mod catalog;
mod catalog_conn;
mod execute;
mod fetch;
pub mod grants;
mod guard;
mod kept;
mod params;
pub mod resolve;
mod session;
mod types;

pub use types::text_to_json;

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};

use crate::config::{Limits, SslMode};
use crate::connection::ConnectSpec;
use crate::error::{GatewayError, scrub};

/// A pooled connection idle longer than this is pinged before use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// An open PostgreSQL connection pool.
#[derive(Debug, Clone)]
pub struct PgBackend {
    pool: PgPool,
    /// Names of types the driver does not know (enums, domains...), by OID: results read
    /// over the simple protocol carry only the OID.
    type_names: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u32, String>>>,
    reader_role: Option<String>,
    /// Resolution answers kept, with what they were read under (`kept::Cache`).
    resolutions: std::sync::Arc<kept::Cache>,
    /// The server has `pg_current_snapshot()` (PostgreSQL 13 and later), which a kept
    /// answer's fingerprint needs; without it every call resolves afresh.
    snapshots: bool,
    /// The database has dbward's catalog version, as the last session opened found it
    /// (`guard::VERSIONED_CHECK`): kept answers are then fingerprinted with it, not with
    /// the snapshot (`guard::fingerprint`).
    versioned: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The session's own statement, lock and idle-in-transaction timeouts (startup
    /// options): a call whose caps differ sets its own in its transaction.
    session_timeouts: [u64; 3],
    /// The server's version string.
    pub server_version: String,
    /// The role's posture, read at connect time on the connection that read the version
    /// (`connect_posture`).
    connect_posture:
        std::sync::Arc<std::sync::Mutex<Option<crate::tools::security_posture::RolePosture>>>,
}

fn ssl(mode: SslMode) -> PgSslMode {
    match mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require => PgSslMode::Require,
        SslMode::VerifyCa => PgSslMode::VerifyCa,
        SslMode::VerifyFull => PgSslMode::VerifyFull,
    }
}

/// The oversized message the driver refused from its header, if that is what `e` is.
pub(crate) fn too_large(e: &sqlx::Error) -> Option<sqlx::postgres::PgMessageTooLarge> {
    crate::backends::too_large(e)
}

/// Classifies a driver error into a user-facing error; secrets are scrubbed.
pub(crate) fn classify(e: sqlx::Error, secrets: &[&str]) -> GatewayError {
    if let Some(m) = too_large(&e) {
        let what = if m.format == b'D' { "a row" } else { "a reply" };
        return GatewayError::Database(crate::backends::too_large_message(what, m.len, m.limit));
    }
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let context = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|pg| pg.r#where());
            if raised_in_code(&code, context) {
                return GatewayError::Database(format!(
                    "an error was raised inside database code (a function, or a check that \
                     calls one) while the query ran; its text is withheld, since such code \
                     can put any value it reads into it (SQLSTATE {code})"
                ));
            }
            let msg = scrub(db.message(), secrets);
            match code.as_str() {
                "57014" => GatewayError::Timeout(0),
                "42501" => GatewayError::PermissionDenied(msg),
                "42601" => GatewayError::Syntax(msg),
                "42P01" => GatewayError::UnknownTable(msg),
                "25006" => GatewayError::ReadOnlyViolation(msg),
                "28P01" | "28000" => {
                    GatewayError::ConnectionUnavailable(format!("login refused: {msg}"))
                }
                "3D000" => GatewayError::ConnectionUnavailable(msg),
                "55P03" => GatewayError::Database(format!(
                    "{msg} (another session holds a lock this query needs: a table being \
                     changed or, where dbward's catalog version is installed, a DDL \
                     transaction not yet ended; nothing was read, try again)"
                )),
                _ => GatewayError::Database(msg),
            }
        }
        sqlx::Error::PoolTimedOut => {
            GatewayError::ConnectionUnavailable("no pooled connection became free in time".into())
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
            GatewayError::ConnectionUnavailable(scrub(&e.to_string(), secrets))
        }
        _ => GatewayError::Database(scrub(&e.to_string(), secrets)),
    }
}
/// Whether an error was raised inside code that runs in the database: PL/pgSQL's own
/// errors (`RAISE`, `ASSERT`, `STRICT`: class P0), or any error whose context says a
/// PL/pgSQL or SQL function, or a statement one ran, was executing. Such code is the
/// owner's (builtins are C): allowlisted, or run in a window no check could close (see the
/// README), and its message can carry anything it read, denied columns included. (The
/// context is matched in English, the server's default `lc_messages`; only a superuser can
/// change it.)
fn raised_in_code(code: &str, context: Option<&str>) -> bool {
    code.starts_with("P0")
        || context.is_some_and(|c| {
            let c = c.to_ascii_lowercase();
            c.contains("function") || c.contains("sql statement")
        })
}

impl PgBackend {
    /// Opens a pool and checks the connection with one round trip.
    pub async fn connect(spec: &ConnectSpec, limits: &Limits) -> Result<PgBackend, GatewayError> {
        let mut opts = PgConnectOptions::new_without_pgpass()
            .host(&spec.host)
            .port(spec.port)
            .ssl_mode(ssl(spec.sslmode))
            .application_name("dbward")
            // Every statement of the session runs under timeouts, catalog reads included;
            // a query's transaction sets its own with SET LOCAL.
            .options([
                ("default_transaction_read_only", "on"),
                (
                    "statement_timeout",
                    &limits.statement_timeout_ms.to_string(),
                ),
                ("lock_timeout", &limits.lock_timeout_ms.to_string()),
                (
                    "idle_in_transaction_session_timeout",
                    &limits.idle_in_transaction_timeout_ms.to_string(),
                ),
            ])
            // No named prepared statements: every client query text would otherwise stay
            // behind as a server-side prepared statement in each pooled session. A cache
            // capacity of 0 alone is not enough (the driver then names the statement and
            // never closes it): every query here is also `persistent(false)`, and `end`
            // deallocates whatever a call prepared.
            .statement_cache_capacity(0)
            // No message larger than this is ever buffered (see `message_limit`).
            .max_message_len(crate::backends::message_limit(limits.max_bytes))
            // The pool pings every connection it takes back; one that ended its call
            // cleanly is idle with nothing queued, so that ping needs no round trip. (A
            // connection that saw anything else is closed, never taken back: `execute.rs`.)
            .quiet_idle_ping(true);
        if let Some(u) = &spec.username {
            opts = opts.username(u);
        }
        if let Some(p) = &spec.password {
            opts = opts.password(p.expose_secret());
        }
        if let Some(d) = &spec.database {
            opts = opts.database(d);
        }
        let versioned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let versioned_at_open = versioned.clone();
        let reader = spec.reader_role.clone();
        let pool = PgPoolOptions::new()
            .max_connections(limits.pool_max_size)
            .acquire_timeout(Duration::from_millis(limits.acquire_timeout_ms))
            .idle_timeout(Duration::from_secs(limits.idle_timeout_s))
            // A connection that sat idle may have been closed by the server: ping it first.
            // One in steady use has just proved itself, and a ping on every acquire would be
            // one more round trip per call; if it did break, the call fails and the
            // connection is closed, never reused.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > IDLE_BEFORE_PING {
                        // A real round trip (an empty query): the driver's `ping` returns
                        // at once on an idle connection (`quiet_idle_ping`).
                        sqlx::raw_sql("").execute(&mut *conn).await?;
                    }
                    Ok(true)
                })
            })
            // `pg_catalog` first on every session's path, whatever the database's or
            // role's default: an owner who put their schema before it could otherwise
            // stand their own `=` or `version()` in for the builtins, in dbward's own
            // statements and in the client's (see `start_session`).
            .after_connect(move |conn, _meta| {
                let reader = reader.clone();
                let versioned = versioned_at_open.clone();
                Box::pin(async move {
                    let found = start_session(conn, reader.as_deref()).await?;
                    versioned.store(found, std::sync::atomic::Ordering::Relaxed);
                    // The resolution statement, the unlock and the guard, prepared once per
                    // session (our own text).
                    let prepares = resolve::prepare_statements(conn, found);
                    run_own(conn, prepares).await
                })
            })
            .connect_with(opts)
            .await
            .map_err(|e| classify(e, &spec.secrets()))?;
        // The version and the role's posture on one checkout: a connection given back is
        // returned to the pool by a spawned task, so a second checkout right after would
        // open a second session (its connect and prepares) for nothing at start-up.
        let mut conn = pool
            .acquire()
            .await
            .map_err(|e| classify(e, &spec.secrets()))?;
        let (server_version, version_num): (String, i32) = sqlx::query_as(
            "SELECT pg_catalog.version(), \
             pg_catalog.current_setting('server_version_num')::pg_catalog.int4",
        )
        .persistent(false)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| classify(e, &spec.secrets()))?;
        let posture = catalog::posture_on(&mut conn, spec.reader_role.as_deref()).await?;
        drop(conn);
        let snapshots = version_num >= 130_000;
        if snapshots {
            // (The first session, just opened, has looked for it.)
            let target = spec.masked();
            if versioned.load(std::sync::atomic::Ordering::Relaxed) {
                tracing::info!(
                    %target,
                    "resolution answers are reused across writes: dbward's catalog version is installed"
                );
            } else {
                tracing::info!(
                    %target,
                    "resolution answers are checked again after every commit anywhere in the cluster (on a database in use, the call after each commit re-reads its answer: one more round trip and the resolution); to reuse them across writes, a superuser can run `dbward setup-role --catalog-version` in this database"
                );
            }
        }
        Ok(PgBackend {
            pool,
            session_timeouts: [
                limits.statement_timeout_ms,
                limits.lock_timeout_ms,
                limits.idle_in_transaction_timeout_ms,
            ],
            type_names: Default::default(),
            reader_role: spec.reader_role.clone(),
            resolutions: Default::default(),
            snapshots,
            versioned,
            server_version,
            connect_posture: std::sync::Arc::new(std::sync::Mutex::new(Some(posture))),
        })
    }

    /// The posture read at connect time, once (later reads go to the database:
    /// [`PgBackend::posture`]).
    pub fn connect_posture(&self) -> Option<crate::tools::security_posture::RolePosture> {
        self.connect_posture
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Pool size and idle connections, for metrics.
    pub fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Calls sent behind the guard of a kept answer, those of them whose guard failed,
    /// calls that resolved their names afresh, and calls sent behind a recheck (counted in
    /// the first too).
    pub fn resolution_counts(&self) -> [u64; 4] {
        self.resolutions.counts()
    }

    /// Whether the database has dbward's catalog version, as the last session opened
    /// found it (kept resolution answers then survive writes).
    pub fn catalog_versioned(&self) -> bool {
        self.versioned.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The configured reader role, if any.
    pub fn reader_role(&self) -> Option<&str> {
        self.reader_role.as_deref()
    }
}

/// Opens a session: sets its `search_path` to `pg_catalog` first, then, by name, the
/// schemas the default path gives it now (`current_schemas(false)`: those that exist and
/// the role may use), and notes those names in `dbward.schemas`. So every builtin shadows
/// a same-signature function, operator or type of the database owner's, for dbward's own
/// statements and for the client's; and the path cannot grow during the session. The
/// default path may list a schema the role cannot use yet: PostgreSQL skips it, then looks
/// in it as soon as the role can, which a change of role membership (no DDL, no lock,
/// visible mid-transaction) brings about between the check of a call's answer and its
/// parse. Pinned, that schema is never looked in; and one that stops being usable
/// mid-call only leaves names to resolve in the others, which the resolution judges
/// whether the role may use them at that moment or not (`resolve.rs`, `path`: every
/// schema in `dbward.schemas`). In the same statement, reads whether
/// the database has a catalog version dbward can trust for `reader` (the role queries run
/// as; `None`: the login role), see `guard::VERSIONED_CHECK`. Our own constant
/// statement; the old path is read and written back as a bound value, never spliced.
async fn start_session(
    conn: &mut sqlx::PgConnection,
    reader: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let pin = "SELECT pg_catalog.set_config('search_path', \
         pg_catalog.concat_ws(', ', 'pg_catalog', (SELECT pg_catalog.string_agg(\
           pg_catalog.quote_ident(s), ', ' ORDER BY o) FROM pg_catalog.unnest(\
           pg_catalog.current_schemas(false)) WITH ORDINALITY AS u(s, o) \
           WHERE s OPERATOR(pg_catalog.<>) 'pg_catalog')), false), \
         pg_catalog.set_config('dbward.schemas', \
           pg_catalog.current_schemas(false)::pg_catalog.text, false)";
    // Before PostgreSQL 13 no answer is kept (no `pg_current_snapshot`): no need to look.
    if !guard::snapshots(conn) {
        sqlx::query(pin).persistent(false).execute(conn).await?;
        return Ok(false);
    }
    let (_, _, versioned): (String, String, bool) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{pin}, ({})",
        guard::VERSIONED_CHECK
    )))
    .bind(reader)
    .bind(guard::BUMP_BODY)
    .persistent(false)
    .fetch_one(conn)
    .await?;
    Ok(versioned)
}

/// Runs `statements` (our own text, no parameters) as one batch of the extended protocol,
/// each statement its own Parse: one round trip. Every `PREPARE` of dbward's goes this way:
/// a statement prepared in a simple-protocol message of several keeps the whole message as
/// its source text, which the server measures and copies at every Bind and Execute of it
/// (the resolution's text made the guard and the unlock cost several microseconds of
/// PostgreSQL's CPU per call; `pg_prepared_statements` shows the text each keeps).
pub(super) async fn run_own(
    conn: &mut sqlx::PgConnection,
    statements: Vec<String>,
) -> Result<(), sqlx::Error> {
    use futures_util::TryStreamExt;
    let mut statements = statements.into_iter();
    let Some(first) = statements.next() else {
        return Ok(());
    };
    let rest = statements
        .map(sqlx::postgres::PipelinedStatement::Text)
        .collect();
    let outcome = {
        let q = sqlx::query(sqlx::AssertSqlSafe(first)).persistent(false);
        let mut stream = conn.fetch_pipelined(Vec::new(), q, rest);
        loop {
            match stream.try_next().await {
                Ok(Some(_)) => {}
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        }
    };
    if outcome.is_err() {
        // What the server still sends after the failed statement (the rest is skipped).
        conn.skip_pending().await?;
    }
    outcome
}

/// Quotes an identifier the way PostgreSQL's `quote_ident` does.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
