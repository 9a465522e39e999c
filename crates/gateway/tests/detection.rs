//! Detection and response: a probing principal is rate-limited then blocked, a second,
//! well-behaved principal on the same gateway is unaffected, events carry their levels in
//! the audit log, and the webhook receives them as JSON.

mod common;

use std::path::PathBuf;

use common::client_config_detecting as client_config;
use dbward_gateway::audit::{AuditConfig, AuditLog, Entry};
use dbward_gateway::calls::{CallContext, with_context};
use dbward_gateway::{ConnectRequest, Gateway};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn as_principal(name: &str) -> CallContext {
    CallContext::new(name, None)
}

/// A one-request-per-connection HTTP listener that collects request bodies.
async fn webhook_listener() -> (String, tokio::sync::mpsc::Receiver<serde_json::Value>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf);
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let len = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= head_end + 4 + len {
                            let body = &buf[head_end + 4..head_end + 4 + len];
                            if let Ok(v) = serde_json::from_slice(body) {
                                let _ = tx.send(v).await;
                            }
                            let _ = sock
                                .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                                .await;
                            break;
                        }
                    }
                }
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn probing_is_rate_limited_then_blocked_and_others_are_unaffected() {
    let dir = std::env::temp_dir().join(common::unique("dbward_detect"));
    std::fs::create_dir_all(&dir).expect("dir");
    let db: PathBuf = dir.join("cmdb.db");
    rusqlite::Connection::open(&db)
        .expect("create")
        .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO t (name) VALUES ('a'), ('b');")
        .expect("fixture");
    let (url, mut hooks) = webhook_listener().await;
    let mut cfg = client_config();
    cfg.detector.webhook_url = Some(url);
    let log_path = dir.join("audit.jsonl");
    let gw = Gateway::new(cfg)
        .with_audit(AuditLog::open(AuditConfig::new(log_path.clone())).expect("audit"));
    let target = SecretString::from(format!("sqlite://{}", db.display()));
    let id = gw
        .connect(ConnectRequest::Url(target))
        .await
        .expect("connect")
        .id
        .to_string();

    // Mallory probes with refused queries.
    let codes: Vec<String> = with_context(as_principal("mallory"), async {
        let mut codes = Vec::new();
        for i in 0..12 {
            let sql = format!("DELETE FROM t WHERE id = {i}");
            match gw.execute_query(&id, &sql, &[], None).await {
                Ok(_) => codes.push("ok".to_string()),
                Err(e) => codes.push(e.code().to_string()),
            }
        }
        codes
    })
    .await;
    assert_eq!(&codes[..5], ["policy_refused"; 5], "{codes:?}");
    assert!(
        codes.contains(&"blocked".to_string()),
        "mallory ends up blocked: {codes:?}"
    );
    let blocked = with_context(
        as_principal("mallory"),
        gw.execute_query(&id, "SELECT 1", &[], None),
    )
    .await
    .expect_err("blocked even for a harmless query");
    assert_eq!(blocked.code(), "blocked");
    assert!(
        blocked.to_string().contains("blocked until 20"),
        "says until when: {blocked}"
    );

    // Alice, on the same gateway and connection, is unaffected.
    let r = with_context(
        as_principal("alice"),
        gw.execute_query(&id, "SELECT count(*) FROM t", &[], None),
    )
    .await
    .expect("alice is unaffected");
    assert_eq!(r.rows[0][0], serde_json::json!(2));

    // Injection-shaped input is a high event at once.
    let e = with_context(
        as_principal("eve"),
        gw.execute_query(&id, "SELECT * FROM t WHERE name = '' OR '1'='1'", &[], None),
    )
    .await;
    assert!(e.is_ok(), "the query itself is a read and runs: {e:?}");
    let next = with_context(
        as_principal("eve"),
        gw.execute_query(&id, "SELECT 1", &[], None),
    )
    .await;
    assert_eq!(next.expect_err("eve is blocked").code(), "blocked");

    // The webhook received the high events as JSON.
    let mut got = Vec::new();
    while got.len() < 2 {
        match tokio::time::timeout(std::time::Duration::from_secs(5), hooks.recv()).await {
            Ok(Some(v)) => got.push(v),
            _ => break,
        }
    }
    assert!(
        got.iter()
            .any(|v| v["principal"] == "mallory" && v["level"] == "high"),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|v| v["principal"] == "eve" && v["detector"] == "injection"),
        "{got:?}"
    );

    // The audit log holds the events with their levels, and the blocked attempts.
    drop(gw);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let entries: Vec<Entry> = std::fs::read_to_string(&log_path)
        .expect("log")
        .lines()
        .map(|l| {
            serde_json::from_str(&format!(
                "{}}}",
                &l[..l.rfind(",\"hash\":\"").expect("sealed")]
            ))
            .expect("entry")
        })
        .collect();
    let levels: Vec<(String, String)> = entries
        .iter()
        .filter_map(|e| {
            e.event
                .as_ref()
                .map(|ev| (e.client.clone().unwrap_or_default(), ev.level.clone()))
        })
        .collect();
    assert!(
        levels.contains(&("mallory".into(), "medium".into())),
        "{levels:?}"
    );
    assert!(
        levels.contains(&("mallory".into(), "high".into())),
        "{levels:?}"
    );
    assert!(
        levels.contains(&("eve".into(), "high".into())),
        "{levels:?}"
    );
    assert!(!levels.iter().any(|(p, _)| p == "alice"));
    assert!(
        entries
            .iter()
            .any(|e| e.outcome.as_deref() == Some("blocked")),
        "blocked attempts are audited"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 13: a principal that floods slow queries it lets time out, or drops before they
/// answer, is rate-limited then blocked like one that floods refusals; each abandoned call
/// is audited, and another principal is unaffected.
#[tokio::test]
async fn floods_of_timed_out_or_abandoned_calls_are_rate_limited_then_blocked() {
    let dir = std::env::temp_dir().join(common::unique("dbward_detect"));
    std::fs::create_dir_all(&dir).expect("dir");
    let db: PathBuf = dir.join("cmdb.db");
    rusqlite::Connection::open(&db)
        .expect("create")
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY);
             WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 200)
               INSERT INTO t SELECT n FROM g;",
        )
        .expect("fixture");
    let mut cfg = client_config();
    cfg.limits.statement_timeout_ms = 100;
    let log_path = dir.join("audit.jsonl");
    let gw = Gateway::new(cfg)
        .with_audit(AuditLog::open(AuditConfig::new(log_path.clone())).expect("audit"));
    let target = SecretString::from(format!("sqlite://{}", db.display()));
    let id = gw
        .connect(ConnectRequest::Url(target))
        .await
        .expect("connect")
        .id
        .to_string();
    // 1.6e9 rows: far longer than any timeout here.
    let slow = "SELECT count(*) FROM t a, t b, t c, t d";

    // Timed out on the database (answered `timeout`).
    let codes: Vec<String> = with_context(as_principal("slowpoke"), async {
        let mut codes = Vec::new();
        for _ in 0..14 {
            match gw.execute_query(&id, slow, &[], None).await {
                Ok(_) => codes.push("ok".to_string()),
                Err(e) => codes.push(e.code().to_string()),
            }
        }
        codes
    })
    .await;
    assert_eq!(&codes[..5], ["timeout"; 5], "{codes:?}");
    // A medium event at 5 (rate limit: a few calls a minute still pass), high at 10.
    assert_eq!(
        codes.last().map(String::as_str),
        Some("blocked"),
        "blocked in the end: {codes:?}"
    );

    // Dropped by the client before they answer (as a client that goes away does).
    let codes: Vec<String> = with_context(as_principal("dropper"), async {
        let mut codes = Vec::new();
        for _ in 0..14 {
            let call = gw.execute_query(&id, slow, &[], None);
            match tokio::time::timeout(std::time::Duration::from_millis(30), call).await {
                Err(_) => codes.push("dropped".to_string()),
                Ok(Ok(_)) => codes.push("ok".to_string()),
                Ok(Err(e)) => codes.push(e.code().to_string()),
            }
        }
        codes
    })
    .await;
    assert_eq!(&codes[..5], ["dropped"; 5], "{codes:?}");
    assert!(
        codes.contains(&"blocked".to_string()),
        "the dropper ends up blocked: {codes:?}"
    );

    // Another principal is unaffected.
    let r = with_context(
        as_principal("alice"),
        gw.execute_query(&id, "SELECT count(*) FROM t", &[], None),
    )
    .await
    .expect("alice is unaffected");
    assert_eq!(r.rows[0][0], serde_json::json!(200));

    drop(gw);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let text = std::fs::read_to_string(&log_path).expect("log");
    let events: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"detector\":\"abandoned_calls\""))
        .collect();
    for level in ["medium", "high"] {
        assert!(
            events
                .iter()
                .any(|l| l.contains("slowpoke") && l.contains(&format!("\"level\":\"{level}\""))),
            "{level}: {events:?}"
        );
    }
    assert!(
        events
            .iter()
            .any(|l| l.contains("dropper") && l.contains("\"level\":\"high\"")),
        "{events:?}"
    );
    let dropped = text
        .lines()
        .filter(|l| l.contains("dropper") && l.contains("\"outcome\":\"client_gone\""))
        .count();
    assert!(dropped >= 5, "each dropped call is audited: {dropped}");
    let _ = std::fs::remove_dir_all(&dir);
}
