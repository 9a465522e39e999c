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

/// The connection-id field's description, shared by every tool's schema.
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

pub(crate) const CONNECTION_ID_DOC: &str = "Connection id (32 hex characters) from list_connections or connect. Omit it to use the server's default connection.";
