//! Client queries: the read-only transaction, the resolution check, the cursor, the caps,
//! the rollback, and the end of an abandoned call on the server.

use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use serde_json::Value;
use sqlx::postgres::{PgPool, PipelinedStatement};
use sqlx::{
    AssertSqlSafe, Column as _, Executor, Row, SqlSafeStr, Statement as _, TypeInfo, ValueRef,
};

use super::kept::OnKept;
use super::resolve::{self, Resolver};
use super::types::text_to_json;
use super::{PgBackend, classify, params, quote_ident};
use crate::backends::{Caps, Column, QueryResult};
use crate::error::GatewayError;

impl PgBackend {
    /// Runs a policy-approved query under the caps.
    pub async fn execute(
        &self,
        sql: &str,
        params: &[Value],
        caps: Caps,
    ) -> Result<QueryResult, GatewayError> {
        self.execute_with(sql, params, caps, false, None, &[]).await
    }

    /// Runs a policy-approved query (or, with `utility`, an EXPLAIN or SHOW) under the
    /// caps, after the resolver has judged, inside the same transaction, what the database
    /// resolves its names to. `settings` (custom settings from the caller's identity, for
    /// row-level security) are set in the transaction first, bound as parameters.
    pub async fn execute_resolved(
        &self,
        sql: &str,
        params: &[Value],
        caps: Caps,
        utility: bool,
        resolver: &Resolver<'_>,
        settings: &[(String, String)],
    ) -> Result<QueryResult, GatewayError> {
        self.execute_with(sql, params, caps, utility, Some(resolver), settings)
            .await
    }

    /// Runs a policy-approved EXPLAIN or SHOW, which cannot be declared as a cursor: the
    /// statement itself goes over the extended protocol (still one statement per message),
    /// in the same rolled-back read-only transaction, its rows capped as they stream.
    pub async fn execute_utility(
        &self,
        sql: &str,
        caps: Caps,
    ) -> Result<QueryResult, GatewayError> {
        self.execute_with(sql, &[], caps, true, None, &[]).await
    }

    async fn execute_with(
        &self,
        sql: &str,
        params: &[Value],
        caps: Caps,
        utility: bool,
        resolver: Option<&Resolver<'_>>,
        settings: &[(String, String)],
    ) -> Result<QueryResult, GatewayError> {
        let started = Instant::now();
        let conn = self.pool.acquire().await.map_err(|e| classify(e, &[]))?;
        let mut flight = InFlight {
            conn: Some(conn),
            pool: self.pool.clone(),
            session: Session::default(),
            armed: true,
        };
        // The server cancels at statement_timeout; the client deadline is a backstop a
        // little later, after which the query is cancelled on the server and the
        // connection closed. If this future is dropped (the client cancelled the call),
        // `InFlight` does the same.
        let deadline = Duration::from_millis(caps.timeout_ms + 2_000);
        let InFlight { conn, session, .. } = &mut flight;
        let Some(conn) = conn.as_mut() else {
            return Err(GatewayError::Internal("no pooled connection".into()));
        };
        let run = self.run(
            conn, sql, params, caps, utility, resolver, settings, session,
        );
        let outcome = tokio::time::timeout(deadline, run).await;
        match outcome {
            Ok(Ok(mut r)) => {
                flight.armed = false;
                if flight.session.discard
                    && let Some(c) = flight.conn.as_mut()
                {
                    c.close_on_drop();
                }
                r.elapsed_ms = started.elapsed().as_millis() as u64;
                Ok(r)
            }
            Ok(Err(e)) => {
                // The server already ended the statement; close the connection all the
                // same so nothing of it carries over.
                flight.armed = false;
                if let Some(c) = flight.conn.as_mut() {
                    c.close_on_drop();
                }
                Err(match e {
                    GatewayError::Timeout(_) => GatewayError::Timeout(caps.timeout_ms),
                    other => other,
                })
            }
            Err(_) => Err(GatewayError::Timeout(caps.timeout_ms)),
        }
    }

