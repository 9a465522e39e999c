//! Running one policy-approved query: session setup, prepare, the result-set check,
//! streaming under the caps, and the clean-up that decides whether the connection may go
//! back to the pool (see the invariants in the module above).

use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use serde_json::Value;
use sqlx::mysql::{MySql, MySqlArguments, MySqlConnection, MySqlPool};
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Either, Executor, Row, SqlSafeStr, Statement as _};

use super::catalog::mariadb_json_columns;
use super::resolve::InTxn;
use super::types::{describe_columns, text_at, value_to_json};
use super::{MyBackend, SQL_MODE, classify};
use crate::backends::{Caps, QueryResult};
use crate::error::GatewayError;

/// What one execution left on its connection, readable after a timeout dropped the query.
#[derive(Default)]
struct Session {
    /// The server thread id, to kill it if the client deadline passes.
    thread_id: Option<u64>,
    /// True only once the transaction is rolled back, nothing is left unread and the
    /// session holds no state a later call could read.
    clean: bool,
}

/// How long a statement may keep running after `KILL QUERY` before its connection is
/// killed too.
const KILL_QUERY_GRACE: Duration = Duration::from_millis(1_000);

/// Stops the call's statement on the server when the call ends without an answer from it
/// (client deadline passed, or the caller dropped the call): armed until the statement is
/// known to have ended.
struct StopOnDrop {
    pool: MySqlPool,
    /// The call's connection: back to the pool on drop only when the session is clean.
    conn: PoolConnection<MySql>,
    session: Session,
    armed: bool,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if !self.session.clean {
            self.conn.close_on_drop();
        }
        if let (true, Some(id)) = (self.armed, self.session.thread_id)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            crate::backends::ending::spawn(&rt, stop_thread(self.pool.clone(), id));
        }
    }
}

/// `KILL QUERY`, then, if the statement still runs after [`KILL_QUERY_GRACE`],
/// `KILL CONNECTION`. Both only set a flag the server thread checks between steps: a single
/// function call that never checks it (MariaDB's `LOCATE` over built strings) runs to its
/// end whatever is sent, which is why the policy bounds such inputs. Run from another
/// pooled connection: closing our socket does not stop a statement that is not writing to
/// it (e.g. a sleep).
pub(crate) async fn stop_thread(pool: MySqlPool, thread_id: u64) {
    let Ok(mut c) = pool.acquire().await else {
        return;
    };
    // The id is a number we read from the server, not client text.
    if c.execute(AssertSqlSafe(format!("KILL QUERY {thread_id}")))
        .await
        .is_err()
    {
        c.close_on_drop();
        return;
    }
    let until = Instant::now() + KILL_QUERY_GRACE;
    loop {
        let running = sqlx::query(
            "SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ? AND COMMAND <> 'Sleep'",
        )
        .bind(thread_id)
        .fetch_optional(&mut *c)
        .await;
        match running {
            Ok(None) => return,
            Ok(Some(_)) if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ => break,
        }
    }
    if c.execute(AssertSqlSafe(format!("KILL CONNECTION {thread_id}")))
        .await
        .is_err()
    {
        c.close_on_drop();
    }
}

/// The session statement-timeout assignment, in each server's own variable and unit.
pub(super) fn timeout_assignment(mariadb: bool, timeout_ms: u64) -> String {
    if mariadb {
        format!(
            "max_statement_time = {}.{:03}",
            timeout_ms / 1000,
            timeout_ms % 1000
        )
    } else {
        format!("max_execution_time = {timeout_ms}")
    }
}

impl MyBackend {
    /// Runs a policy-approved query under the caps, with nothing to judge in its
    /// transaction (see [`MyBackend::execute_judged`]).
    pub async fn execute(
        &self,
        sql: &str,
        params: &[Value],
        caps: Caps,
    ) -> Result<QueryResult, GatewayError> {
        self.execute_judged(sql, params, caps, async |_| Ok(()))
            .await
    }

