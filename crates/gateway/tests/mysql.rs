//! The gateway over a real MariaDB, connected as a user granted ALL on its database: every
//! write and side-effect attempt must leave the database unchanged, with no named lock held
//! and no session left inside a transaction.

mod common;

use std::time::{Duration, Instant};

use common::mysql::MyFixture;
use common::{PASSWORD, client_config};
use dbward_gateway::backends::Caps;
use dbward_gateway::backends::mysql::MyBackend;
use dbward_gateway::{ConnectRequest, ConnectSpec, Gateway, GatewayConfig};
use secrecy::SecretString;
use serde_json::json;

async fn connect(gw: &Gateway, fx: &MyFixture) -> String {
    let info = gw
        .connect(ConnectRequest::Url(SecretString::from(fx.url())))
        .await
        .expect("connects");
    info.id.to_string()
}

async fn backend(fx: &MyFixture) -> MyBackend {
    let spec = ConnectSpec::from_url(&SecretString::from(fx.url())).expect("spec");
    MyBackend::connect(&spec, &GatewayConfig::default().limits)
        .await
        .expect("connect")
}

fn caps(timeout_ms: u64) -> Caps {
    Caps {
        max_rows: 10,
        max_bytes: 1 << 20,
        timeout_ms,
        lock_timeout_ms: 500,
        idle_in_transaction_timeout_ms: 5_000,
    }
}

/// A session of the fixture's owner for owner code to KILL, and its connection id.
async fn victim_session(fx: &MyFixture) -> (sqlx::MySqlConnection, i64) {
    use sqlx::Connection;
    let mut victim = sqlx::MySqlConnection::connect(&fx.url())
        .await
        .expect("victim");
    let id: i64 = sqlx::query_scalar("SELECT CAST(CONNECTION_ID() AS SIGNED)")
        .fetch_one(&mut victim)
        .await
        .expect("id");
    (victim, id)
}

