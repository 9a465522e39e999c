//! The database backends. Each has the same files and the same surface: `connect`,
//! `execute` (a policy-approved query, enforced read-only by the database too, rows
//! streamed under a row and byte cap), and the catalog reads the tools need.
//!
//! Invariant: raw SQL is executed only inside this module, and every user query runs inside
//! a read-only transaction that is always rolled back.

pub(crate) mod ending;
pub mod mysql;
pub mod postgres;
pub(crate) mod reachability;
pub mod sqlite;

use serde::Serialize;

/// One result column: its name and the database's name for its type.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    /// Column name as the query labels it.
    pub name: String,
    /// The database type name (`int4`, `text`, `numeric`, `jsonb`, ...).
    #[serde(rename = "type")]
    pub type_name: String,
}

/// Rows and their shape, capped.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Rows as JSON values, one per column.
    pub rows: Vec<Vec<serde_json::Value>>,
    /// Number of rows returned.
    pub row_count: usize,
    /// Whether the row or byte cap cut the result.
    pub truncated: bool,
    /// Wall time on the database side, in milliseconds.
    pub elapsed_ms: u64,
}

/// The largest single message a PostgreSQL or MySQL connection accepts from its server (a
/// row with its framing, an error, a notice): the byte cap (at least 1 MiB, so the catalog
/// reads of the tools keep working under a small cap) plus 64 KiB for the per-column
/// framing of a row that fits the cap. A larger message is refused by the driver from its
/// header (`vendor/README.md`), before any of it is buffered, and its connection is closed:
/// so dbward's memory never follows a value's size, whatever the query and whatever the
/// policy allowed. (A row under this limit but over the cap is read, then cut.)
pub(crate) fn message_limit(max_bytes: usize) -> usize {
    max_bytes.max(1 << 20).saturating_add(64 << 10)
}

/// The oversized message a patched driver refused from its header (`T`: its error type,
/// `PgMessageTooLarge` or `MySqlPacketTooLarge`), if that is what `e` is.
pub(crate) fn too_large<T: std::error::Error + Copy + 'static>(e: &sqlx::Error) -> Option<T> {
    match e {
        sqlx::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<T>())
            .copied(),
        _ => None,
    }
}

/// What a refused oversized message says: what it was, its size and the limit.
pub(crate) fn too_large_message(what: &str, len: usize, limit: usize) -> String {
    format!(
        "{what} of {len} bytes is over dbward's limit of {limit} bytes for one message from the database; it was not read, and the session was closed"
    )
}

/// The caps one execution runs under.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Rows returned at most.
    pub max_rows: usize,
    /// Bytes of row data returned at most.
    pub max_bytes: usize,
    /// Server-side statement timeout.
    pub timeout_ms: u64,
    /// Lock wait timeout.
    pub lock_timeout_ms: u64,
    /// Idle-in-transaction timeout.
    pub idle_in_transaction_timeout_ms: u64,
}

impl Caps {
    /// The caps `limits` set, with `max_rows` rows at most.
    pub fn new(limits: &crate::config::Limits, max_rows: usize) -> Caps {
        Caps {
            max_rows,
            max_bytes: limits.max_bytes,
            timeout_ms: limits.statement_timeout_ms,
            lock_timeout_ms: limits.lock_timeout_ms,
            idle_in_transaction_timeout_ms: limits.idle_in_transaction_timeout_ms,
        }
    }
}

/// One table as `list_tables` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    /// Schema (PostgreSQL), database (MySQL) or `main` (SQLite).
    pub schema: String,
    /// Table or view name.
    pub name: String,
    /// `table` or `view`.
    pub kind: String,
}

/// A column as `describe_table` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// Declared type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Default expression, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Column comment, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A table's structure.
#[derive(Debug, Clone, Serialize)]
pub struct TableDescription {
    /// Schema.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<ColumnInfo>,
    /// Primary key columns.
    pub primary_key: Vec<String>,
    /// Foreign keys: `column -> table(column)`.
    pub foreign_keys: Vec<ForeignKey>,
    /// Index definitions.
    pub indexes: Vec<String>,
    /// Table comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// One foreign key column.
#[derive(Debug, Clone, Serialize)]
pub struct ForeignKey {
    /// Referencing column.
    pub column: String,
    /// Referenced table.
    pub references_table: String,
    /// Referenced column.
    pub references_column: String,
}
