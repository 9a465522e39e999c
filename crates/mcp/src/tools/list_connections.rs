//! `list_connections`: the open connections, with ids, masked targets and which one is
//! the default.

use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use serde_json::json;

use crate::render;
use crate::server::DbwardServer;

const DESCRIPTION: &str = "List the open database connections: id, name, type (postgresql, mysql, sqlite), target (password masked), server version, and which one is the default. Pass an id as connection_id to any other tool; without one, tools use the default. Takes no arguments.";

/// `structuredContent` of a successful call.
fn output_schema() -> std::sync::Arc<rmcp::model::JsonObject> {
    super::output_schema(
        serde_json::json!({
            "default_connection_id": { "type": "string" },
            "connections": { "type": "array", "items": super::connection_info_schema() }
        }),
        &["default_connection_id", "connections"],
    )
}

#[tool_router(router = list_connections_router, vis = "pub(crate)")]
impl DbwardServer {
    #[tool(
        name = "list_connections",
        description = DESCRIPTION,
        output_schema = output_schema(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_connections(&self) -> CallToolResult {
        let default = self.default_connection.id.as_str();
        let connections = self.gateway.list_connections();
        let mut lines = Vec::new();
        for c in &connections {
            lines.push(format!(
                "{}{}  {}  {}  {}  {}",
                c.id,
                if c.id.as_str() == default {
                    " (default)"
                } else {
                    ""
                },
                c.name.as_deref().unwrap_or("-"),
                c.kind.as_str(),
                c.target,
                c.server_version
            ));
        }
        if lines.is_empty() {
            lines.push("no open connections".into());
        }
        render::trusted(
            json!({ "default_connection_id": default, "connections": render::to_value(&connections) }),
            lines.join("\n"),
        )
    }
}
