//! PostgreSQL: kept resolution answers ([`Cache`]), and a call run on one.
//!
//! The call goes out in one flush behind the answer's guard (`guard::guard`), which lets
//! the query run only while the session's fingerprint is the one the answer was read under.
//! When it is not (by default, any transaction committed since, anywhere in the cluster),
//! the call goes out once more behind the recheck (`guard::recheck`): one statement that
//! reads the answer afresh and lets the query run only if it is the same, word for word;
//! the answer is then kept under the fingerprint read in that same statement, and the
//! calls after it pass the guard again. Only when the answer itself changed is it read
//! afresh and judged again (`execute.rs`). So a database in use costs a call one more round
//! trip, and the resolution, after each commit, not on every call. (An EXPLAIN or SHOW sends
//! its BEGIN, role, lock and guard in one message before it, and on a failed guard is
//! resolved afresh. A call with parameters whose types are to be inferred never uses a kept
//! answer: see `execute.rs`.)
//!
//! Invariant: a kept answer is used only behind its guard or its recheck, in the call's own
//! transaction; the store is one per connection pool and bounded ([`KEPT`] answers, keys up
//! to [`KEPT_KEY_MAX`] bytes).

use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PipelinedStatement;

use super::PgBackend;
use super::execute::Head;
use super::fetch::utility_rows;
use super::guard::{self, lock_statement};
use super::resolve::{self, Resolution};
use super::session::{Session, end};
use crate::backends::{Caps, QueryResult};
use crate::error::GatewayError;

/// Answers kept: at most this many per connection pool.
const KEPT: usize = 256;
/// The longest [`statement`](super::resolve::statement) (the key) whose answer is kept, in
/// bytes.
const KEPT_KEY_MAX: usize = 8192;
/// After a kept answer was found stale, answers are asked afresh for this long: on a
/// database where transactions commit all the time, a guard would fail on most calls and
/// cost a round trip each.
const AFTER_STALE: std::time::Duration = std::time::Duration::from_secs(1);

/// A kept answer and the [`fingerprint`](super::guard::fingerprint) it was read under.
#[derive(Debug)]
pub(super) struct Kept {
    pub fingerprint: String,
    pub resolution: Resolution,
    /// The answer's `resolve::CANONICAL` text.
    pub canonical: String,
    /// Its [`lock_statement`], made once when it is kept.
    pub lock: Option<String>,
}

/// Resolution answers, by [`statement`](super::resolve::statement) (the names), for one
/// connection pool (one login, database and reader role). Bounded: [`KEPT`] answers, keys
/// up to [`KEPT_KEY_MAX`]; when full it starts again empty.
#[derive(Debug, Default)]
pub(super) struct Cache {
    kept: std::sync::Mutex<std::collections::HashMap<Box<str>, std::sync::Arc<Kept>>>,
    stale_at: std::sync::Mutex<Option<std::time::Instant>>,
    /// Calls that ran on a kept answer, found one stale, and asked afresh.
    counts: [std::sync::atomic::AtomicU64; 4],
}

impl Cache {
    /// The answer kept for `key`, unless one was found stale in the last [`AFTER_STALE`].
    pub(super) fn get(&self, key: &str) -> Option<std::sync::Arc<Kept>> {
        let stale_at = *self.stale_at.lock().unwrap_or_else(|p| p.into_inner());
        if stale_at.is_some_and(|t| t.elapsed() < AFTER_STALE) {
            return None;
        }
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(key).cloned()
    }

