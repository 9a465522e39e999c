//! SQLite through rusqlite (bundled). Opened read-only (`SQLITE_OPEN_READ_ONLY`, so the file
//! cannot be written even by a statement the policy missed), with `PRAGMA query_only`, an
//! authorizer that judges every action on the names SQLite resolved ([`authorizer`]: reads
//! of denied data, pragmas, functions), length limits that bound every value and every
//! single step ([`pool`], [`functions`]), and a progress handler plus an interrupt that end
//! a query at its deadline or as soon as its call is abandoned.
//!
//! Connections are pooled (r2d2): opening one re-reads the schema, which cost more than the
//! query itself in a point-query benchmark. Nothing a caller can do carries over to the
//! next: the file is opened read-only with `query_only` on, the authorizer refuses every
//! action but reads (no PRAGMA but introspection, no ATTACH, temporary objects or
//! settings), and each checkout installs the hooks it needs and removes the others.
//!
//! Files: [`pool`] (opening, limits, checkouts), [`authorizer`], [`functions`] (linear
//! builtins), [`execute`] (one query under the caps), [`catalog`] (the tools' reads).
//!
//! Invariants:
//! - User queries run only on connections with the authorizer installed.
//! - When a call ends (answered, timed out or dropped), its statement is interrupted; no
//!   worker keeps running it past the longest single step the limits allow.

mod authorizer;
mod catalog;
mod execute;
mod functions;
mod pool;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dbward_policy::Policy;
use r2d2_sqlite::SqliteConnectionManager;
use serde_json::Value;

pub use authorizer::ReadRules;
pub use pool::length_limit;

use super::{Caps, Column, ColumnInfo, ForeignKey, QueryResult, TableDescription, TableInfo};
use crate::config::Limits;
use crate::error::GatewayError;
use execute::InterruptSlot;
use pool::{blocking, classify};

/// How long past its deadline a call waits for its worker before answering "timeout" and
/// interrupting the statement (the progress handler normally ends it first).
const DEADLINE_GRACE: Duration = Duration::from_millis(100);

/// An SQLite database file and a pool of read-only connections to it.
#[derive(Clone)]
pub struct SqliteBackend {
    pool: r2d2::Pool<SqliteConnectionManager>,
    /// What queries may read: the policy's deny-lists, applied by the authorizer.
    rules: Arc<ReadRules>,
    /// The SQLite library version.
    pub server_version: String,
    /// The timeout of catalog reads (the connection's `statement_timeout_ms`).
    catalog_timeout_ms: u64,
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend")
            .field("server_version", &self.server_version)
            .finish_non_exhaustive()
    }
}

impl SqliteBackend {
    /// Checks that the file exists and opens read-only. `policy` gives the denied tables,
    /// schemas and columns the authorizer enforces.
    pub async fn connect(
        path: &Path,
        limits: &Limits,
        policy: &Policy,
    ) -> Result<SqliteBackend, GatewayError> {
        if !path.is_file() {
            return Err(GatewayError::ConnectionUnavailable(
                "the SQLite database file does not exist".into(),
            ));
        }
        let manager = pool::manager(path, limits);
        let rules = Arc::new(ReadRules::new(Arc::new(policy.clone())));
        // One open now, so an unreadable file fails at once with a clear error (a pool
        // would retry until its acquire timeout).
        let r = rules.clone();
        let (manager, version) = blocking(move || {
            let conn = r2d2::ManageConnection::connect(&manager).map_err(|e| {
                GatewayError::ConnectionUnavailable(format!("cannot open the database file: {e}"))
            })?;
            let version = conn
                .query_row("SELECT sqlite_version()", [], |r| r.get::<_, String>(0))
                .map_err(classify)?;
            r.refresh(&conn)?;
            Ok((manager, version))
        })
        .await?;
        let pool = pool::pool(manager, limits)?;
        Ok(SqliteBackend {
            pool,
            rules,
            server_version: format!("SQLite {version}"),
            catalog_timeout_ms: limits.statement_timeout_ms,
        })
    }

    /// Pooled connections and idle ones, for metrics.
    pub fn pool_stats(&self) -> (u32, usize) {
        let state = self.pool.state();
        (state.connections, state.idle_connections as usize)
    }

