//! A PostgreSQL connection checked out for the catalog reads of one tool call
//! (`list_tables`, `describe_table`, `search_tables`, `get_table_stats`, and the table
//! lookups of `read_table`), cancelled on the server if the call ends first.
//!
//! Every pooled session already runs under `statement_timeout` and `lock_timeout` (set in
//! its start-up options by `PgBackend::connect`), so a catalog read on a table another
//! session holds `ACCESS EXCLUSIVE` fails after the lock timeout instead of waiting. When
//! the call is abandoned before that (the adapter's timeout, a cancellation, the client
//! gone, shutdown), dropping the [`CatalogConn`] cancels its statement from another
//! session (then terminates it if it stays, as for an abandoned query) and closes the
//! connection, so nothing is left waiting in `pg_stat_activity`
//! holding a pool slot.
//!
//! Invariant: a checkout dropped while armed is never returned to the pool.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgPool;
use sqlx::{PgConnection, Postgres};

use super::classify;
use crate::error::GatewayError;

/// One checkout for catalog reads; call [`CatalogConn::done`] when they succeed.
pub(crate) struct CatalogConn {
    conn: Option<PoolConnection<Postgres>>,
    pool: PgPool,
    /// The session's server process, for a cancel request from another session.
    pid: Option<i32>,
    armed: bool,
}

impl CatalogConn {
    /// Checks a connection out of `pool` and learns its server process id.
    pub(crate) async fn acquire(pool: &PgPool) -> Result<CatalogConn, GatewayError> {
        let conn = pool.acquire().await.map_err(|e| classify(e, &[]))?;
        let mut guard = CatalogConn {
            conn: Some(conn),
            pool: pool.clone(),
            pid: None,
            armed: true,
        };
        // Our own constant statement.
        let pid: i32 = sqlx::query_scalar("SELECT pg_catalog.pg_backend_pid()")
            .persistent(false)
            .fetch_one(&mut *guard)
            .await
            .map_err(|e| classify(e, &[]))?;
        guard.pid = Some(pid);
        Ok(guard)
    }

    /// The reads are over: the connection goes back to the pool.
    pub(crate) fn done(mut self) {
        self.armed = false;
    }
}

impl Deref for CatalogConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn.as_deref().expect("held until drop")
    }
}

impl DerefMut for CatalogConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_deref_mut().expect("held until drop")
    }
}

impl Drop for CatalogConn {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // An error or an abandoned call: close the session rather than reuse it, and
        // cancel whatever it may still be running.
        if let Some(c) = self.conn.as_mut() {
            c.close_on_drop();
        }
        // The same ending as an abandoned query's: cancel, then terminate if it stays.
        if let (Some(pid), Ok(rt)) = (self.pid, tokio::runtime::Handle::try_current()) {
            crate::backends::ending::spawn(
                &rt,
                super::session::end_abandoned(self.pool.clone(), pid),
            );
        }
    }
}
