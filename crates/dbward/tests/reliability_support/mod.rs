//! Helpers of the reliability tests (`reliability.rs`, `http_limits.rs`): a fresh
//! PostgreSQL database with a lockable table, the binary over raw stdio pipes and raw HTTP
//! sockets, and readers of its audit log.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub use crate::common::BIN;

pub const PG_ADMIN: &str = "postgresql://postgres@127.0.0.1:5432/postgres";
pub static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh database with one table `t`, dropped by `drop`.
pub struct PgDb {
    pub name: String,
}

impl PgDb {
    pub async fn new() -> PgDb {
        let name = format!(
            "dbward_t_rel_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = admin().await;
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create database");
        let mut c = PgDb::connect_to(&name).await;
        c.execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g; CREATE TABLE other (id int)")
            .await
            .expect("fixture");
        PgDb { name }
    }

    pub fn url(&self) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:5432/{}?sslmode=disable",
            self.name
        )
    }

    pub async fn connect_to(name: &str) -> PgConnection {
        PgConnection::connect(&format!("postgresql://postgres@127.0.0.1:5432/{name}"))
            .await
            .expect("connect")
    }

    /// A second session holding `ACCESS EXCLUSIVE` on `t` until dropped.
    pub async fn lock_t(&self) -> PgConnection {
        let mut c = PgDb::connect_to(&self.name).await;
        c.execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
            .await
            .expect("lock");
        c
    }

    /// dbward's statements on this database that are waiting or running now.
    pub async fn dbward_statements(&self) -> i64 {
        let mut a = admin().await;
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
             AND application_name = 'dbward' AND state = 'active'",
        )
        .bind(&self.name)
        .fetch_one(&mut a)
        .await
        .expect("pg_stat_activity")
    }

    pub async fn drop(self) {
        let mut a = admin().await;
        let _ = a
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .await;
    }
}

pub async fn admin() -> PgConnection {
    PgConnection::connect(PG_ADMIN).await.unwrap_or_else(|e| {
        panic!("PostgreSQL must be running on 127.0.0.1:5432 (run scripts/start-services.sh): {e}")
    })
}

/// A command for the binary with a clean environment for the variables it reads.
pub fn dbward(data_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("DBWARD_DATABASE_URL")
        .env_remove("DBWARD_HTTP_TOKEN")
        .env_remove("DBWARD_CONFIG")
        .env("DBWARD_DATA_DIR", data_dir)
        .env("DBWARD_LOG", "info")
        .kill_on_drop(true);
    cmd
}

/// A config file that lets a statement wait on a lock for longer than the call timeout.
pub fn long_locks(dir: &Path) -> PathBuf {
    let path = dir.join("dbward.toml");
    std::fs::write(&path, "[limits]\nlock_timeout_ms = 20000\n").expect("config");
    path
}

/// `dbward serve` over raw stdio pipes: JSON-RPC lines in, lines out.
pub struct Stdio_ {
    pub child: Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl Stdio_ {
    pub async fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Stdio_ {
        let mut cmd = dbward(dir);
        cmd.arg("serve")
            .arg("--audit-log")
            .arg(dir.join("audit.jsonl"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawns dbward serve");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut s = Stdio_ {
            child,
            stdin,
            lines,
        };
        s.send_raw(
            json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "reliability-test", "version": "1"}}})
            .to_string()
            .as_bytes(),
        )
        .await;
        let init = s.next().await;
        assert!(init["result"].is_object(), "{init}");
        s.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        s
    }

    pub async fn send_raw(&mut self, line: &[u8]) {
        self.stdin.write_all(line).await.expect("write");
        self.stdin.write_all(b"\n").await.expect("write");
        self.stdin.flush().await.expect("flush");
    }

    pub async fn send(&mut self, v: Value) {
        self.send_raw(v.to_string().as_bytes()).await;
    }

    pub async fn call(&mut self, id: u64, tool: &str, args: Value) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": args}}))
            .await;
    }

    /// The next message, within 30 s.
    pub async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .expect("an answer within 30 s")
            .expect("read")
            .expect("a line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// The answer to request `id` (skipping notifications).
    pub async fn answer(&mut self, id: u64) -> Value {
        loop {
            let v = self.next().await;
            if v["id"] == json!(id) {
                return v;
            }
        }
    }
}

pub fn code_of(answer: &Value) -> String {
    answer["result"]["structuredContent"]["error"]["code"]
        .as_str()
        .unwrap_or(if answer["result"]["isError"] == json!(false) {
            "ok"
        } else {
            "?"
        })
        .to_string()
}

