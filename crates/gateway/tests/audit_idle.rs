//! The audit log's fsync thread (`fsync = every N ms`) sleeps while nothing is written: an
//! idle dbward wakes no thread for its log, and a write still reaches the disk within the
//! period. Alone in its test binary, so the one thread named `dbward-audit-fs` is this
//! log's.

use std::time::Duration;

use dbward_gateway::audit::{AuditConfig, AuditLog, Entry, FsyncPolicy};

/// (thread id, voluntary context switches) of this process's fsync threads.
fn fsync_threads() -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("tasks") {
        let dir = task.expect("task").path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if comm.trim() != "dbward-audit-fs" {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).expect("status");
        let switches = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("switches");
        let tid = dir.file_name().expect("tid").to_string_lossy().to_string();
        out.push((tid, switches));
    }
    out
}

fn switches() -> u64 {
    let threads = fsync_threads();
    assert_eq!(threads.len(), 1, "one fsync thread: {threads:?}");
    threads[0].1
}

/// The thread's count once it has stopped changing for 100 ms (a sync on a busy disk can
/// take a while): what it does next is then what it does while nothing is written.
async fn settled() -> u64 {
    // The new thread names itself once it runs: wait for it to appear.
    for _ in 0..500 {
        if !fsync_threads().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut last = switches();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = switches();
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the fsync thread never settled: {last} switches");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_log_wakes_no_thread_and_a_write_is_still_synced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = AuditConfig::new(dir.path().join("audit.jsonl"));
    cfg.fsync = FsyncPolicy::EveryMs(20);
    let log = AuditLog::open(cfg).expect("opens");
    // Let the thread start and settle in its wait.
    let idle_from = settled().await;
    // Ten periods with nothing written: the thread never runs (it used to wake every
    // period to look).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        switches(),
        idle_from,
        "the fsync thread woke while the log was idle"
    );
    // A write wakes it: it waits out the period, syncs, and sleeps again.
    log.append(Entry {
        kind: "event".into(),
        note: Some("idle test".into()),
        ..Entry::default()
    })
    .await
    .expect("appends");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after_write = switches();
    assert!(
        after_write > idle_from,
        "the write did not wake the fsync thread"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        switches(),
        after_write,
        "the fsync thread kept waking after its sync"
    );
    // Dropping the last handle ends the thread.
    drop(log);
    for _ in 0..100 {
        if fsync_threads().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the fsync thread outlived its log: {:?}", fsync_threads());
}
