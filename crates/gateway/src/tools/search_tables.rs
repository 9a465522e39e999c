//! `search_tables`: tables and columns whose names contain a term (bound as a parameter,
//! its wildcards escaped), at most 50 matches.

use serde::Serialize;

use super::contains_pattern;
use crate::{Backend, Gateway, GatewayError};

/// One match.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SearchMatch {
    /// Schema of the table.
    pub schema: String,
    /// The table.
    pub table: String,
    /// The matching column, when the match is a column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// The column's type, when the match is a column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column_type: Option<String>,
}

/// Most matches returned.
pub const MAX_MATCHES: usize = 50;
/// Longest search term.
pub const MAX_TERM_CHARS: usize = 100;

impl Gateway {
    /// Finds tables and columns by name.
    pub async fn search_tables(
        &self,
        id: &str,
        term: &str,
    ) -> Result<Vec<SearchMatch>, GatewayError> {
        let call = self.begin("search_tables", Some(id), None).await?;
        let result = async {
            let term = term.trim();
            if term.is_empty() || term.chars().count() > MAX_TERM_CHARS || term.contains('\0') {
                return Err(GatewayError::InvalidInput(format!(
                    "the search term must be 1 to {MAX_TERM_CHARS} characters"
                )));
            }
            let open = self.get(id)?;
            let pattern = contains_pattern(term);
            match &open.backend {
                Backend::Postgres(b) => b.search(&pattern, MAX_MATCHES).await,
                Backend::Sqlite(b) => b.search(&pattern, MAX_MATCHES).await,
                Backend::Mysql(b) => b.search(&pattern, MAX_MATCHES).await,
            }
        }
        .await;
        self.finish(call, result).await
    }
}
