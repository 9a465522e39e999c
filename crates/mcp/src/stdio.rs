//! The stdio transport: one client (the process that started us) on stdin/stdout.
//!
//! Invariant: stdout carries only MCP messages; logs go to stderr (the binary's tracing
//! subscriber writes there).

use std::future::Future;
use std::sync::Arc;

use dbward_gateway::{ConnectionInfo, Gateway};
use rmcp::ServiceExt;

use crate::error::McpError;
use crate::server::{DbwardServer, ServerOptions};

/// Serves MCP on stdin/stdout until the client closes stdin or `shutdown` completes.
pub async fn serve_stdio(
    gateway: Arc<Gateway>,
    default_connection: ConnectionInfo,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), McpError> {
    let drain = options.drain.clone();
    let deadline = options.drain_deadline;
    let server = DbwardServer::new(gateway, default_connection, options);
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| McpError::Initialize(e.to_string()))?;
    let ct = running.cancellation_token();
    let waiting = running.waiting();
    tokio::pin!(waiting);
    tokio::select! {
        quit = &mut waiting => {
            tracing::info!(reason = ?quit.ok(), "stdio session ended");
        }
        () = shutdown => {
            // Running calls finish (or are cancelled at the deadline) and are answered
            // while the session still runs; then it ends.
            tracing::info!(running = drain.running(), "shutting down: draining calls");
            drain.drain(deadline).await;
            ct.cancel();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), waiting).await;
        }
    }
    Ok(())
}
