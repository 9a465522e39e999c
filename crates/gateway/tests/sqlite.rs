//! The gateway over a real SQLite file: opened read-only, with `query_only` and an
//! authorizer, so writes fail even when the policy is bypassed.

mod common;

use std::path::{Path, PathBuf};

use common::client_config;
use dbward_gateway::backends::Caps;
use dbward_gateway::backends::sqlite::SqliteBackend;
use dbward_gateway::tools::read_table::{Filter, FilterOp, ReadTableRequest};
use dbward_gateway::{ConnectRequest, Gateway};
use dbward_policy::{Policy, PolicyConfig};
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
    let _serial = SERIAL.lock().await;
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
    let _serial = SERIAL.lock().await;
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
    let _serial = SERIAL.lock().await;
    let (_dir, path) = fixture();
    let before = digest(&path);
    // One pooled connection: every statement below runs on the same one, so nothing an
    // earlier one did (or tried) may carry over to the next.
    let mut limits = client_config().limits;
    limits.pool_max_size = 1;
    let b = SqliteBackend::connect(&path, &limits, &Policy::default())
        .await
        .expect("opens");
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
    let _serial = SERIAL.lock().await;
    let gw = Gateway::new(client_config());
    let e = gw
        .connect(ConnectRequest::Url(SecretString::from(
            "sqlite:///nonexistent/dir/x.db",
        )))
        .await
        .expect_err("no file");
    assert_eq!(e.code(), "connection_unavailable");
}

/// Held by every test here: several measure time or this process's CPU (and one needs a
/// connection to open within 1 ms), which the others' load would distort.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let _serial = SERIAL.lock().await;
    let (_dir, path) = fixture();
    let mut limits = client_config().limits;
    limits.pool_max_size = 1;
    let b = SqliteBackend::connect(&path, &limits, &Policy::default())
        .await
        .expect("opens");
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
    let _serial = SERIAL.lock().await;
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

/// A file with data the configuration denies, reachable in every way SQLite allows: a
/// view, FTS tables over it (external content) and their shadow tables, statistics.
fn denied_fixture() -> (tempdir::Dir, PathBuf) {
    let (dir, path) = fixture();
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, ssn TEXT, country TEXT,
           ssn_area TEXT GENERATED ALWAYS AS (substr(ssn, 1, 3)) STORED);
         INSERT INTO customers (name, ssn, country) VALUES ('Ada', '111-22-3333', 'DE'), ('Bob', '444-55-6666', 'FR');
         CREATE INDEX customers_ssn ON customers(ssn);
         CREATE VIEW customer_view AS SELECT name, ssn FROM customers;
         CREATE VIEW customer_names AS SELECT name, country FROM customers;
         CREATE VIEW secret_view AS SELECT id FROM secrets;
         CREATE VIRTUAL TABLE cust_fts USING fts5(ssn, content='customers', content_rowid='id');
         INSERT INTO cust_fts(cust_fts) VALUES ('rebuild');
         CREATE VIRTUAL TABLE secrets_fts USING fts4(api_key, content='secrets');
         INSERT INTO secrets_fts(secrets_fts) VALUES ('rebuild');
         CREATE VIRTUAL TABLE cust_vocab USING fts5vocab(cust_fts, 'row');
         CREATE VIRTUAL TABLE docs USING fts5(body);
         INSERT INTO docs VALUES ('hello world'), ('goodbye world');
         ANALYZE;",
    )
    .expect("denied fixture");
    (dir, path)
}

fn deny_config() -> PolicyConfig {
    PolicyConfig {
        denied_tables: vec!["secrets".into()],
        denied_columns: vec!["customers.ssn".into()],
        ..PolicyConfig::default()
    }
}

