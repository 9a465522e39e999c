//! `dbward serve` over every kind of stdin/stdout a client may hand it: a pipe (Python's
//! SDK, rmcp's child process), a socket pair (Node.js clients), and plain files (a
//! script). Pipes and sockets are served by the runtime's own thread (no `dbward-stdin`
//! or `dbward-stdout` thread exists); files by the two blocking threads. Each way, every
//! request is answered, a malformed line gets an error, and an over-long line is answered
//! without ending the session.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_dbward");

fn serve(data: &std::path::Path, stdin: Stdio, stdout: Stdio) -> Child {
    Command::new(BIN)
        .arg("serve")
        .env_remove("DBWARD_DATABASE_URL")
        .env_remove("DBWARD_HTTP_TOKEN")
        .env_remove("DBWARD_CONFIG")
        .env("DBWARD_DATA_DIR", data)
        .env("DBWARD_LOG", "warn")
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("dbward serve starts")
}

/// The requests every case sends, one per line: initialize, a query, a line that is not
/// JSON, a line longer than the 16 MiB limit, and a second query.
fn requests() -> Vec<u8> {
    let mut out = Vec::new();
    let mut line = |v: Value| {
        out.extend_from_slice(v.to_string().as_bytes());
        out.push(b'\n');
    };
    line(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "ends-test", "version": "1"}}}),
    );
    line(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    line(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "execute_query",
        "arguments": {"query": "SELECT count(*) AS n FROM incidents"}}}),
    );
    out.extend_from_slice(b"{not json\n");
    out.extend(std::iter::repeat_n(b'x', 16 * 1024 * 1024 + 10));
    out.push(b'\n');
    let mut last = |v: Value| {
        out.extend_from_slice(v.to_string().as_bytes());
        out.push(b'\n');
    };
    last(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "execute_query",
        "arguments": {"query": "SELECT 40 + 2 AS answer"}}}),
    );
    out
}

/// Checks the answers: ids 1, 2 and 3 answered with results, two parse errors.
fn check(answers: &[Value]) {
    let by_id = |id: i64| {
        answers
            .iter()
            .find(|a| a["id"] == json!(id))
            .unwrap_or_else(|| panic!("no answer to id {id}: {answers:?}"))
    };
    assert!(by_id(1)["result"]["serverInfo"].is_object(), "{answers:?}");
    let two = by_id(2);
    assert_eq!(two["result"]["isError"], json!(false), "{two}");
    assert!(
        two["result"]["structuredContent"]["rows"][0][0]
            .as_i64()
            .is_some_and(|n| n > 0),
        "{two}"
    );
    let three = by_id(3);
    assert_eq!(
        three["result"]["structuredContent"]["rows"][0][0],
        json!(42),
        "{three}"
    );
    let parse_errors = answers
        .iter()
        .filter(|a| a["error"]["code"] == json!(-32700))
        .count();
    assert_eq!(parse_errors, 2, "{answers:?}");
}

/// Names of the live threads of `pid`.
fn threads(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect()
}

/// Reads answer lines until ids 1, 2 and 3 are answered (at most a minute).
fn read_answers(out: impl Read) -> Vec<Value> {
    let mut answers = Vec::new();
    let mut lines = BufReader::new(out).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        answers.push(serde_json::from_str::<Value>(&line).expect("each stdout line is JSON"));
        let answered = |id: i64| answers.iter().any(|a| a["id"] == json!(id));
        if answered(1) && answered(2) && answered(3) {
            break;
        }
    }
    answers
}

/// Sends everything on its own thread (the server answers while we write), reads the
/// answers, checks the threads, then closes stdin and sees the server end.
fn exchange(mut child: Child, to: impl Write + Send + 'static, from: impl Read) {
    let pid = child.id();
    let writer = std::thread::spawn(move || {
        let mut to = to;
        to.write_all(&requests()).expect("requests written");
        to
    });
    let answers = read_answers(from);
    let names = threads(pid);
    drop(writer.join().expect("writer"));
    check(&answers);
    assert!(
        !names
            .iter()
            .any(|n| n == "dbward-stdin" || n == "dbward-stdout"),
        "a pipe or socket needs no stdio thread: {names:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "the server outlived its stdin");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_pipe_is_served_on_the_runtime_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = serve(dir.path(), Stdio::piped(), Stdio::piped());
    let to = child.stdin.take().expect("stdin");
    let from = child.stdout.take().expect("stdout");
    exchange(child, to, from);
}

#[test]
fn a_socket_pair_is_served_on_the_runtime_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (to, child_in) = UnixStream::pair().expect("socket pair");
    let (from, child_out) = UnixStream::pair().expect("socket pair");
    let child = serve(
        dir.path(),
        Stdio::from(OwnedFd::from(child_in)),
        Stdio::from(OwnedFd::from(child_out)),
    );
    exchange(child, to, from);
}

#[test]
fn plain_files_are_served_by_the_stdio_threads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    std::fs::write(&input, requests()).expect("input written");
    let child = serve(
        dir.path(),
        Stdio::from(std::fs::File::open(&input).expect("input")),
        Stdio::from(std::fs::File::create(&output).expect("output")),
    );
    let pid = child.id();
    // The threads exist while the server runs (it keeps running until it has answered);
    // each names itself once it runs.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.len() < 2 && Instant::now() < deadline {
        seen.extend(
            threads(pid)
                .into_iter()
                .filter(|n| n == "dbward-stdin" || n == "dbward-stdout"),
        );
    }
    let status = child.wait_with_output().expect("ends").status;
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&output).expect("output read");
    let answers: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each stdout line is JSON"))
        .collect();
    check(&answers);
    assert_eq!(
        seen.len(),
        2,
        "a file is read and written by the stdio threads: {seen:?}"
    );
}
