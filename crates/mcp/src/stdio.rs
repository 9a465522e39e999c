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
/// When stdin and stdout are pipes or sockets (as every MCP client starts a server), they
/// are read and written by the runtime's own thread, through its event loop: a call wakes
/// that one thread and no other. (Tokio's `stdin()`/`stdout()` hand every read and write
/// to the blocking pool: two thread wake-ups per message.) Anything else (a file, a
/// terminal, whose blocking mode must not be changed under another process) is served by
/// two threads of their own, blocked in `read` and `write`. Either way, a client that
/// stops reading stalls only the stdout writer, then rmcp's writes once the queue is full;
/// the runtime keeps running calls, timers and signals.
fn checked_stdio() -> std::io::Result<(RmcpEnds, StdoutDrain)> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let (rmcp_in, to_rmcp) = tokio::io::duplex(64 * 1024);
    let (rmcp_out, from_rmcp) = tokio::io::duplex(64 * 1024);
    let (out, out_rx) = tokio::sync::mpsc::channel::<Out>(OUT_QUEUE);
    match ends::stdout()? {
        Some(stdout) => {
            tokio::spawn(write_stdout(stdout, out_rx));
        }
        None => {
            std::thread::Builder::new()
                .name("dbward-stdout".into())
                .spawn(move || write_stdout_blocking(out_rx))?;
        }
    }
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
    let errors = out.clone();
    match ends::stdin()? {
        Some(stdin) => {
            tokio::spawn(read_stdin(stdin, to_rmcp, errors));
        }
        None => {
            // Checked lines go to rmcp through this task (the duplex is async).
            let (checked_tx, mut checked_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(OUT_QUEUE);
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut to_rmcp = to_rmcp;
                while let Some(line) = checked_rx.recv().await {
                    if to_rmcp.write_all(&line).await.is_err() {
                        break;
                    }
                }
                // stdin closed: so is rmcp's input.
                let _ = to_rmcp.shutdown().await;
            });
            std::thread::Builder::new()
                .name("dbward-stdin".into())
                .spawn(move || read_stdin_blocking(&checked_tx, &errors))?;
        }
    }
    Ok(((rmcp_in, rmcp_out), StdoutDrain { forwarded, out }))
}

/// stdin and stdout as the runtime's own asynchronous ends, when they are pipes or sockets.
mod ends {
    use std::fs::File;
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;

    pub(super) type Reader = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
    pub(super) type Writer = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

    /// What kind of file a standard stream is, from a duplicate of its descriptor (which
    /// shares the open file, and so its blocking mode, with the original).
    fn duplicate(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<(File, Kind)> {
        let file = File::from(fd.try_clone_to_owned()?);
        let kind = file.metadata()?.file_type();
        let kind = if kind.is_fifo() {
            Kind::Pipe
        } else if kind.is_socket() {
            Kind::Socket
        } else {
            Kind::Other
        };
        Ok((file, kind))
    }

    enum Kind {
        Pipe,
        Socket,
        Other,
    }

    /// stdin, read through the event loop; `None` when it is neither a pipe nor a socket.
    pub(super) fn stdin() -> std::io::Result<Option<Reader>> {
        let (file, kind) = duplicate(std::io::stdin().as_fd())?;
        Ok(match kind {
            Kind::Pipe => Some(Box::new(tokio::net::unix::pipe::Receiver::from_file(file)?)),
            Kind::Socket => Some(Box::new(socket(file)?)),
            Kind::Other => None,
        })
    }

    /// stdout, written through the event loop; `None` when it is neither a pipe nor a socket.
    pub(super) fn stdout() -> std::io::Result<Option<Writer>> {
        let (file, kind) = duplicate(std::io::stdout().as_fd())?;
        Ok(match kind {
            Kind::Pipe => Some(Box::new(tokio::net::unix::pipe::Sender::from_file(file)?)),
            Kind::Socket => Some(Box::new(socket(file)?)),
            Kind::Other => None,
        })
    }

    /// A stream socket (a Node.js client's stdio is a socket pair) in non-blocking mode.
    fn socket(file: File) -> std::io::Result<tokio::net::UnixStream> {
        let socket = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(file));
        socket.set_nonblocking(true)?;
        tokio::net::UnixStream::from_std(socket)
    }
}