/// Reads of denied data the policy can be fooled into allowing (CTE shadowing, aliases,
/// join oracles) or cannot see (views, FTS indexes and shadow tables, statistics samples).
const DENIED_READS: &[&str] = &[
    "SELECT ssn FROM customers",
    "SELECT max(ssn) FROM customers",
    "SELECT name FROM customers WHERE ssn LIKE '1%'",
    "SELECT name FROM customers ORDER BY ssn",
    "SELECT z.s FROM (SELECT ssn AS s FROM customers) AS z",
    "SELECT (WITH customers AS (SELECT 'x' AS ssn) SELECT ssn FROM customers), c.ssn FROM customers c",
    "SELECT * FROM (WITH secrets AS (SELECT 1 AS api_key) SELECT api_key FROM secrets) JOIN main.secrets",
    "SELECT v.column1 FROM (VALUES ('111-22-3333')) AS v JOIN customers c ON c.ssn = v.column1",
    "SELECT * FROM customer_view",
    "SELECT count(*) FROM customer_view WHERE ssn > ''",
    "SELECT count(*) FROM secrets",
    "SELECT 1 FROM secrets LIMIT 1",
    "SELECT rowid FROM secrets",
    "SELECT * FROM secret_view",
    "SELECT * FROM sqlite_stat4",
    "SELECT rowid FROM cust_fts WHERE cust_fts MATCH '111'",
    "SELECT count(*) FROM cust_fts",
    "SELECT * FROM cust_fts_data",
    "SELECT * FROM cust_fts_idx",
    "SELECT * FROM secrets_fts_segdir",
    "SELECT docid FROM secrets_fts WHERE secrets_fts MATCH 'sk_live*'",
    "SELECT term FROM cust_vocab",
    // A generated column computed from the denied one is a copy by another name.
    "SELECT ssn_area FROM customers",
    "SELECT name FROM customers WHERE ssn_area = '111'",
    "PRAGMA database_list",
    "SELECT file FROM pragma_database_list",
    "PRAGMA query_only = 0",
];

/// Reads that stay allowed next to the denied ones.
const ALLOWED_READS: &[&str] = &[
    "SELECT name, country FROM customers",
    "SELECT count(*) FROM customers",
    "SELECT * FROM customer_names",
    "SELECT rowid, body FROM docs WHERE docs MATCH 'hello'",
    "SELECT * FROM sqlite_stat1",
    "PRAGMA table_info(customers)",
    "PRAGMA table_xinfo(customers)",
    "PRAGMA index_list(customers)",
    "PRAGMA index_info(customers_ssn)",
    "PRAGMA index_xinfo(customers_ssn)",
    "PRAGMA foreign_key_list(servers)",
    "PRAGMA collation_list",
    "PRAGMA function_list",
    "PRAGMA table_list",
    "SELECT name FROM pragma_table_info('secrets')",
    "SELECT name, \"unique\" FROM pragma_index_list('customers')",
];

/// The authorizer alone (the policy never sees these queries): every denied read fails
/// with `permission_denied`, whatever name it goes by, and the rest runs.
#[tokio::test]
async fn denied_data_is_refused_by_the_authorizer_alone() {
    let _serial = SERIAL.lock().await;
    let (_dir, path) = denied_fixture();
    let mut limits = client_config().limits;
    limits.pool_max_size = 1;
    let b = SqliteBackend::connect(&path, &limits, &Policy::new(deny_config()))
        .await
        .expect("opens");
    let caps = Caps::new(&limits, 100);
    for sql in DENIED_READS {
        let e = b.execute(sql, &[], caps).await.expect_err(sql);
        assert_eq!(e.code(), "permission_denied", "{sql}: {e:?}");
    }
    for sql in ALLOWED_READS {
        let r = b
            .execute(sql, &[], caps)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        assert!(
            r.row_count > 0 || sql.contains("foreign_key"),
            "{sql}: no rows"
        );
    }
    // A denied column's table is readable column by column, and a schema change is seen:
    // an FTS table created over the denied column after connecting is denied too.
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch(
        "CREATE VIRTUAL TABLE late_fts USING fts5(ssn, content='customers', content_rowid='id');
         INSERT INTO late_fts(late_fts) VALUES ('rebuild');
         ALTER TABLE customers ADD COLUMN ssn_copy TEXT GENERATED ALWAYS AS (upper(ssn)) VIRTUAL;
         CREATE VIEW copy_view AS SELECT name, ssn_copy FROM customers;",
    )
    .expect("late fts and generated column");
    for sql in [
        "SELECT rowid FROM late_fts WHERE late_fts MATCH '444'",
        "SELECT * FROM late_fts_idx",
        "SELECT ssn_copy FROM customers",
        "SELECT name FROM customers WHERE ssn_copy LIKE '1%'",
        "SELECT * FROM copy_view",
    ] {
        let e = b.execute(sql, &[], caps).await.expect_err(sql);
        assert_eq!(e.code(), "permission_denied", "{sql}: {e:?}");
    }
    let r = b
        .execute("SELECT name, country FROM customers", &[], caps)
        .await
        .expect("the other columns stay readable");
    assert_eq!(r.row_count, 2);
}