/// Closed connections end on the server a moment after the client drops them.
async fn no_leftovers(fx: &MyFixture, lock: &str) {
    let started = Instant::now();
    loop {
        let l = fx.leftovers(lock).await;
        if l == (false, 0) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "lock held or transaction left open: {l:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn connection_string_is_masked_and_queries_return_typed_rows() {
    let fx = MyFixture::new().await;
    let gw = Gateway::new(client_config());
    let info = gw
        .connect(ConnectRequest::Url(SecretString::from(fx.url())))
        .await
        .expect("connects");
    assert_eq!(
        info.target.as_str(),
        format!("mysql://{}:****@127.0.0.1:3306/{}", fx.user, fx.db)
    );
    assert!(!info.target.as_str().contains(PASSWORD));
    assert!(
        info.server_version.contains("MariaDB"),
        "{}",
        info.server_version
    );
    let id = info.id.to_string();
    let r = gw
        .execute_query(
            &id,
            "SELECT d.name, COUNT(s.id) AS n, d.budget FROM departments d \
             JOIN servers s ON s.department_id = d.id \
             WHERE s.status = ? GROUP BY d.name, d.budget ORDER BY d.name",
            &[json!("active")],
            None,
        )
        .await
        .expect("runs");
    assert_eq!(r.columns.len(), 3);
    assert_eq!(r.columns[1].name, "n");
    assert_eq!(r.columns[1].type_name, "bigint");
    assert_eq!(r.columns[2].type_name, "decimal");
    assert_eq!(
        r.rows[0],
        vec![json!("Engineering"), json!(80), json!("1200000.50")]
    );
    assert_eq!(r.row_count, 3);
    assert!(!r.truncated);
    // An empty result still names its columns (from the prepare response).
    let r = gw
        .execute_query(
            &id,
            "SELECT id, hostname FROM servers WHERE id < 0",
            &[],
            None,
        )
        .await
        .expect("runs");
    assert_eq!(r.row_count, 0);
    assert_eq!(r.columns.len(), 2);
    assert_eq!(r.columns[1].name, "hostname");
    // Parameter count mismatches are the caller's error.
    let e = gw
        .execute_query(&id, "SELECT ? + ?", &[json!(1)], None)
        .await
        .expect_err("two placeholders, one parameter");
    assert_eq!(e.code(), "invalid_input", "{e}");
    let listed = serde_json::to_string(&gw.list_connections()).expect("json");
    assert!(!listed.contains(PASSWORD), "{listed}");
    gw.close_connection(&id).await.expect("closes");
    fx.drop().await;
}

#[tokio::test]
async fn bad_targets_give_clear_errors_without_secrets() {
    let fx = MyFixture::new().await;
    let gw = Gateway::new(client_config());
    for url in [
        // The right user with a wrong password (which embeds the real one).
        format!(
            "mysql://{}:wrong-{PASSWORD}@127.0.0.1:3306/{}",
            fx.user, fx.db
        ),
        format!(
            "mysql://nobody_{0}:{PASSWORD}@127.0.0.1:3306/{1}",
            std::process::id(),
            fx.db
        ),
        format!("mysql://u:{PASSWORD}@no-such-host.invalid:3306/db"),
        format!("mysql://u:{PASSWORD}@127.0.0.1:1/db"),
    ] {
        let e = gw
            .connect(ConnectRequest::Url(SecretString::from(url)))
            .await
            .expect_err("must fail");
        let text = format!("{e} {e:?}");
        assert_eq!(e.code(), "connection_unavailable", "{text}");
        assert!(!text.contains(PASSWORD), "{text}");
    }
    fx.drop().await;
}

#[tokio::test]
async fn every_listed_type_becomes_faithful_json() {
    let fx = MyFixture::new().await;
    fx.owner_exec(
        "CREATE TABLE typed (
           ti TINYINT, si SMALLINT, mi MEDIUMINT, i INT, bi BIGINT,
           uti TINYINT UNSIGNED, ubi BIGINT UNSIGNED, dc DECIMAL(22,4), f FLOAT, d DOUBLE,
           vc VARCHAR(20), tx TEXT, vcb VARCHAR(20) COLLATE utf8mb4_bin, bl BLOB,
           vb VARBINARY(8), bn BINARY(2), j JSON, dt DATE, tm TIME(6), dtt DATETIME(6),
           ts TIMESTAMP NULL, yr YEAR, e ENUM('red', 'green'), st SET('a', 'b'), bt BIT(12),
           n INT NULL, b BOOLEAN);
         INSERT INTO typed VALUES (
           -128, -32768, -8388608, -2147483648, -9223372036854775807,
           255, 18446744073709551615, 123456789012345678.0100, 1.5, 2.25,
           'héllo', 'long text', 'Bin-Text', x'00ff10',
           x'cafe', x'0102', '{\"a\": [1, 2], \"b\": null}', '2025-01-02', '-26:03:04.5',
           '2025-01-02 03:04:05.123456', '2025-06-07 08:09:10', 2025, 'green', 'a,b', b'101',
           NULL, TRUE);",
    )
    .await;
    let gw = Gateway::new(client_config());
    let id = connect(&gw, &fx).await;
    let r = gw
        .execute_query(&id, "SELECT * FROM typed", &[], None)
        .await
        .expect("runs");
    let row = &r.rows[0];
    let types: Vec<&str> = r.columns.iter().map(|c| c.type_name.as_str()).collect();
    let expected = [
        ("ti", "tinyint", json!(-128)),
        ("si", "smallint", json!(-32768)),
        ("mi", "mediumint", json!(-8388608)),
        ("i", "int", json!(-2147483648i64)),
        ("bi", "bigint", json!(-9223372036854775807i64)),
        ("uti", "tinyint unsigned", json!(255)),
        ("ubi", "bigint unsigned", json!(18446744073709551615u64)),
        ("dc", "decimal", json!("123456789012345678.0100")),
        ("f", "float", json!(1.5)),
        ("d", "double", json!(2.25)),
        ("vc", "varchar", json!("héllo")),
        ("tx", "text", json!("long text")),
        ("vcb", "varchar", json!("Bin-Text")),
        ("bl", "blob", json!("AP8Q")),
        ("vb", "varbinary", json!("yv4=")),
        ("bn", "binary", json!("AQI=")),
        ("j", "json", json!({"a": [1, 2], "b": null})),
        ("dt", "date", json!("2025-01-02")),
        ("tm", "time", json!("-26:03:04.500000")),
        ("dtt", "datetime", json!("2025-01-02 03:04:05.123456")),
        ("ts", "timestamp", json!("2025-06-07 08:09:10")),
        ("yr", "year", json!(2025)),
        ("e", "enum", json!("green")),
        // The protocol sends SET as a string type with a flag sqlx does not name.
        ("st", "char", json!("a,b")),
        ("bt", "bit", json!(5)),
        ("n", "int", json!(null)),
        ("b", "boolean", json!(1)),
    ];
    assert_eq!(r.columns.len(), expected.len());
    for (i, (name, ty, value)) in expected.iter().enumerate() {
        assert_eq!(r.columns[i].name, *name);
        assert_eq!(types[i], *ty, "type of {name}: {types:?}");
        assert_eq!(row[i], *value, "value of {name}");
    }
    // Expressions, unsigned arithmetic, and bound parameters of each JSON kind.
    let r = gw
        .execute_query(
            &id,
            "SELECT CAST(18446744073709551615 AS UNSIGNED), 1.10, ?, ?, ?, ?, NULL, \
                    DATE '2024-02-29', JSON_EXTRACT('{\"k\": 7}', '$.k')",
            &[json!(42), json!("text"), json!(true), json!(0.5)],
            None,
        )
        .await
        .expect("runs");
    let row = &r.rows[0];
    assert_eq!(row[0], json!(18446744073709551615u64));
    assert_eq!(row[1], json!("1.10"));
    assert_eq!(row[2], json!(42));
    assert_eq!(row[3], json!("text"));
    assert_eq!(row[4], json!(1));
    assert_eq!(row[5], json!(0.5));
    assert_eq!(row[6], json!(null));
    assert_eq!(row[7], json!("2024-02-29"));
    // MariaDB's JSON functions return text: only declared JSON columns are parsed.
    assert_eq!(row[8], json!("7"));
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

#[tokio::test]
async fn caps_truncate_and_the_connection_stays_usable() {
    let fx = MyFixture::new().await;
    let gw = Gateway::new(client_config());
    let id = connect(&gw, &fx).await;
    // 1,000,000 rows on the server; 1,000 come back.
    let r = gw
        .execute_query(
            &id,
            "SELECT a.id, b.id FROM incidents a CROSS JOIN incidents b ORDER BY a.id, b.id",
            &[],
            Some(1_000),
        )
        .await
        .expect("runs");
    assert_eq!(r.row_count, 1_000);
    assert!(r.truncated);
    assert_eq!(r.rows[999], vec![json!(1), json!(1000)]);
    // The byte cap cuts too.
    let mut cfg = client_config();
    cfg.limits.max_bytes = 10_000;
    let small = Gateway::new(cfg);
    let sid = connect(&small, &fx).await;
    let r = small
        .execute_query(&sid, "SELECT note FROM incidents ORDER BY id", &[], None)
        .await
        .expect("runs");
    assert!(r.truncated);
    assert!(r.row_count > 0 && r.row_count < 1_000, "{}", r.row_count);
    small.close_connection(&sid).await.expect("close");
    // The next queries on the same gateway work, again and again (closed connections are
    // replaced; pooled ones were left clean).
    for _ in 0..8 {
        let r = gw
            .execute_query(&id, "SELECT COUNT(*) FROM incidents", &[], None)
            .await
            .expect("ok");
        assert_eq!(r.rows[0][0], json!(1000));
        assert!(!r.truncated);
    }
    let e = gw
        .execute_query(&id, "SELECT 1", &[], Some(0))
        .await
        .expect_err("bad limit");
    assert_eq!(e.code(), "invalid_input");
    no_leftovers(&fx, "none").await;
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

/// Every attempt here must fail (refused by the policy, or by the database) and change
/// nothing.
const ATTACKS: &[&str] = &[
    "DELETE FROM servers",
    "SELECT 1; DROP TABLE servers",
    "/*!50000 DROP TABLE servers */",
    "SELECT 1 /*!50000 ; DROP TABLE servers */",
    "SELECT SLEEP(30)",
    "SELECT BENCHMARK(100000000, MD5('x'))",
    "SELECT GET_LOCK('x', 1)",
    "SELECT * FROM servers FOR UPDATE",
    "SELECT * FROM servers LOCK IN SHARE MODE",
    "SELECT LOAD_FILE('/etc/passwd')",
    "SELECT * FROM secrets INTO OUTFILE '/tmp/dbward_stolen.txt'",
    "SELECT api_key FROM secrets INTO DUMPFILE '/tmp/dbward_stolen.bin'",
    "SELECT bump()",
    "SELECT NEXTVAL(ticket_seq)",
    "CREATE TABLE x (a int)",
    "TRUNCATE servers",
    "UPDATE servers SET status = 'gone'",
    "INSERT INTO secrets (service) VALUES ('x')",
    "DELETE FROM servers RETURNING id",
    "SET SESSION TRANSACTION READ WRITE",
    "COMMIT",
    "DO SLEEP(1)",
    "CALL nothing()",
    "SELECT * FROM mysql.user",
];

#[tokio::test]
async fn write_and_side_effect_attempts_change_nothing() {
    let fx = MyFixture::new().await;
    let before = fx.fingerprint().await;
    let gw = Gateway::new(client_config());
    let id = connect(&gw, &fx).await;
    for sql in ATTACKS {
        let e = gw.execute_query(&id, sql, &[], None).await.expect_err(sql);
        assert!(
            matches!(
                e.code(),
                "policy_refused" | "read_only_violation" | "permission_denied"
            ),
            "{sql}: {e}"
        );
    }
    // A stored function is refused before it runs (its declared characteristics are not
    // enforced by MySQL, so the gateway does not trust them).
    let e = gw
        .execute_query(&id, "SELECT bump()", &[], None)
        .await
        .expect_err("stored function");
    assert_eq!(e.rule(), Some("function.volatile"), "{e}");
    // A legitimate query still works afterwards on the same pool.
    let r = gw
        .execute_query(&id, "SELECT COUNT(*) FROM incidents", &[], None)
        .await
        .expect("ok");
    assert_eq!(r.rows[0][0], json!(1000));
    assert_eq!(fx.fingerprint().await, before);
    assert!(!std::path::Path::new("/tmp/dbward_stolen.txt").exists());
    no_leftovers(&fx, "x").await;
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

/// The database layer alone (policy bypassed: the backend called directly) still refuses
/// writes, DDL, multiple statements and statements without a result set, and leaves no
/// lock behind.
#[tokio::test]
async fn database_enforcement_holds_without_the_policy() {
    let fx = MyFixture::new().await;
    let before = fx.fingerprint().await;
    let backend = backend(&fx).await;
    assert!(backend.is_mariadb());
    for sql in [
        "DELETE FROM servers",
        "UPDATE servers SET status = 'gone'",
        "SELECT 1; DELETE FROM servers",
        "SELECT 1; UPDATE servers SET status = 'gone'",
        // Statements that return rows reach the read-only transaction itself.
        "DELETE FROM servers RETURNING id",
        "SELECT * FROM servers FOR UPDATE",
        "SELECT bump()",
        "SELECT NEXTVAL(ticket_seq)",
        "SELECT SETVAL(ticket_seq, 1000)",
        // DDL commits implicitly; the session's read-only mode still refuses it.
        "CREATE TABLE x (a int)",
        "TRUNCATE secrets",
        "DROP TABLE secrets",
        "ALTER TABLE servers ADD COLUMN x INT",
        "CREATE TABLE stolen AS SELECT * FROM secrets",
        // Session changes and other statements without a result set.
        "SET SESSION TRANSACTION READ WRITE",
        "SET SESSION max_statement_time = 0",
        "COMMIT",
        "DO GET_LOCK('dbward_do', 0)",
        "SELECT * FROM secrets INTO OUTFILE '/tmp/dbward_direct.txt'",
    ] {
        let e = backend.execute(sql, &[], caps(2_000)).await.expect_err(sql);
        assert!(
            matches!(
                e.code(),
                "read_only_violation" | "syntax_error" | "invalid_input" | "permission_denied"
            ),
            "{sql}: {e:?}"
        );
    }
    // Plain writes are refused by the server's read-only transaction, not only by the
    // result-set check: with RETURNING the statement has columns and still fails there.
    let e = backend
        .execute("DELETE FROM servers RETURNING id", &[], caps(2_000))
        .await
        .expect_err("read-only transaction");
    assert_eq!(e.code(), "read_only_violation", "{e:?}");
    let e = backend
        .execute("SELECT 1; DELETE FROM servers", &[], caps(2_000))
        .await
        .expect_err("one statement per prepare");
    assert_eq!(e.code(), "syntax_error", "{e:?}");
    // A named lock taken by a query does not outlive it.
    let r = backend
        .execute("SELECT GET_LOCK('dbward_lock', 0)", &[], caps(2_000))
        .await
        .expect("runs when the policy is bypassed");
    assert_eq!(r.rows[0][0], json!(1));
    no_leftovers(&fx, "dbward_lock").await;
    no_leftovers(&fx, "dbward_do").await;
    assert_eq!(fx.fingerprint().await, before);
    assert!(!std::path::Path::new("/tmp/dbward_direct.txt").exists());
    // And the pool still serves reads.
    let r = backend
        .execute("SELECT COUNT(*) FROM servers", &[], caps(2_000))
        .await
        .expect("reads");
    assert_eq!(r.rows[0][0], json!(300));
    backend.close().await;
    fx.drop().await;
}

#[tokio::test]
async fn statement_timeout_cancels_on_the_server() {
    let fx = MyFixture::new().await;
    let backend = backend(&fx).await;
    let started = Instant::now();
    let e = backend
        .execute("SELECT SLEEP(5)", &[], caps(1_000))
        .await
        .expect_err("times out");
    assert_eq!(e.code(), "timeout", "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // A query that lifts its own server timeout still ends at the client deadline, and its
    // server thread is killed.
    let started = Instant::now();
    let e = backend
        .execute(
            "SET STATEMENT max_statement_time = 1000 FOR SELECT SLEEP(20)",
            &[],
            caps(1_000),
        )
        .await
        .expect_err("times out");
    assert_eq!(e.code(), "timeout", "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    no_leftovers(&fx, "none").await;
    let mut admin = common::mysql::my_admin().await;
    let mut sleeping = i64::MAX;
    for _ in 0..50 {
        sleeping = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
             WHERE USER = ? AND INFO LIKE '%SLEEP(20)%'",
        )
        .bind(&fx.user)
        .fetch_one(&mut admin)
        .await
        .expect("processlist");
        if sleeping == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sleeping, 0, "the server thread was not killed");
    // The pool recovers.
    let r = backend
        .execute("SELECT 1", &[], caps(1_000))
        .await
        .expect("runs");
    assert_eq!(r.rows[0][0], json!(1));
    backend.close().await;
    fx.drop().await;
}

#[tokio::test]
async fn catalog_tools() {
    let fx = MyFixture::new().await;
    let gw = Gateway::new(client_config());
    let id = connect(&gw, &fx).await;
    let expected = [
        "applications",
        "bump_log",
        "departments",
        "incidents",
        "secrets",
        "servers",
    ];
    for schema in [None, Some(fx.db.as_str())] {
        let tables = gw.list_tables(&id, schema).await.expect("tables");
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, expected);
        assert!(
            tables
                .iter()
                .all(|t| t.schema == fx.db && t.kind == "table")
        );
    }
    let none = gw.list_tables(&id, Some("mysql")).await.expect("tables");
    assert!(none.is_empty(), "system schemas are not listed: {none:?}");
    let d = gw
        .describe_table(&id, None, "servers")
        .await
        .expect("describe");
    assert_eq!(d.schema, fx.db);
    assert_eq!(d.primary_key, ["id"]);
    assert_eq!(d.foreign_keys.len(), 1);
    assert_eq!(d.foreign_keys[0].column, "department_id");
    assert_eq!(d.foreign_keys[0].references_table, "departments");
    assert_eq!(d.foreign_keys[0].references_column, "id");
    assert!(
        d.indexes
            .iter()
            .any(|i| i.contains("servers_department_idx") && i.contains("`department_id`")),
        "{:?}",
        d.indexes
    );
    assert!(
        d.indexes.iter().any(|i| i == "PRIMARY KEY (`id`)"),
        "{:?}",
        d.indexes
    );
    let status = d
        .columns
        .iter()
        .find(|c| c.name == "status")
        .expect("status");
    assert_eq!(status.type_name, "varchar(20)");
    assert_eq!(status.default.as_deref(), Some("'active'"));
    assert_eq!(status.comment.as_deref(), Some("lifecycle state"));
    assert!(!status.nullable);
    let meta = d.columns.iter().find(|c| c.name == "meta").expect("meta");
    assert_eq!(meta.type_name, "json");
    assert!(meta.nullable);
    let d = gw
        .describe_table(&id, Some(&fx.db), "departments")
        .await
        .expect("describe");
    assert_eq!(d.comment.as_deref(), Some("Organisational units"));
    assert!(
        d.indexes.iter().any(|i| i.starts_with("UNIQUE KEY `name`")),
        "{:?}",
        d.indexes
    );
    for bad in ["servers; DROP TABLE x", "nope", "SERVERS`"] {
        let e = gw
            .describe_table(&id, None, bad)
            .await
            .expect_err("no such table");
        assert_eq!(e.code(), "unknown_table", "{bad}: {e}");
    }
    let e = gw
        .describe_table(&id, Some("mysql"), "user")
        .await
        .expect_err("not visible to this user");
    assert_eq!(e.code(), "unknown_table");
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

#[tokio::test]
async fn catalog_tools_read_table_explain_and_posture() {
    use dbward_gateway::tools::read_table::{Filter, FilterOp, OrderBy, ReadTableRequest};
    let fx = MyFixture::new().await;
    let gw = Gateway::new(client_config());
    let id = connect(&gw, &fx).await;
    let found = gw.search_tables(&id, "host").await.expect("search");
    assert!(
        found
            .iter()
            .any(|m| m.table == "servers" && m.column.as_deref() == Some("hostname")),
        "{found:?}"
    );
    assert!(
        gw.search_tables(&id, "_")
            .await
            .expect("search")
            .iter()
            .all(|m| {
                m.table.contains('_') || m.column.as_deref().is_some_and(|c| c.contains('_'))
            })
    );
    let stats = gw
        .get_table_stats(&id, None, "servers")
        .await
        .expect("stats");
    assert!(
        stats.indexes.iter().any(|i| i.name == "PRIMARY"),
        "{stats:?}"
    );
    let plan = gw
        .explain_query(&id, "SELECT * FROM servers WHERE id = 3", false)
        .await
        .expect("explain");
    assert!(plan.plan.get("query_block").is_some(), "{}", plan.plan);
    let r = gw
        .read_table(
            &id,
            &ReadTableRequest {
                table: "servers".into(),
                columns: Some(vec!["id".into(), "hostname".into()]),
                filters: vec![
                    Filter {
                        column: "id".into(),
                        op: FilterOp::Le,
                        value: Some(json!(3)),
                    },
                    Filter {
                        column: "hostname".into(),
                        op: FilterOp::Ilike,
                        value: Some(json!("SRV-%")),
                    },
                ],
                order_by: vec![OrderBy {
                    column: "id".into(),
                    descending: true,
                }],
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .expect("read_table");
    assert_eq!(
        r.rows.iter().map(|row| row[0].clone()).collect::<Vec<_>>(),
        [json!(3), json!(2)]
    );
    assert!(r.truncated);
    let p = gw.security_posture(&id).await.expect("posture");
    assert!(
        p.role.can_write,
        "the owner holds ALL on its database: {p:?}"
    );
    assert!(p.role.role.starts_with(&fx.user), "{p:?}");
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

#[tokio::test]
async fn repeated_login_failures_block_the_principal() {
    let fx = MyFixture::new().await;
    let gw = Gateway::new(common::client_config_detecting());
    let wrong = fx.url().replace(PASSWORD, "not-the-password");
    for _ in 0..5 {
        let e = gw
            .connect(ConnectRequest::Url(SecretString::from(wrong.clone())))
            .await
            .expect_err("wrong password");
        assert_eq!(e.code(), "connection_unavailable");
    }
    let e = gw
        .connect(ConnectRequest::Url(SecretString::from(fx.url())))
        .await
        .expect_err("blocked after five failed logins");
    assert_eq!(e.code(), "blocked", "{e}");
    fx.drop().await;
}

#[path = "mysql/analyst.rs"]
mod analyst;
#[path = "mysql/catalog_bounds.rs"]
mod catalog_bounds;
#[path = "mysql/grants.rs"]
mod grants;
#[path = "mysql/hardening.rs"]
mod hardening;
#[path = "mysql/races.rs"]
mod races;
#[path = "mysql/views.rs"]
mod views;

/// Connecting reads the version and the user's posture on the one session it opens:
/// start-up pays for one connect, not one per start-up query.
#[tokio::test]
async fn connecting_opens_one_session() {
    let fx = MyFixture::new().await;
    let gw = Gateway::new(client_config());
    let id = connect(&gw, &fx).await;
    let mut admin = common::mysql::my_admin().await;
    let (sessions,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ?")
            .bind(&fx.user)
            .fetch_one(&mut admin)
            .await
            .expect("sessions");
    assert_eq!(sessions, 1, "sessions opened by connect");
    let info = gw
        .list_connections()
        .into_iter()
        .find(|c| c.id.to_string() == id)
        .expect("listed");
    assert!(!info.role.is_empty(), "the posture was read: {info:?}");
    gw.close_connection(&id).await.expect("close");
}
