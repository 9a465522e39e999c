//! Reliability of the real binary over HTTP (issue 13): a client gone mid-call is audited
//! and its statement cancelled, SIGTERM drains, authentication floods are throttled, slow
//! and silent clients are cut off under a lowered descriptor limit.
//!
//! Real parts only: PostgreSQL on 127.0.0.1:5432, raw TCP sockets, `prlimit`, real signals.

mod common;
mod reliability_support;

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::Executor;
use tokio::io::AsyncWriteExt;

use reliability_support::*;

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
    // Each refused request that was answered 401 (not 429) is audited with its reason:
    // ten from the flooding address, one from the other; the throttled ones are counted in
    // the one flood event.
    let (refusals, events): (Vec<Value>, Vec<Value>) = events
        .into_iter()
        .partition(|e| e["event"]["detector"] == "auth_refused");
    assert_eq!(refusals.len(), 11, "{refusals:?}");
    assert_eq!(events.len(), 1, "one event for the flood: {events:?}");
    assert!(
        events[0]["event"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("10 failed authentications")),
        "{events:?}"
    );
    assert!(
        audit.len() < 16_000,
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

#[tokio::test]
async fn slow_and_silent_http_clients_are_cut_off_and_others_still_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 200 descriptors, 256 at most: the server raises its limit to 256, caps connections
    // at 128 and unauthenticated ones at 64.
    let (mut child, addr, log) = start_http_with(
        dbward_with_nofile(dir.path(), 200, 256),
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
    // Let the server accept (and evict among) the silent sockets still in the kernel's
    // backlog: a connection arriving in the middle of that burst is itself one of the
    // oldest unauthenticated ones until its request is read.
    tokio::time::sleep(Duration::from_secs(1)).await;
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
    // The soft descriptor limit was raised to the hard one at start-up.
    let pid = child.id().expect("pid");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a line");
    assert_eq!(
        open_files.split_whitespace().nth(3),
        Some("256"),
        "{open_files}"
    );
    child.kill().await.ok();
    drop(log);
}
