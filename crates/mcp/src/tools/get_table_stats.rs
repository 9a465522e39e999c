//! `get_table_stats`: row estimate, sizes, per-column statistics and indexes of a table.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};

use super::TableArgs;
use crate::render;
use crate::server::{DbwardServer, answer};

const DESCRIPTION: &str = "Statistics of one table without scanning it: estimated row count (exact for SQLite), table and total size in bytes where the database reports them, per-column null fraction and distinct-value estimate, and indexes. Use it to judge how big a query's result will be. Example: {\"table\": \"incidents\"}";

/// `structuredContent` of a successful call: the gateway's `TableStats`.
fn output_schema() -> std::sync::Arc<rmcp::model::JsonObject> {
    super::output_schema(
        serde_json::json!({
            "schema": { "type": "string" },
            "table": { "type": "string" },
            "row_estimate": { "type": "integer" },
            "exact": { "type": "boolean", "description": "Whether row_estimate is a count rather than the planner's estimate." },
            "table_bytes": { "type": "integer" },
            "total_bytes": { "type": "integer" },
            "columns": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "column": { "type": "string" },
                        "null_fraction": { "type": "number" },
                        "distinct_estimate": { "type": "number" }
                    },
                    "required": ["column"]
                }
            },
            "indexes": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": { "type": "string" },
                        "size_bytes": { "type": "integer" },
                        "definition": { "type": "string" }
                    },
                    "required": ["name", "definition"]
                }
            }
        }),
        &[
            "schema",
            "table",
            "row_estimate",
            "exact",
            "columns",
            "indexes",
        ],
    )
}

#[tool_router(router = get_table_stats_router, vis = "pub(crate)")]
impl DbwardServer {
    #[tool(
        name = "get_table_stats",
        description = DESCRIPTION,
        output_schema = output_schema(),
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