/// Through the gateway, both layers: every denied read is refused (by the policy or, where
/// the policy is fooled, by the authorizer), and the introspection pragmas run.
#[tokio::test]
async fn denied_data_is_refused_through_the_gateway() {
    let _serial = SERIAL.lock().await;
    let (_dir, path) = denied_fixture();
    let mut cfg = client_config();
    cfg.policy = deny_config();
    let gw = Gateway::new(cfg);
    let id = connect(&gw, &path).await;
    for sql in DENIED_READS {
        let e = gw.execute_query(&id, sql, &[], None).await.expect_err(sql);
        assert!(
            matches!(e.code(), "policy_refused" | "permission_denied"),
            "{sql}: {e:?}"
        );
    }
    for sql in ALLOWED_READS {
        let r = gw
            .execute_query(&id, sql, &[], None)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        assert!(
            r.row_count > 0 || sql.contains("foreign_key"),
            "{sql}: no rows"
        );
    }
    let r = gw
        .execute_query(&id, "PRAGMA table_info(servers)", &[], None)
        .await
        .expect("pragma");
    assert_eq!(r.rows[1][1], json!("hostname"));
}

/// The database bounds every value whatever the policy says: the builders the policy
/// refuses fail in SQLite too, with a clear error, and quickly.
#[tokio::test]
async fn the_length_limit_bounds_every_value_without_the_policy() {
    let _serial = SERIAL.lock().await;
    let (_dir, path) = fixture();
    let limits = client_config().limits;
    let b = SqliteBackend::connect(&path, &limits, &Policy::default())
        .await
        .expect("opens");
    let caps = Caps::new(&limits, 10);
    for sql in [
        "SELECT hex(randomblob(200000000))",
        "SELECT zeroblob(n) FROM (SELECT 400000000 AS n)",
        "SELECT length(randomblob(n)) FROM (SELECT 2000000 AS n)",
        "SELECT printf('%.*c', n, 'x') FROM (SELECT 400000000 AS n)",
        "SELECT length(replace(hex(zeroblob(400000)), '0', 'xxxx'))",
        "SELECT length(substr(hex(zeroblob(n)), 1, 10)) FROM (SELECT 300000000 AS n)",
        "WITH RECURSIVE r(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM r) SELECT max(length(s)) FROM r",
        "SELECT length(group_concat(hex(randomblob(100000)))) FROM servers",
    ] {
        let started = std::time::Instant::now();
        // SQLite's printf answers NULL instead of building an over-long value.
        match b.execute(sql, &[], caps).await {
            Ok(r) => assert_eq!(r.rows[0][0], json!(null), "{sql}"),
            Err(e) => {
                assert_eq!(e.code(), "database_error", "{sql}: {e:?}");
                assert!(e.to_string().contains("too big"), "{sql}: {e}");
            }
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{sql}"
        );
    }
}

/// The longest single VDBE step the limits allow (one builtin call on the largest values
/// SQLite will build), measured: neither the progress handler nor an interrupt can stop a
/// step, so this is how long a worker can outlive its call.
#[tokio::test]
async fn the_worst_single_step_is_short() {
    let _serial = SERIAL.lock().await;
    let (_dir, path) = fixture();
    let limits = client_config().limits;
    let b = SqliteBackend::connect(&path, &limits, &Policy::default())
        .await
        .expect("opens");
    let mut caps = Caps::new(&limits, 10);
    caps.timeout_ms = 60_000;
    let n = dbward_gateway::backends::sqlite::length_limit(limits.max_bytes) / 2 - 1;
    let a = |n: i32| format!("replace(hex(zeroblob({n})), '0', 'a')");
    let pattern = format!("'%{}b'", "a".repeat(98));
    let glob = format!("'*{}b'", "a".repeat(98));
    let cases = [
        format!("SELECT {} LIKE {pattern}", a(n)),
        format!("SELECT {} GLOB {glob}", a(n)),
        format!("SELECT instr({}, {} || 'b')", a(n), a(n / 2)),
        format!("SELECT length(replace({}, {} || 'b', 'x'))", a(n), a(n / 2)),
        format!(
            "SELECT length(trim({}, replace(hex(zeroblob({})), '0', 'b') || 'a'))",
            a(n / 2),
            n / 2
        ),
        format!(
            "SELECT length(rtrim({}, x'80' || replace(hex(zeroblob({})), '0', 'b')))",
            a(n / 2),
            n / 2
        ),
    ];
    let mut worst = std::time::Duration::ZERO;
    for sql in &cases {
        let started = std::time::Instant::now();
        let r = b.execute(sql, &[], caps).await;
        let took = started.elapsed();
        eprintln!(
            "{took:?}\t{}\t{:?}",
            &sql[..60.min(sql.len())],
            r.as_ref().map(|r| r.rows[0][0].clone())
        );
        worst = worst.max(took);
    }
    eprintln!("worst single step: {worst:?}");
    assert!(
        worst < std::time::Duration::from_secs(3),
        "worst step {worst:?}"
    );
    // A pattern over the limit is refused by SQLite before it runs.
    let long = format!("SELECT 'a' LIKE '{}'", "a".repeat(101));
    let e = b
        .execute(&long, &[], caps)
        .await
        .expect_err("pattern too long");
    assert!(e.to_string().contains("too complex"), "{e}");
}

