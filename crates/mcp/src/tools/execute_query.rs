//! `execute_query`: one read-only SQL query with bound parameters, through the gateway's
//! policy and the database's read-only transaction.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::CONNECTION_ID_DOC;
use crate::render;
use crate::server::{DbwardServer, answer};

/// Arguments of `execute_query`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecuteQueryArgs {
    #[serde(default)]
    #[schemars(description = CONNECTION_ID_DOC, regex(pattern = r"^[0-9a-fA-F]{32}$"))]
    pub connection_id: Option<String>,
    /// One SQL statement that only reads: SELECT, WITH ... SELECT, VALUES, TABLE, SHOW, or EXPLAIN of one. Use placeholders for values: $1, $2 (PostgreSQL), ?1 or ? (SQLite), ? (MySQL).
    #[schemars(length(min = 1, max = 10000))]
    pub query: String,
    /// Values for the placeholders, in order (strings, numbers, booleans or null). At most 100.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub params: Vec<Value>,
    /// Most rows to return. Default: the server's row cap (1000 unless configured).
    #[serde(default)]
    #[schemars(range(min = 1, max = 10000))]
    pub limit: Option<usize>,
}

const DESCRIPTION: &str = "Run one read-only SQL query and return its rows (columns with types, rows, row_count, truncated, elapsed_ms). Only reads are allowed: one statement; no INSERT/UPDATE/DELETE/DDL, no SELECT INTO or FOR UPDATE, no functions with side effects; refusals name the rule that fired. Results stop at the row cap (1000 by default, `limit` up to 10000) or 1 MiB, with truncated: true; queries time out after the server's statement timeout. Pass values as params instead of pasting them into the SQL. Example: {\"query\": \"SELECT status, count(*) FROM servers WHERE department_id = $1 GROUP BY status\", \"params\": [3]} (SQLite uses ?1).";

#[tool_router(router = execute_query_router, vis = "pub(crate)")]
impl DbwardServer {
    #[tool(
        name = "execute_query",
        description = DESCRIPTION,
        output_schema = super::rows_output_schema(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn execute_query(
        &self,
        Parameters(args): Parameters<ExecuteQueryArgs>,
    ) -> CallToolResult {
        let id = self.connection(args.connection_id.as_deref());
        answer(
            self.gateway
                .execute_query(id, &args.query, &args.params, args.limit)
                .await,
            render::query,
        )
    }
}
