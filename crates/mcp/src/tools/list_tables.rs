//! `list_tables`: tables and views, optionally in one schema (the gateway caps the list).

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::CONNECTION_ID_DOC;
use crate::render;
use crate::server::{DbwardServer, answer};

/// Arguments of `list_tables`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListTablesArgs {
    #[serde(default)]
    #[schemars(description = CONNECTION_ID_DOC, regex(pattern = r"^[0-9a-fA-F]{32}$"))]
    pub connection_id: Option<String>,
    /// Only tables in this schema (PostgreSQL schema, MySQL database). Default: all visible schemas.
    #[serde(default)]
    #[schemars(length(min = 1, max = 63))]
    pub schema: Option<String>,
}

const DESCRIPTION: &str = "List the tables and views the connection can read (at most 200), as schema.name and kind. Start here, then call describe_table. Example: {} or {\"schema\": \"public\"}";

/// `structuredContent` of a successful call.
fn output_schema() -> std::sync::Arc<rmcp::model::JsonObject> {
    super::output_schema(
        serde_json::json!({
            "tables": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "schema": { "type": "string" },
                        "name": { "type": "string" },
                        "kind": { "type": "string" }
                    },
                    "required": ["schema", "name", "kind"]
                }
            },
            "count": { "type": "integer", "minimum": 0 }
        }),
        &["tables", "count"],
    )
}

#[tool_router(router = list_tables_router, vis = "pub(crate)")]
impl DbwardServer {
    #[tool(
        name = "list_tables",
        description = DESCRIPTION,
        output_schema = output_schema(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_tables(&self, Parameters(args): Parameters<ListTablesArgs>) -> CallToolResult {
        let id = self.connection(args.connection_id.as_deref());
        answer(
            self.gateway.list_tables(id, args.schema.as_deref()).await,
            |tables| {
                let mut lines = vec![format!("{} tables and views:", tables.len())];
                lines.extend(
                    tables
                        .iter()
                        .map(|t| format!("{}.{} ({})", t.schema, t.name, t.kind)),
                );
                render::catalog(
                    json!({ "tables": render::to_value(&tables), "count": tables.len() }),
                    &lines,
                )
            },
        )
    }
}
