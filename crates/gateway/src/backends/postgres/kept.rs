//! PostgreSQL: a call run on a kept resolution answer (`resolve::Cache`).
//!
//! The call goes out in one flush behind the answer's guard (`resolve::guard`), which lets
//! the query run only while the session's fingerprint is the one the answer was read under.
//! When it is not (by default, any transaction committed since, anywhere in the cluster),
//! the call goes out once more behind the recheck (`resolve::recheck`): one statement that
//! reads the answer afresh and lets the query run only if it is the same, word for word;
//! the answer is then kept under the fingerprint read in that same statement, and the
//! calls after it pass the guard again. Only when the answer itself changed is it read
//! afresh and judged again (`execute.rs`). So a database in use costs a call one more round
//! trip, and the resolution, after each commit, not on every call.

use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::PipelinedStatement;

use super::PgBackend;
use super::execute::{Head, Session};
use super::resolve;
use crate::backends::{Caps, QueryResult};
use crate::error::GatewayError;

/// A call on a kept answer.
pub(super) struct OnKept<'a> {
    /// The answer.
    pub kept: &'a resolve::Kept,
    /// Its key (`resolve::statement`).
    pub key: &'a str,
    /// The names, as the resolution takes them (`resolve::names_hex`).
    pub names_hex: &'a resolve::NamesHex,
    /// The call's first statements: its BEGIN, the timeouts it sets, its role.
    pub prefix: Vec<PipelinedStatement>,
}

impl PgBackend {
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
        guarded.push(resolve::guard(&on.kept.fingerprint));
        let head = Head {
            statements: guarded,
            rows: None,
            post: vec![resolve::guard(&on.kept.fingerprint)],
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
        rechecked.push(resolve::recheck(
            &on.kept.fingerprint,
            on.names_hex,
            &on.kept.canonical,
        ));
        rechecked.extend(resolve::AFTER.map(text));
        // After the DECLARE the same recheck again (see `Head`); its rows are dropped.
        let mut post: Vec<PipelinedStatement> = resolve::BEFORE.map(text).to_vec();
        post.push(resolve::recheck(
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