    // The pieces of one call, each used once; bundling them would only rename them.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        conn: &mut sqlx::PgConnection,
        sql: &str,
        params: &[Value],
        caps: Caps,
        utility: bool,
        resolver: Option<&Resolver<'_>>,
        settings: &[(String, String)],
        session: &mut Session,
    ) -> Result<QueryResult, GatewayError> {
        // After the first attempt, when a change was committed between the resolution and
        // the query (a guard around the DECLARE failed; nothing was read): the whole call
        // once more, in a new transaction, the answer read and judged afresh, the checks
        // around the DECLARE now rechecks (which pass when the answer is still the same,
        // however many commits came meanwhile).
        for attempt in [Attempt::First, Attempt::Again] {
            if attempt == Attempt::Again {
                conn.skip_pending().await.map_err(|e| classify(e, &[]))?;
            }
            let outcome = self
                .run_once(
                    conn, sql, params, caps, utility, resolver, settings, session, attempt,
                )
                .await?;
            if let Some(r) = outcome {
                return Ok(r);
            }
        }
        Err(GatewayError::Database(
            "what the query reads was changed by another session while the query was being \
             checked (nothing was read); try again"
                .into(),
        ))
    }

    /// One attempt at a call (see [`Attempt`]); `None`: a check around the DECLARE found
    /// the answer stale, nothing was read, and the session's transaction has failed.
    #[allow(clippy::too_many_arguments)]
    async fn run_once(
        &self,
        conn: &mut sqlx::PgConnection,
        sql: &str,
        params: &[Value],
        caps: Caps,
        utility: bool,
        resolver: Option<&Resolver<'_>>,
        settings: &[(String, String)],
        session: &mut Session,
        attempt: Attempt,
    ) -> Result<Option<QueryResult>, GatewayError> {
        // The first round trip is one simple-protocol message of our own text: the numbers
        // are ours, the role comes from config and is quoted, and the names to resolve
        // travel hex-encoded (`resolve::statement`). No client text goes over it.
        let role = self
            .reader_role
            .as_ref()
            .map(|r| format!("SET LOCAL ROLE {}", quote_ident(r)));
        // (A savepoint when parameters need their types inferred: see `params.rs`.)
        let savepoint = (params::describes(params) && !utility).then_some(params::SAVEPOINT);
        // Timeouts that differ from the session's own (its startup options).
        let mut first = String::from("SELECT ");
        let mut sets_timeouts = false;
        let wanted = [
            ("statement_timeout", caps.timeout_ms),
            ("lock_timeout", caps.lock_timeout_ms),
            (
                "idle_in_transaction_session_timeout",
                caps.idle_in_transaction_timeout_ms,
            ),
        ];
        for ((name, value), session) in wanted.iter().zip(self.session_timeouts) {
            if *value != session {
                sets_timeouts = true;
                first.push_str(&format!(
                    "pg_catalog.set_config('{name}', '{value}', true), "
                ));
            }
        }
        first.push_str("pg_catalog.pg_backend_pid()");
        // The resolution statement for the query's names, also the key of a kept answer.
        let names_hex = resolver.map(|r| resolve::names_hex(&r.names));
        let executes = names_hex.as_ref().map(resolve::statement);
        // A kept answer is used when the whole call can go in one flush (no session
        // settings, no parameter whose type is to be inferred, not EXPLAIN or SHOW) and
        // the judge passes it: the first message then ends with the guard, which lets the
        // query run only if the database proves the answer is still the one it would give
        // (`resolve::guard`). A refusal is always made on a fresh answer.
        let kept = match (resolver, &executes) {
            (Some(r), Some(key))
                if attempt == Attempt::First
                    && self.snapshots
                    && settings.is_empty()
                    && !utility
                    && savepoint.is_none() =>
            {
                self.resolutions
                    .get(key)
                    .filter(|k| (r.judge)(&k.resolution).is_ok())
            }
            _ => None,
        };
        let mut head = vec![BEGIN.to_string(), first];
        if attempt == Attempt::Again {
            head.insert(0, "ROLLBACK".to_string());
        }
        if let (Some(k), Some(key), Some(names)) = (&kept, &executes, &names_hex) {
            // Timeouts (if the call sets any) as the login role, then the role; the guard
            // follows (`kept.rs`).
            let mut prefix: Vec<PipelinedStatement> = vec![head[0].clone().into()];
            if sets_timeouts {
                prefix.push(head[1].clone().into());
            }
            prefix.extend(role.clone().map(PipelinedStatement::from));
            prefix.extend(k.lock.clone().map(PipelinedStatement::from));
            let on_kept = OnKept {
                kept: k,
                key,
                names_hex: names,
                prefix,
            };
            match self
                .run_kept(conn, sql, params, caps, session, on_kept)
                .await?
            {
                Some(r) => return Ok(Some(r)),
                // Stale: nothing of the query ran, and the transaction failed; start again
                // with a fresh answer, the rollback in the same message. (Whether the
                // answer itself changed is known once the fresh one is read: see `judge`.)
                None => head.insert(0, "ROLLBACK".to_string()),
            }
        }
        let pid_at = head.len() - 1;
        // Settings are made as the login role, before `SET LOCAL ROLE` (so a reader role
        // need not be able to call set_config at all: `setup-role --rls-example` revokes
        // it), and before the savepoint (returning to it must not undo them). Without
        // session settings, the role, the savepoint and the resolution go in the first
        // message too; with them, in a second after the settings.
        let mut tail: Vec<String> = role.into_iter().collect();
        tail.extend(savepoint.map(String::from));
        if let Some(x) = &executes {
            if self.snapshots {
                tail.push(resolve::fingerprint_sql(self.catalog_versioned()));
            }
            tail.extend(resolve::BEFORE.map(String::from));
            tail.push(x.clone());
            tail.extend(resolve::AFTER.map(String::from));
        }
        let after_resolution = resolve::AFTER.len() + 1;
        let fingerprint_before = resolve::BEFORE.len() + 1;
        // Judges the resolution statement's rows (in `groups`, the results of a message of
        // `at` statements that ends with the resolution and `AFTER`), after keeping the
        // answer with the fingerprint read just before it. A judged answer comes back with
        // that fingerprint and its canonical text, for the checks around the DECLARE.
        let judge = |groups: Vec<Vec<sqlx::postgres::PgRow>>,
                     at: usize|
         -> Result<Option<Judged>, GatewayError> {
            let (Some(r), Some(key)) = (resolver, &executes) else {
                return Ok(None);
            };
            let Some(i) = at.checked_sub(after_resolution) else {
                return Err(GatewayError::Internal("no resolution statement".into()));
            };
            let fingerprint = match i.checked_sub(fingerprint_before) {
                Some(f) if self.snapshots => first_text(&groups, f),
                _ => None,
            };
            let rows = groups.into_iter().nth(i).unwrap_or_default();
            let (resolution, canonical) = resolve::read(rows)?;
            self.resolutions.count(2);
            let verdict = (r.judge)(&resolution);
            let lock = resolve::lock_statement(&resolution);
            // After a kept answer was found stale (its guard and its recheck failed): if
            // the answer changed, every kept answer is asked afresh for a while
            // (`resolve::Cache::stale`).
            if kept.as_ref().is_some_and(|k| k.canonical != canonical) {
                self.resolutions.stale();
            }
            if let Some(f) = &fingerprint {
                self.resolutions
                    .put(key, f.clone(), (resolution, canonical.clone()));
            }
            verdict?;
            Ok(Some(Judged {
                fingerprint,
                canonical,
                lock,
            }))
        };
        let judged = if settings.is_empty() {
            head.extend(tail);
            let statements_sent = head.len();
            let groups = statements(conn, &head.join("; ")).await?;
            session.pid = pid_of(&groups, pid_at);
            judge(groups, statements_sent)?
        } else {
            let groups = statements(conn, &head.join("; ")).await?;
            session.pid = pid_of(&groups, pid_at);
            set_local(conn, settings).await?;
            if tail.is_empty() {
                None
            } else {
                let statements_sent = tail.len();
                let groups = statements(conn, &tail.join("; ")).await?;
                judge(groups, statements_sent)?
            }
        };
        if utility {
            // EXPLAIN plans the query: the relations locked and the answer proved current
            // first (as before a DECLARE, see `Head`), in one message of our own text.
            if let (
                Some(Judged {
                    fingerprint: Some(f),
                    canonical,
                    lock,
                }),
                Some(names),
            ) = (&judged, &names_hex)
            {
                let check = match attempt {
                    Attempt::First => resolve::guard_sql(f),
                    Attempt::Again => format!(
                        "{}; {}; {}",
                        resolve::BEFORE.join("; "),
                        resolve::recheck_sql(f, names, canonical),
                        resolve::AFTER.join("; "),
                    ),
                };
                let message = match lock {
                    Some(l) => format!("{l}; {check}"),
                    None => check,
                };
                match sqlx::raw_sql(AssertSqlSafe(message))
                    .execute(&mut *conn)
                    .await
                {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(e))
                        if e.code().as_deref() == Some(resolve::STALE) =>
                    {
                        return Ok(None);
                    }
                    Err(e) => return Err(classify(e, &[])),
                }
            }
            let r = utility_rows(conn, sql, caps).await?;
            end(conn, false, self.catalog_versioned()).await?;
            return Ok(Some(r));
        }
        // The judged answer holds for the rows only if the DECLARE met the catalog it was
        // read from: a guard of the fingerprint read before the resolution on each side of
        // the DECLARE (see `Head`). A change committed meanwhile fails it; the call then
        // asks once more, behind the recheck of the same answer.
        let head = match (&judged, &names_hex) {
            (
                Some(Judged {
                    fingerprint: Some(f),
                    canonical,
                    lock,
                }),
                Some(names),
            ) => Some(match attempt {
                Attempt::First => Head {
                    statements: lock
                        .iter()
                        .map(|l| PipelinedStatement::from(l.clone()))
                        .chain([resolve::guard(f)])
                        .collect(),
                    rows: None,
                    post: vec![resolve::guard(f)],
                },
                Attempt::Again => {
                    let checked = || {
                        let text = |s: &str| PipelinedStatement::from(s.to_string());
                        let mut out: Vec<PipelinedStatement> = resolve::BEFORE.map(text).to_vec();
                        out.push(resolve::recheck(f, names, canonical));
                        out.extend(resolve::AFTER.map(text));
                        out
                    };
                    let mut statements: Vec<PipelinedStatement> = lock
                        .iter()
                        .map(|l| PipelinedStatement::from(l.clone()))
                        .collect();
                    statements.extend(checked());
                    Head {
                        statements,
                        rows: None,
                        post: checked(),
                    }
                }
            }),
            _ => None,
        };
        self.declare_and_fetch(conn, sql, params, caps, session, head)
            .await
    }

    /// Declares the cursor for `sql` and reads it under the caps, the transaction ended
    /// after (one round trip; `params.rs` adds one for parameters whose types are to be
    /// inferred). With `head`, the call's first statements (its BEGIN, the role and the
    /// guard of a kept answer) go first in the same flush; `None` back means the guard
    /// failed (the answer was stale) and nothing of the query ran.
    pub(super) async fn declare_and_fetch(
        &self,
        conn: &mut sqlx::PgConnection,
        sql: &str,
        params: &[Value],
        caps: Caps,
        session: &mut Session,
        head: Option<Head<'_>>,
    ) -> Result<Option<QueryResult>, GatewayError> {
        let err = |e| classify(e, &[]);
        let declare = format!("DECLARE dbward_cursor NO SCROLL CURSOR FOR {sql}");
        let bound = params::infer(conn, &declare, params).await?;
        let named = params::describes(params);
        let mut q = sqlx::query(AssertSqlSafe(declare)).persistent(false);
        for p in &bound {
            q = p.bind(q);
        }

        // One FETCH of up to max_rows + 1 rows (the extra row tells a cut result from a
        // complete one) and the end of the transaction. A row past the byte cap stops the
        // reading there: the connection is then closed rather than drained, so the
        // server's remaining output is never read (closing it ends the transaction on the
        // server).
        // (FETCH takes an int4 count.)
        let (head, mut head_rows, post) = head.map_or((Vec::new(), None, Vec::new()), |h| {
            (h.statements, h.rows, h.post)
        });
        let post_len = post.len();
        let mut fetch = post;
        fetch.push(PipelinedStatement::Text(format!(
            "FETCH FORWARD {} FROM dbward_cursor",
            caps.max_rows.saturating_add(1).min(i32::MAX as usize),
        )));
        fetch.extend(end_pipelined(conn, named, self.catalog_versioned()));
        // The DECLARE (extended protocol: one statement, unnamed, its parameters bound with
        // their own types), the FETCH and the end go out in one flush, one batch of the
        // extended protocol with one Sync, answered with one flush (the driver's
        // `fetch_pipelined`, `vendor/README.md`); nothing after a failed statement runs
        // (the server skips the rest of the batch up to its Sync).
        let mut columns: Vec<Column> = Vec::new();
        let mut unknown_oids: Vec<(usize, u32)> = Vec::new();
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        let mut truncated = false;
        {
            let head_len = head.len();
            let mut stream = conn.fetch_pipelined(head, q, fetch);
            // The head's results come first; then the DECLARE's CommandComplete; then the
            // check's (its row dropped); then the FETCH's rows until its CommandComplete;
            // after it come the end's own (pg_advisory_unlock_all's row).
            let mut head_done = 0;
            let mut declared = false;
            let mut post_done = 0;
            let mut fetched = false;
            'read: loop {
                let item = match stream.try_next().await {
                    Ok(Some(item)) if head_done < head_len => {
                        match item {
                            sqlx::Either::Left(_) => head_done += 1,
                            sqlx::Either::Right(row) => {
                                if let Some(rows) = head_rows.as_deref_mut() {
                                    rows.push(row);
                                }
                            }
                        }
                        continue;
                    }
                    Ok(Some(item)) => item,
                    Ok(None) => break,
                    // A guard or recheck failed, before the DECLARE or after it (before the
                    // FETCH): a stale answer, and no row was read (any other failure of the
                    // head is the call's error).
                    Err(sqlx::Error::Database(e))
                        if (head_done < head_len || (declared && post_done < post_len))
                            && e.code().as_deref() == Some(resolve::STALE) =>
                    {
                        return Ok(None);
                    }
                    // A row over the message limit (`message_limit`): refused from its
                    // header, never buffered. The result is cut there, as at the byte cap,
                    // and the session closed (it stands mid-message).
                    Err(e) if super::too_large(&e).is_some_and(|m| m.format == b'D') => {
                        truncated = true;
                        session.discard = true;
                        break 'read;
                    }
                    Err(e) => return Err(err(e)),
                };
                let row = match item {
                    sqlx::Either::Left(_) if !declared => {
                        declared = true;
                        continue;
                    }
                    sqlx::Either::Left(_) if post_done < post_len => {
                        post_done += 1;
                        continue;
                    }
                    sqlx::Either::Right(_) if post_done < post_len => continue,
                    sqlx::Either::Left(_) => {
                        fetched = true;
                        continue;
                    }
                    sqlx::Either::Right(_) if fetched => continue,
                    sqlx::Either::Right(row) => row,
                };
                if columns.is_empty() {
                    columns = columns_of(&row);
                    unknown_oids = row
                        .columns()
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.type_info().name() == "?")
                        .filter_map(|(i, c)| Some((i, c.type_info().oid()?.0)))
                        .collect();
                }
                if rows.len() == caps.max_rows {
                    // The extra row: the result was cut. The FETCH ends here anyway.
                    truncated = true;
                    continue;
                }
                let mut out = Vec::with_capacity(columns.len());
                for (i, col) in columns.iter().enumerate() {
                    let raw = row.try_get_raw(i).map_err(err)?;
                    let v = if raw.is_null() {
                        Value::Null
                    } else {
                        let text = raw
                            .as_str()
                            .map_err(|e| GatewayError::Database(e.to_string()))?;
                        bytes += text.len();
                        text_to_json(&col.type_name, text)
                    };
                    out.push(v);
                }
                if bytes > caps.max_bytes {
                    truncated = true;
                    session.discard = true;
                    break 'read;
                }
                rows.push(out);
            }
        }
        if columns.is_empty() {
            // No row read to take the shape from (none came, or the first was too large to
            // read): a Parse/Describe of the query (nothing runs), in a read-only
            // transaction of its own, since the first one has ended — on another session
            // when this one is to be closed.
            if session.discard {
                let mut other = self.pool.acquire().await.map_err(err)?;
                // Used for this one transaction, then closed: whether the describe ends
                // well, badly or not at all (the call dropped mid-way), nothing of it
                // goes back to the pool.
                other.close_on_drop();
                columns = self.describe(&mut other, sql).await?;
            } else {
                columns = self.describe(conn, sql).await?;
            }
        }
        // Our own catalog lookup (cached per type), after the rollback, in an implicit
        // transaction that the session's default makes read-only. A session cut at the byte
        // cap is closed, not reused (so a client can make a call cost a new session, at most
        // one per call): the lookup then goes over another.
        if !unknown_oids.is_empty() {
            if session.discard {
                let mut other = self.pool.acquire().await.map_err(err)?;
                self.name_types(&mut other, &mut columns, &unknown_oids)
                    .await?;
            } else {
                self.name_types(conn, &mut columns, &unknown_oids).await?;
            }
        }
        Ok(Some(QueryResult {
            row_count: rows.len(),
            columns,
            rows,
            truncated,
            elapsed_ms: 0,
        }))
    }

    /// The result columns of `sql` from a Parse/Describe (nothing runs), in a read-only
    /// transaction of its own that is rolled back, the driver's named statement dropped.
    async fn describe(
        &self,
        conn: &mut sqlx::PgConnection,
        sql: &str,
    ) -> Result<Vec<Column>, GatewayError> {
        let err = |e| classify(e, &[]);
        let again = match &self.reader_role {
            Some(r) => format!("{BEGIN}; SET LOCAL ROLE {}", quote_ident(r)),
            None => BEGIN.to_string(),
        };
        sqlx::raw_sql(AssertSqlSafe(again))
            .execute(&mut *conn)
            .await
            .map_err(err)?;
        let prepared = conn
            .prepare(AssertSqlSafe(sql.to_string()).into_sql_str())
            .await
            .map_err(err)?;
        let columns = prepared.columns().iter().map(column_of).collect();
        end(conn, true, self.catalog_versioned()).await?;
        Ok(columns)
    }

    /// Fills in the names of types the driver reported as `?`, from the catalog (cached).
    async fn name_types(
        &self,
        conn: &mut sqlx::PgConnection,
        columns: &mut [Column],
        unknown: &[(usize, u32)],
    ) -> Result<(), GatewayError> {
        let missing: Vec<i64> = {
            let known = self.type_names.lock().unwrap_or_else(|p| p.into_inner());
            unknown
                .iter()
                .filter(|(_, oid)| !known.contains_key(oid))
                .map(|(_, oid)| i64::from(*oid))
                .collect()
        };
        if !missing.is_empty() {
            let named: Vec<(i64, String)> = sqlx::query_as(
                "SELECT oid::int8, pg_catalog.format_type(oid, NULL) FROM pg_catalog.pg_type WHERE oid = ANY($1::int8[]::oid[])",
            )
            .persistent(false)
            .bind(&missing)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| classify(e, &[]))?;
            let mut known = self.type_names.lock().unwrap_or_else(|p| p.into_inner());
            for (oid, name) in named {
                known.insert(oid as u32, name);
            }
        }
        let known = self.type_names.lock().unwrap_or_else(|p| p.into_inner());
        for (i, oid) in unknown {
            if let (Some(c), Some(name)) = (columns.get_mut(*i), known.get(oid)) {
                c.type_name = name.clone();
            }
        }
        Ok(())
    }
}

