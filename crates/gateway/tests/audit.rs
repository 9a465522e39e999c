//! The audit chain: verification finds every edit, deletion, reordering and truncation;
//! rotation keeps the chain; a SIGKILL mid-load loses no acknowledged entry; an unwritable
//! path fails closed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dbward_gateway::audit::writer::read_head;
use dbward_gateway::audit::{AuditConfig, AuditLog, Entry, VerifyError, verify_files};
use secrecy::SecretBox;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dbward_audit_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir.join("audit.jsonl")
}

fn call(i: u64) -> Entry {
    Entry {
        kind: "call".into(),
        tool: Some("execute_query".into()),
        client: Some("tester".into()),
        connection: Some("cmdb".into()),
        outcome: Some("ok".into()),
        rows: Some(i),
        query: Some(format!("SELECT {i}")),
        ..Entry::default()
    }
}

async fn write_log(path: &Path, n: u64) {
    let log = AuditLog::open(AuditConfig::new(path.to_path_buf())).expect("opens");
    for i in 0..n {
        log.append(call(i)).await.expect("appends");
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(String::from)
        .collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").expect("write");
}

#[tokio::test]
async fn verify_finds_edits_deletions_reorderings_and_truncation() {
    let path = temp("tamper");
    write_log(&path, 10).await;
    let ok = verify_files(&[&path], None, read_head(&path)).expect("intact chain verifies");
    assert_eq!((ok.entries, ok.last_seq), (11, 10)); // genesis + 10
    let original = lines(&path);
    assert!(
        !original.join("").contains("SELECT 3"),
        "query text is off by default"
    );

    // Edit one field of entry 4 (line 5).
    let mut edited = original.clone();
    edited[4] = edited[4].replace("\"rows\":3", "\"rows\":300");
    rewrite(&path, &edited);
    assert!(matches!(
        verify_files(&[&path], None, None),
        Err(VerifyError::Edited {
            line: 5,
            seq: 4,
            ..
        })
    ));

    // Delete entry 6.
    let mut deleted = original.clone();
    deleted.remove(6);
    rewrite(&path, &deleted);
    assert!(matches!(
        verify_files(&[&path], None, None),
        Err(VerifyError::Broken {
            line: 7,
            seq: 7,
            expected: 6,
            ..
        })
    ));

    // Swap entries 2 and 3.
    let mut swapped = original.clone();
    swapped.swap(2, 3);
    rewrite(&path, &swapped);
    assert!(matches!(
        verify_files(&[&path], None, None),
        Err(VerifyError::Broken { line: 3, .. })
    ));

    // Cut the last two entries: the head file still records seq 10.
    rewrite(&path, &original[..9]);
    let e = verify_files(&[&path], None, read_head(&path)).expect_err("truncated");
    assert!(
        matches!(
            e,
            VerifyError::Truncated {
                last: 8,
                head: 10,
                ..
            }
        ),
        "{e}"
    );

    // Cut mid-line.
    let mut text = original.join("\n");
    text.truncate(text.len() - 10);
    std::fs::write(&path, text).expect("write");
    assert!(matches!(
        verify_files(&[&path], None, None),
        Err(VerifyError::Malformed { line: 11, .. })
    ));

    // Recomputing a hash after an edit is not enough with an HMAC key.
    let keyed = temp("hmac");
    let mut cfg = AuditConfig::new(keyed.clone());
    cfg.hmac_key = Some(SecretBox::new(Box::new(b"k3y-material".to_vec())));
    let log = AuditLog::open(cfg).expect("opens");
    log.append(call(1)).await.expect("append");
    drop(log);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(verify_files(&[&keyed], Some(b"k3y-material"), None).is_ok());
    assert!(matches!(
        verify_files(&[&keyed], None, None),
        Err(VerifyError::Edited { .. })
    ));
}

#[tokio::test]
async fn rotation_keeps_the_chain_and_restart_continues_it() {
    let path = temp("rotate");
    let mut cfg = AuditConfig::new(path.clone());
    cfg.max_file_bytes = 2_000;
    cfg.store_query_text = true;
    let log = AuditLog::open(cfg).expect("opens");
    for i in 0..40 {
        log.append(call(i)).await.expect("append");
    }
    drop(log);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let dir = path.parent().expect("dir");
    let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e.len() == 12))
        .collect();
    rotated.sort();
    assert!(
        rotated.len() >= 3,
        "rotated into several files: {rotated:?}"
    );
    let mut all: Vec<&Path> = rotated.iter().map(PathBuf::as_path).collect();
    all.push(&path);
    let r = verify_files(&all, None, read_head(&path)).expect("chain across files");
    assert!(r.last_seq >= 40);
    assert!(lines(&path)[0].contains("\"type\":\"rotate\""));
    // Files out of order break the chain.
    let mut wrong = all.clone();
    wrong.swap(0, 1);
    assert!(verify_files(&wrong, None, None).is_err());
    // A restart appends to the same chain.
    let log = AuditLog::open(AuditConfig::new(path.clone())).expect("reopens");
    log.append(call(99)).await.expect("append");
    drop(log);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(verify_files(&all, None, read_head(&path)).is_ok());
    let last = lines(&path).last().expect("line").clone();
    assert!(
        last.contains("\"rows\":99") && !last.contains("SELECT 99"),
        "{last}"
    );
}

