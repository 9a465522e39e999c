//! A MySQL/MariaDB connection checked out for the catalog reads of one tool call
//! (`list_tables`, `describe_table`, `search_tables`, `get_table_stats`, and the table
//! lookups of `read_table`), under the statement timeout and stopped on the server if the
//! call ends first, as an abandoned query is.
//!
//! Every checkout sets the session's statement timeout (MariaDB `max_statement_time`,
//! MySQL `max_execution_time`) and lock waits from the connection's limits, so a slow
//! catalog read fails on the server at the timeout; a client deadline a little later is
//! the backstop. When the call is abandoned (the adapter's timeout, a cancellation, the
//! client gone, shutdown) or the deadline passes, dropping the [`CatalogConn`] sends
//! `KILL QUERY`, then `KILL CONNECTION` if the statement stays, from another pooled
//! connection, and closes this one.
//!
//! Invariant: a checkout dropped while armed is never returned to the pool.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use sqlx::AssertSqlSafe;
use sqlx::mysql::{MySql, MySqlConnection, MySqlPool};
use sqlx::pool::PoolConnection;

use super::execute::{stop_thread, timeout_assignment};
use super::types::text_at;
use super::{MyBackend, classify};
use crate::error::GatewayError;

/// One checkout for catalog reads; call [`CatalogConn::done`] when they succeed.
pub(crate) struct CatalogConn {
    conn: Option<PoolConnection<MySql>>,
    pool: MySqlPool,
    /// The session's server thread, to kill from another connection.
    thread_id: Option<u64>,
    /// A statement may still run: stop it on drop.
    armed: bool,
    /// The reads succeeded: the connection may go back to the pool.
    clean: bool,
}

impl CatalogConn {
    /// Checks a connection out, bounds its session and learns its thread id (one round
    /// trip of our own constant statements).
    pub(crate) async fn acquire(backend: &MyBackend) -> Result<CatalogConn, GatewayError> {
        let conn = backend.pool.acquire().await.map_err(|e| classify(e, &[]))?;
        let mut guard = CatalogConn {
            conn: Some(conn),
            pool: backend.pool.clone(),
            thread_id: None,
            armed: true,
            clean: false,
        };
        let lock_s = backend.catalog_lock_timeout_ms.div_ceil(1000).max(1);
        let setup = format!(
            "SET SESSION {}, lock_wait_timeout = {lock_s}, innodb_lock_wait_timeout = {lock_s}; \
             SELECT CAST(CONNECTION_ID() AS CHAR)",
            timeout_assignment(backend.mariadb, backend.catalog_timeout_ms)
        );
        let rows = sqlx::raw_sql(AssertSqlSafe(setup))
            .fetch_all(&mut *guard)
            .await
            .map_err(|e| classify(e, &[]))?;
        guard.thread_id = rows
            .first()
            .and_then(|r| text_at(r, 0))
            .and_then(|t| t.parse().ok());
        Ok(guard)
    }

    /// The reads are over: the connection goes back to the pool.
    pub(crate) fn done(mut self) {
        self.armed = false;
        self.clean = true;
    }

    /// The server answered with an error: nothing runs, but the session is not reused.
    fn answered(mut self) {
        self.armed = false;
    }
}

impl MyBackend {
    /// Runs `reads` on a bounded catalog checkout: a server timeout is answered as the
    /// configured timeout, and a read still running at the client deadline is stopped.
    pub(crate) async fn bounded_catalog<T>(
        &self,
        reads: impl AsyncFnOnce(&mut MySqlConnection) -> Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        let mut conn = CatalogConn::acquire(self).await?;
        let deadline = Duration::from_millis(self.catalog_timeout_ms + 2_000);
        match tokio::time::timeout(deadline, reads(&mut conn)).await {
            Ok(Ok(out)) => {
                conn.done();
                Ok(out)
            }
            // The server answered, so its statement is over: the session is closed (it may
            // have stopped mid-read) but there is nothing to kill.
            Ok(Err(e)) => {
                conn.answered();
                Err(match e {
                    GatewayError::Timeout(_) => GatewayError::Timeout(self.catalog_timeout_ms),
                    other => other,
                })
            }
            // Dropping the armed checkout stops the statement on the server.
            Err(_) => Err(GatewayError::Timeout(self.catalog_timeout_ms)),
        }
    }
}

impl Deref for CatalogConn {
    type Target = MySqlConnection;
    fn deref(&self) -> &MySqlConnection {
        self.conn.as_deref().expect("held until drop")
    }
}

impl DerefMut for CatalogConn {
    fn deref_mut(&mut self) -> &mut MySqlConnection {
        self.conn.as_deref_mut().expect("held until drop")
    }
}

impl Drop for CatalogConn {
    fn drop(&mut self) {
        // An error or an abandoned call: close the session rather than reuse it, and stop
        // whatever it may still be running.
        if !self.clean
            && let Some(c) = self.conn.as_mut()
        {
            c.close_on_drop();
        }
        if !self.armed {
            return;
        }
        if let (Some(id), Ok(rt)) = (self.thread_id, tokio::runtime::Handle::try_current()) {
            crate::backends::ending::spawn(&rt, stop_thread(self.pool.clone(), id));
        }
    }
}
