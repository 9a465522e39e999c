//! The views among the relations a query names, with their definitions as the server
//! stores them. A view runs its definition with its definer's rights: a stored function it
//! calls runs (and may KILL another session, which a READ ONLY transaction does not stop)
//! and a denied table or column it reads is read, with no call or name in the query's text.
//! The caller judges each definition (`mysql_functions`); this only asks the server.
//!
//! `information_schema.VIEWS` is read on MySQL and MariaDB alike: MariaDB 10.11 has no
//! `VIEW_ROUTINE_USAGE`, and one path for both servers is one path tested.
//!
//! Invariants:
//! - Read on the call's own connection, inside its transaction, after the relations are
//!   locked (`resolve`): the definition read is the one that runs. The call's statement
//!   timeout and client deadline bound the read.
//! - Names are bound parameters, never spliced. information_schema compares names with a
//!   case-insensitive collation, so a name may over-match (which only judges more).
//! - An unqualified name is looked up in the current database, as the server resolves it.
//! - `definition` is `None` when the server shows this login an empty definition (it lacks
//!   `SHOW VIEW`): the caller cannot see what the view runs and must refuse.

use super::resolve::InTxn;
use super::types::text_at;
use crate::error::GatewayError;

/// One view, as the server defines it.
#[derive(Debug, Clone)]
pub struct ViewDefinition {
    /// The view's database: an unqualified name in its definition resolves here.
    pub schema: String,
    /// The view's name.
    pub name: String,
    /// The server's canonical text of the view's `SELECT`, or `None` when this login is not
    /// shown it.
    pub definition: Option<String>,
}

impl InTxn<'_> {
    /// The views among `(qualifier, name)` relation names (no qualifier: the current
    /// database). Names that are tables, or nothing, are simply absent from the answer.
    pub async fn views_among(
        &mut self,
        names: &[(Option<String>, String)],
    ) -> Result<Vec<ViewDefinition>, GatewayError> {
        let rows = self
            .catalog_rows(
                "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR), \
                        CAST(VIEW_DEFINITION AS CHAR) \
                 FROM information_schema.VIEWS WHERE",
                names,
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ViewDefinition {
                schema: text_at(r, 0).unwrap_or_default(),
                name: text_at(r, 1).unwrap_or_default(),
                definition: text_at(r, 2).filter(|d| !d.trim().is_empty()),
            })
            .collect())
    }
}