    /// Runs a policy-approved query under the caps, after `judge` accepted what its names
    /// refer to, asked on the query's own connection inside its transaction (views,
    /// routines, generated columns: see `resolve`). `judge` should lock the relations the
    /// query names before it reads about them.
    pub async fn execute_judged(
        &self,
        sql: &str,
        params: &[Value],
        caps: Caps,
        judge: impl AsyncFnOnce(&mut InTxn<'_>) -> Result<(), GatewayError>,
    ) -> Result<QueryResult, GatewayError> {
        let started = Instant::now();
        let conn = self.pool.acquire().await.map_err(|e| classify(e, &[]))?;
        // Whatever happens below, even the caller dropping this future, the connection goes
        // back to the pool only when clean, and a statement left running is stopped.
        let mut stop = StopOnDrop {
            pool: self.pool.clone(),
            conn,
            session: Session::default(),
            armed: true,
        };
        // The server cancels at its statement timeout; the client deadline is a backstop a
        // little later (a query can override the server timeout for itself, e.g. MariaDB's
        // `SET STATEMENT max_statement_time=... FOR SELECT ...`).
        let deadline = Duration::from_millis(caps.timeout_ms + 2_000);
        let outcome = tokio::time::timeout(
            deadline,
            self.run(&mut stop.conn, sql, params, caps, &mut stop.session, judge),
        )
        .await;
        // An answer from the server (rows or an error) means its statement ended; only a
        // passed deadline leaves `stop` armed, and dropping it kills the statement.
        stop.armed = outcome.is_err();
        drop(stop);
        match outcome {
            Ok(Ok((mut r, unlocked))) => {
                self.still_no_views(&unlocked).await?;
                r.elapsed_ms = started.elapsed().as_millis() as u64;
                Ok(r)
            }
            Ok(Err(e)) => Err(match e {
                GatewayError::Timeout(_) => GatewayError::Timeout(caps.timeout_ms),
                other => other,
            }),
            Err(_) => Err(GatewayError::Timeout(caps.timeout_ms)),
        }
    }

    /// A relation name the call's transaction could not lock was judged as no view; if it
    /// is one now, it was created while the query ran (and may have been read by it): the
    /// rows are discarded.
    async fn still_no_views(
        &self,
        unlocked: &[(Option<String>, String)],
    ) -> Result<(), GatewayError> {
        if unlocked.is_empty() {
            return Ok(());
        }
        let appeared = self
            .bounded_catalog(async |c| {
                let mut txn = InTxn {
                    conn: c,
                    unlocked: Vec::new(),
                };
                txn.views_among(unlocked).await
            })
            .await?;
        match appeared.first() {
            None => Ok(()),
            Some(v) => Err(GatewayError::ResolvedRefusal {
                rule: "function.user_defined",
                message: format!(
                    "the view `{}.{}` was created while the query ran, under a name the query reads: dbward did not judge it, so the result is withheld",
                    v.schema, v.name
                ),
            }),
        }
    }

    /// The query's run: the judgement, then the query, and the relation names the
    /// judgement could not lock.
    async fn run(
        &self,
        conn: &mut MySqlConnection,
        sql: &str,
        params: &[Value],
        caps: Caps,
        session: &mut Session,
        judge: impl AsyncFnOnce(&mut InTxn<'_>) -> Result<(), GatewayError>,
    ) -> Result<(QueryResult, Vec<(Option<String>, String)>), GatewayError> {
        let err = |e| classify(e, &[]);
        // Our own constant statements, in one text-protocol message. Lock waits are bounded
        // too (whole seconds, at least 1: the server's unit and minimum).
        let lock_s = caps.lock_timeout_ms.div_ceil(1000).max(1);
        let setup = format!(
            "SET SESSION TRANSACTION READ ONLY; \
             SET SESSION sql_mode = '{SQL_MODE}', {}, lock_wait_timeout = {lock_s}, innodb_lock_wait_timeout = {lock_s}; \
             START TRANSACTION READ ONLY; \
             SELECT CAST(CONNECTION_ID() AS CHAR)",
            timeout_assignment(self.mariadb, caps.timeout_ms)
        );
        let ids = sqlx::raw_sql(AssertSqlSafe(setup))
            .fetch_all(&mut *conn)
            .await
            .map_err(err)?;
        session.thread_id = ids
            .first()
            .and_then(|r| text_at(r, 0))
            .and_then(|t| t.parse().ok());

        // The judgement, in this transaction: the locks it takes hold until the rollback,
        // so the definitions it judged are the ones the query runs.
        let mut txn = InTxn {
            conn: &mut *conn,
            unlocked: Vec::new(),
        };
        judge(&mut txn).await?;
        let unlocked = txn.unlocked;

        // Prepare first (nothing runs): the server reports the statement's columns and
        // parameter count. The statement is cached on the connection, so the execution
        // below reuses it.
        let prepared = conn
            .prepare(AssertSqlSafe(sql.to_string()).into_sql_str())
            .await
            .map_err(err)?;
        if prepared.columns().is_empty() {
            return Err(GatewayError::InvalidInput(
                "only statements that return rows can run (the server reports no result set for this one)"
                    .into(),
            ));
        }
        if let Some(Either::Right(n)) = prepared.parameters()
            && n != params.len()
        {
            return Err(GatewayError::InvalidInput(format!(
                "the query has {n} parameter placeholders but {} parameters were given",
                params.len()
            )));
        }
        let json = if self.mariadb {
            mariadb_json_columns(conn, prepared.columns()).await?
        } else {
            vec![false; prepared.columns().len()]
        };
        let mut columns = describe_columns(prepared.columns(), &json);

        let mut q = sqlx::query(AssertSqlSafe(sql.to_string()));
        for p in params {
            q = bind_json(q, p);
        }
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        let mut truncated = false;
        {
            let mut stream = q.fetch(&mut *conn);
            let mut first = true;
            loop {
                let row = match stream.try_next().await {
                    Ok(Some(row)) => row,
                    Ok(None) => break,
                    // A row over the packet limit (`message_limit`): refused from its
                    // header, never buffered. The result is cut there, as at the byte cap;
                    // the session, mid-packet, is closed (`clean` stays false).
                    Err(e) if super::too_large(&e).is_some() => {
                        truncated = true;
                        break;
                    }
                    Err(e) => return Err(err(e)),
                };
                if rows.len() == caps.max_rows {
                    truncated = true;
                    break;
                }
                if first {
                    // The execution's own metadata is the truth (a placeholder's type is
                    // only known once bound).
                    columns = describe_columns(row.columns(), &json);
                    first = false;
                }
                let mut out = Vec::with_capacity(row.len());
                for i in 0..row.len() {
                    let raw = row.try_get_raw(i).map_err(err)?;
                    let is_json = json.get(i).copied().unwrap_or(false);
                    let (v, n) = value_to_json(raw, is_json);
                    bytes += n;
                    out.push(v);
                }
                if bytes > caps.max_bytes {
                    truncated = true;
                    break;
                }
                rows.push(out);
            }
        }
        if !truncated {
            // The result is complete; release what the query may have taken and roll back.
            // If this fails the connection is closed instead (and the server rolls back).
            // The same round trip asks whether the session kept state a SELECT can leave
            // (user variables, LAST_INSERT_ID(n)): if so, or if the server cannot say, the
            // connection is discarded, so no later call on it reads what this one left.
            let leftover = if self.mariadb {
                "SELECT CAST((SELECT COUNT(*) FROM information_schema.USER_VARIABLES) \
                 + (LAST_INSERT_ID() <> 0) AS CHAR)"
            } else {
                "SELECT CAST((SELECT COUNT(*) FROM performance_schema.user_variables_by_thread \
                 WHERE THREAD_ID = PS_CURRENT_THREAD_ID()) + (LAST_INSERT_ID() <> 0) AS CHAR)"
            };
            let done = sqlx::raw_sql(AssertSqlSafe(format!(
                "ROLLBACK; DO RELEASE_ALL_LOCKS(); {leftover}"
            )))
            .fetch_all(&mut *conn)
            .await;
            session.clean = done
                .ok()
                .and_then(|rows| rows.first().and_then(|r| text_at(r, 0)))
                .is_some_and(|n| n == "0");
        }
        // When truncated, rows are left unread: session.clean stays false, so the connection
        // is closed rather than drained.
        Ok((
            QueryResult {
                row_count: rows.len(),
                columns,
                rows,
                truncated,
                elapsed_ms: 0,
            },
            unlocked,
        ))
    }
}

fn bind_json<'q>(
    q: sqlx::query::Query<'q, MySql, MySqlArguments>,
    v: &'q Value,
) -> sqlx::query::Query<'q, MySql, MySqlArguments> {
    match v {
        Value::Null => q.bind(None::<String>),
        Value::Bool(b) => q.bind(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                q.bind(i)
            } else if let Some(u) = n.as_u64() {
                q.bind(u)
            } else {
                q.bind(n.as_f64())
            }
        }
        Value::String(s) => q.bind(s.as_str()),
        other => q.bind(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_use_each_servers_variable_and_unit() {
        assert_eq!(
            timeout_assignment(true, 2_500),
            "max_statement_time = 2.500"
        );
        assert_eq!(
            timeout_assignment(true, 30_000),
            "max_statement_time = 30.000"
        );
        assert_eq!(
            timeout_assignment(false, 2_500),
            "max_execution_time = 2500"
        );
    }
}
