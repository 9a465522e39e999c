//! `security_posture`: what the connection's database role could do, and which of
//! dbward's layers are on.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::CONNECTION_ID_DOC;
use crate::render;
use crate::server::{DbwardServer, answer};

/// Arguments of `security_posture`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityPostureArgs {
    #[serde(default)]
    #[schemars(description = CONNECTION_ID_DOC, regex(pattern = r"^[0-9a-fA-F]{32}$"))]
    pub connection_id: Option<String>,
}

const DESCRIPTION: &str = "Report the security posture of a connection: the database role and whether it could write on its own (superuser, writable tables, create rights, dangerous role memberships), which protective layers are on (SQL policy, read-only transaction, statement timeout, row and byte caps, reader role), and warnings. Example: {}";

/// `structuredContent` of a successful call: the gateway's `Posture`.
fn output_schema() -> std::sync::Arc<rmcp::model::JsonObject> {
    super::output_schema(
        serde_json::json!({
            "role": {
                "type": "object",
                "properties": {
                    "role": { "type": "string" },
                    "superuser": { "type": "boolean" },
                    "writable_tables": { "type": "integer" },
                    "can_create": { "type": "boolean" },
                    "dangerous_roles": { "type": "array", "items": { "type": "string" } },
                    "can_write": { "type": "boolean" }
                },
                "required": ["role", "superuser", "writable_tables", "can_create", "dangerous_roles", "can_write"]
            },
            "layers": {
                "type": "object",
                "properties": {
                    "policy": { "type": "boolean" },
                    "read_only_transaction": { "type": "boolean" },
                    "statement_timeout_ms": { "type": "integer" },
                    "row_cap": { "type": "integer" },
                    "byte_cap": { "type": "integer" },
                    "reader_role": { "type": "string" },
                    "client_connections_allowed": { "type": "boolean" },
                    "catalog_version": { "type": "boolean" }
                },
                "required": ["policy", "read_only_transaction", "statement_timeout_ms", "row_cap", "byte_cap", "client_connections_allowed"]
            },
            "warnings": { "type": "array", "items": { "type": "string" } }
        }),
        &["role", "layers", "warnings"],
    )
}

#[tool_router(router = security_posture_router, vis = "pub(crate)")]
impl DbwardServer {
    #[tool(
        name = "security_posture",
        description = DESCRIPTION,
        output_schema = output_schema(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn security_posture(
        &self,
        Parameters(args): Parameters<SecurityPostureArgs>,
    ) -> CallToolResult {
        let id = self.connection(args.connection_id.as_deref());
        answer(self.gateway.security_posture(id).await, |p| {
            let r = &p.role;
            let l = &p.layers;
            let mut lines = vec![
                format!(
                    "role {}: {}",
                    r.role,
                    if r.can_write {
                        "CAN WRITE on its own (only dbward's layers stop writes)"
                    } else {
                        "cannot write"
                    }
                ),
                format!(
                    "  superuser={} writable_tables={} can_create={} dangerous_roles=[{}]",
                    r.superuser,
                    r.writable_tables,
                    r.can_create,
                    r.dangerous_roles.join(", ")
                ),
                format!(
                    "layers: policy={} read_only_transaction={} statement_timeout_ms={} row_cap={} byte_cap={} reader_role={} client_connections_allowed={} catalog_version={}",
                    l.policy,
                    l.read_only_transaction,
                    l.statement_timeout_ms,
                    l.row_cap,
                    l.byte_cap,
                    l.reader_role.as_deref().unwrap_or("-"),
                    l.client_connections_allowed,
                    l.catalog_version
                        .map_or("-", |v| if v { "on" } else { "off" })
                ),
            ];
            lines.extend(p.warnings.iter().map(|w| format!("warning: {w}")));
            render::catalog(render::to_value(&p), &lines)
        })
    }
}
