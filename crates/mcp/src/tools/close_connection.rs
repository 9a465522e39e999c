//! `close_connection`: closes a connection the client opened. The default connection is
//! the server's own and stays open, so the other tools keep working.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use crate::render;
use crate::server::{DbwardServer, answer};

/// Arguments of `close_connection`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseConnectionArgs {
    /// The id of the connection to close (from connect or list_connections).
    #[schemars(length(min = 1, max = 64))]
    pub connection_id: String,
}

const DESCRIPTION: &str = "Close a connection you opened with connect, releasing its pool. The default connection cannot be closed. Example: {\"connection_id\": \"3f2a...\"}";

/// `structuredContent` of a successful call.
fn output_schema() -> std::sync::Arc<rmcp::model::JsonObject> {
    super::output_schema(
        serde_json::json!({ "closed": { "type": "string", "description": "The id of the connection closed." } }),
        &["closed"],
    )
}

#[tool_router(router = close_connection_router, vis = "pub(crate)")]
impl DbwardServer {
    #[tool(
        name = "close_connection",
        description = DESCRIPTION,
        output_schema = output_schema(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn close_connection(
        &self,
        Parameters(args): Parameters<CloseConnectionArgs>,
    ) -> CallToolResult {
        if args
            .connection_id
            .eq_ignore_ascii_case(self.default_connection.id.as_str())
        {
            return render::invalid_input(
                "the default connection belongs to the server and cannot be closed",
            );
        }
        let id = args.connection_id;
        answer(self.gateway.close_connection(&id).await, |()| {
            render::trusted(json!({ "closed": id }), format!("closed connection {id}"))
        })
    }
}
