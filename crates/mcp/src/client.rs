//! An MCP client of a `dbward serve` child process over stdio, for the assistant (an MCP
//! host). The web process that uses it never holds a database credential: the child does.
//!
//! Invariant: calls go through the child's gateway like any client's, so they are checked,
//! enforced and audited the same way.

use std::path::Path;

use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, ClientNotification,
    CustomNotification, Implementation, RequestMetaObject, Tool,
};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::Value;

use crate::error::McpError;
use crate::server::{
    HOST_EVENT_METHOD, HOST_IDENTITY_META_KEY, HOST_SESSION_META_KEY, HostEvent, HostIdentity,
};

/// One of the host's sessions, as the child is told of it with each call: its label
/// (`stdio/<label>`), and the person signed in to it through the identity provider, if
/// any (then the call is theirs: `NAME:SUB`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostSession {
    /// 1 to 32 letters, digits, `-`, `_`.
    pub label: String,
    /// The person the host vouches for (it verified their ID token).
    pub identity: Option<HostIdentity>,
}

impl HostSession {
    /// A session known by its label only.
    pub fn labelled(label: impl Into<String>) -> HostSession {
        HostSession {
            label: label.into(),
            identity: None,
        }
    }

    /// A security event of this session.
    pub fn event(&self, kind: dbward_gateway::HostEventKind) -> HostEvent {
        HostEvent {
            session: Some(self.label.clone()),
            identity: self.identity.clone(),
            kind,
        }
    }
}

/// A running `dbward serve` child and the MCP session to it.
pub struct ChildServer {
    session: RunningService<RoleClient, ClientConfig>,
}

/// What a tool call returned, as the assistant needs it.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    /// Whether the tool reported an error (a refusal or a database error).
    pub is_error: bool,
    /// The structured content (rows, or the error's code and rule).
    pub structured: Option<Value>,
    /// The text form.
    pub text: String,
}

impl ChildServer {
    /// Starts `binary serve ARGS...` with `env` added, and initializes the session.
    pub async fn spawn(
        binary: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<ChildServer, McpError> {
        Self::spawn_with(binary, args, env, &[]).await
    }

    /// As [`ChildServer::spawn`], with the variables in `remove` taken out of the child's
    /// environment (secrets the child has no use for).
    pub async fn spawn_with(
        binary: &Path,
        args: &[String],
        env: &[(String, String)],
        remove: &[String],
    ) -> Result<ChildServer, McpError> {
        let command = tokio::process::Command::new(binary).configure(|c| {
            c.arg("serve").args(args);
            for k in remove {
                c.env_remove(k);
            }
            for (k, v) in env {
                c.env(k, v);
            }
        });
        let (transport, _stderr) = TokioChildProcess::builder(command)
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .map_err(|e| McpError::Client(format!("cannot start dbward serve: {e}")))?;
        let info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("dbward-web", env!("CARGO_PKG_VERSION")),
        );
        let session = info
            .serve(transport)
            .await
            .map_err(|e| McpError::Client(format!("MCP initialization failed: {e}")))?;
        Ok(ChildServer { session })
    }

    /// The tools the server offers.
    pub async fn tools(&self) -> Result<Vec<Tool>, McpError> {
        self.session
            .list_all_tools()
            .await
            .map_err(|e| McpError::Client(e.to_string()))
    }

    /// Calls one tool as the host itself.
    pub async fn call(
        &self,
        name: &str,
        arguments: serde_json::Map<String, Value>,
    ) -> Result<ToolOutput, McpError> {
        self.call_as(None, name, arguments).await
    }

    /// Calls one tool on behalf of one of the host's sessions: the server audits and
    /// rate-limits it as `stdio/<label>`, or as the person signed in to it, apart from
    /// the host's other sessions.
    pub async fn call_as(
        &self,
        session: Option<&HostSession>,
        name: &str,
        arguments: serde_json::Map<String, Value>,
    ) -> Result<ToolOutput, McpError> {
        let mut params = CallToolRequestParams::new(name.to_string()).with_arguments(arguments);
        if let Some(s) = session {
            let mut meta = RequestMetaObject::new();
            meta.0
                .insert(HOST_SESSION_META_KEY.into(), Value::String(s.label.clone()));
            if let Some(id) = &s.identity {
                let v = serde_json::to_value(id).map_err(|e| McpError::Client(e.to_string()))?;
                meta.0.insert(HOST_IDENTITY_META_KEY.into(), v);
            }
            params.meta = Some(meta);
        }
        let r: CallToolResult = self
            .session
            .call_tool(params)
            .await
            .map_err(|e| McpError::Client(e.to_string()))?;
        let text = r
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect::<Vec<_>>()
            .join("\n");
        Ok(ToolOutput {
            is_error: r.is_error == Some(true),
            structured: r.structured_content.clone(),
            text,
        })
    }

    /// Reports a security event the host saw (a failed login, a flagged question) to the
    /// server, which audits it and feeds its detector.
    pub async fn report(&self, event: &HostEvent) -> Result<(), McpError> {
        let params = serde_json::to_value(event).map_err(|e| McpError::Client(e.to_string()))?;
        self.session
            .send_notification(ClientNotification::CustomNotification(
                CustomNotification::new(HOST_EVENT_METHOD, Some(params)),
            ))
            .await
            .map_err(|e| McpError::Client(e.to_string()))
    }

    /// Ends the session (and with it the child).
    pub async fn close(self) {
        let _ = self.session.cancel().await;
    }
}
