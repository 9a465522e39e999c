//! An MCP client of a `dbward serve` child process over stdio, for the assistant (an MCP
//! host). The web process that uses it never holds a database credential: the child does.
//!
//! Invariant: calls go through the child's gateway like any client's, so they are checked,
//! enforced and audited the same way.

use std::path::Path;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, Tool};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::Value;

use crate::error::McpError;

/// A running `dbward serve` child and the MCP session to it.
pub struct ChildServer {
    session: RunningService<RoleClient, ()>,
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
        let command = tokio::process::Command::new(binary).configure(|c| {
            c.arg("serve").args(args);
            for (k, v) in env {
                c.env(k, v);
            }
        });
        let (transport, _stderr) = TokioChildProcess::builder(command)
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .map_err(|e| McpError::Client(format!("cannot start dbward serve: {e}")))?;
        let session = ()
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

    /// Calls one tool.
    pub async fn call(
        &self,
        name: &str,
        arguments: serde_json::Map<String, Value>,
    ) -> Result<ToolOutput, McpError> {
        let r: CallToolResult = self
            .session
            .call_tool(CallToolRequestParams::new(name.to_string()).with_arguments(arguments))
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

    /// Ends the session (and with it the child).
    pub async fn close(self) {
        let _ = self.session.cancel().await;
    }
}