/// Not a test on its own: the child process of the SIGKILL test. With
/// `DBWARD_AUDIT_LOAD` set it appends entries as fast as it can and prints `ACK <seq>` for
/// each acknowledged one, until it is killed.
#[test]
fn audit_load_child() {
    let Ok(path) = std::env::var("DBWARD_AUDIT_LOAD") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        use std::io::Write;
        let log = AuditLog::open(AuditConfig::new(path.into())).expect("opens");
        let mut out = std::io::stdout().lock();
        for i in 0u64.. {
            let seq = log.append(call(i)).await.expect("append");
            writeln!(out, "ACK {seq}").expect("stdout");
            out.flush().expect("flush");
        }
    });
}

#[test]
fn sigkill_mid_load_loses_no_acknowledged_entry() {
    let path = temp("kill");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "audit_load_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DBWARD_AUDIT_LOAD", &path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut acked = Vec::new();
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while acked.len() < 3_000 {
        line.clear();
        if reader.read_line(&mut line).expect("read") == 0 {
            break;
        }
        if let Some(seq) = line.trim().strip_prefix("ACK ") {
            acked.push(seq.parse::<u64>().expect("seq"));
        }
    }
    // SIGKILL: no destructor, no flush, no chance to finish the line being written.
    child.kill().expect("kill");
    child.wait().expect("reaped");
    assert!(acked.len() >= 3_000, "the child acknowledged entries");
    let text = std::fs::read_to_string(&path).expect("log");
    let complete: Vec<&str> = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .collect();
    let last_seq = complete.len() as u64 - 1;
    assert!(
        acked.iter().all(|s| *s <= last_seq),
        "every acknowledged entry is on disk"
    );
    // The complete lines verify; reopening cuts a partial tail and continues the chain.
    let prefix = temp("kill_prefix");
    std::fs::write(&prefix, complete.concat()).expect("copy");
    verify_files(&[&prefix], None, None).expect("complete lines verify");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let log = AuditLog::open(AuditConfig::new(path.clone())).expect("reopens after a crash");
        log.append(call(1)).await.expect("append");
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    verify_files(&[&path], None, read_head(&path)).expect("recovered chain verifies");
}

#[tokio::test]
async fn an_unwritable_path_fails_closed() {
    let e = AuditLog::open(AuditConfig::new(PathBuf::from("/proc/dbward/audit.jsonl")))
        .expect_err("cannot create");
    assert!(e.to_string().contains("cannot be written"), "{e}");
}
