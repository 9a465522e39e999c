//! The gateway over a real SQLite file: opened read-only, with `query_only` and an
//! authorizer, so writes fail even when the policy is bypassed.

mod common;

use std::path::{Path, PathBuf};

use common::client_config;
use dbward_gateway::backends::Caps;
use dbward_gateway::backends::sqlite::SqliteBackend;
use dbward_gateway::tools::read_table::{Filter, FilterOp, ReadTableRequest};
use dbward_gateway::{ConnectRequest, Gateway};
use secrecy::SecretString;
use serde_json::json;

/// A fixture CMDB file in a fresh temp directory.
fn fixture() -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new();
    let path = dir.0.join("cmdb.db");
    let conn = rusqlite::Connection::open(&path).expect("create");
    conn.execute_batch(
        "CREATE TABLE departments (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE servers (id INTEGER PRIMARY KEY, hostname TEXT NOT NULL,
            department_id INTEGER REFERENCES departments(id), cpu REAL, status TEXT DEFAULT 'active', img BLOB);
         CREATE INDEX servers_dept ON servers(department_id);
         CREATE TABLE secrets (id INTEGER PRIMARY KEY, api_key TEXT);
         INSERT INTO departments (name) VALUES ('Engineering'), ('Finance'), ('Ops');
         WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 500)
           INSERT INTO servers (hostname, department_id, cpu, status, img)
           SELECT 'srv-' || n, 1 + n % 3, n * 0.5, CASE WHEN n % 5 = 0 THEN 'retired' ELSE 'active' END, x'00ff' FROM g;
         INSERT INTO secrets (api_key) VALUES ('sk_live_do_not_leak');",
    )
    .expect("fixture");
    (dir, path)
}

/// A temp directory removed on drop (no extra crate needed).
mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            let p = std::env::temp_dir().join(super::common::unique("dbward_sqlite"));
            std::fs::create_dir_all(&p).expect("temp dir");
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn digest(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read db file")
}

async fn connect(gw: &Gateway, path: &Path) -> String {
    gw.connect(ConnectRequest::Url(SecretString::from(format!(
        "sqlite://{}",
        path.display()
    ))))
    .await
    .expect("connects")
    .id
    .to_string()
}

#[tokio::test]
async fn queries_tools_and_types() {
    let (_dir, path) = fixture();
    let gw = Gateway::new(client_config());
    let info = gw
        .connect(ConnectRequest::Url(SecretString::from(format!(
            "sqlite://{}",
            path.display()
        ))))
        .await
        .expect("connects");
    assert!(info.target.as_str().starts_with("sqlite://"));
    assert!(info.server_version.starts_with("SQLite 3."));
    assert!(!info.role_can_write);
    let id = info.id.to_string();
    let r = gw
        .execute_query(
            &id,
            "SELECT d.name, count(*) AS n, sum(s.cpu) AS cpu, max(s.img) AS img FROM servers s \
             JOIN departments d ON d.id = s.department_id WHERE s.status = ?1 GROUP BY d.name ORDER BY d.name",
            &[json!("active")],
            None,
        )
        .await
        .expect("runs");
    assert_eq!(r.rows[0][0], json!("Engineering"));
    assert_eq!(r.rows[0][1], json!(133)); // n % 3 == 0, minus n % 15 == 0
    assert!(r.rows[0][2].is_f64());
    assert_eq!(r.rows[0][3], json!("AP8="));
    let tables: Vec<String> = gw
        .list_tables(&id, None)
        .await
        .expect("tables")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(tables, ["departments", "secrets", "servers"]);
    let d = gw
        .describe_table(&id, None, "servers")
        .await
        .expect("describe");
    assert_eq!(d.primary_key, ["id"]);
    assert_eq!(d.foreign_keys[0].references_table, "departments");
    assert!(d.indexes.iter().any(|i| i.contains("servers_dept")));
    let found = gw.search_tables(&id, "host").await.expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].column.as_deref(), Some("hostname"));
    let stats = gw
        .get_table_stats(&id, None, "servers")
        .await
        .expect("stats");
    assert_eq!((stats.row_estimate, stats.exact), (500, true));
    let plan = gw
        .explain_query(&id, "SELECT * FROM servers WHERE department_id = 2", false)
        .await
        .expect("plan");
    assert!(
        plan.plan.to_string().contains("servers_dept"),
        "{}",
        plan.plan
    );
    let rows = gw
        .read_table(
            &id,
            &ReadTableRequest {
                table: "servers".into(),
                columns: Some(vec!["hostname".into()]),
                filters: vec![Filter {
                    column: "hostname".into(),
                    op: FilterOp::Ilike,
                    value: Some(json!("SRV-1_")),
                }],
                limit: Some(5),
                ..Default::default()
            },
        )
        .await
        .expect("read_table");
    assert_eq!(rows.row_count, 5);
    assert!(rows.truncated);
    gw.close_connection(&id).await.expect("close");
}