/// A query in flight. If it is dropped while armed (the call was cancelled, or the client
/// deadline passed), the statement is cancelled on the server from another connection and
/// the connection is closed, never returned to the pool mid-query.
struct InFlight {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    pool: PgPool,
    session: Session,
    armed: bool,
}

/// The statements a call sends before its query, in the same flush
/// ([`PgBackend::declare_and_fetch`]), and where their rows go (`None`: dropped); and the
/// check sent between the DECLARE and the FETCH (`post`, its rows dropped).
///
/// The check after the DECLARE is what makes the judgement hold for the rows: the DECLARE
/// resolves the query's names and expands its views as the catalog stands when it runs,
/// which can be after a change committed since the answer was read (another session's
/// `CREATE OR REPLACE VIEW` between the resolution and the query: reproduced, a view
/// flipped in a loop returned a denied column in 46 of 400 calls). Once declared, every
/// relation the query reads is locked until the rollback and its plan is fixed; the check
/// then proves that nothing was committed since the answer was read (a guard), or that the
/// names still resolve to the same answer (a recheck), before the FETCH runs anything. The
/// check in the head, before the DECLARE, keeps the window in which the DECLARE's own
/// planning could meet a change (an owner function the planner folds) to the time between
/// two statements of one batch.
pub(super) struct Head<'a> {
    pub statements: Vec<PipelinedStatement>,
    pub rows: Option<&'a mut Vec<sqlx::postgres::PgRow>>,
    pub post: Vec<PipelinedStatement>,
}