/// A call that times out answers at its deadline, and its statement stops: the worker is
/// idle within one step (measured as CPU this process burns after the answer).
#[tokio::test]
async fn a_timed_out_query_leaves_no_worker_running() {
    let _serial = SERIAL.lock().await;
    let (_dir, path) = fixture();
    let mut limits = client_config().limits;
    limits.pool_max_size = 1;
    let b = SqliteBackend::connect(&path, &limits, &Policy::default())
        .await
        .expect("opens");
    let mut caps = Caps::new(&limits, 10);
    caps.timeout_ms = 300;
    // Each row costs one long LIKE step (about a tenth of a second): the progress handler
    // ends it between rows, never inside one.
    let sql = format!(
        "SELECT count(*) FROM servers a, servers b WHERE replace(hex(zeroblob(500000 + a.id)), '0', 'a') LIKE '%{}b'",
        "a".repeat(98)
    );
    let started = std::time::Instant::now();
    let e = b.execute(&sql, &[], caps).await.expect_err("times out");
    let answered = started.elapsed();
    assert_eq!(e.code(), "timeout", "{e:?}");
    // Idle = a 100 ms window in which this process burns under 30 ms of CPU.
    let idle_after = loop {
        let before = cpu_time();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if cpu_time() - before < std::time::Duration::from_millis(30) {
            break started.elapsed() - answered;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "never idle"
        );
    };
    eprintln!("answered after {answered:?}; worker idle {idle_after:?} after the answer");
    assert!(
        answered < std::time::Duration::from_millis(1_500),
        "{answered:?}"
    );
    assert!(
        idle_after < std::time::Duration::from_secs(3),
        "{idle_after:?}"
    );
    caps.timeout_ms = 10_000;
    let r = b
        .execute("SELECT count(*) FROM servers", &[], caps)
        .await
        .expect("next call on the same connection");
    assert_eq!(r.rows[0][0], json!(500));
}

