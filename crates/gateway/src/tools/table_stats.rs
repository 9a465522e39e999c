//! `get_table_stats`: size and shape of one table from the database's own statistics
//! (row estimate, size on disk, per-column null fraction and distinct estimate where the
//! database keeps them, indexes). The table name is resolved in the catalog first.

use serde::Serialize;

use crate::{Backend, Gateway, GatewayError};

/// Statistics of one column.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnStats {
    /// Column name.
    pub column: String,
    /// Fraction of NULLs, where the database has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub null_fraction: Option<f64>,
    /// Distinct values estimate (negative: a fraction of the rows, PostgreSQL's convention).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct_estimate: Option<f64>,
}

/// One index and its size.
#[derive(Debug, Clone, Serialize)]
pub struct IndexStats {
    /// Index name.
    pub name: String,
    /// Size in bytes, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// The definition.
    pub definition: String,
}

/// Statistics of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableStats {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Row count or estimate.
    pub row_estimate: i64,
    /// Whether `row_estimate` is exact (a count) or the planner's estimate.
    pub exact: bool,
    /// Table size in bytes (with TOAST), where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_bytes: Option<i64>,
    /// Total size with indexes, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<i64>,
    /// Per-column statistics.
    pub columns: Vec<ColumnStats>,
    /// Indexes.
    pub indexes: Vec<IndexStats>,
}

impl Gateway {
    /// Statistics of one table.
    pub async fn get_table_stats(
        &self,
        id: &str,
        schema: Option<&str>,
        table: &str,
    ) -> Result<TableStats, GatewayError> {
        let call = self.begin("get_table_stats", Some(id), None).await?;
        let result = async {
            // Resolves the name in the catalog (and validates it).
            let desc = self.describe(id, schema, table).await?;
            let open = self.get(id)?;
            match &open.backend {
                Backend::Postgres(b) => b.table_stats(&desc.schema, &desc.name).await,
                Backend::Mysql(b) => b.table_stats(&desc.schema, &desc.name).await,
                Backend::Sqlite(b) => {
                    b.table_stats(&desc.name, self.config.limits.statement_timeout_ms)
                        .await
                }
            }
        }
        .await;
        self.finish(call, result).await
    }
}
