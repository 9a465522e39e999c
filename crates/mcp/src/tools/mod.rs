//! The MCP tools, one file each: the argument type (its JSON schema is what the client
//! sees, so field docs are written for a model), the description, and a body that calls
//! one gateway method and renders the answer. A new tool is a new file plus a line in
//! [`router`].
//!
//! Invariant: no tool builds SQL or decides policy; arguments pass to the gateway as typed
//! values, and the gateway checks them.

mod close_connection;
mod connect;
mod describe_table;
mod execute_query;
mod explain_query;
mod get_table_stats;
mod list_connections;
mod list_tables;
mod read_table;
mod search_tables;
mod security_posture;

use std::sync::Arc;

use dbward_gateway::GatewayConfig;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::JsonObject;
use serde_json::{Value, json};

use crate::server::DbwardServer;

/// Every tool. `allow_client_connections` decides what `connect` advertises: a name only,
/// or also a URL and parameters; the limits and the policy's query length set the
/// advertised bounds to the ones the gateway will enforce.
pub(crate) fn router(config: &GatewayConfig) -> ToolRouter<DbwardServer> {
    let mut router = DbwardServer::list_connections_router()
        + DbwardServer::connect_router()
        + DbwardServer::close_connection_router()
        + DbwardServer::list_tables_router()
        + DbwardServer::describe_table_router()
        + DbwardServer::read_table_router()
        + DbwardServer::execute_query_router()
        + DbwardServer::get_table_stats_router()
        + DbwardServer::search_tables_router()
        + DbwardServer::explain_query_router()
        + DbwardServer::security_posture_router();
    if !config.allow_client_connections {
        connect::advertise_named_only(&mut router);
    }
    let limits = &config.limits;
    let sql_chars = config.policy.max_query_chars;
    set_bound(
        &mut router,
        "execute_query",
        "limit",
        "maximum",
        limits.hard_max_rows,
    );
    set_bound(
        &mut router,
        "read_table",
        "limit",
        "maximum",
        limits.read_table_max_rows,
    );
    set_bound(
        &mut router,
        "execute_query",
        "query",
        "maxLength",
        sql_chars,
    );
    set_bound(
        &mut router,
        "explain_query",
        "query",
        "maxLength",
        sql_chars,
    );
    router
}

/// Sets `properties.<field>.<keyword>` (a bound) in a tool's input schema, so what the
/// schema advertises is what the gateway's configuration enforces.
fn set_bound(
    router: &mut ToolRouter<DbwardServer>,
    tool: &str,
    field: &str,
    keyword: &str,
    bound: usize,
) {
    if let Some(route) = router.map.get_mut(tool) {
        let mut schema = (*route.attr.input_schema).clone();
        if let Some(Value::Object(f)) = schema.get_mut("properties").and_then(|p| p.get_mut(field))
        {
            f.insert(keyword.into(), json!(bound));
        }
        route.attr.input_schema = Arc::new(schema);
    }
}

/// A tool's `outputSchema`: an object whose successful `structuredContent` has
/// `properties` with the `required` ones present.
///
/// Error results (`isError: true`) carry `{"error": {"code", "message", "rule"?, ...}}`
/// instead. The specification validates only successful results against `outputSchema`,
/// but some clients validate error results too (the TypeScript SDK and MCP Inspector did,
/// until fixed), and a validation failure there would hide the refusal's rule from the
/// model. So the schema admits that envelope as the one alternative (`anyOf`); the root
/// stays `type: object`, as clients of older protocol versions require.
pub(crate) fn output_schema(properties: Value, required: &[&str]) -> Arc<JsonObject> {
    let mut properties = properties;
    if let Value::Object(p) = &mut properties {
        p.insert("error".into(), error_schema());
    }
    let schema = json!({
        "type": "object",
        "properties": properties,
        "anyOf": [{ "required": required }, { "required": ["error"] }],
    });
    match schema {
        Value::Object(o) => Arc::new(o),
        _ => Arc::new(JsonObject::new()),
    }
}

/// The `error` member of every tool error's `structuredContent` (see `render`).
fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "Present only on tool errors (isError: true), instead of the result.",
        "properties": {
            "code": { "type": "string", "description": "Stable error code, e.g. policy_refused, timeout, invalid_arguments." },
            "message": { "type": "string" },
            "rule": { "type": "string", "description": "The policy rule that refused the query." },
            "reasons": { "type": "array", "description": "Every rule that fired, for refusals." }
        },
        "required": ["code", "message"]
    })
}

/// The `outputSchema` of the tools that return rows (`execute_query`, `read_table`):
/// the gateway's `QueryResult` as `render::query` serialises it.
///
/// Kept cheap to check: clients validate every result against it (the official Python SDK
/// on each call), and every subschema that applies is one more step of that check. So the
/// arrays' elements are described, not constrained by `items` (an `items` schema is checked
/// once per column and per row: a 1,000-row result cost that client over 10 ms of its own
/// CPU), and the scalar members are described in `description` rather than each given a
/// schema of its own; the required members are still checked.
pub(crate) fn rows_output_schema() -> Arc<JsonObject> {
    let mut schema = (*output_schema(
        json!({
            "columns": {
                "type": "array",
                "description": "Result columns in order, each {\"name\": string, \"type\": string} (the database's type name)."
            },
            "rows": {
                "type": "array",
                "description": "Rows, each an array of values in column order (untrusted data)."
            }
        }),
        &["columns", "rows", "row_count", "truncated", "elapsed_ms"],
    ))
    .clone();
    schema.insert(
        "description".into(),
        json!(
            "A query result: columns, rows, row_count (rows returned, an integer), truncated \
             (a boolean: whether the row or byte cap cut the result) and elapsed_ms (an \
             integer)."
        ),
    );
    Arc::new(schema)
}

/// `ConnectionInfo` as `connect` and `list_connections` return it.
pub(crate) fn connection_info_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": { "type": "string", "description": "The opaque connection id to pass to every tool." },
            "name": { "type": "string" },
            "type": { "type": "string", "enum": ["postgresql", "mysql", "sqlite"] },
            "target": { "type": "string", "description": "Where it goes, password masked." },
            "server_version": { "type": "string" },
            "opened_at": { "type": "integer" },
            "role": { "type": "string" },
            "role_can_write": { "type": "boolean" }
        },
        "required": ["id", "type", "target", "server_version", "opened_at", "role", "role_can_write"]
    })
}

/// Arguments of the tools that take one table: `describe_table`, `get_table_stats`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableArgs {
    #[serde(default)]
    #[schemars(description = CONNECTION_ID_DOC, regex(pattern = r"^[0-9a-fA-F]{32}$"))]
    pub connection_id: Option<String>,
    /// The table or view name, as list_tables shows it (without the schema).
    #[schemars(length(min = 1, max = 63))]
    pub table: String,
    /// Its schema. Default: the connection's search path / current database.
    #[serde(default)]
    #[schemars(length(min = 1, max = 63))]
    pub schema: Option<String>,
}

/// The connection-id field's description, shared by every tool's schema.
pub(crate) const CONNECTION_ID_DOC: &str = "Connection id (32 hex characters) from list_connections or connect. Omit it to use the server's default connection.";
