//! A call's pooled session: the start and end of its read-only transaction, our own
//! statements in simple-protocol messages and what their rows say (the pid, the
//! fingerprint), the session settings, and the end on the server of a call abandoned
//! mid-way.
//!
//! Invariant: a call that completes ends its transaction with [`end`] (or its pipelined
//! form): a rollback, the release of advisory locks and, when the driver named a statement,
//! every prepared statement dropped, so no client text stays behind in the pooled session.
//! A call dropped mid-way ([`InFlight`]) never returns its session to the pool; its
//! statement is cancelled from another connection, and its session terminated if the
//! cancel is ignored.

use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use sqlx::postgres::{PgPool, PipelinedStatement};
use sqlx::{AssertSqlSafe, Row};

use super::{classify, resolve};
use crate::error::GatewayError;

/// What a call learns about its pooled session as it runs.
#[derive(Default)]
pub(super) struct Session {
    /// The server process, for a cancel request from another connection.
    pub(super) pid: Option<i32>,
    /// The session must not be reused (reading stopped mid-result at the byte cap).
    pub(super) discard: bool,
}

/// A query in flight. If it is dropped while armed (the call was cancelled, or the client
/// deadline passed), the statement is cancelled on the server from another connection and
/// the connection is closed, never returned to the pool mid-query.
pub(super) struct InFlight {
    pub(super) conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    pub(super) pool: PgPool,
    pub(super) session: Session,
    pub(super) armed: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(c) = self.conn.as_mut() {
            c.close_on_drop();
        }
        if let (Some(pid), Ok(rt)) = (self.session.pid, tokio::runtime::Handle::try_current()) {
            let pool = self.pool.clone();
            crate::backends::ending::spawn(&rt, end_abandoned(pool, pid));
        }
    }
}

/// How long an abandoned statement has to end after its cancel request before its session
/// is terminated: a cancel is handled at the next interrupt check, which a well-behaved
/// statement reaches within milliseconds.
const CANCEL_GRACE: Duration = Duration::from_secs(2);
/// How long after the terminate request the session is watched (and, if still there,
/// reported) before giving up.
const TERMINATE_WATCH: Duration = Duration::from_secs(10);

/// Ends the statement of an abandoned call on the server: cancel, then, if the session is
/// still there after [`CANCEL_GRACE`], terminate it. (Its client connection is already
/// closed, so it would otherwise run until it next reads or writes.) A C function that
/// never checks for interrupts ignores both: PostgreSQL offers no way to stop it short of
/// a server restart, which is why the policy bounds the inputs such loops can get.
pub(super) async fn end_abandoned(pool: PgPool, pid: i32) {
    // Our own statements about our own session, never a client's; `application_name`
    // guards against a recycled pid.
    let still_there = |pool: PgPool| async move {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity \
             WHERE pid = $1 AND application_name = 'dbward')",
        )
        .persistent(false)
        .bind(pid)
        .fetch_one(&pool)
        .await
        .unwrap_or(false)
    };
    // Only a dbward session of that pid: the pid of a call on a kept answer comes from the
    // connection's startup, which a pooler in between may have made up.
    let r = sqlx::query(
        "SELECT pg_catalog.pg_cancel_backend(pid) FROM pg_catalog.pg_stat_activity \
         WHERE pid = $1 AND application_name = 'dbward'",
    )
    .persistent(false)
    .bind(pid)
    .execute(&pool)
    .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, pid, "could not cancel an abandoned query");
    }
    let started = Instant::now();
    while started.elapsed() < CANCEL_GRACE {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !still_there(pool.clone()).await {
            return;
        }
    }
    let r = sqlx::query(
        "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
         WHERE pid = $1 AND application_name = 'dbward'",
    )
    .persistent(false)
    .bind(pid)
    .execute(&pool)
    .await;
    match r {
        Ok(_) => tracing::warn!(
            pid,
            "an abandoned query ignored its cancel: its session was terminated"
        ),
        Err(e) => {
            tracing::warn!(error = %e, pid, "could not terminate an abandoned query's session")
        }
    }
    let started = Instant::now();
    while started.elapsed() < TERMINATE_WATCH {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if !still_there(pool.clone()).await {
            return;
        }
    }
    tracing::error!(
        pid,
        "an abandoned query ignores cancel and terminate (a function that never checks for interrupts); it ends only when its work does"
    );
}

/// The start of every call's transaction: read-only, and READ COMMITTED whatever the
/// database's or the role's default (`ALTER DATABASE ... SET default_transaction_isolation`
/// is the owner's to set): under REPEATABLE READ or SERIALIZABLE every statement would see
/// the snapshot of the first, so the guard and the recheck would prove an answer current
/// against the catalog as it stood when the call began while the DECLARE plans against the
/// catalog as it stands (a red-team pass got a denied column in 30 of 800 calls that way).
pub(super) const BEGIN: &str = "BEGIN READ ONLY ISOLATION LEVEL READ COMMITTED";

/// The end of every call's transaction (see [`end`]).
const END: [&str; 2] = ["ROLLBACK", resolve::UNLOCK];

