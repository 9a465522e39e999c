//! The audit log: one JSONL entry per attempt (allowed, refused or failed) and per
//! security event, each chained to the one before by SHA-256 (HMAC-SHA-256 when a key is
//! configured, so someone who can write the file cannot recompute the chain).
//!
//! - [`chain`]: the entry format, the hash, and `verify`.
//! - [`writer`]: entries written one at a time under a lock by the calling thread; a call
//!   is acknowledged only once its entry is written to the file (in the kernel: it survives
//!   `kill -9`), and fsynced every entry or every N ms (on a thread of its own).
//!
//! Invariants: entries are written in sequence order, one at a time; an entry never holds a
//! password, token or connection string (only the connection *name*, the query's SHA-256,
//! and the query text only when `store_query_text` is on); if an entry cannot be written,
//! the call's result is withheld and an error returned (fail closed).

pub mod chain;
pub mod writer;

pub use chain::{Entry, EventInfo, VerifyError, VerifyReport, verify_files};
pub use writer::{AuditConfig, AuditError, AuditLog, FsyncPolicy};
