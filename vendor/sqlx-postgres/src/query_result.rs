use std::iter::{Extend, IntoIterator};
use std::sync::Arc;

use crate::statement::PgStatementMetadata;
use crate::PgColumn;

#[derive(Debug, Default)]
pub struct PgQueryResult {
    pub(super) rows_affected: u64,
    // dbward patch: see `columns`.
    pub(super) described: Option<Arc<PgStatementMetadata>>,
}

impl PgQueryResult {
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }

    /// dbward patch: in a pipelined batch (`PgConnection::fetch_pipelined`), the columns of
    /// the statement this result ends, from its RowDescription (`None`: it described none,
    /// e.g. a statement that returns no rows). Known even when it returned no row.
    pub fn described_columns(&self) -> Option<&[PgColumn]> {
        self.described.as_deref().map(|m| m.columns.as_slice())
    }
}

impl Extend<PgQueryResult> for PgQueryResult {
    fn extend<T: IntoIterator<Item = PgQueryResult>>(&mut self, iter: T) {
        for elem in iter {
            self.rows_affected += elem.rows_affected;
        }
    }
}

#[cfg(feature = "any")]
impl From<PgQueryResult> for sqlx_core::any::AnyQueryResult {
    fn from(done: PgQueryResult) -> Self {
        sqlx_core::any::AnyQueryResult {
            rows_affected: done.rows_affected,
            last_insert_id: None,
        }
    }
}