/// The `call` entries of an audit log: (tool, outcome).
pub fn call_outcomes(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "call")
        .map(|e| {
            (
                e["tool"].as_str().unwrap_or("").to_string(),
                e["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Waits up to 10 s for `n` call entries.
pub async fn wait_for_calls(path: &Path, n: usize) -> Vec<(String, String)> {
    for _ in 0..100 {
        let c = call_outcomes(path);
        if c.len() >= n {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    call_outcomes(path)
}

pub fn verify(path: &Path) {
    let out = std::process::Command::new(BIN)
        .args(["audit", "verify"])
        .arg(path)
        .output()
        .expect("verify runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits up to 10 s until no statement of dbward's is active on the database.
pub async fn wait_no_statements(db: &PgDb) -> i64 {
    let mut n = 0;
    for _ in 0..100 {
        n = db.dbward_statements().await;
        if n == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    n
}

pub const TOKEN: &str = "ci-token-0123456789abcdef";

/// Stderr lines of a running child, collected as they come.
pub type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Starts `dbward serve --transport http` on 127.0.0.1:0 and returns it and its address.
pub async fn start_http(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let (child, addr, _) = start_http_logged(dir, args, env).await;
    (child, addr)
}

/// [`start_http`], and the child's stderr from then on.
pub async fn start_http_logged(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, String, Log) {
    start_http_with(dbward(dir), dir, args, env).await
}

/// [`start_http_logged`] with the command given (e.g. under `prlimit`).
pub async fn start_http_with(
    mut cmd: Command,
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, String, Log) {
    cmd.args(["serve", "--transport", "http", "--listen", "127.0.0.1:0"])
        .arg("--audit-log")
        .arg(dir.join("audit.jsonl"))
        .args(args)
        .env("DBWARD_HTTP_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawns dbward serve --transport http");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{line}");
            if let Some(a) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("addr="))
                .filter(|_| line.contains("serving MCP over HTTP"))
            {
                return a.to_string();
            }
        }
        panic!("dbward exited before serving");
    })
    .await
    .expect("starts within 30 s");
    let log = Log::default();
    let sink = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
    (child, addr, log)
}

/// A tools/call as one raw HTTP/1.1 request (MCP 2026-07-28, no session).
pub fn tool_request(token: &str, id: u64, tool: &str, args: Value) -> Vec<u8> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": tool, "arguments": args, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: {tool}\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends a raw request and returns the open socket.
pub async fn send_request(addr: &str, request: &[u8]) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    s
}

/// Reads a `Connection: close` response: (status, body).
pub async fn read_response(mut s: tokio::net::TcpStream) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .expect("an answer within 30 s")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Sends a raw request from a given local address; returns (status, headers+body).
pub async fn request_from(local: &str, addr: &str, request: &[u8]) -> (u16, String) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{local}:0").parse().expect("addr"))
        .expect("bind");
    let mut s = socket
        .connect(addr.parse().expect("addr"))
        .await
        .expect("connect");
    s.write_all(request).await.expect("write");
    let (status, _) = read_response(s).await;
    (status, String::new())
}

/// `dbward` run by `prlimit` with the descriptor limit at `soft` and `hard`.
pub fn dbward_with_nofile(dir: &Path, soft: u64, hard: u64) -> Command {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={soft}:{hard}"))
        .arg("--")
        .arg(BIN)
        .env_remove("DBWARD_DATABASE_URL")
        .env_remove("DBWARD_CONFIG")
        .env("DBWARD_DATA_DIR", dir)
        .env("DBWARD_LOG", "info")
        .kill_on_drop(true);
    cmd
}

/// Whether the server closed `s` (EOF or reset) within `within`.
pub async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// A TCP proxy in front of a real server (`upstream`), to take the server away mid-run.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(upstream: &'static str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = links.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                kept.lock().unwrap_or_else(|p| p.into_inner()).push(link);
            }
        });
        Proxy {
            addr,
            accepting,
            links,
        }
    }

    /// The server goes away: nothing listens there any more, every session is cut.
    pub async fn cut(self) {
        self.accepting.abort();
        let _ = self.accepting.await;
        for l in self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            l.abort();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// After an outage: calls `SELECT 2` (ids from `first_id`, three tries) until an answer
/// says the connection was refused; the last answer's text.
pub async fn outage_answer(s: &mut Stdio_, first_id: u64) -> String {
    let mut text = String::new();
    for id in first_id..first_id + 3 {
        s.call(id, "execute_query", json!({"query": "SELECT 2"}))
            .await;
        let a = s.answer(id).await;
        text = a["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if text.contains("connection refused") {
            break;
        }
    }
    text
}