/// After [`END`], when the call made the driver name a statement (a Describe): every
/// prepared statement of the session dropped — the driver's hold the client's text, which
/// the next caller could read in `pg_prepared_statements` — and ours prepared again.
fn reprepare(conn: &sqlx::PgConnection, named: bool, versioned: bool) -> Vec<String> {
    if !named {
        return Vec::new();
    }
    let mut out = vec!["DEALLOCATE ALL".to_string()];
    out.extend(resolve::prepare_statements(conn, versioned));
    out
}

/// [`END`] and [`reprepare`] for the end of a pipelined batch: the unlock is the session's
/// prepared `dbward_unlock`, bound by name (not parsed or planned again).
pub(super) fn end_pipelined(
    conn: &sqlx::PgConnection,
    named: bool,
    versioned: bool,
) -> Vec<PipelinedStatement> {
    let mut out = vec![
        PipelinedStatement::Text(END[0].to_string()),
        PipelinedStatement::Prepared {
            name: resolve::UNLOCK_PREPARED.to_string(),
            params: Vec::new(),
        },
    ];
    out.extend(
        reprepare(conn, named, versioned)
            .into_iter()
            .map(PipelinedStatement::Text),
    );
    out
}

/// Runs `sql` (several statements of our own text, simple protocol) and returns each
/// statement's rows, in order: group `i` holds the rows of statement `i`.
pub(super) async fn statements(
    conn: &mut sqlx::PgConnection,
    sql: &str,
) -> Result<Vec<Vec<sqlx::postgres::PgRow>>, GatewayError> {
    let mut groups = vec![Vec::new()];
    let mut stream = sqlx::raw_sql(AssertSqlSafe(sql.to_string())).fetch_many(&mut *conn);
    while let Some(item) = stream.try_next().await.map_err(|e| classify(e, &[]))? {
        match item {
            sqlx::Either::Left(_) => groups.push(Vec::new()),
            sqlx::Either::Right(row) => {
                if let Some(g) = groups.last_mut() {
                    g.push(row);
                }
            }
        }
    }
    Ok(groups)
}

/// The backend's pid (the last column of statement `at` of the first message), so a
/// cancelled call can cancel its statement on the server.
pub(super) fn pid_of(groups: &[Vec<sqlx::postgres::PgRow>], at: usize) -> Option<i32> {
    let row = groups.get(at)?.first()?;
    let last = row.len().checked_sub(1)?;
    let raw = row.try_get_raw(last).ok()?;
    raw.as_str().ok()?.parse().ok()
}

/// The text in the first column of the first row of statement `at`.
pub(super) fn first_text(groups: &[Vec<sqlx::postgres::PgRow>], at: usize) -> Option<String> {
    let raw = groups.get(at)?.first()?.try_get_raw(0).ok()?;
    raw.as_str().ok().map(str::to_string)
}

/// Sets the call's session settings for the rest of its transaction (`is_local`): names
/// and values go as parameters of one statement of our own text, never spliced, in the
/// order given.
pub(super) async fn set_local(
    conn: &mut sqlx::PgConnection,
    settings: &[(String, String)],
) -> Result<(), GatewayError> {
    let names: Vec<&str> = settings.iter().map(|(n, _)| n.as_str()).collect();
    let values: Vec<&str> = settings.iter().map(|(_, v)| v.as_str()).collect();
    sqlx::query(
        "SELECT count(pg_catalog.set_config(s.n, s.v, true)) \
         FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.text[]), \
         pg_catalog.unnest($2::pg_catalog.text[])) \
         WITH ORDINALITY AS s(n, v, i)",
    )
    .persistent(false)
    .bind(names)
    .bind(values)
    .execute(&mut *conn)
    .await
    .map_err(|e| classify(e, &[]))?;
    Ok(())
}

/// Always roll back, then release session-level advisory locks: the one kind of session
/// state a read-only statement can leave behind that a rollback does not undo. (Settings
/// changed with `set_config(..., false)`, LISTEN, cursors and notifications are
/// transactional and die with the rollback; temp tables and sequence changes cannot happen
/// in a read-only transaction. A query cannot PREPARE, but owner code it ran could, and
/// that statement would outlive the rollback: the resolution is what keeps owner code from
/// running. A check at the end of every call, reading `pg_prepared_statements`, measured
/// about 100 us of latency per call and was left out.) When the call made the driver name
/// a statement (the Parse/Describe of parameters' types, or of the shape of a result whose first row
/// was too large to read), `named` drops
/// every prepared statement of the session — a named statement outlives the transaction
/// with its text, which the next caller on this pooled session could read in
/// `pg_prepared_statements` — and prepares dbward's own statements again. The
/// driver's statement cache is off and every other statement is unnamed. One round trip.
pub(super) async fn end(
    conn: &mut sqlx::PgConnection,
    named: bool,
    versioned: bool,
) -> Result<(), GatewayError> {
    let err = |e| classify(e, &[]);
    if !named {
        return sqlx::raw_sql(AssertSqlSafe(END.join("; ")))
            .execute(&mut *conn)
            .await
            .map(|_| ())
            .map_err(err);
    }
    // Each PREPARE its own Parse (see `super::run_own`).
    let mut all: Vec<String> = END.map(String::from).to_vec();
    all.extend(reprepare(conn, named, versioned));
    super::run_own(conn, all).await.map_err(err)
}
