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
    let (ends, stdout) = checked_stdio().map_err(|e| McpError::Initialize(e.to_string()))?;
    let running = server
        .serve(ends)
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
    // Every answer rmcp wrote reaches stdout before the process ends.
    stdout.drain(std::time::Duration::from_secs(2)).await;
    Ok(())
}

/// Longest stdio line read: a longer one is answered with a parse error and skipped.
/// 16 MiB: far above any real request (the HTTP body limit is 1 MiB by default).
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Lines waiting for the stdout thread at most; rmcp waits (and so stops reading) beyond.
const OUT_QUEUE: usize = 64;

/// What the stdout thread is asked to do.
enum Out {
    /// Write one whole line (newline included) and flush it.
    Line(Vec<u8>),
    /// Acknowledge once every line queued before this one is written.
    Drained(tokio::sync::oneshot::Sender<()>),
}

/// What `serve_stdio` waits for at the end: rmcp's last answers on stdout.
struct StdoutDrain {
    /// Ends when rmcp's output is closed and every line of it is queued for stdout.
    forwarded: tokio::task::JoinHandle<()>,
    out: tokio::sync::mpsc::Sender<Out>,
}

impl StdoutDrain {
    /// Waits (at most `limit`) until every answer rmcp wrote is on stdout, so that ending
    /// the process right after loses none.
    async fn drain(self, limit: std::time::Duration) {
        let drained = async move {
            let _ = self.forwarded.await;
            let (ack, done) = tokio::sync::oneshot::channel();
            if self.out.send(Out::Drained(ack)).await.is_ok() {
                let _ = done.await;
            }
        };
        let _ = tokio::time::timeout(limit, drained).await;
    }
}

/// rmcp's input and output.
type RmcpEnds = (tokio::io::DuplexStream, tokio::io::DuplexStream);

/// stdin and stdout with every line checked before rmcp reads it: a line that cannot be
/// read gets a JSON-RPC error (see [`crate::malformed`]) instead of silence. rmcp's output
/// and these errors go to stdout through one writer, a whole line at a time.
///
/// stdin and stdout are served by two threads of their own, blocked in `read` and
/// `write`: a message in costs one wake-up of the runtime, a message out one of the stdout
/// thread. (Tokio's stdin and stdout hand every read and write to the blocking pool: two
/// more thread wake-ups per message.) A client that stops reading stalls only the stdout
/// thread, then rmcp's writes once the queue is full; the runtime keeps running calls,
/// timers and signals.
fn checked_stdio() -> std::io::Result<(RmcpEnds, StdoutDrain)> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (rmcp_in, mut to_rmcp) = tokio::io::duplex(64 * 1024);
    let (rmcp_out, from_rmcp) = tokio::io::duplex(64 * 1024);
    let (out, mut out_rx) = tokio::sync::mpsc::channel::<Out>(OUT_QUEUE);
    // stdout: one writer for whole lines.
    std::thread::Builder::new()
        .name("dbward-stdout".into())
        .spawn(move || {
            use std::io::Write;
            let stdout = std::io::stdout();
            let mut stdout = stdout.lock();
            while let Some(job) = out_rx.blocking_recv() {
                match job {
                    Out::Line(line) => {
                        if stdout
                            .write_all(&line)
                            .and_then(|()| stdout.flush())
                            .is_err()
                        {
                            break;
                        }
                    }
                    Out::Drained(ack) => {
                        let _ = ack.send(());
                    }
                }
            }
        })?;
    let to_stdout = out.clone();
    let forwarded = tokio::spawn(async move {
        let mut lines = BufReader::new(from_rmcp);
        loop {
            let mut line = Vec::new();
            match lines.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if to_stdout.send(Out::Line(line)).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    // stdin: checked lines go to rmcp through this task (the duplex is async).
    let (checked_tx, mut checked_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(OUT_QUEUE);
    tokio::spawn(async move {
        while let Some(line) = checked_rx.recv().await {
            if to_rmcp.write_all(&line).await.is_err() {
                break;
            }
        }
        // stdin closed: so is rmcp's input.
        let _ = to_rmcp.shutdown().await;
    });
    let errors = out.clone();
    std::thread::Builder::new()
        .name("dbward-stdin".into())
        .spawn(move || read_stdin(&checked_tx, &errors))?;
    Ok(((rmcp_in, rmcp_out), StdoutDrain { forwarded, out }))
}

/// The stdin thread: reads lines until end of file (or until nobody listens), passes the
/// readable ones on to rmcp byte for byte, and answers the others.
fn read_stdin(
    checked: &tokio::sync::mpsc::Sender<Vec<u8>>,
    errors: &tokio::sync::mpsc::Sender<Out>,
) {
    use std::io::{BufRead, Read};
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    loop {
        let mut line = Vec::new();
        let read = (&mut stdin)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let complete = line.ends_with(b"\n");
        if !complete && line.len() > MAX_LINE {
            // Skip the rest of the over-long line.
            let mut rest = Vec::new();
            let _ = stdin.read_until(b'\n', &mut rest);
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
                if checked.blocking_send(forward).is_err() {
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
                if errors.blocking_send(Out::Line(text)).is_err() {
                    break;
                }
            }
        }
    }
}
