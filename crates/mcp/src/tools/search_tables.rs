//! `search_tables`: tables and columns whose names contain a term.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::CONNECTION_ID_DOC;
use crate::render;
use crate::server::{DbwardServer, answer};

/// Arguments of `search_tables`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchTablesArgs {
    #[serde(default)]
    #[schemars(description = CONNECTION_ID_DOC, regex(pattern = r"^[0-9a-fA-F]{32}$"))]
    pub connection_id: Option<String>,
    /// Text to look for in table and column names (case-insensitive substring, 1 to 100 characters; no wildcards needed).
    #[schemars(length(min = 1, max = 100))]
    pub term: String,
}

const DESCRIPTION: &str = "Find tables and columns whose names contain a term (case-insensitive), at most 50 matches: schema.table or schema.table.column with its type. Use it when you do not know where something is stored. Example: {\"term\": \"email\"}";

/// `structuredContent` of a successful call.
fn output_schema() -> std::sync::Arc<rmcp::model::JsonObject> {
    super::output_schema(
        serde_json::json!({
            "matches": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "schema": { "type": "string" },
                        "table": { "type": "string" },
                        "column": { "type": "string" },
                        "column_type": { "type": "string" }
                    },
                    "required": ["schema", "table"]
                }
            },
            "count": { "type": "integer", "minimum": 0 }
        }),
        &["matches", "count"],
    )
}

#[tool_router(router = search_tables_router, vis = "pub(crate)")]
impl DbwardServer {
    #[tool(
        name = "search_tables",
        description = DESCRIPTION,
        output_schema = output_schema(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn search_tables(
        &self,
        Parameters(args): Parameters<SearchTablesArgs>,
    ) -> CallToolResult {
        let id = self.connection(args.connection_id.as_deref());
        answer(
            self.gateway.search_tables(id, &args.term).await,
            |matches| {
                let mut lines = vec![format!("{} matches:", matches.len())];
                lines.extend(matches.iter().map(|m| match (&m.column, &m.column_type) {
                    (Some(c), Some(t)) => format!("{}.{}.{c} ({t})", m.schema, m.table),
                    (Some(c), None) => format!("{}.{}.{c}", m.schema, m.table),
                    _ => format!("{}.{} (table)", m.schema, m.table),
                }));
                render::catalog(
                    json!({ "matches": render::to_value(&matches), "count": matches.len() }),
                    &lines,
                )
            },
        )
    }
}
