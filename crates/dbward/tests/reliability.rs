//! Reliability of the real binary under faults, floods and shutdowns (issue 13): every call
//! is audited whatever its ending, abandoned statements are cancelled on the database, a
//! full audit disk recovers, SIGTERM drains, and bad input is answered.
//!
//! Real parts only: PostgreSQL on 127.0.0.1:5432 (locks held from a second session), the
//! binary over raw stdio pipes and raw TCP sockets, real signals. A missing database fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use common::BIN;

const PG_ADMIN: &str = "postgresql://postgres@127.0.0.1:5432/postgres";
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh database with one table `t`, dropped by `drop`.
struct PgDb {
    name: String,
}

impl PgDb {
    async fn new() -> PgDb {
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

    fn url(&self) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:5432/{}?sslmode=disable",
            self.name
        )
    }

    async fn connect_to(name: &str) -> PgConnection {
        PgConnection::connect(&format!("postgresql://postgres@127.0.0.1:5432/{name}"))
            .await
            .expect("connect")
    }

    /// A second session holding `ACCESS EXCLUSIVE` on `t` until dropped.
    async fn lock_t(&self) -> PgConnection {
        let mut c = PgDb::connect_to(&self.name).await;
        c.execute("BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
            .await
            .expect("lock");
        c
    }

    /// dbward's statements on this database that are waiting or running now.
    async fn dbward_statements(&self) -> i64 {
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

    async fn drop(self) {
        let mut a = admin().await;
        let _ = a
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .await;
    }
}

async fn admin() -> PgConnection {
    PgConnection::connect(PG_ADMIN).await.unwrap_or_else(|e| {
        panic!("PostgreSQL must be running on 127.0.0.1:5432 (run scripts/start-services.sh): {e}")
    })
}

/// A command for the binary with a clean environment for the variables it reads.
fn dbward(data_dir: &Path) -> Command {
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
fn long_locks(dir: &Path) -> PathBuf {
    let path = dir.join("dbward.toml");
    std::fs::write(&path, "[limits]\nlock_timeout_ms = 20000\n").expect("config");
    path
}

/// `dbward serve` over raw stdio pipes: JSON-RPC lines in, lines out.
struct Stdio_ {
    child: Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl Stdio_ {
    async fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Stdio_ {
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

    async fn send_raw(&mut self, line: &[u8]) {
        self.stdin.write_all(line).await.expect("write");
        self.stdin.write_all(b"\n").await.expect("write");
        self.stdin.flush().await.expect("flush");
    }

    async fn send(&mut self, v: Value) {
        self.send_raw(v.to_string().as_bytes()).await;
    }

    async fn call(&mut self, id: u64, tool: &str, args: Value) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": args}}))
            .await;
    }

    /// The next message, within 30 s.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .expect("an answer within 30 s")
            .expect("read")
            .expect("a line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// The answer to request `id` (skipping notifications).
    async fn answer(&mut self, id: u64) -> Value {
        loop {
            let v = self.next().await;
            if v["id"] == json!(id) {
                return v;
            }
        }
    }
}

fn code_of(answer: &Value) -> String {
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
fn call_outcomes(path: &Path) -> Vec<(String, String)> {
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
async fn wait_for_calls(path: &Path, n: usize) -> Vec<(String, String)> {
    for _ in 0..100 {
        let c = call_outcomes(path);
        if c.len() >= n {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    call_outcomes(path)
}

fn verify(path: &Path) {
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
async fn wait_no_statements(db: &PgDb) -> i64 {
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

#[tokio::test]
async fn every_ending_over_stdio_is_audited_and_cancelled_on_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = PgDb::new().await;
    let config = long_locks(dir.path());
    let mut s = Stdio_::start(
        dir.path(),
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--call-timeout-secs",
            "1",
        ],
        &[("DBWARD_DATABASE_URL", &db.url())],
    )
    .await;
    let q = |sql: &str| json!({"query": sql});
    // ok, refused, error.
    s.call(1, "execute_query", q("SELECT count(*) FROM t"))
        .await;
    assert_eq!(code_of(&s.answer(1).await), "ok");
    s.call(2, "execute_query", q("DELETE FROM t")).await;
    assert_eq!(code_of(&s.answer(2).await), "policy_refused");
    s.call(3, "execute_query", q("SELECT nope FROM t")).await;
    let a = s.answer(3).await;
    assert_ne!(code_of(&a), "ok", "{a}");

    let lock = db.lock_t().await;
    // timeout: the statement waits on the lock past --call-timeout-secs.
    s.call(4, "execute_query", q("SELECT * FROM t")).await;
    assert_eq!(code_of(&s.answer(4).await), "timeout");
    // cancelled: notifications/cancelled while the statement waits.
    s.call(5, "execute_query", q("SELECT v FROM t")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 5, "reason": "user pressed stop"}}),
    )
    .await;
    let audit = dir.path().join("audit.jsonl");
    let calls = wait_for_calls(&audit, 5).await;
    // The abandoned statements no longer wait on the database.
    assert_eq!(wait_no_statements(&db).await, 0, "statements left waiting");
    drop(lock);
    let outcomes: Vec<&str> = calls.iter().map(|(_, o)| o.as_str()).collect();
    assert_eq!(
        outcomes.len(),
        5,
        "{}",
        std::fs::read_to_string(&audit).unwrap_or_default()
    );
    assert_eq!(
        outcomes,
        ["ok", "policy_refused", outcomes[2], "timeout", "cancelled"],
        "{calls:?}"
    );
    assert_ne!(outcomes[2], "ok");
    s.child.kill().await.ok();
    verify(&audit);
    db.drop().await;
}

#[tokio::test]
async fn catalog_reads_on_a_locked_table_are_cancelled_and_do_not_exhaust_the_pool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = PgDb::new().await;
    let config = long_locks(dir.path());
    let mut s = Stdio_::start(
        dir.path(),
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--call-timeout-secs",
            "1",
        ],
        &[("DBWARD_DATABASE_URL", &db.url())],
    )
    .await;
    let lock = db.lock_t().await;
    // More calls than the pool has connections (5 by default), each abandoned at the
    // call timeout while its catalog read waits on the lock.
    let tools = [
        ("describe_table", json!({"table": "t"})),
        ("get_table_stats", json!({"table": "t"})),
        ("read_table", json!({"table": "t"})),
    ];
    let mut id = 10;
    for round in 0..3 {
        for (tool, args) in &tools {
            id += 1;
            s.call(id, tool, args.clone()).await;
            let a = s.answer(id).await;
            assert_eq!(code_of(&a), "timeout", "{tool} round {round}: {a}");
        }
    }
    // Nothing of dbward's is left waiting on the database...
    assert_eq!(wait_no_statements(&db).await, 0, "statements left waiting");
    // ...and other tables are still served while the lock is held.
    id += 1;
    s.call(
        id,
        "execute_query",
        json!({"query": "SELECT count(*) FROM other"}),
    )
    .await;
    let a = s.answer(id).await;
    assert_eq!(code_of(&a), "ok", "{a}");
    id += 1;
    s.call(id, "describe_table", json!({"table": "other"}))
        .await;
    let a = s.answer(id).await;
    assert_eq!(code_of(&a), "ok", "{a}");
    drop(lock);
    let audit = dir.path().join("audit.jsonl");
    let calls = wait_for_calls(&audit, 11).await;
    assert_eq!(
        calls.iter().filter(|(_, o)| o == "timeout").count(),
        9,
        "{calls:?}"
    );
    s.child.kill().await.ok();
    db.drop().await;
}

#[tokio::test]
async fn catalog_reads_on_a_locked_table_fail_at_the_lock_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = PgDb::new().await;
    // Default limits: lock_timeout 1 s, well inside the 60 s call timeout.
    let mut s = Stdio_::start(dir.path(), &[], &[("DBWARD_DATABASE_URL", &db.url())]).await;
    let lock = db.lock_t().await;
    let started = std::time::Instant::now();
    s.call(1, "get_table_stats", json!({"table": "t"})).await;
    let a = s.answer(1).await;
    assert_ne!(code_of(&a), "ok", "{a}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the lock timeout: {:?}",
        started.elapsed()
    );
    drop(lock);
    s.child.kill().await.ok();
    db.drop().await;
}

#[tokio::test]
async fn a_second_process_on_the_same_audit_log_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Stdio_::start(dir.path(), &[], &[]).await;
    let pid = first.child.id().expect("pid");
    let out = dbward(dir.path())
        .arg("serve")
        .arg("--audit-log")
        .arg(dir.path().join("audit.jsonl"))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("in use by another dbward process") && stderr.contains(&pid.to_string()),
        "names the other process: {stderr}"
    );
    // Once the first is gone (even by SIGKILL), the log can be opened again.
    let mut first = first;
    first.child.kill().await.ok();
    let _ = first.child.wait().await;
    let again = Stdio_::start(dir.path(), &[], &[]).await;
    drop(again);
    verify(&dir.path().join("audit.jsonl"));
}

