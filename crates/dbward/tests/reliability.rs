//! Reliability of the real binary under faults, floods and shutdowns (issue 13): every call
//! is audited whatever its ending, abandoned statements are cancelled on the database, a
//! full audit disk recovers, SIGTERM drains, and bad input is answered.
//!
//! Real parts only: PostgreSQL on 127.0.0.1:5432 (locks held from a second session), the
//! binary over raw stdio pipes and raw TCP sockets, real signals. A missing database fails.

mod common;
mod reliability_support;

use std::process::Stdio;
use std::time::Duration;

use reliability_support::*;
use serde_json::{Value, json};

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
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let proxy_addr = proxy.addr;
    let url = format!(
        "postgresql://postgres@{proxy_addr}/{}?sslmode=disable",
        db.name
    );
    let mut s = Stdio_::start(dir.path(), &[], &[("DBWARD_DATABASE_URL", &url)]).await;
    s.call(1, "execute_query", json!({"query": "SELECT 1"}))
        .await;
    assert_eq!(code_of(&s.answer(1).await), "ok");
    proxy.cut().await;
    let text = outage_answer(&mut s, 2).await;
    assert!(
        text.contains(&format!("connection refused at {proxy_addr}")),
        "names the cause: {text}"
    );
    s.child.kill().await.ok();
    db.drop().await;
}

/// SIGTERM to `dbward serve` over stdio while two calls run: the one whose lock goes away
/// during the drain is answered `ok`, the one that outlives the drain deadline is
/// cancelled on the database and answered `shutdown`; both are audited and the process
/// exits 0 within the deadline.
#[tokio::test]
async fn sigterm_over_stdio_drains_answers_and_audits_running_calls() {
    use sqlx::Executor;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = PgDb::new().await;
    let config = long_locks(dir.path());
    let mut s = Stdio_::start(
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
    s.call(
        1,
        "execute_query",
        json!({"query": "SELECT count(*) FROM t"}),
    )
    .await;
    s.call(
        2,
        "execute_query",
        json!({"query": "SELECT count(*) FROM other"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = s.child.id().expect("pid");
    let started = std::time::Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(lock_t);
    let first = s.answer(1).await;
    assert_eq!(code_of(&first), "ok", "{first}");
    let second = s.answer(2).await;
    assert_eq!(code_of(&second), "shutdown", "{second}");
    let exit = tokio::time::timeout(Duration::from_secs(10), s.child.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert_eq!(exit.code(), Some(0));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "drain deadline 2 s: {took:?}"
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
    db.drop().await;
}

/// A MariaDB outage at run time names its cause, as a PostgreSQL one does: a TCP proxy in
/// front of the real server is taken away after the first call.
#[tokio::test]
async fn a_mariadb_outage_at_run_time_names_the_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The server must be there (a missing database fails the test).
    tokio::net::TcpStream::connect("127.0.0.1:3306")
        .await
        .expect("MariaDB must be running on 127.0.0.1:3306 (run scripts/start-services.sh)");
    let proxy = Proxy::start("127.0.0.1:3306").await;
    let proxy_addr = proxy.addr;
    let url = format!("mysql://root@{proxy_addr}/test?sslmode=disable");
    let mut s = Stdio_::start(dir.path(), &[], &[("DBWARD_DATABASE_URL", &url)]).await;
    s.call(1, "execute_query", json!({"query": "SELECT 1"}))
        .await;
    let first = s.answer(1).await;
    assert_eq!(code_of(&first), "ok", "{first}");
    proxy.cut().await;
    let text = outage_answer(&mut s, 2).await;
    assert!(
        text.contains(&format!("connection refused at {proxy_addr}")),
        "names the cause: {text}"
    );
    s.child.kill().await.ok();
}