/// The stdout writer on the runtime: whole lines, written and flushed one at a time.
async fn write_stdout(mut stdout: ends::Writer, mut jobs: tokio::sync::mpsc::Receiver<Out>) {
    use tokio::io::AsyncWriteExt;
    while let Some(job) = jobs.recv().await {
        match job {
            Out::Line(line) => {
                if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                    break;
                }
            }
            Out::Drained(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

/// The stdout thread, when stdout is not a pipe or a socket: the same, blocked in `write`.
fn write_stdout_blocking(mut jobs: tokio::sync::mpsc::Receiver<Out>) {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut stdout = stdout.lock();
    while let Some(job) = jobs.blocking_recv() {
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
}

/// What becomes of one line read from stdin.
enum Line {
    /// Blank: nothing.
    Skip,
    /// Readable: passed on to rmcp, byte for byte (newline included).
    Forward(Vec<u8>),
    /// Unreadable: this JSON-RPC error line goes back to the client.
    Answer(Vec<u8>),
}

/// Judges one line as read (at most `MAX_LINE + 1` bytes, newline included if it came).
fn judge(mut line: Vec<u8>) -> Line {
    let body = line.strip_suffix(b"\n").unwrap_or(&line);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let body_len = body.len();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Line::Skip;
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
            // rmcp gets the message and a bare newline.
            line.truncate(body_len);
            line.push(b'\n');
            Line::Forward(line)
        }
        Err(crate::malformed::Malformed(answer)) => {
            tracing::warn!(
                code = %answer["error"]["code"],
                "unreadable stdio message answered with an error"
            );
            let mut text = answer.to_string().into_bytes();
            text.push(b'\n');
            Line::Answer(text)
        }
    }
}

/// Reads stdin on the runtime until end of file (or until nobody listens), passes the
/// readable lines on to rmcp and answers the others; then closes rmcp's input.
async fn read_stdin(
    stdin: ends::Reader,
    mut to_rmcp: tokio::io::DuplexStream,
    errors: tokio::sync::mpsc::Sender<Out>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let mut stdin = tokio::io::BufReader::with_capacity(64 * 1024, stdin);
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
        if !line.ends_with(b"\n") && line.len() > MAX_LINE {
            // Skip the rest of the over-long line, without keeping it.
            if skip_line(&mut stdin).await.is_err() {
                break;
            }
        }
        let sent = match judge(line) {
            Line::Skip => true,
            Line::Forward(line) => to_rmcp.write_all(&line).await.is_ok(),
            Line::Answer(text) => errors.send(Out::Line(text)).await.is_ok(),
        };
        if !sent {
            break;
        }
    }
    // stdin closed: so is rmcp's input.
    let _ = to_rmcp.shutdown().await;
}

/// Reads and drops bytes up to and including the next newline (or to end of file).
async fn skip_line(stdin: &mut (impl tokio::io::AsyncBufRead + Unpin)) -> std::io::Result<()> {
    use tokio::io::AsyncBufReadExt;
    loop {
        let buf = stdin.fill_buf().await?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                stdin.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                stdin.consume(n);
            }
        }
    }
}

/// The stdin thread, when stdin is not a pipe or a socket: the same, blocked in `read`.
fn read_stdin_blocking(
    checked: &tokio::sync::mpsc::Sender<Vec<u8>>,
    errors: &tokio::sync::mpsc::Sender<Out>,
) {
    use std::io::{BufRead, Read};
    /// Reads and drops bytes up to and including the next newline (or to end of file).
    fn skip_line_blocking(stdin: &mut impl BufRead) -> std::io::Result<()> {
        loop {
            let buf = stdin.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    stdin.consume(i + 1);
                    return Ok(());
                }
                None => {
                    let n = buf.len();
                    stdin.consume(n);
                }
            }
        }
    }
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
        if !line.ends_with(b"\n") && line.len() > MAX_LINE {
            // Skip the rest of the over-long line, without keeping it.
            if skip_line_blocking(&mut stdin).is_err() {
                break;
            }
        }
        let sent = match judge(line) {
            Line::Skip => true,
            Line::Forward(line) => checked.blocking_send(line).is_ok(),
            Line::Answer(text) => errors.blocking_send(Out::Line(text)).is_ok(),
        };
        if !sent {
            break;
        }
    }
}