    /// Runs a policy-approved query under the caps. At the deadline (plus a short grace)
    /// the call answers "timeout" and interrupts the statement; if the call is dropped
    /// (the client went away), the statement is interrupted at once.
    pub async fn execute(
        &self,
        sql: &str,
        params: &[Value],
        caps: Caps,
    ) -> Result<QueryResult, GatewayError> {
        self.execute_as(sql, params, caps, None).await
    }

    /// [`SqliteBackend::execute`] with the authorizer enforcing `policy` (a caller's
    /// stricter one, from its `[access]` roles) instead of the connection's.
    pub async fn execute_as(
        &self,
        sql: &str,
        params: &[Value],
        caps: Caps,
        policy: Option<Arc<Policy>>,
    ) -> Result<QueryResult, GatewayError> {
        let pool = self.pool.clone();
        let rules = match policy {
            Some(p) => Arc::new(ReadRules::new(p)),
            None => self.rules.clone(),
        };
        let sql = sql.to_string();
        let params = params.to_vec();
        let mut abandon = AbandonOnDrop {
            flag: Arc::new(AtomicBool::new(false)),
            slot: InterruptSlot::default(),
            armed: true,
        };
        let (flag, slot) = (abandon.flag.clone(), abandon.slot.clone());
        let worker = tokio::task::spawn_blocking(move || {
            execute::run(&pool, rules, &sql, &params, caps, flag, slot)
        });
        let wait = Duration::from_millis(caps.timeout_ms) + DEADLINE_GRACE;
        match tokio::time::timeout(wait, worker).await {
            Ok(joined) => {
                abandon.armed = false;
                joined
                    .map_err(|e| GatewayError::Internal(format!("the SQLite worker failed: {e}")))?
            }
            // Still running past its deadline (inside one long step): `abandon` interrupts
            // it as it drops.
            Err(_) => Err(GatewayError::Timeout(caps.timeout_ms)),
        }
    }
}

impl SqliteBackend {
    /// Runs catalog reads `f` on a catalog checkout under the statement timeout.
    pub(super) async fn catalog<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, GatewayError> + Send + 'static,
    ) -> Result<T, GatewayError> {
        self.catalog_within(self.catalog_timeout_ms, f).await
    }

    /// Runs catalog reads `f` on a catalog checkout whose progress handler ends them at
    /// `timeout_ms` or as soon as the call is abandoned (its future dropped), when the
    /// running statement is also interrupted, as a client's query is.
    pub(super) async fn catalog_within<T: Send + 'static>(
        &self,
        timeout_ms: u64,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, GatewayError> + Send + 'static,
    ) -> Result<T, GatewayError> {
        let pool = self.pool.clone();
        let mut abandon = AbandonOnDrop {
            flag: Arc::new(AtomicBool::new(false)),
            slot: InterruptSlot::default(),
            armed: true,
        };
        let (flag, slot) = (abandon.flag.clone(), abandon.slot.clone());
        let deadline = std::time::Instant::now() + Duration::from_millis(timeout_ms);
        let worker = tokio::task::spawn_blocking(move || {
            let conn = pool::checkout(
                &pool,
                pool::Checkout::Catalog {
                    deadline,
                    abandoned: flag,
                },
            )?;
            *crate::lock(&slot) = Some(conn.get_interrupt_handle());
            let _clear = execute::SlotGuard(slot);
            f(&conn)
        });
        let wait = Duration::from_millis(timeout_ms) + DEADLINE_GRACE;
        match tokio::time::timeout(wait, worker).await {
            Ok(joined) => {
                abandon.armed = false;
                match joined
                    .map_err(|e| GatewayError::Internal(format!("the SQLite worker failed: {e}")))?
                {
                    Err(GatewayError::Timeout(_)) => Err(GatewayError::Timeout(timeout_ms)),
                    other => other,
                }
            }
            Err(_) => Err(GatewayError::Timeout(timeout_ms)),
        }
    }
}

/// When dropped while armed (the call was abandoned or timed out mid-run), sets the flag
/// the progress handler reads and interrupts the running statement, if any.
struct AbandonOnDrop {
    flag: Arc<AtomicBool>,
    slot: InterruptSlot,
    armed: bool,
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.flag.store(true, Ordering::Relaxed);
            // Under the slot's lock: the handle is there only while our statement runs.
            if let Some(handle) = crate::lock(&self.slot).as_ref() {
                handle.interrupt();
            }
        }
    }
}
