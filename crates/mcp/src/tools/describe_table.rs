//! `describe_table`: columns, keys, indexes and comments of one table.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};

use super::TableArgs;
use crate::render;
use crate::server::{DbwardServer, answer};

const DESCRIPTION: &str = "Describe one table or view: columns with types, nullability, defaults and comments; primary key; foreign keys; indexes; table comment. Use it before writing a query. Example: {\"table\": \"servers\"} or {\"schema\": \"public\", \"table\": \"servers\"}";

/// `structuredContent` of a successful call: the gateway's `TableDescription`.
fn output_schema() -> std::sync::Arc<rmcp::model::JsonObject> {
    super::output_schema(
        serde_json::json!({
            "schema": { "type": "string" },
            "name": { "type": "string" },
            "columns": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": { "type": "string" },
                        "type": { "type": "string" },
                        "nullable": { "type": "boolean" },
                        "default": { "type": "string" },
                        "comment": { "type": "string" }
                    },
                    "required": ["name", "type", "nullable"]
                }
            },
            "primary_key": { "type": "array", "items": { "type": "string" } },
            "foreign_keys": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "column": { "type": "string" },
                        "references_table": { "type": "string" },
                        "references_column": { "type": "string" }
                    },
                    "required": ["column", "references_table", "references_column"]
                }
            },
            "indexes": { "type": "array", "items": { "type": "string" } },
            "comment": { "type": "string" }
        }),
        &[
            "schema",
            "name",
            "columns",
            "primary_key",
            "foreign_keys",
            "indexes",
        ],
    )
}

#[tool_router(router = describe_table_router, vis = "pub(crate)")]
impl DbwardServer {
    #[tool(
        name = "describe_table",
        description = DESCRIPTION,
        output_schema = output_schema(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn describe_table(&self, Parameters(args): Parameters<TableArgs>) -> CallToolResult {
        let id = self.connection(args.connection_id.as_deref());
        answer(
            self.gateway
                .describe_table(id, args.schema.as_deref(), &args.table)
                .await,
            |d| {
                let mut lines = vec![format!(
                    "table {}.{}{}",
                    d.schema,
                    d.name,
                    d.comment
                        .as_deref()
                        .map(|c| format!(" -- {c}"))
                        .unwrap_or_default()
                )];
                for c in &d.columns {
                    let mut line = format!("  {} {}", c.name, c.type_name);
                    if !c.nullable {
                        line.push_str(" NOT NULL");
                    }
                    if let Some(def) = &c.default {
                        line.push_str(&format!(" DEFAULT {def}"));
                    }
                    if d.primary_key.contains(&c.name) {
                        line.push_str(" PK");
                    }
                    if let Some(fk) = d.foreign_keys.iter().find(|f| f.column == c.name) {
                        line.push_str(&format!(
                            " -> {}({})",
                            fk.references_table, fk.references_column
                        ));
                    }
                    if let Some(comment) = &c.comment {
                        line.push_str(&format!(" -- {comment}"));
                    }
                    lines.push(line);
                }
                if !d.primary_key.is_empty() {
                    lines.push(format!("primary key: ({})", d.primary_key.join(", ")));
                }
                for i in &d.indexes {
                    lines.push(format!("index: {i}"));
                }
                render::catalog(render::to_value(&d), &lines)
            },
        )
    }
}
