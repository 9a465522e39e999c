//! `get_table_stats`: row estimate, sizes, per-column statistics and indexes of a table.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};

use super::TableArgs;
use crate::render;
use crate::server::{DbwardServer, answer};

const DESCRIPTION: &str = "Statistics of one table without scanning it: estimated row count (exact for SQLite), table and total size in bytes where the database reports them, per-column null fraction and distinct-value estimate, and indexes. Use it to judge how big a query's result will be. Example: {\"table\": \"incidents\"}";

#[tool_router(router = get_table_stats_router, vis = "pub(crate)")]
impl DbwardServer {
    #[tool(
        name = "get_table_stats",
        description = DESCRIPTION,
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_table_stats(&self, Parameters(args): Parameters<TableArgs>) -> CallToolResult {
        let id = self.connection(args.connection_id.as_deref());
        answer(
            self.gateway
                .get_table_stats(id, args.schema.as_deref(), &args.table)
                .await,
            |s| {
                let mut lines = vec![format!(
                    "{}.{}: {} rows ({}){}{}",
                    s.schema,
                    s.table,
                    s.row_estimate,
                    if s.exact { "exact" } else { "estimate" },
                    s.table_bytes
                        .map(|b| format!(", table {b} bytes"))
                        .unwrap_or_default(),
                    s.total_bytes
                        .map(|b| format!(", total {b} bytes"))
                        .unwrap_or_default()
                )];
                for c in &s.columns {
                    let mut line = format!("  {}", c.column);
                    if let Some(n) = c.null_fraction {
                        line.push_str(&format!(" null_fraction={n}"));
                    }
                    if let Some(d) = c.distinct_estimate {
                        line.push_str(&format!(" distinct={d}"));
                    }
                    lines.push(line);
                }
                for i in &s.indexes {
                    lines.push(format!(
                        "index {}{}: {}",
                        i.name,
                        i.size_bytes
                            .map(|b| format!(" ({b} bytes)"))
                            .unwrap_or_default(),
                        i.definition
                    ));
                }
                render::catalog(render::to_value(&s), &lines)
            },
        )
    }
}
