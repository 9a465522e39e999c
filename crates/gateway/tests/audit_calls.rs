//! Every gateway call leaves one audit entry with its facts; an audit log that cannot be
//! written withholds results (fail closed).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::client_config;
use dbward_gateway::audit::{AuditConfig, AuditLog, Entry, verify_files};
use dbward_gateway::calls::{CallContext, with_context};
use dbward_gateway::{ConnectRequest, Gateway};
use secrecy::SecretString;

fn sqlite_fixture(dir: &Path) -> PathBuf {
    let path = dir.join("cmdb.db");
    let conn = rusqlite::Connection::open(&path).expect("create");
    conn.execute_batch(
        "CREATE TABLE servers (id INTEGER PRIMARY KEY, hostname TEXT);
         WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 50)
         INSERT INTO servers (hostname) SELECT 'srv-' || n FROM g;",
    )
    .expect("fixture");
    path
}

fn entries(path: &Path) -> Vec<Entry> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(|l| {
            let cut = l.rfind(",\"hash\":\"").expect("sealed");
            serde_json::from_str(&format!("{}}}", &l[..cut])).expect("entry")
        })
        .collect()
}

#[tokio::test]
async fn each_call_is_one_entry_with_its_facts() {
    let dir = std::env::temp_dir().join(common::unique("dbward_auditcalls"));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = sqlite_fixture(&dir);
    let log_path = dir.join("audit.jsonl");
    let log = AuditLog::open(AuditConfig::new(log_path.clone())).expect("audit");
    let gw = Gateway::new(client_config()).with_audit(log);
    let ctx = CallContext::new("alice", Some("claude-desktop".into()));
    with_context(ctx, async {
        let id = gw
            .connect(ConnectRequest::Url(SecretString::from(format!(
                "sqlite://{}",
                db.display()
            ))))
            .await
            .expect("connect")
            .id
            .to_string();
        gw.execute_query(&id, "SELECT * FROM servers LIMIT 7", &[], None)
            .await
            .expect("query");
        gw.execute_query(&id, "DELETE FROM servers", &[], None)
            .await
            .expect_err("refused");
        gw.list_tables(&id, None).await.expect("tables");
        gw.execute_query("0123456789abcdef0123456789abcdef", "SELECT 1", &[], None)
            .await
            .expect_err("unknown id");
        gw.close_connection(&id).await.expect("close");
    })
    .await;
    drop(gw);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    verify_files(&[&log_path], None, None).expect("chain verifies");
    let e = entries(&log_path);
    let calls: Vec<&Entry> = e.iter().filter(|e| e.kind == "call").collect();
    let tools: Vec<&str> = calls.iter().filter_map(|e| e.tool.as_deref()).collect();
    assert_eq!(
        tools,
        [
            "connect",
            "execute_query",
            "execute_query",
            "list_tables",
            "execute_query",
            "close_connection"
        ]
    );
    let ok = calls[1];
    assert_eq!(ok.client.as_deref(), Some("alice (claude-desktop)"));
    assert_eq!(ok.connection.as_deref(), Some("(sqlite)"));
    assert_eq!(ok.verdict.as_deref(), Some("allowed"));
    assert_eq!(ok.statement_kind.as_deref(), Some("SELECT"));
    assert_eq!(ok.rows, Some(7));
    assert_eq!(ok.outcome.as_deref(), Some("ok"));
    assert_eq!(
        ok.query_sha256.as_deref(),
        Some(dbward_gateway::audit::chain::sha256_hex("SELECT * FROM servers LIMIT 7").as_str())
    );
    assert!(ok.query.is_none(), "query text is off by default");
    let refused = calls[2];
    assert_eq!(refused.verdict.as_deref(), Some("refused"));
    assert_eq!(refused.rules, ["statement.kind"]);
    assert_eq!(refused.outcome.as_deref(), Some("policy_refused"));
    assert_eq!(calls[4].outcome.as_deref(), Some("unknown_connection"));
    assert_eq!(
        calls[5].connection.as_deref(),
        Some("(sqlite)"),
        "named before it closed"
    );
    let text = std::fs::read_to_string(&log_path).expect("read");
    assert!(
        !text.contains(&db.display().to_string()),
        "no connection target in the audit log"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A full disk: once the audit log cannot be written, no result is released; when space
/// returns, writes resume, the partial line is cut and the chain continues.
#[tokio::test]
async fn a_full_audit_disk_withholds_results_then_recovers() {
    let dir = std::env::temp_dir().join(common::unique("dbward_auditfull"));
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).expect("dir");
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(&mnt)
        .status()
        .expect("mount runs");
    assert!(
        status.success(),
        "this test mounts a 16 KiB tmpfs (needs root, as CI has)"
    );
    let db = sqlite_fixture(&dir);
    // Another file on the same disk, deleted later to give the space back.
    // (16 KiB: a page each for the lock and head files, the filler, and the log.)
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![b'x'; 4096]).expect("filler");
    let log_path = mnt.join("audit.jsonl");
    let log = AuditLog::open(AuditConfig::new(log_path.clone())).expect("audit");
    let gw = Gateway::new(client_config()).with_audit(log);
    let id = gw
        .connect(ConnectRequest::Url(SecretString::from(format!(
            "sqlite://{}",
            db.display()
        ))))
        .await
        .expect("connect")
        .id
        .to_string();
    let mut refused_at = None;
    for i in 0..500 {
        match gw
            .execute_query(&id, "SELECT count(*) FROM servers", &[], None)
            .await
        {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.code(), "audit_unavailable", "{e}");
                refused_at = Some(i);
                break;
            }
        }
    }
    let at = refused_at.expect("the disk filled and calls were refused");
    assert!(at > 5, "calls worked while the log could be written ({at})");
    // It stays closed while the disk is full: no gap opens in the chain.
    let e = gw
        .execute_query(&id, "SELECT 1", &[], None)
        .await
        .expect_err("still refused");
    assert_eq!(e.code(), "audit_unavailable");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let e = gw
        .execute_query(&id, "SELECT 1", &[], None)
        .await
        .expect_err("refused after a retry while the disk is still full");
    assert_eq!(e.code(), "audit_unavailable");
    // Space returns: after the retry interval, writes resume and the chain continues.
    std::fs::remove_file(&filler).expect("free space");
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    gw.execute_query(&id, "SELECT 2", &[], None)
        .await
        .expect("served again once the log can be written");
    drop(gw);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let text = std::fs::read_to_string(&log_path).expect("read");
    assert!(text.ends_with('\n'), "no partial line left");
    let e = entries(&log_path);
    let recovered = e
        .iter()
        .find(|e| e.kind == "recovered")
        .expect("a recovered entry");
    assert!(
        recovered
            .note
            .as_deref()
            .is_some_and(|n| n.contains("writes resumed")),
        "{recovered:?}"
    );
    assert_eq!(e.last().and_then(|e| e.outcome.as_deref()), Some("ok"));
    verify_files(&[&log_path], None, None).expect("the chain verifies across the outage");
    let _ = Command::new("umount").arg(&mnt).status();
    let _ = std::fs::remove_dir_all(&dir);
}