const TOKEN: &str = "ci-token-0123456789abcdef";

/// Stderr lines of a running child, collected as they come.
type Log = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Starts `dbward serve --transport http` on 127.0.0.1:0 and returns it and its address.
async fn start_http(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let (child, addr, _) = start_http_logged(dir, args, env).await;
    (child, addr)
}

/// [`start_http`], and the child's stderr from then on.
async fn start_http_logged(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, String, Log) {
    start_http_with(dbward(dir), dir, args, env).await
}

/// [`start_http_logged`] with the command given (e.g. under `prlimit`).
async fn start_http_with(
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
fn tool_request(token: &str, id: u64, tool: &str, args: Value) -> Vec<u8> {
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
async fn send_request(addr: &str, request: &[u8]) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    s
}

/// Reads a `Connection: close` response: (status, body).
async fn read_response(mut s: tokio::net::TcpStream) -> (u16, String) {
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

#[tokio::test]
async fn http_client_gone_is_audited_and_its_statement_cancelled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = PgDb::new().await;
    let config = long_locks(dir.path());
    let (mut child, addr) = start_http(
        dir.path(),
        &["--config", config.to_str().expect("utf-8")],
        &[("DBWARD_DATABASE_URL", &db.url())],
    )
    .await;
    let lock = db.lock_t().await;
    let s = send_request(
        &addr,
        &tool_request(
            TOKEN,
            1,
            "execute_query",
            json!({"query": "SELECT * FROM t"}),
        ),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(db.dbward_statements().await, 1, "the statement waits");
    drop(s);
    let audit = dir.path().join("audit.jsonl");
    let calls = wait_for_calls(&audit, 1).await;
    assert_eq!(
        calls,
        [("execute_query".to_string(), "client_gone".to_string())]
    );
    assert_eq!(
        wait_no_statements(&db).await,
        0,
        "cancelled on the database"
    );
    drop(lock);
    child.kill().await.ok();
    db.drop().await;
}

#[tokio::test]
async fn sigterm_drains_running_calls_then_cancels_the_rest_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = PgDb::new().await;
    let config = long_locks(dir.path());
    let (mut child, addr) = start_http(
        dir.path(),
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--drain-secs",
            "2",
        ],
        &[("DBWARD_DATABASE_URL", &db.url())],
    )
    .await;
    let lock_t = db.lock_t().await;
    let mut lock_other = PgDb::connect_to(&db.name).await;
    lock_other
        .execute("BEGIN; LOCK TABLE other IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock other");
    let finishes = send_request(
        &addr,
        &tool_request(
            TOKEN,
            1,
            "execute_query",
            json!({"query": "SELECT count(*) FROM t"}),
        ),
    )
    .await;
    let outlives = send_request(
        &addr,
        &tool_request(
            TOKEN,
            2,
            "execute_query",
            json!({"query": "SELECT count(*) FROM other"}),
        ),
    )
    .await;
    // A half-sent request must not hold the process.
    let mut half = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    half.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = child.id().expect("pid");
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    // The first call's lock goes away during the drain: it finishes and is answered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(lock_t);
    let (status, body) = read_response(finishes).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"isError\":false"), "{body}");
    // The second outlives the 2 s drain: cancelled, answered `shutdown`.
    let (status, body) = read_response(outlives).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"code\":\"shutdown\""), "{body}");
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits despite the half-sent request")
        .expect("wait");
    assert_eq!(exit.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        wait_no_statements(&db).await,
        0,
        "cancelled on the database"
    );
    drop(lock_other);
    let audit = dir.path().join("audit.jsonl");
    let mut calls = call_outcomes(&audit);
    calls.sort();
    assert_eq!(
        calls,
        [
            ("execute_query".to_string(), "ok".to_string()),
            ("execute_query".to_string(), "shutdown".to_string())
        ]
    );
    verify(&audit);
    drop(half);
    db.drop().await;
}