/// The analyst corpus's database: a small shop with customers, orders, items, products,
/// an employee hierarchy and JSON events.
fn analyst_fixture() -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new();
    let path = dir.0.join("shop.db");
    let conn = rusqlite::Connection::open(&path).expect("create");
    conn.execute_batch(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, country TEXT);
         CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id),
            status TEXT, total REAL, discount REAL, created_at TEXT, shipped_at TEXT);
         CREATE INDEX orders_customer ON orders(customer_id);
         CREATE TABLE order_items (order_id INTEGER REFERENCES orders(id), product_id INTEGER
            REFERENCES products(id), quantity INTEGER, unit_price REAL);
         CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT, manager_id INTEGER);
         CREATE TABLE events (id INTEGER PRIMARY KEY, user_id INTEGER, kind TEXT, ts TEXT, payload TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
           INSERT INTO customers SELECT i, char(65 + i % 26) || 'name' || i || CASE i % 3 WHEN 0 THEN 'son' WHEN 1 THEN 'ez' ELSE '' END,
             'user' || i || CASE i % 2 WHEN 0 THEN '@example.com' ELSE '@mail.org' END,
             CASE i % 4 WHEN 0 THEN 'DE' WHEN 1 THEN 'FR' WHEN 2 THEN 'US' ELSE 'JP' END FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
           INSERT INTO products SELECT i, 'product ' || i, CASE i % 3 WHEN 0 THEN 'books' WHEN 1 THEN 'games' ELSE 'tools' END, 5 + i * 7.5 FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
           INSERT INTO orders SELECT i, 1 + (i * 7) % 35,
             CASE i % 5 WHEN 0 THEN 'cancelled' WHEN 1 THEN 'shipped' WHEN 2 THEN 'delivered' ELSE 'pending' END,
             round(10 + (i * 37) % 600 + 0.99, 2), CASE WHEN i % 4 = 0 THEN 5 ELSE NULL END,
             datetime('2024-01-01', '+' || (i * 1.3) || ' days', '+' || (i % 24) || ' hours'),
             CASE WHEN i % 5 IN (1, 2) THEN datetime('2024-01-03', '+' || (i * 1.3) || ' days') END FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 700)
           INSERT INTO order_items SELECT 1 + i % 300, 1 + (i * 13) % 20, 1 + i % 4, 5 + (i % 20) * 7.5 FROM n;
         INSERT INTO employees VALUES (1, 'Grace', NULL), (2, 'Alan', 1), (3, 'Edsger', 1), (4, 'Barbara', 2),
            (5, 'Donald', 2), (6, 'Frances', 3), (7, 'Ken', 4);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
           INSERT INTO events SELECT i, 1 + i % 30, CASE i % 3 WHEN 0 THEN 'login' WHEN 1 THEN 'view' ELSE 'buy' END,
             datetime('2024-01-01', '+' || i || ' hours'),
             json_object('device', CASE i % 2 WHEN 0 THEN 'mobile' ELSE 'desktop' END, 'ms', i * 13,
               'tags', json_array('t' || (i % 5), 't' || (i % 7))) FROM n;
         ANALYZE;",
    )
    .expect("analyst fixture");
    (dir, path)
}

/// Every query of `tests/corpus/sqlite_analyst.sql` is allowed by the policy and runs on a
/// real file, through the gateway (policy, authorizer, limits and linear builtins).
#[tokio::test]
async fn the_analyst_corpus_is_allowed_and_runs() {
    let _serial = SERIAL.lock().await;
    let (_dir, path) = analyst_fixture();
    let gw = Gateway::new(client_config());
    let id = connect(&gw, &path).await;
    let text = include_str!("corpus/sqlite_analyst.sql");
    let queries: Vec<String> = text
        .split(";\n")
        .map(|q| {
            q.lines()
                .filter(|l| !l.starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|q| !q.trim().is_empty())
        .collect();
    assert!(queries.len() >= 100, "{} queries", queries.len());
    let mut failures = Vec::new();
    for q in &queries {
        if let Err(e) = gw.execute_query(&id, q, &[], None).await {
            failures.push(format!("{q}\n    -> {}: {e}", e.code()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n")
    );
}

/// Issue 13: a catalog read runs under the statement timeout and stops when its call is
/// abandoned. A view over a runaway recursive CTE makes `get_table_stats`' row count
/// endless.
#[tokio::test]
async fn catalog_reads_stop_at_the_timeout_and_when_abandoned() {
    let _serial = SERIAL.lock().await;
    let (_dir, path) = fixture();
    rusqlite::Connection::open(&path)
        .expect("open")
        .execute_batch(
            "CREATE VIEW forever AS WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT n FROM c;",
        )
        .expect("view");
    let mut limits = client_config().limits;
    limits.pool_max_size = 1;
    limits.statement_timeout_ms = 300;
    let b = SqliteBackend::connect(&path, &limits, &Policy::default())
        .await
        .expect("opens");
    let started = std::time::Instant::now();
    let e = b
        .table_stats("forever", 300)
        .await
        .expect_err("an endless count");
    assert_eq!(e.code(), "timeout", "{e}");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    // Abandoned long before its (60 s) timeout: the worker stops at once.
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        b.table_stats("forever", 60_000),
    )
    .await;
    assert!(abandoned.is_err(), "abandoned while running");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let before = cpu_time();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let burnt = cpu_time() - before;
    assert!(
        burnt < std::time::Duration::from_millis(300),
        "the abandoned catalog read still runs: {burnt:?} of CPU in 600 ms"
    );
    // The one pooled connection is free again for the other catalog reads.
    let tables = b.list_tables(100).await.expect("list after");
    assert!(tables.iter().any(|t| t.name == "forever"), "{tables:?}");
    let d = b.describe_table("servers").await.expect("describe after");
    assert_eq!(d.columns.len(), 6);
}
