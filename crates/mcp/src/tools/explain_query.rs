//! `explain_query`: the plan of an allowed query, optionally run (ANALYZE, PostgreSQL).

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::CONNECTION_ID_DOC;
use crate::render;
use crate::server::{DbwardServer, answer};

/// Arguments of `explain_query`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainQueryArgs {
    #[serde(default)]
    #[schemars(description = CONNECTION_ID_DOC, regex(pattern = r"^[0-9a-fA-F]{32}$"))]
    pub connection_id: Option<String>,
    /// The SELECT (or VALUES) query to explain, without the EXPLAIN keyword.
    #[schemars(length(min = 1, max = 10000))]
    pub query: String,
    /// Also run the query and report real timings and buffers (PostgreSQL only; the query runs in a rolled-back read-only transaction). Default false.
    #[serde(default)]
    pub analyze: bool,
}

const DESCRIPTION: &str = "Show how the database would run a SELECT query: PostgreSQL's JSON plan (with analyze: true, actual times and buffers, running the query read-only) or SQLite's query plan steps. The query must itself be allowed by the policy. Use it to check that a query uses an index before running it on a large table. Example: {\"query\": \"SELECT * FROM incidents WHERE server_id = 7\"}";

/// `structuredContent` of a successful call: the plan (PostgreSQL's JSON document, or
/// the rows of the other databases' plans) and whether the query ran.
fn output_schema() -> std::sync::Arc<rmcp::model::JsonObject> {
    super::output_schema(
        serde_json::json!({
            "plan": { "description": "The plan as the database reports it (untrusted data)." },
            "analyzed": { "type": "boolean" }
        }),
        &["plan", "analyzed"],
    )
}

#[tool_router(router = explain_query_router, vis = "pub(crate)")]
impl DbwardServer {
    #[tool(
        name = "explain_query",
        description = DESCRIPTION,
        output_schema = output_schema(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn explain_query(
        &self,
        Parameters(args): Parameters<ExplainQueryArgs>,
    ) -> CallToolResult {
        let id = self.connection(args.connection_id.as_deref());
        answer(
            self.gateway
                .explain_query(id, &args.query, args.analyze)
                .await,
            |plan| {
                let lines = vec![
                    format!("plan{}:", if plan.analyzed { " (analyzed)" } else { "" }),
                    plan.plan.to_string(),
                ];
                render::catalog(render::to_value(&plan), &lines)
            },
        )
    }
}
