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
        .serve(checked_stdio())
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

/// Longest stdio line read: a longer one is answered with a parse error and skipped.
/// 16 MiB: far above any real request (the HTTP body limit is 1 MiB by default).
const MAX_LINE: usize = 16 * 1024 * 1024;

/// stdin and stdout with every line checked before rmcp reads it: a line that cannot be
/// read gets a JSON-RPC error (see [`crate::malformed`]) instead of silence. rmcp's output
/// and these errors go to stdout through one writer, a whole line at a time.
fn checked_stdio() -> (tokio::io::DuplexStream, tokio::io::DuplexStream) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let (rmcp_in, mut to_rmcp) = tokio::io::duplex(64 * 1024);
    let (rmcp_out, from_rmcp) = tokio::io::duplex(64 * 1024);
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    // stdout: one writer for whole lines.
    tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = lines_rx.recv().await {
            if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let out = lines_tx.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(from_rmcp);
        loop {
            let mut line = Vec::new();
            match lines.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if out.send(line).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut stdin = BufReader::new(tokio::io::stdin());
        loop {
            let mut line = Vec::new();
            let read = (&mut stdin)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line)
                .await;
            match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let complete = line.ends_with(b"\n");
            if !complete && line.len() > MAX_LINE {
                // Skip the rest of the over-long line.
                let mut rest = Vec::new();
                let _ = stdin.read_until(b'\n', &mut rest).await;
            }
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            if body.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let verdict = if line.len() > MAX_LINE {
                Err(crate::malformed::Malformed(serde_json::json!({
                    "jsonrpc": "2.0", "id": null,
                    "error": {"code": -32700, "message": "parse error: line too long"}})))
            } else {
                crate::malformed::check(body)
            };
            match verdict {
                Ok(()) => {
                    let mut forward = body.to_vec();
                    forward.push(b'\n');
                    if to_rmcp.write_all(&forward).await.is_err() {
                        break;
                    }
                }
                Err(crate::malformed::Malformed(answer)) => {
                    tracing::warn!(
                        code = %answer["error"]["code"],
                        "unreadable stdio message answered with an error"
                    );
                    let mut text = answer.to_string().into_bytes();
                    text.push(b'\n');
                    if lines_tx.send(text).await.is_err() {
                        break;
                    }
                }
            }
        }
        // stdin closed: so is rmcp's input.
        let _ = to_rmcp.shutdown().await;
    });
    (rmcp_in, rmcp_out)
}
