//! Client queries: the public entry points and the orchestration of one call: the
//! read-only transaction's first message, the resolution and its judgement, a kept answer
//! tried first, the checks around the DECLARE ([`Head`]) and the one retry after a stale
//! answer. The cursor is read in `fetch.rs`; the transaction's start and end, and the end of
//! an abandoned call, are in `session.rs`.

use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::AssertSqlSafe;
use sqlx::postgres::PipelinedStatement;

use super::fetch::utility_rows;
use super::kept::OnKept;
use super::resolve::{self, Resolver};
use super::session::{BEGIN, InFlight, Session, end, first_text, pid_of, set_local, statements};
use super::{PgBackend, classify, guard, params, quote_ident};
use crate::backends::{Caps, QueryResult};
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
        // Where the catalog version is installed, the shared side of its lock: no DDL
        // commits from here to the call's rollback (`guard::DDL_LOCK`). After the timeouts
        // (a DDL transaction left open makes the call wait `lock_timeout`, no more), in a
        // statement before the fingerprint's, which then sees every DDL committed before.
        let versioned = self.catalog_versioned();
        if versioned {
            first.push_str(guard::DDL_LOCK);
            first.push_str(", ");
        }
        first.push_str("pg_catalog.pg_backend_pid()");
        // The resolution statement for the query's names, also the key of a kept answer.
        let names_hex = resolver.map(|r| resolve::names_hex(&r.names));
        let executes = names_hex.as_ref().map(resolve::statement);
        // A kept answer is used when the call sets no session settings and has no
        // parameter whose type is to be inferred (an EXPLAIN or SHOW goes after one message
        // of its own), and the judge passes it: the query then runs behind the guard, which
        // lets it run only if the database proves the answer is still the one it would give
        // (`guard::guard`). A refusal is always made on a fresh answer. (Parameters' types
        // are inferred by a Describe, whose parse of the query can run owner code: a
        // literal of a composite type is converted at parse time, running its domain
        // attributes' CHECKs. So it must follow a judged answer; on a kept one it would come
        // before the guard that proves the answer current. Measured: a CHECK the owner
        // added after the answer was kept ran in 5 of 5 calls.)
        let kept = match (resolver, &executes) {
            (Some(r), Some(key))
                if attempt == Attempt::First
                    && self.snapshots
                    && settings.is_empty()
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
            // Timeouts (if the call sets any) as the login role, then the role; the lock
            // and the guard follow (`kept.rs`).
            let mut first_statements: Vec<String> = vec![head[0].clone()];
            if sets_timeouts || versioned {
                // (`first` takes the DDL lock too, where versioned: before the lock of the
                // relations and the guard.)
                first_statements.push(head[1].clone());
            }
            first_statements.extend(role.clone());
            let outcome = if utility {
                // EXPLAIN or SHOW: one message of our own before it.
                self.utility_on_kept(conn, sql, caps, session, first_statements, k)
                    .await?
            } else {
                let lock = k.lock.clone().map(PipelinedStatement::from);
                let prefix = first_statements
                    .into_iter()
                    .map(PipelinedStatement::from)
                    .chain(lock)
                    .collect();
                let on_kept = OnKept {
                    kept: k,
                    key,
                    names_hex: names,
                    prefix,
                };
                self.run_kept(conn, sql, params, caps, session, on_kept)
                    .await?
            };
            match outcome {
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
                tail.push(guard::fingerprint_sql(versioned));
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
            let lock = guard::lock_statement(&resolution);
            // After a kept answer was found stale (its guard and its recheck failed): if
            // the answer changed, every kept answer is asked afresh for a while
            // (`kept::Cache::stale`).
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
                    Attempt::First => guard::guard_sql(f),
                    Attempt::Again => format!(
                        "{}; {}; {}",
                        resolve::BEFORE.join("; "),
                        guard::recheck_sql(f, names, canonical),
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
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(guard::STALE) => {
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
                        .chain([guard::guard(f)])
                        .collect(),
                    rows: None,
                    post: vec![guard::guard(f)],
                },
                Attempt::Again => {
                    let checked = || {
                        let text = |s: &str| PipelinedStatement::from(s.to_string());
                        let mut out: Vec<PipelinedStatement> = resolve::BEFORE.map(text).to_vec();
                        out.push(guard::recheck(f, names, canonical));
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
    /// The `LOCK TABLE` of the relations it names (`guard::lock_statement`).
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