#[tokio::test]
async fn writes_fail_and_the_file_is_unchanged() {
    let (_dir, path) = fixture();
    let before = digest(&path);
    let gw = Gateway::new(client_config());
    let id = connect(&gw, &path).await;
    for sql in [
        "DELETE FROM servers",
        "SELECT 1; DELETE FROM servers",
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "PRAGMA writable_schema = 1",
        "SELECT load_extension('/tmp/evil')",
        "SELECT writefile('/tmp/x', 'y')",
        "SELECT zeroblob(2000000000)",
        "CREATE TABLE t (a)",
        "VACUUM INTO '/tmp/copy.db'",
        "WITH d AS (DELETE FROM servers RETURNING *) SELECT * FROM d",
    ] {
        let e = gw.execute_query(&id, sql, &[], None).await.expect_err(sql);
        assert!(
            matches!(
                e.code(),
                "policy_refused" | "read_only_violation" | "permission_denied"
            ),
            "{sql}: {e}"
        );
    }
    gw.close_connection(&id).await.expect("close");
    assert_eq!(digest(&path), before);
}

#[tokio::test]
async fn the_database_layer_holds_without_the_policy() {
    let (_dir, path) = fixture();
    let before = digest(&path);
    // One pooled connection: every statement below runs on the same one, so nothing an
    // earlier one did (or tried) may carry over to the next.
    let mut limits = client_config().limits;
    limits.pool_max_size = 1;
    let b = SqliteBackend::connect(&path, &limits).await.expect("opens");
    let caps = Caps {
        max_rows: 10,
        max_bytes: 1 << 20,
        timeout_ms: 500,
        lock_timeout_ms: 0,
        idle_in_transaction_timeout_ms: 0,
    };
    for sql in [
        "DELETE FROM servers",
        "UPDATE servers SET hostname = 'x'",
        "INSERT INTO secrets (api_key) VALUES ('x')",
        "SELECT 1; DELETE FROM servers",
        "ATTACH DATABASE ':memory:' AS m",
        "PRAGMA query_only = 0",
        "SELECT load_extension('/tmp/evil')",
        "DROP TABLE servers",
    ] {
        let e = b.execute(sql, &[], caps).await.expect_err(sql);
        assert!(
            matches!(
                e.code(),
                "read_only_violation" | "permission_denied" | "invalid_input" | "database_error"
            ),
            "{sql}: {e:?}"
        );
    }
    // The progress handler ends a runaway query.
    let e = b
        .execute(
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c",
            &[],
            caps,
        )
        .await
        .expect_err("times out");
    assert_eq!(e.code(), "timeout", "{e:?}");
    // Caps stream: a million generated rows, ten returned.
    let r = b
        .execute("WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000) SELECT n FROM c", &[], caps)
        .await
        .expect("runs");
    assert_eq!((r.row_count, r.truncated), (10, true));
    // The connection the refused and timed-out statements ran on serves our own catalog
    // reads (which the authorizer would refuse: it is off for them) and the next query
    // (the timed-out one's deadline is gone), and still cannot write.
    let d = b.describe_table("servers").await.expect("catalog read");
    assert_eq!(d.primary_key, vec!["id".to_string()]);
    let r = b
        .execute("SELECT count(*) FROM servers", &[], caps)
        .await
        .expect("next query");
    assert_eq!(r.rows[0][0], json!(500));
    let e = b
        .execute("DELETE FROM servers", &[], caps)
        .await
        .expect_err("still read-only");
    assert_eq!(e.code(), "permission_denied", "{e:?}");
    assert_eq!(digest(&path), before);
}

#[tokio::test]
async fn missing_file_is_a_clear_error() {
    let gw = Gateway::new(client_config());
    let e = gw
        .connect(ConnectRequest::Url(SecretString::from(
            "sqlite:///nonexistent/dir/x.db",
        )))
        .await
        .expect_err("no file");
    assert_eq!(e.code(), "connection_unavailable");
}

/// CPU time this process has used (user + system), from /proc.
fn cpu_time() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .expect("fields")
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    std::time::Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

#[tokio::test]
async fn an_abandoned_query_stops_at_once() {
    let (_dir, path) = fixture();
    let mut limits = client_config().limits;
    limits.pool_max_size = 1;
    let b = SqliteBackend::connect(&path, &limits).await.expect("opens");
    let caps = Caps {
        max_rows: 10,
        max_bytes: 1 << 20,
        timeout_ms: 60_000,
        lock_timeout_ms: 0,
        idle_in_transaction_timeout_ms: 0,
    };
    let runaway =
        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c";
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        b.execute(runaway, &[], caps),
    )
    .await;
    assert!(abandoned.is_err(), "abandoned while running");
    // If the statement kept running to its 60-second deadline it would burn a core: measure.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let before = cpu_time();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let burnt = cpu_time() - before;
    assert!(
        burnt < std::time::Duration::from_millis(300),
        "the abandoned statement still runs: {burnt:?} of CPU in 600 ms"
    );
    let r = b
        .execute("SELECT count(*) FROM servers", &[], caps)
        .await
        .expect("next call");
    assert_eq!(r.rows[0][0], json!(500));
}

/// Limits of zero (which the pool library would refuse) still open a working connection,
/// and a pool's connections show in the metrics.
#[tokio::test]
async fn zero_timeouts_still_open_and_the_pool_shows_in_metrics() {
    let (_dir, path) = fixture();
    let mut cfg = client_config();
    cfg.limits.acquire_timeout_ms = 0;
    cfg.limits.idle_timeout_s = 0;
    let gw = Gateway::new(cfg);
    let id = connect(&gw, &path).await;
    let r = gw
        .execute_query(&id, "SELECT count(*) FROM servers", &[], None)
        .await
        .expect("runs");
    assert_eq!(r.rows[0][0], json!(500));
    let metrics = gw.metrics_text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("dbward_pool_connections_idle ") && !l.ends_with(" 0")),
        "{metrics}"
    );
}
