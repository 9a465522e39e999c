//! `connect`: opens a connection and returns its opaque id. A named connection from the
//! server's config is the normal way; a URL or parameters are accepted only when the
//! config sets `allow_client_connections` (the credentials would pass through the
//! model's context), and the schema advertises them only then.

use dbward_gateway::connection::default_port;
use dbward_gateway::{ConnectRequest, ConnectSpec, DbKind, GatewayError};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::schema_for_input;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use crate::render;
use crate::server::{DbwardServer, answer};

/// Arguments of `connect` when client connections are allowed: exactly one of `name`,
/// `url`, `parameters`. Debug output masks the URL and the password.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectArgs {
    /// A named connection from the server's configuration (see list_connections for those already open).
    #[serde(default)]
    #[schemars(length(min = 1, max = 128))]
    pub name: Option<String>,
    /// A connection URL: postgresql://user:password@host:5432/db, mysql://..., or sqlite:///path/file.db.
    #[serde(default)]
    #[schemars(length(min = 1, max = 2048))]
    pub url: Option<String>,
    /// Connection parameters, as an alternative to url.
    #[serde(default)]
    pub parameters: Option<ConnectParameters>,
}

/// Arguments of `connect` when only named connections are allowed. Only its schema is
/// used (advertised in place of `ConnectArgs`'s); calls still parse as `ConnectArgs`, so
/// a URL sent anyway reaches the gateway and is refused there with its stable code.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "exists for its JSON schema only")]
pub struct ConnectNamedArgs {
    /// A named connection from the server's configuration.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
}

/// Database kinds.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DbType {
    /// PostgreSQL.
    Postgresql,
    /// MySQL or MariaDB.
    Mysql,
    /// SQLite (a file path).
    Sqlite,
}

/// Connection parameters. Debug output masks the password.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectParameters {
    /// The database kind.
    #[serde(rename = "type")]
    pub kind: DbType,
    /// Host name or address (server databases). Default localhost.
    #[serde(default)]
    pub host: Option<String>,
    /// Port. Default 5432 (PostgreSQL) or 3306 (MySQL).
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// Database name (server databases).
    #[serde(default)]
    pub database: Option<String>,
    /// User name.
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<String>,
    /// File path (SQLite).
    #[serde(default)]
    pub path: Option<String>,
    /// TLS mode: disable, prefer, require, verify-ca, verify-full. Default prefer.
    #[serde(default)]
    pub sslmode: Option<String>,
}

const DESCRIPTION_NAMED: &str = "Open a named connection from the server's configuration and return its id; pass the id as connection_id to other tools. Connecting with a URL or credentials is disabled on this server. Example: {\"name\": \"warehouse\"}";

impl std::fmt::Debug for ConnectArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectArgs")
            .field("name", &self.name)
            .field("url", &self.url.as_ref().map(|_| "****"))
            .field("parameters", &self.parameters)
            .finish()
    }
}

impl std::fmt::Debug for ConnectParameters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectParameters")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "****"))
            .field("path", &self.path)
            .field("sslmode", &self.sslmode)
            .finish()
    }
}

const DESCRIPTION: &str = "Open a database connection and return its id; pass the id as connection_id to other tools. Give exactly one of: name (a named connection from the server's configuration, preferred), url (postgresql://user:pass@host:5432/db, mysql://..., sqlite:///path/file.db) or parameters. Example: {\"name\": \"warehouse\"}";

/// Replaces `connect`'s advertised schema and description with the named-only form.
pub(crate) fn advertise_named_only(router: &mut ToolRouter<DbwardServer>) {
    if let Some(route) = router.map.get_mut("connect") {
        if let Ok(schema) = schema_for_input::<ConnectNamedArgs>() {
            route.attr.input_schema = schema;
        }
        route.attr.description = Some(DESCRIPTION_NAMED.into());
    }
}

fn request(args: ConnectArgs) -> Result<ConnectRequest, GatewayError> {
    match (args.name, args.url, args.parameters) {
        (Some(name), None, None) => Ok(ConnectRequest::Named(name)),
        (None, Some(url), None) => Ok(ConnectRequest::Url(SecretString::from(url))),
        (None, None, Some(p)) => {
            let kind = match p.kind {
                DbType::Postgresql => DbKind::Postgresql,
                DbType::Mysql => DbKind::Mysql,
                DbType::Sqlite => DbKind::Sqlite,
            };
            let sslmode = match p.sslmode.as_deref() {
                Some(s) => dbward_gateway::config::SslMode::parse(s)?,
                None => Default::default(),
            };
            Ok(ConnectRequest::Params(Box::new(ConnectSpec {
                kind,
                host: p.host.unwrap_or_else(|| "localhost".into()),
                port: p.port.unwrap_or(default_port(kind)),
                database: p.database,
                username: p.username,
                password: p.password.map(SecretString::from),
                path: p.path.map(Into::into),
                sslmode,
                reader_role: None,
                name: None,
            })))
        }
        _ => Err(GatewayError::InvalidInput(
            "give exactly one of name, url or parameters".into(),
        )),
    }
}

/// `structuredContent` of a successful call: the new connection.
fn output_schema() -> std::sync::Arc<rmcp::model::JsonObject> {
    let info = super::connection_info_schema();
    super::output_schema(
        info["properties"].clone(),
        &[
            "id",
            "type",
            "target",
            "server_version",
            "opened_at",
            "role",
            "role_can_write",
        ],
    )
}

#[tool_router(router = connect_router, vis = "pub(crate)")]
impl DbwardServer {
    #[tool(
        name = "connect",
        description = DESCRIPTION,
        output_schema = output_schema(),
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = true)
    )]
    async fn connect(&self, Parameters(args): Parameters<ConnectArgs>) -> CallToolResult {
        let request = match request(args) {
            Ok(r) => r,
            Err(e) => return render::gateway_error(&e),
        };
        answer(self.gateway.connect(request).await, |info| {
            render::trusted(
                render::to_value(&info),
                format!(
                    "connected: connection_id {} ({} {}, {})",
                    info.id,
                    info.kind.as_str(),
                    info.target,
                    info.server_version
                ),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_masks_urls_and_passwords() {
        let args: ConnectArgs = serde_json::from_value(serde_json::json!({
            "url": "postgresql://app:Hunter2-Secret@db:5432/x",
            "parameters": {"type": "postgresql", "password": "Other-Secret-9"}
        }))
        .expect("parses");
        let debug = format!("{args:?}");
        assert!(
            !debug.contains("Hunter2-Secret") && !debug.contains("Other-Secret-9"),
            "{debug}"
        );
        assert!(debug.contains("****"), "{debug}");
    }
}