/// Sends a raw request from a given local address; returns (status, headers+body).
async fn request_from(local: &str, addr: &str, request: &[u8]) -> (u16, String) {
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

#[tokio::test]
async fn an_auth_flood_is_throttled_with_bounded_audit_and_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, addr, log) = start_http_logged(dir.path(), &[], &[]).await;
    let url = format!("http://{addr}/mcp");
    let http = reqwest::Client::new();
    let wrong = "Bearer wrong-token-0123456789abcdef";
    let (mut unauthorized, mut throttled, mut retry_after) = (0, 0, None);
    for _ in 0..3000 {
        let r = http
            .post(&url)
            .header("authorization", wrong)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("request");
        match r.status().as_u16() {
            401 => unauthorized += 1,
            429 => {
                throttled += 1;
                retry_after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((unauthorized, throttled), (10, 2990));
    assert!(
        retry_after.is_some_and(|s| (1..=60).contains(&s)),
        "{retry_after:?}"
    );
    // The right token is still served, from the flooding address and from another.
    let ok = tool_request(TOKEN, 1, "execute_query", json!({"query": "SELECT 1"}));
    assert_eq!(request_from("127.0.0.1", &addr, &ok).await.0, 200);
    assert_eq!(request_from("127.0.0.2", &addr, &ok).await.0, 200);
    // Another address has its own window.
    let bad = tool_request(
        "wrong-token-0123456789abcdef",
        2,
        "execute_query",
        json!({}),
    );
    assert_eq!(request_from("127.0.0.2", &addr, &bad).await.0, 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audit_path = dir.path().join("audit.jsonl");
    let audit = std::fs::read_to_string(&audit_path).expect("audit");
    let events: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "event")
        .collect();
    assert_eq!(events.len(), 1, "one event for the flood: {events:?}");
    assert!(
        events[0]["event"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("10 failed authentications")),
        "{events:?}"
    );
    assert!(
        audit.len() < 8_000,
        "bounded audit growth: {} bytes",
        audit.len()
    );
    child.kill().await.ok();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = log.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
    let refused_lines = log.lines().filter(|l| l.contains("bearer token")).count();
    assert!(
        refused_lines <= 3,
        "rate-limited log lines: {refused_lines}\n{log}"
    );
    assert!(!log.contains("wrong-token"), "no token in the log");
    assert!(!audit.contains("wrong-token") && !audit.contains(TOKEN));
}

/// `dbward` run by `prlimit` with the descriptor limit at `nofile` (soft and hard).
fn dbward_with_nofile(dir: &Path, nofile: u64) -> Command {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={nofile}:{nofile}"))
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
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
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

#[tokio::test]
async fn slow_and_silent_http_clients_are_cut_off_and_others_still_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 256 descriptors: the server caps connections at 128, unauthenticated ones at 64.
    let (mut child, addr, log) = start_http_with(
        dbward_with_nofile(dir.path(), 256),
        dir.path(),
        &["--header-timeout-secs", "2", "--body-timeout-secs", "2"],
        &[],
    )
    .await;
    // 300 silent sockets, more than the descriptor limit.
    let mut silent = Vec::new();
    for _ in 0..300 {
        if let Ok(s) = tokio::net::TcpStream::connect(&addr).await {
            silent.push(s);
        }
    }
    // A legitimate client is still served.
    let ok = tool_request(TOKEN, 1, "execute_query", json!({"query": "SELECT 1"}));
    let s = send_request(&addr, &ok).await;
    let (status, body) = read_response(s).await;
    assert_eq!(status, 200, "served despite 300 silent sockets: {body}");
    // Headers sent one byte a second: cut off at the header timeout.
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let started = std::time::Instant::now();
    let head = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    let mut cut = false;
    for b in head {
        if slow.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        if closed_within(&mut slow, Duration::from_secs(1)).await {
            cut = true;
            break;
        }
    }
    assert!(cut, "a slow-loris client is cut off");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // A body sent one byte a second with a valid token: 408 at the body timeout.
    let mut slow_body = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    slow_body
        .write_all(
            format!(
                "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await
        .expect("write");
    let writer = tokio::spawn(async move {
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if slow_body.write_all(b" ").await.is_err() {
                break;
            }
        }
        slow_body
    });
    let slow_body = writer.await.expect("writer");
    let (status, _) = read_response(slow_body).await;
    assert_eq!(status, 408, "slow body");
    // The silent sockets were closed by the server (the header timeout is also the idle
    // timeout).
    let mut closed = 0;
    for s in silent.iter_mut() {
        if closed_within(s, Duration::from_millis(50)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, silent.len(), "every silent socket closed");
    // And the server still serves.
    let s = send_request(&addr, &ok).await;
    assert_eq!(read_response(s).await.0, 200);
    child.kill().await.ok();
    let log = log.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
    assert!(
        log.contains("connection cap reached") && log.contains("max=128"),
        "{log}"
    );
}

#[tokio::test]
async fn malformed_input_is_answered_on_stdio_and_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Stdio_::start(dir.path(), &[], &[]).await;
    s.send_raw(b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\xff\"}")
        .await;
    let a = s.next().await;
    assert_eq!(
        (a["id"].clone(), a["error"]["code"].clone()),
        (json!(7), json!(-32700)),
        "{a}"
    );
    s.send_raw(b"\xfe\xff not even close").await;
    let a = s.next().await;
    assert_eq!(
        (a["id"].clone(), a["error"]["code"].clone()),
        (Value::Null, json!(-32700)),
        "{a}"
    );
    s.send_raw(b"{not json").await;
    let a = s.next().await;
    assert_eq!(a["error"]["code"], json!(-32700), "{a}");
    s.send(json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": "x"}))
        .await;
    let a = s.next().await;
    assert_eq!(
        (a["id"].clone(), a["error"]["code"].clone()),
        (json!(8), json!(-32602)),
        "{a}"
    );
    // The session goes on.
    s.call(9, "execute_query", json!({"query": "SELECT 1"}))
        .await;
    assert_eq!(code_of(&s.answer(9).await), "ok");
    s.child.kill().await.ok();

    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, addr) = start_http(dir.path(), &[], &[]).await;
    let raw = |body: &[u8]| {
        let mut r = format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    };
    let (status, body) = read_response(send_request(&addr, &raw(b"{not json")).await).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("-32700"), "{body}");
    let (status, body) = read_response(
        send_request(
            &addr,
            &raw(br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":5}}"#),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("-32602") && body.contains("\"id\":4"),
        "{body}"
    );
    child.kill().await.ok();
}

#[tokio::test]
async fn start_up_errors_name_the_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port that accepts and never answers, and an HTTP server.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let http = common::model_api(axum::Router::new()).await;
    let http_addr = http
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_string();
    let secret = "Zq9-Unmistakable-Secret-7Kp";
    let cases = [
        (
            format!("postgresql://u:{secret}@127.0.0.1:1/db"),
            "connection refused at 127.0.0.1:1",
        ),
        (
            format!("mysql://u:{secret}@127.0.0.1:1/db"),
            "connection refused at 127.0.0.1:1",
        ),
        (
            format!("postgresql://u:{secret}@no-such-host.invalid:5432/db"),
            "DNS failure",
        ),
        (
            format!("postgresql://u:{secret}@{silent_addr}/db"),
            "did not answer",
        ),
        (
            format!("postgresql://u:{secret}@{http_addr}/db"),
            "is not a PostgreSQL server",
        ),
        // A MySQL server speaks first; an HTTP server waits: it "did not answer".
        (
            format!("mysql://u:{secret}@{http_addr}/db"),
            "did not answer",
        ),
    ];
    for (url, expected) in cases {
        let started = std::time::Instant::now();
        let out = dbward(dir.path())
            .arg("serve")
            .arg("--audit-log")
            .arg(dir.path().join("audit.jsonl"))
            .env("DBWARD_DATABASE_URL", &url)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url}: {stderr}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(!stderr.contains(secret), "{stderr}");
        assert!(
            !stderr.contains("no pooled connection"),
            "{expected}: {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "{expected}: {:?}",
            started.elapsed()
        );
    }
    drop(silent);
}

#[tokio::test]
async fn an_outage_at_run_time_names_the_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = PgDb::new().await;
    // A TCP proxy in front of PostgreSQL, to take the server away mid-run.
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_addr = proxy.local_addr().expect("addr");
    let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = links.clone();
    let accepting = tokio::spawn(async move {
        while let Ok((mut client, _)) = proxy.accept().await {
            let link = tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:5432").await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
            kept.lock().unwrap_or_else(|p| p.into_inner()).push(link);
        }
    });
    let url = format!(
        "postgresql://postgres@{proxy_addr}/{}?sslmode=disable",
        db.name
    );
    let mut s = Stdio_::start(dir.path(), &[], &[("DBWARD_DATABASE_URL", &url)]).await;
    s.call(1, "execute_query", json!({"query": "SELECT 1"}))
        .await;
    assert_eq!(code_of(&s.answer(1).await), "ok");
    // The server goes away: nothing listens there any more, every session is cut.
    accepting.abort();
    let _ = accepting.await;
    for l in links.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        l.abort();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut text = String::new();
    for id in 2..5 {
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
    assert!(
        text.contains(&format!("connection refused at {proxy_addr}")),
        "names the cause: {text}"
    );
    s.child.kill().await.ok();
    db.drop().await;
}