    /// Keeps `answer` (a resolution and its canonical text), read under `fingerprint`, for
    /// `key`.
    pub(super) fn put(&self, key: &str, fingerprint: String, answer: (Resolution, String)) {
        if key.len() > KEPT_KEY_MAX {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= KEPT && !kept.contains_key(key) {
            kept.clear();
        }
        kept.insert(
            key.into(),
            std::sync::Arc::new(Kept {
                fingerprint,
                lock: lock_statement(&answer.0),
                resolution: answer.0,
                canonical: answer.1,
            }),
        );
    }

    /// Counts a call sent behind the guard of a kept answer (`0`), one whose guard failed
    /// (`1`, counted in `0` too), one that asked afresh (`2`), or one sent behind a
    /// [`recheck`](super::guard::recheck) (`3`, after a failed guard: counted in `0` and
    /// `1` too).
    pub(super) fn count(&self, which: usize) {
        if let Some(c) = self.counts.get(which) {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The counts of [`Cache::count`]: kept, stale, asked, rechecked.
    pub(super) fn counts(&self) -> [u64; 4] {
        self.counts
            .each_ref()
            .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// A guard failed: the kept answers are asked afresh for [`AFTER_STALE`].
    pub(super) fn stale(&self) {
        *self.stale_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
    }
}

/// A call on a kept answer.
pub(super) struct OnKept<'a> {
    /// The answer.
    pub kept: &'a Kept,
    /// Its key (`resolve::statement`).
    pub key: &'a str,
    /// The names, as the resolution takes them (`resolve::names_hex`).
    pub names_hex: &'a resolve::NamesHex,
    /// The call's first statements, sent in the one flush before the guard: its BEGIN,
    /// the timeouts it sets, its role, and the lock of the relations the answer names.
    pub prefix: Vec<PipelinedStatement>,
}

impl PgBackend {
    /// Runs an EXPLAIN or SHOW (`sql`) on a kept answer: one simple-protocol message of our
    /// own first (`opening`: the call's BEGIN, the timeouts it sets, its role; then the lock
    /// of the relations the answer names and its guard), so the statement plans only
    /// definitions proved unchanged, as after a fresh answer's check (`execute.rs`); then
    /// the statement, then the end. `None`: the guard failed, nothing of `sql` ran, and
    /// the session's transaction has failed (the caller's next message starts with
    /// `ROLLBACK`).
    pub(super) async fn utility_on_kept(
        &self,
        conn: &mut sqlx::PgConnection,
        sql: &str,
        caps: Caps,
        session: &mut Session,
        opening: Vec<String>,
        kept: &Kept,
    ) -> Result<Option<QueryResult>, GatewayError> {
        session.pid = i32::try_from(conn.backend_pid()).ok().filter(|p| *p != 0);
        self.resolutions.count(0);
        let mut message = opening;
        message.extend(kept.lock.clone());
        message.push(guard::guard_sql(&kept.fingerprint));
        match sqlx::raw_sql(sqlx::AssertSqlSafe(message.join("; ")))
            .execute(&mut *conn)
            .await
        {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(guard::STALE) => {
                self.resolutions.count(1);
                return Ok(None);
            }
            Err(e) => return Err(super::classify(e, &[])),
        }
        let r = utility_rows(conn, sql, caps).await?;
        end(conn, false, self.catalog_versioned()).await?;
        Ok(Some(r))
    }

    /// Runs `sql` on a kept answer: behind its guard, then, if the guard fails, behind the
    /// recheck. `None`: the answer changed; nothing of the query ran, and the session's
    /// transaction has failed (the caller's next message starts with `ROLLBACK`).
    pub(super) async fn run_kept(
        &self,
        conn: &mut sqlx::PgConnection,
        sql: &str,
        params: &[Value],
        caps: Caps,
        session: &mut Session,
        on: OnKept<'_>,
    ) -> Result<Option<QueryResult>, GatewayError> {
        let err = |e| super::classify(e, &[]);
        // The server answers the whole flush at once, so no row of it comes back before
        // the query's: the pid a call abandoned before then needs for its cancel is the
        // session's own, from its startup (`end_abandoned` cancels only a dbward session of
        // that pid).
        session.pid = i32::try_from(conn.backend_pid()).ok().filter(|p| *p != 0);
        self.resolutions.count(0);
        // The guard on each side of the DECLARE (see `Head`).
        let mut guarded = on.prefix.clone();
        guarded.push(guard::guard(&on.kept.fingerprint));
        let head = Head {
            statements: guarded,
            rows: None,
            post: vec![guard::guard(&on.kept.fingerprint)],
        };
        if let Some(r) = self
            .declare_and_fetch(conn, sql, params, caps, session, Some(head))
            .await?
        {
            return Ok(Some(r));
        }
        // The guard failed and nothing of the query ran: read the rest of the pipeline's
        // replies, then the same call behind the recheck, the rollback in the same flush.
        self.resolutions.count(1);
        conn.skip_pending().await.map_err(err)?;
        self.resolutions.count(3);
        let text = |s: &str| PipelinedStatement::from(s.to_string());
        let mut rechecked = vec![text("ROLLBACK")];
        rechecked.extend(on.prefix);
        rechecked.extend(resolve::BEFORE.map(text));
        rechecked.push(guard::recheck(
            &on.kept.fingerprint,
            on.names_hex,
            &on.kept.canonical,
        ));
        rechecked.extend(resolve::AFTER.map(text));
        // After the DECLARE the same recheck again (see `Head`); its rows are dropped.
        let mut post: Vec<PipelinedStatement> = resolve::BEFORE.map(text).to_vec();
        post.push(guard::recheck(
            &on.kept.fingerprint,
            on.names_hex,
            &on.kept.canonical,
        ));
        post.extend(resolve::AFTER.map(text));
        let mut rows = Vec::new();
        let head = Head {
            statements: rechecked,
            rows: Some(&mut rows),
            post,
        };
        let Some(r) = self
            .declare_and_fetch(conn, sql, params, caps, session, Some(head))
            .await?
        else {
            conn.skip_pending().await.map_err(err)?;
            return Ok(None);
        };
        // The same answer: kept now under the fingerprint the recheck read, in the statement
        // that read the answer (a change committed after it can only make it look stale).
        // Its row is the head's last (the timeouts' `SELECT`, when sent, has one before it;
        // the settings after it have none).
        let fingerprint = rows.last().and_then(|row| row.try_get::<String, _>(1).ok());
        if let Some(f) = fingerprint {
            self.resolutions.put(
                on.key,
                f,
                (on.kept.resolution.clone(), on.kept.canonical.clone()),
            );
        }
        Ok(Some(r))
    }
}
