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
    let (transport, stdout) = checked_stdio().map_err(|e| McpError::Initialize(e.to_string()))?;
    let running = server
        .serve(transport)
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
    // Every answer rmcp sent reaches stdout before the process ends.
    stdout.drain(std::time::Duration::from_secs(2)).await;
    Ok(())
}

/// Longest stdio line read: a longer one is answered with a parse error and skipped.
/// 16 MiB: far above any real request (the HTTP body limit is 1 MiB by default).
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Lines waiting for the stdout writer at most; rmcp waits (and so stops reading) beyond.
const OUT_QUEUE: usize = 64;

/// Messages read and checked, waiting for rmcp at most; the reader waits beyond.
const IN_QUEUE: usize = 64;

/// What the stdout writer is asked to do.
enum Out {
    /// Write one whole line (newline included) and flush it.
    Line(Vec<u8>),
    /// Acknowledge once every line queued before this one is written.
    Drained(tokio::sync::oneshot::Sender<()>),
}

/// A message from the client, as rmcp takes it.
type Incoming = rmcp::service::RxJsonRpcMessage<rmcp::RoleServer>;

/// rmcp's end of stdio: each line is read, checked and decoded once, by the reader, and
/// each message rmcp sends is encoded at once and queued for the one stdout writer.
/// (rmcp's own line transport would decode every message a second time, behind a copy
/// through an in-memory pipe.)
struct StdioTransport {
    incoming: tokio::sync::mpsc::Receiver<Incoming>,
    out: tokio::sync::mpsc::Sender<Out>,
    /// Dropped with the transport: tells [`StdoutDrain`] that rmcp sends no more.
    _open: tokio::sync::oneshot::Sender<()>,
}