/// A resolution answer the judge passed, for the checks around the DECLARE (`Head`).
struct Judged {
    /// The fingerprint read just before it (with snapshots).
    fingerprint: Option<String>,
    /// Its canonical text (`resolve::CANONICAL`), for a recheck.
    canonical: String,
    /// The `LOCK TABLE` of the relations it names (`resolve::lock_statement`).
    lock: Option<String>,
}

/// Which attempt at a call [`PgBackend::run_once`] makes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// The first: a kept answer if there is one; guards around the DECLARE.
    First,
    /// After a guard around the DECLARE failed: a fresh answer, rechecks around it.
    Again,
}

/// What a call learns about its pooled session as it runs.
#[derive(Default)]
pub(super) struct Session {
    /// The server process, for a cancel request from another connection.
    pub(super) pid: Option<i32>,
    /// The session must not be reused (reading stopped mid-result at the byte cap).
    discard: bool,
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
            rt.spawn(end_abandoned(pool, pid));
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

/// One result column: its label and the driver's name for its type, lower-cased.
fn column_of(c: &sqlx::postgres::PgColumn) -> Column {
    Column {
        name: c.name().to_string(),
        type_name: c.type_info().name().to_ascii_lowercase(),
    }
}

/// Column names and types of a result row.
fn columns_of(row: &sqlx::postgres::PgRow) -> Vec<Column> {
    row.columns().iter().map(column_of).collect()
}

/// The start of every call's transaction: read-only, and READ COMMITTED whatever the
/// database's or the role's default (`ALTER DATABASE ... SET default_transaction_isolation`
/// is the owner's to set): under REPEATABLE READ or SERIALIZABLE every statement would see
/// the snapshot of the first, so the guard and the recheck would prove an answer current
/// against the catalog as it stood when the call began while the DECLARE plans against the
/// catalog as it stands (a red-team pass got a denied column in 30 of 800 calls that way).
const BEGIN: &str = "BEGIN READ ONLY ISOLATION LEVEL READ COMMITTED";

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
fn end_pipelined(
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
async fn statements(
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
fn pid_of(groups: &[Vec<sqlx::postgres::PgRow>], at: usize) -> Option<i32> {
    let row = groups.get(at)?.first()?;
    let last = row.len().checked_sub(1)?;
    let raw = row.try_get_raw(last).ok()?;
    raw.as_str().ok()?.parse().ok()
}

/// The text in the first column of the first row of statement `at`.
fn first_text(groups: &[Vec<sqlx::postgres::PgRow>], at: usize) -> Option<String> {
    let raw = groups.get(at)?.first()?.try_get_raw(0).ok()?;
    raw.as_str().ok().map(str::to_string)
}

/// Sets the call's session settings for the rest of its transaction (`is_local`): names
/// and values go as parameters of one statement of our own text, never spliced, in the
/// order given.
async fn set_local(
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
/// a statement (the Parse/Describe of an empty result's shape, or of parameters' types), `named` drops
/// every prepared statement of the session — a named statement outlives the transaction
/// with its text, which the next caller on this pooled session could read in
/// `pg_prepared_statements` — and prepares dbward's own statements again. The
/// driver's statement cache is off and every other statement is unnamed. One round trip.
async fn end(
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

/// Rows of an EXPLAIN or SHOW (text and json columns only), capped as they stream.
async fn utility_rows(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    caps: Caps,
) -> Result<QueryResult, GatewayError> {
    let err = |e| classify(e, &[]);
    let mut stream = sqlx::query(AssertSqlSafe(sql.to_string()))
        .persistent(false)
        .fetch(&mut *conn);
    let mut columns: Vec<Column> = Vec::new();
    let mut rows = Vec::new();
    let (mut bytes, mut truncated) = (0usize, false);
    while let Some(row) = stream.try_next().await.map_err(err)? {
        if columns.is_empty() {
            columns = row.columns().iter().map(column_of).collect();
        }
        if rows.len() == caps.max_rows {
            truncated = true;
            break;
        }
        let mut out = Vec::with_capacity(columns.len());
        for (i, col) in columns.iter().enumerate() {
            let raw = row.try_get_raw(i).map_err(err)?;
            if raw.is_null() {
                out.push(Value::Null);
                continue;
            }
            let b = raw
                .as_bytes()
                .map_err(|e| GatewayError::Database(e.to_string()))?;
            // jsonb's binary form is a version byte then the text.
            let b = if col.type_name == "jsonb" {
                b.get(1..).unwrap_or_default()
            } else {
                b
            };
            let text = String::from_utf8_lossy(b);
            bytes += text.len();
            out.push(text_to_json(&col.type_name, &text));
        }
        if bytes > caps.max_bytes {
            truncated = true;
            break;
        }
        rows.push(out);
    }
    drop(stream);
    Ok(QueryResult {
        row_count: rows.len(),
        columns,
        rows,
        truncated,
        elapsed_ms: 0,
    })
}
