//! MySQL and MariaDB through sqlx.
//!
//! What must hold, whatever the policy layer decided:
//! - Client SQL reaches the server only through the prepared-statement protocol
//!   (`COM_STMT_PREPARE` + `COM_STMT_EXECUTE`, via `sqlx::query` with binds). The server
//!   prepares exactly one statement per message, so a second statement cannot ride along.
//!   (sqlx always advertises `CLIENT_MULTI_STATEMENTS` and offers no way to turn it off;
//!   that flag only matters to the text protocol, which carries nothing but our own
//!   constant statements.)
//! - What the query's names refer to (views and their definitions, routines, generated
//!   columns) is judged on the query's own connection, inside its transaction, after the
//!   relations it names are locked until the transaction ends (`resolve`): a view redefined
//!   or a table altered between the judgement and the run waits for the ROLLBACK.
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
//! - Every session runs with the pinned [`SQL_MODE`] (set when the pool opens it and again
//!   before each query), so the server reads SQL as the policy's parser did, whatever the
//!   server's global mode.
//! - Session state never crosses calls: after the rollback, the same round trip asks whether
//!   the session keeps user variables or a `LAST_INSERT_ID(n)`; if it does, or cannot say,
//!   the connection is discarded (sqlx offers no COM_RESET_CONNECTION).
//! - When a call ends without the server's answer (deadline passed, caller gone), its
//!   statement is stopped: `KILL QUERY`, then `KILL CONNECTION` if it still runs a second
//!   later. A single function call that never checks the kill flag still runs to its end;
//!   the policy bounds those inputs.
//!
//! Values are read in the binary protocol's raw form and converted to JSON by the column's
//! type, without float rounding of DECIMAL. Sessions run with `time_zone = '+00:00'` (the
//! sqlx default), so TIMESTAMP values are UTC.

mod catalog;
mod catalog_conn;
mod connect;
mod execute;
pub mod grants;
mod resolve;
mod routines;
mod types;
mod views;

pub use resolve::InTxn;
pub use routines::Resolution;
use sqlx::mysql::{MySqlDatabaseError, MySqlPool};
pub use views::ViewDefinition;

use crate::error::{GatewayError, scrub};

/// The sql_mode every session runs with: the lexical and grammar rules `sqlparser`'s MySQL
/// dialect assumes (no ANSI_QUOTES, NO_BACKSLASH_ESCAPES, PIPES_AS_CONCAT, IGNORE_SPACE,
/// HIGH_NOT_PRECEDENCE, ORACLE/MSSQL modes), with MariaDB's and MySQL's strict defaults,
/// all of which exist on both servers.
pub const SQL_MODE: &str = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION";

/// The statement that pins [`SQL_MODE`] on a session.
const PIN_SQL_MODE: &str = "SET SESSION sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'";

/// An open MySQL or MariaDB connection pool.
#[derive(Debug, Clone)]
pub struct MyBackend {
    pool: MySqlPool,
    /// MariaDB and MySQL differ in the timeout variable and in how JSON columns look.
    mariadb: bool,
    /// The server's version string, as `SELECT version()` reports it.
    pub server_version: String,
    /// The statement timeout of catalog reads (the connection's `statement_timeout_ms`).
    catalog_timeout_ms: u64,
    /// The lock wait bound of catalog reads (the connection's `lock_timeout_ms`).
    catalog_lock_timeout_ms: u64,
    /// The login user's posture, read at connect time on the connection that read the
    /// version (`connect_posture`).
    connect_posture:
        std::sync::Arc<std::sync::Mutex<Option<crate::tools::security_posture::RolePosture>>>,
}

impl MyBackend {
    /// The posture read at connect time, once (later reads go to the server:
    /// [`MyBackend::posture`]).
    pub fn connect_posture(&self) -> Option<crate::tools::security_posture::RolePosture> {
        self.connect_posture
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// The oversized packet the driver refused from its header, if that is what `e` is.
pub(crate) fn too_large(e: &sqlx::Error) -> Option<sqlx::mysql::MySqlPacketTooLarge> {
    crate::backends::too_large(e)
}

/// Classifies a driver error into a user-facing error; secrets are scrubbed.
pub(crate) fn classify(e: sqlx::Error, secrets: &[&str]) -> GatewayError {
    if let Some(m) = too_large(&e) {
        return GatewayError::Database(crate::backends::too_large_message(
            "a reply", m.len, m.limit,
        ));
    }
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
