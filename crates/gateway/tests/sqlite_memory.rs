//! dbward's own memory when a query tries to build or return a huge value: its own test
//! binary, so the process's peak (VmHWM) is this test's alone.

mod common;

use dbward_gateway::backends::Caps;
use dbward_gateway::backends::sqlite::SqliteBackend;
use dbward_policy::Policy;

/// Peak resident memory of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test]
async fn a_400_mb_value_is_never_built_or_buffered() {
    let dir = std::env::temp_dir().join(common::unique("dbward_sqlite_mem"));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("m.db");
    rusqlite::Connection::open(&path)
        .expect("create")
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
             INSERT INTO t SELECT i FROM n;",
        )
        .expect("fixture");
    let limits = common::client_config().limits;
    let b = SqliteBackend::connect(&path, &limits, &Policy::default())
        .await
        .expect("opens");
    let mut caps = Caps::new(&limits, 1_000);
    caps.timeout_ms = 20_000;
    let before = vm_hwm_kib();
    let wide = (0..100)
        .map(|_| "zeroblob(1000000)")
        .collect::<Vec<_>>()
        .join(", ");
    for sql in [
        // 400 MB in one value, built several ways.
        "SELECT hex(randomblob(200000000))".to_string(),
        "SELECT zeroblob(n) FROM (SELECT 400000000 AS n)".to_string(),
        "SELECT printf('%.*c', n, 'x') FROM (SELECT 400000000 AS n)".to_string(),
        "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r) SELECT s FROM r"
            .to_string(),
        "SELECT group_concat(hex(randomblob(200000))) FROM t".to_string(),
        // 100 values of 1 MB in one row, and 1,000 rows of almost 1 MB.
        format!("SELECT {wide}"),
        "SELECT zeroblob(1000000) FROM t".to_string(),
    ] {
        let r = b.execute(&sql, &[], caps).await;
        assert!(
            // Refused, cut at the cap, or (SQLite's printf) NULL instead of the value.
            r.as_ref()
                .map_or(true, |r| r.truncated || r.rows[0][0].is_null()),
            "{sql}: neither refused nor truncated"
        );
    }
    let after = vm_hwm_kib();
    let grown_mb = (after.saturating_sub(before)) / 1024;
    eprintln!("VmHWM before {before} KiB, after {after} KiB: +{grown_mb} MiB");
    assert!(grown_mb < 100, "peak memory grew by {grown_mb} MiB");
    let _ = std::fs::remove_dir_all(&dir);
}
