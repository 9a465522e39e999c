//! One client query on a checked-out connection: prepared (the authorizer judges every
//! action as SQLite resolves it), refused if SQLite says it would write, then stepped with
//! rows copied under the row and byte caps.
//!
//! Invariants:
//! - dbward never copies more than the byte cap of row data: each value's size is checked
//!   *before* it is copied, and SQLite itself builds and reads no value over its length
//!   limit (set from the byte cap, see [`super::pool::length_limit`]), so a single huge
//!   value is never buffered whole on either side.
//! - While the statement runs, its connection's interrupt handle is in the call's slot, and
//!   it is taken out before the connection goes back to the pool: an interrupt never
//!   reaches the next call's statement.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::InterruptHandle;
use rusqlite::types::ValueRef;
use serde_json::Value;

use super::authorizer::ReadRules;
use super::pool::{Checkout, checkout, classify};
use super::{Caps, Column, QueryResult};
use crate::error::GatewayError;

/// Where a running call's interrupt handle lives while its statement runs.
pub(super) type InterruptSlot = Arc<Mutex<Option<InterruptHandle>>>;

/// Ends the read transaction a query checkout opened (`pool::checkout`), whatever way the
/// run ends: the authorizer off (it allows reads only), then ROLLBACK. An idle pooled
/// connection never holds a read transaction (it would pin a WAL snapshot or, in rollback
/// journal mode, keep writers out).
pub(super) struct ReadTxn<'a>(pub(super) &'a rusqlite::Connection);

impl Drop for ReadTxn<'_> {
    fn drop(&mut self) {
        if self.0.is_autocommit() {
            return;
        }
        let _ = self.0.authorizer(
            None::<fn(rusqlite::hooks::AuthContext<'_>) -> rusqlite::hooks::Authorization>,
        );
        let _ = self.0.execute_batch("ROLLBACK");
    }
}

/// Takes the handle out of the slot when the run ends (declared after the connection, so
/// it drops first).
pub(super) struct SlotGuard(pub(super) InterruptSlot);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        crate::lock(&self.0).take();
    }
}

pub(super) fn run(
    pool: &r2d2::Pool<SqliteConnectionManager>,
    rules: Arc<ReadRules>,
    sql: &str,
    params: &[Value],
    caps: Caps,
    abandoned: Arc<AtomicBool>,
    slot: InterruptSlot,
) -> Result<QueryResult, GatewayError> {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(caps.timeout_ms);
    let conn = checkout(
        pool,
        Checkout::Query {
            deadline,
            abandoned: abandoned.clone(),
            rules,
        },
    )?;
    let _txn = ReadTxn(&conn);
    *crate::lock(&slot) = Some(conn.get_interrupt_handle());
    let _slot = SlotGuard(slot);
    // Abandoned while waiting for the connection: nothing to run.
    if abandoned.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(GatewayError::Timeout(caps.timeout_ms));
    }
    let mut stmt = conn.prepare(sql).map_err(classify)?;
    if !stmt.readonly() {
        return Err(GatewayError::ReadOnlyViolation(
            "SQLite reports the statement would write".into(),
        ));
    }
    let columns: Vec<Column> = stmt
        .columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_string(),
            type_name: c.decl_type().unwrap_or("").to_ascii_lowercase(),
        })
        .collect();
    let bound: Vec<rusqlite::types::Value> = params.iter().map(json_to_sqlite).collect();
    let mut rows_iter = stmt
        .query(rusqlite::params_from_iter(bound.iter()))
        .map_err(|e| timeout_or(e, caps))?;
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut truncated = false;
    'rows: while let Some(row) = rows_iter.next().map_err(|e| timeout_or(e, caps))? {
        if rows.len() == caps.max_rows {
            truncated = true;
            break;
        }
        let mut out = Vec::with_capacity(columns.len());
        for i in 0..columns.len() {
            let value = row.get_ref(i).map_err(classify)?;
            bytes += match value {
                ValueRef::Null => 0,
                ValueRef::Integer(_) | ValueRef::Real(_) => 8,
                ValueRef::Text(t) => t.len(),
                ValueRef::Blob(b) => b.len(),
            };
            // Checked before the copy: a value over the cap is never copied.
            if bytes > caps.max_bytes {
                truncated = true;
                break 'rows;
            }
            out.push(match value {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::from(n),
                ValueRef::Real(f) => serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
                ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => {
                    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
                }
            });
        }
        rows.push(out);
    }
    Ok(QueryResult {
        row_count: rows.len(),
        columns,
        rows,
        truncated,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

fn timeout_or(e: rusqlite::Error, caps: Caps) -> GatewayError {
    match classify(e) {
        GatewayError::Timeout(_) => GatewayError::Timeout(caps.timeout_ms),
        other => other,
    }
}

fn json_to_sqlite(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as S;
    match v {
        Value::Null => S::Null,
        Value::Bool(b) => S::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => S::Integer(i),
            None => S::Real(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => S::Text(s.clone()),
        other => S::Text(other.to_string()),
    }
}