impl rmcp::transport::Transport<rmcp::RoleServer> for StdioTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: rmcp::service::TxJsonRpcMessage<rmcp::RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let line = serde_json::to_vec(&item).map(|mut line| {
            line.push(b'\n');
            line
        });
        let out = self.out.clone();
        async move {
            let line = line.map_err(std::io::Error::other)?;
            out.send(Out::Line(line))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stdout closed"))
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<Incoming>> + Send {
        // Cancel-safe: a message is taken off the queue only when it is returned.
        self.incoming.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// What `serve_stdio` waits for at the end: rmcp's last answers on stdout.
struct StdoutDrain {
    /// Ends (with an error) when rmcp has dropped its transport.
    closed: tokio::sync::oneshot::Receiver<()>,
    out: tokio::sync::mpsc::Sender<Out>,
}

impl StdoutDrain {
    /// Waits (at most `limit`) until every answer rmcp sent is on stdout, so that ending
    /// the process right after loses none.
    async fn drain(self, limit: std::time::Duration) {
        let drained = async move {
            let _ = self.closed.await;
            let (ack, done) = tokio::sync::oneshot::channel();
            if self.out.send(Out::Drained(ack)).await.is_ok() {
                let _ = done.await;
            }
        };
        let _ = tokio::time::timeout(limit, drained).await;
    }
}

/// stdin and stdout for rmcp, with every line checked before rmcp sees it: a line that
/// cannot be read gets a JSON-RPC error (see [`crate::malformed`]) instead of silence.
/// rmcp's answers and these errors go to stdout through one writer, a whole line at a
/// time.
///
/// When stdin and stdout are pipes or sockets (as every MCP client starts a server), they
/// are read and written by the runtime's own thread, through its event loop: a call wakes
/// that one thread and no other. (Tokio's `stdin()`/`stdout()` hand every read and write
/// to the blocking pool: two thread wake-ups per message.) Anything else (a file, a
/// terminal, whose blocking mode must not be changed under another process) is served by
/// two threads of their own, blocked in `read` and `write`. Either way, a client that
/// stops reading stalls only the stdout writer, then rmcp's sends once the queue is full;
/// the runtime keeps running calls, timers and signals.
fn checked_stdio() -> std::io::Result<(StdioTransport, StdoutDrain)> {
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
    let (incoming_tx, incoming) = tokio::sync::mpsc::channel::<Incoming>(IN_QUEUE);
    let errors = out.clone();
    match ends::stdin()? {
        Some(stdin) => {
            tokio::spawn(read_stdin(stdin, incoming_tx, errors));
        }
        None => {
            std::thread::Builder::new()
                .name("dbward-stdin".into())
                .spawn(move || read_stdin_blocking(&incoming_tx, &errors))?;
        }
    }
    let (open, closed) = tokio::sync::oneshot::channel();
    let transport = StdioTransport {
        incoming,
        out: out.clone(),
        _open: open,
    };
    Ok((transport, StdoutDrain { closed, out }))
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
    /// Blank, or a notification rmcp does not know (a notification is never answered).
    Skip,
    /// A message for rmcp.
    Message(Box<Incoming>),
    /// Unreadable: this JSON-RPC error line goes back to the client.
    Answer(Vec<u8>),
}

/// UTF-8 byte order mark: RFC 8259 lets a reader ignore one (rmcp's own transport does).
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Judges one line as read (at most `MAX_LINE + 1` bytes, newline included if it came):
/// decoded once, as rmcp's message; when that fails, [`crate::malformed::check`] says
/// why, and a message that is readable JSON-RPC but not an MCP message rmcp knows is
/// answered "invalid request", as rmcp's own transport answers it.
fn judge(line: &[u8]) -> Line {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Line::Skip;
    }
    if line.len() > MAX_LINE {
        return answer(&serde_json::json!({
            "jsonrpc": "2.0", "id": null,
            "error": {"code": -32700, "message": "parse error: line too long"}}));
    }
    let decoded = match serde_json::from_slice::<Incoming>(body) {
        Ok(message) => return Line::Message(Box::new(message)),
        Err(e) => e,
    };
    if let Err(crate::malformed::Malformed(refusal)) = crate::malformed::check(body) {
        return answer(&refusal);
    }
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let id = match value.get("id") {
        Some(id @ (serde_json::Value::String(_) | serde_json::Value::Number(_))) => id.clone(),
        Some(_) => serde_json::Value::Null,
        None if value.is_object() => {
            tracing::debug!(error = %decoded, "notification not understood: ignored");
            return Line::Skip;
        }
        None => serde_json::Value::Null,
    };
    tracing::debug!(error = %decoded, "not an MCP message");
    answer(&serde_json::json!({
        "jsonrpc": "2.0", "id": id,
        "error": {"code": -32600, "message": "Invalid request"}}))
}

/// The error line for an unreadable message.
fn answer(refusal: &serde_json::Value) -> Line {
    tracing::warn!(
        code = %refusal["error"]["code"],
        "unreadable stdio message answered with an error"
    );
    let mut text = refusal.to_string().into_bytes();
    text.push(b'\n');
    Line::Answer(text)
}

/// Reads stdin on the runtime until end of file (or until nobody listens), passes the
/// readable messages on to rmcp and answers the others; then ends rmcp's input.
async fn read_stdin(
    stdin: ends::Reader,
    incoming: tokio::sync::mpsc::Sender<Incoming>,
    errors: tokio::sync::mpsc::Sender<Out>,
) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
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
        let sent = match judge(&line) {
            Line::Skip => true,
            Line::Message(message) => incoming.send(*message).await.is_ok(),
            Line::Answer(text) => errors.send(Out::Line(text)).await.is_ok(),
        };
        if !sent {
            break;
        }
    }
    // stdin closed: dropping `incoming` ends rmcp's input.
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
    incoming: &tokio::sync::mpsc::Sender<Incoming>,
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
        let sent = match judge(&line) {
            Line::Skip => true,
            Line::Message(message) => incoming.blocking_send(*message).is_ok(),
            Line::Answer(text) => errors.blocking_send(Out::Line(text)).is_ok(),
        };
        if !sent {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn answered(line: &[u8]) -> Value {
        match judge(line) {
            Line::Answer(text) => serde_json::from_slice(&text).expect("an answer is JSON"),
            Line::Skip => panic!("skipped"),
            Line::Message(m) => panic!("passed on: {m:?}"),
        }
    }

    #[test]
    fn each_line_is_decoded_once_or_answered() {
        let call = br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"list_tables","arguments":{}}}"#;
        for line in [
            call.to_vec(),
            [call.as_slice(), b"\r\n"].concat(),
            [UTF8_BOM, call.as_slice(), b"\n"].concat(),
        ] {
            match judge(&line) {
                Line::Message(m) => assert_eq!(
                    serde_json::to_value(&*m).expect("encodes")["params"]["name"],
                    "list_tables"
                ),
                _ => panic!("not passed on: {}", String::from_utf8_lossy(&line)),
            }
        }
        assert!(matches!(judge(b"  \r\n"), Line::Skip));
        // A notification nobody knows is never answered.
        assert!(matches!(
            judge(br#"{"jsonrpc":"2.0","method":"notifications/whatever","params":5}"#),
            Line::Skip
        ));
        assert_eq!(answered(b"{not json\n")["error"]["code"], -32700);
        let bad = answered(br#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":"x"}"#);
        assert_eq!(
            (bad["error"]["code"].clone(), bad["id"].clone()),
            (json!(-32602), json!("a"))
        );
        // Readable JSON-RPC that is no MCP message: invalid request, with its id.
        let odd = answered(br#"{"jsonrpc":"2.0","id":9,"method":"initialize","params":7}"#);
        assert_eq!(
            (odd["error"]["code"].clone(), odd["id"].clone()),
            (json!(-32600), json!(9))
        );
        let batch = answered(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
        assert_eq!(
            (batch["error"]["code"].clone(), batch["id"].clone()),
            (json!(-32600), Value::Null)
        );
        let long = vec![b'x'; MAX_LINE + 1];
        assert_eq!(
            answered(&long)["error"]["message"],
            "parse error: line too long"
        );
    }
}
