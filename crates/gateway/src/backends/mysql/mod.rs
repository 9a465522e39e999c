//! MySQL and MariaDB through sqlx.
//!
//! What must hold, whatever the policy layer decided:
//! - Client SQL reaches the server only through the prepared-statement protocol
//!   (`COM_STMT_PREPARE` + `COM_STMT_EXECUTE`, via `sqlx::query` with binds). The server
//!   prepares exactly one statement per message, so a second statement cannot ride along.
//!   (sqlx always advertises `CLIENT_MULTI_STATEMENTS` and offers no way to turn it off;
//!   that flag only matters to the text protocol, which carries nothing but our own
//!   constant statements.)
//! - Every query runs inside `START TRANSACTION READ ONLY`, after
//!   `SET SESSION TRANSACTION READ ONLY`. The session setting matters: DDL commits the open
//!   transaction implicitly and would then run outside it, but it cannot run while the
//!   session's own access mode is read-only. The transaction is always rolled back.
//! - A statement that returns no result set (SET, DO, KILL, HANDLER, CALL, plain DML, DDL)
//!   is refused after `PREPARE` and before it runs: the server's own prepare response says
//!   how many columns the statement returns, and a read-only query returns some.
//! - The statement timeout is set per query on the server (MariaDB `max_statement_time`,
//!   MySQL `max_execution_time`), with a client-side deadline as a backstop, after which
//!   the server thread is killed from another pooled connection.
//! - Rows are streamed and the stream stops at the row or byte cap. A connection that saw
//!   an early stop, an error, a timeout or a cancellation is closed, never returned to the
//!   pool: the unread rest of the result and any session state die with it (dropping a
//!   stream alone does not stop the server). A connection goes back to the pool only after
//!   `ROLLBACK` and `RELEASE_ALL_LOCKS()` succeeded.
//!
//! Values are read in the binary protocol's raw form and converted to JSON by the column's
//! type, without float rounding of DECIMAL. Sessions run with `time_zone = '+00:00'` (the
//! sqlx default), so TIMESTAMP values are UTC.

mod catalog;
mod connect;
mod execute;
mod types;

use sqlx::mysql::{MySqlDatabaseError, MySqlPool};

use crate::error::{GatewayError, scrub};

/// An open MySQL or MariaDB connection pool.
#[derive(Debug, Clone)]
pub struct MyBackend {
    pool: MySqlPool,
    /// MariaDB and MySQL differ in the timeout variable and in how JSON columns look.
    mariadb: bool,
    /// The server's version string, as `SELECT version()` reports it.
    pub server_version: String,
}

/// Classifies a driver error into a user-facing error; secrets are scrubbed.
pub(crate) fn classify(e: sqlx::Error, secrets: &[&str]) -> GatewayError {
    match &e {
        sqlx::Error::Database(db) => {
            let msg = scrub(db.message(), secrets);
            let number = db
                .try_downcast_ref::<MySqlDatabaseError>()
                .map(|m| m.number())
                .unwrap_or(0);
            match number {
                1064 => GatewayError::Syntax(msg),
                1044 | 1045 | 1142 | 1143 | 1227 | 1370 => GatewayError::PermissionDenied(msg),
                1146 => GatewayError::UnknownTable(msg),
                1792 => GatewayError::ReadOnlyViolation(msg),
                // 1969: MariaDB max_statement_time; 3024: MySQL max_execution_time.
                1969 | 3024 => GatewayError::Timeout(0),
                // Too many connections, unknown database, server shutting down.
                1040 | 1049 | 1053 | 1203 => GatewayError::ConnectionUnavailable(msg),
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

impl MyBackend {
    /// Pool size and idle connections, for metrics.
    pub fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Whether the server is MariaDB.
    pub fn is_mariadb(&self) -> bool {
        self.mariadb
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
