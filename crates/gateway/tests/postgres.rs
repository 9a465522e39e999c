//! The gateway over a real PostgreSQL, connected as the database owner: every write and
//! side-effect attempt must leave the database byte-for-byte unchanged, with no lock held
//! and no session idle in a transaction.

mod common;

use common::{PASSWORD, PgFixture, client_config};
use dbward_gateway::backends::Caps;
use dbward_gateway::backends::postgres::PgBackend;
use dbward_gateway::{ConnectRequest, ConnectSpec, Gateway, GatewayConfig, GatewayError};
use secrecy::SecretString;
use serde_json::json;
use sqlx::Connection;

/// The backend itself, without the gateway (and so without the policy).
async fn direct_backend(fx: &PgFixture) -> PgBackend {
    let spec = ConnectSpec::from_url(&SecretString::from(fx.url())).expect("spec");
    PgBackend::connect(&spec, &GatewayConfig::default().limits)
        .await
        .expect("connect")
}

#[tokio::test]
async fn connection_string_is_masked_and_queries_return_typed_rows() {
    let fx = PgFixture::new().await;
    let gw = Gateway::new(client_config());
    let info = gw
        .connect(ConnectRequest::Url(SecretString::from(fx.url())))
        .await
        .expect("connects");
    assert_eq!(
        info.target.as_str(),
        format!("postgresql://{}:****@127.0.0.1:5432/{}", fx.role, fx.db)
    );
    assert_eq!(info.id.as_str().len(), 32);
    assert!(info.server_version.starts_with("PostgreSQL"));
    assert_eq!(info.role, fx.role);
    assert!(
        info.role_can_write,
        "the owner can write, and the metadata says so"
    );
    let id = info.id.to_string();
    let r = gw
        .execute_query(
            &id,
            "SELECT d.name, count(s.id) AS n, d.budget FROM departments d JOIN servers s ON s.department_id = d.id \
             WHERE s.status = $1 GROUP BY d.name, d.budget ORDER BY d.name",
            &[json!("active")],
            None,
        )
        .await
        .expect("runs");
    assert_eq!(r.columns.len(), 3);
    assert_eq!(r.columns[1].type_name, "int8");
    assert_eq!(r.columns[2].type_name, "numeric");
    assert_eq!(
        r.rows[0],
        vec![json!("Engineering"), json!(80), json!("1200000.50")]
    );
    assert_eq!(r.row_count, 3);
    assert!(!r.truncated);
    let listed = serde_json::to_string(&gw.list_connections()).expect("json");
    assert!(!listed.contains(PASSWORD), "{listed}");
    gw.close_connection(&id).await.expect("closes");
    assert!(matches!(
        gw.execute_query(&id, "SELECT 1", &[], None).await,
        Err(GatewayError::UnknownConnection)
    ));
    fx.drop().await;
}

#[tokio::test]
async fn named_connection_takes_credentials_from_the_environment() {
    let fx = PgFixture::new().await;
    let var = format!("DBWARD_TEST_CREDS_{}", std::process::id());
    // SAFETY: the variable name is unique to this test and nothing else reads or writes it.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(&var, format!("{}:{PASSWORD}", fx.role))
    };
    let cfg = GatewayConfig::from_json(&format!(
        r#"{{"connections": {{"cmdb": {{"type": "postgresql", "host": "127.0.0.1", "port": 5432,
             "database": "{}", "credentialsEnv": "{var}"}}}}}}"#,
        fx.db
    ))
    .expect("config");
    let gw = Gateway::new(cfg);
    let info = gw
        .connect(ConnectRequest::Named("cmdb".into()))
        .await
        .expect("named connect");
    assert_eq!(info.name.as_deref(), Some("cmdb"));
    assert!(!info.target.as_str().contains(PASSWORD));
    // Client-supplied strings are off by default.
    let e = gw
        .connect(ConnectRequest::Url(SecretString::from(fx.url())))
        .await
        .expect_err("client connections are disabled");
    assert_eq!(e.code(), "client_connections_disabled");
    assert!(!e.to_string().contains(PASSWORD));
    gw.close_connection(info.id.as_str()).await.expect("close");
    fx.drop().await;
}

#[tokio::test]
async fn bad_targets_give_clear_errors_without_secrets() {
    let gw = Gateway::new(client_config());
    for url in [
        format!(
            "postgresql://nobody_{0}:{PASSWORD}@127.0.0.1:5432/postgres",
            std::process::id()
        ),
        format!("postgresql://u:{PASSWORD}@no-such-host.invalid:5432/db"),
        format!("postgresql://u:{PASSWORD}@127.0.0.1:1/db"),
        // This server has no TLS: verify-full must fail, never fall back to clear text.
        format!("postgresql://postgres:{PASSWORD}@127.0.0.1:5432/postgres?sslmode=verify-full"),
    ] {
        let e = gw
            .connect(ConnectRequest::Url(SecretString::from(url)))
            .await
            .expect_err("must fail");
        let text = format!("{e} {e:?}");
        assert_eq!(e.code(), "connection_unavailable", "{text}");
        assert!(!text.contains(PASSWORD), "{text}");
    }
}

/// Every attempt here must fail (refused, or refused by the database) and change nothing.
const ATTACKS: &[&str] = &[
    "DELETE FROM servers",
    "COMMIT; DROP TABLE servers",
    "WITH d AS (DELETE FROM incidents RETURNING *) SELECT count(*) FROM d",
    "EXPLAIN ANALYZE DELETE FROM incidents",
    "SELECT * INTO stolen FROM secrets",
    "SELECT * FROM servers FOR UPDATE",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT nextval('ticket_seq')",
    "SELECT bump()",
    "SELECT pg_advisory_lock(42)",
    "SELECT pg_sleep(30)",
    "SELECT * FROM pg_read_file('/etc/passwd')",
    "SELECT query_to_xml('DELETE FROM servers', true, true, '')",
    "SELECT repeat(repeat(repeat('x', 1000), 1000), 1000)",
    "CREATE TABLE x (a int)",
    "TRUNCATE servers",
    "DO $$ BEGIN DELETE FROM servers; END $$",
    "SELECT * FROM pg_authid",
];

#[tokio::test]
async fn write_and_side_effect_attempts_change_nothing() {
    let fx = PgFixture::new().await;
    let before = fx.fingerprint().await;
    let gw = Gateway::new(client_config());
    let id = common::pg_connect(&gw, &fx).await;
    for sql in ATTACKS {
        let r = gw.execute_query(&id, sql, &[], None).await;
        let e = r.expect_err(sql);
        assert!(
            matches!(
                e.code(),
                "policy_refused" | "read_only_violation" | "permission_denied"
            ),
            "{sql}: {e}"
        );
    }
    // A legitimate query still works afterwards on the same pool.
    let r = gw
        .execute_query(&id, "SELECT count(*) FROM incidents", &[], None)
        .await
        .expect("ok");
    assert_eq!(r.rows[0][0], json!(1000));
    assert_eq!(fx.fingerprint().await, before);
    assert_eq!(fx.leftovers().await, (0, 0));
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

/// The database layer alone (policy bypassed: the backend called directly) still refuses
/// writes, multiple statements and lingering locks.
#[tokio::test]
async fn database_enforcement_holds_without_the_policy() {
    let fx = PgFixture::new().await;
    let before = fx.fingerprint().await;
    let backend = direct_backend(&fx).await;
    let caps = Caps {
        max_rows: 10,
        max_bytes: 1 << 20,
        timeout_ms: 1_000,
        lock_timeout_ms: 500,
        idle_in_transaction_timeout_ms: 5_000,
    };
    for sql in [
        "DELETE FROM servers RETURNING id",
        "SELECT 1; DELETE FROM servers",
        "SELECT nextval('ticket_seq')",
        "SELECT bump()",
        "SELECT set_config('default_transaction_read_only', 'off', false), bump()",
    ] {
        let e = backend.execute(sql, &[], caps).await.expect_err(sql);
        assert!(
            matches!(
                e.code(),
                "read_only_violation" | "syntax_error" | "database_error"
            ),
            "{sql}: {e:?}"
        );
    }
    // A session setting changed by a query (set_config with is_local = false) does not
    // outlive it: the rollback undoes it.
    backend
        .execute("SELECT set_config('work_mem', '77MB', false)", &[], caps)
        .await
        .expect("runs when the policy is bypassed");
    let shown = backend
        .execute_utility("SHOW work_mem", caps)
        .await
        .expect("show");
    assert_ne!(
        shown.rows[0][0],
        json!("77MB"),
        "the setting was rolled back"
    );
    // A session-level advisory lock taken by a query does not outlive it.
    backend
        .execute("SELECT pg_advisory_lock(7)", &[], caps)
        .await
        .expect("runs when the policy is bypassed");
    assert_eq!(fx.leftovers().await, (0, 0));
    // statement_timeout cancels on the server.
    let e = backend
        .execute("SELECT pg_sleep(20)", &[], caps)
        .await
        .expect_err("times out");
    assert_eq!(e.code(), "timeout", "{e:?}");
    // Cancelled on the server, not just abandoned: nothing still sleeping or idle in a
    // transaction.
    let mut admin = common::pg_admin().await;
    let running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE '%pg_sleep(20)%' AND state = 'active'",
    )
    .bind(&fx.db)
    .fetch_one(&mut admin)
    .await
    .expect("activity");
    assert_eq!(running, 0);
    assert_eq!(fx.leftovers().await, (0, 0));
    // A row cap beyond what FETCH can count (an int4) still runs: the count is clamped.
    let r = backend
        .execute(
            "SELECT g FROM generate_series(1, 3) g",
            &[],
            Caps {
                max_rows: usize::MAX,
                ..caps
            },
        )
        .await
        .expect("a huge row cap");
    assert_eq!((r.row_count, r.truncated), (3, false));
    assert_eq!(fx.fingerprint().await, before);
    backend.close().await;
    fx.drop().await;
}

#[tokio::test]
async fn caps_truncate_and_memory_is_bounded_by_the_cap() {
    let fx = PgFixture::new().await;
    let gw = Gateway::new(client_config());
    let id = common::pg_connect(&gw, &fx).await;
    let r = gw
        .execute_query(
            &id,
            "SELECT g, md5(g::text) FROM generate_series(1, 1000000) g",
            &[],
            Some(1_000),
        )
        .await
        .expect("runs");
    assert_eq!(r.row_count, 1_000);
    assert!(r.truncated);
    assert_eq!(r.rows[999][0], json!(1000));
    let e = gw
        .execute_query(&id, "SELECT 1", &[], Some(0))
        .await
        .expect_err("bad limit");
    assert_eq!(e.code(), "invalid_input");
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

#[tokio::test]
async fn every_listed_type_becomes_faithful_json() {
    let fx = PgFixture::new().await;
    let gw = Gateway::new(client_config());
    let id = common::pg_connect(&gw, &fx).await;
    let r = gw
        .execute_query(
            &id,
            "SELECT 42::int2, 2147483647::int4, 9007199254740993::int8, 1.10::numeric, 'héllo'::text, \
                    true, '\\x00ff'::bytea, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, \
                    '10.0.0.1/32'::inet, '10.0.0.0/8'::cidr, '{\"a\": [1, 2]}'::json, '{\"b\": null}'::jsonb, \
                    ARRAY[1, NULL, 3], ARRAY['x y', 'z'], DATE '2025-01-02', TIME '03:04:05', \
                    TIMESTAMP '2025-01-02 03:04:05', TIMESTAMPTZ '2025-01-02 03:04:05+00', \
                    INTERVAL '1 day 2 hours', NULL::text, 1.5::float8, 'sad'::mood",
            &[],
            None,
        )
        .await
        .expect("runs");
    let row = &r.rows[0];
    assert_eq!(row[0], json!(42));
    assert_eq!(row[1], json!(2147483647));
    assert_eq!(row[2], json!(9007199254740993i64));
    assert_eq!(row[3], json!("1.10"));
    assert_eq!(row[4], json!("héllo"));
    assert_eq!(row[5], json!(true));
    assert_eq!(row[6], json!("AP8="));
    assert_eq!(row[7], json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    assert_eq!(row[8], json!("10.0.0.1"));
    assert_eq!(row[9], json!("10.0.0.0/8"));
    assert_eq!(row[10], json!({"a": [1, 2]}));
    assert_eq!(row[11], json!({"b": null}));
    assert_eq!(row[12], json!([1, null, 3]));
    assert_eq!(row[13], json!(["x y", "z"]));
    assert_eq!(row[14], json!("2025-01-02"));
    assert_eq!(row[15], json!("03:04:05"));
    assert_eq!(row[16], json!("2025-01-02 03:04:05"));
    assert!(
        row[17]
            .as_str()
            .is_some_and(|s| s.starts_with("2025-01-02"))
    );
    assert_eq!(row[18], json!("1 day 02:00:00"));
    assert_eq!(row[19], json!(null));
    assert_eq!(row[20], json!(1.5));
    assert_eq!(row[21], json!("sad"));
    assert_eq!(r.columns[21].type_name, "mood");
    let types: Vec<&str> = r.columns.iter().map(|c| c.type_name.as_str()).collect();
    assert_eq!(&types[..4], &["int2", "int4", "int8", "numeric"]);
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

#[tokio::test]
async fn catalog_tools_and_volatility_check() {
    let fx = PgFixture::new().await;
    let gw = Gateway::new(client_config());
    let id = common::pg_connect(&gw, &fx).await;
    let tables = gw.list_tables(&id, Some("public")).await.expect("tables");
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "applications",
            "departments",
            "incidents",
            "secrets",
            "servers"
        ]
    );
    let d = gw
        .describe_table(&id, None, "servers")
        .await
        .expect("describe");
    assert_eq!(d.primary_key, ["id"]);
    assert_eq!(d.foreign_keys[0].references_table, "departments");
    assert!(
        d.indexes
            .iter()
            .any(|i| i.contains("servers_department_idx"))
    );
    let status = d
        .columns
        .iter()
        .find(|c| c.name == "status")
        .expect("status");
    assert_eq!(status.default.as_deref(), Some("'active'::text"));
    assert!(!status.nullable);
    let e = gw
        .describe_table(&id, None, "servers; DROP TABLE x")
        .await
        .expect_err("no such table");
    assert_eq!(e.code(), "unknown_table");
    // User-defined functions run only when allowlisted, whatever volatility they declare.
    for sql in ["SELECT shout('hi')", "SELECT bump()"] {
        let e = gw
            .execute_query(&id, sql, &[], None)
            .await
            .expect_err("user-defined");
        assert_eq!(e.rule(), Some("function.user_defined"), "{sql}");
    }
    gw.close_connection(&id).await.expect("close");
    let mut config = client_config();
    config.policy.allowed_functions = vec!["public.shout".into()];
    let gw = Gateway::new(config);
    let id = common::pg_connect(&gw, &fx).await;
    let r = gw
        .execute_query(&id, "SELECT shout('hi')", &[], None)
        .await
        .expect("allowlisted");
    assert_eq!(r.rows[0][0], json!("HI"));
    // A volatile builtin the policy has no rule for is still refused.
    let e = gw
        .execute_query(&id, "SELECT pg_stat_clear_snapshot()", &[], None)
        .await
        .expect_err("volatile builtin");
    assert_eq!(e.rule(), Some("function.volatile"), "{e}");
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

#[tokio::test]
async fn read_table_search_stats_explain_and_posture() {
    use dbward_gateway::tools::read_table::{Filter, FilterOp, OrderBy, ReadTableRequest};
    let fx = PgFixture::new().await;
    let gw = Gateway::new(client_config());
    let id = common::pg_connect(&gw, &fx).await;
    let req = ReadTableRequest {
        table: "servers".into(),
        columns: Some(vec!["id".into(), "hostname".into(), "status".into()]),
        filters: vec![
            Filter {
                column: "status".into(),
                op: FilterOp::Eq,
                value: Some(json!("retired")),
            },
            Filter {
                column: "id".into(),
                op: FilterOp::In,
                value: Some(json!([5, 10, 11, 15])),
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
        limit: Some(10),
        ..Default::default()
    };
    let r = gw.read_table(&id, &req).await.expect("read_table");
    let ids: Vec<_> = r.rows.iter().map(|row| row[0].clone()).collect();
    assert_eq!(ids, [json!(15), json!(10), json!(5)]);
    // Values are bound, never spliced: an injection-shaped value is just a string.
    let evil = ReadTableRequest {
        table: "servers".into(),
        filters: vec![Filter {
            column: "hostname".into(),
            op: FilterOp::Eq,
            value: Some(json!("x' OR '1'='1")),
        }],
        ..Default::default()
    };
    assert_eq!(gw.read_table(&id, &evil).await.expect("runs").row_count, 0);
    // Dates compare through the column's own type.
    let dated = ReadTableRequest {
        table: "incidents".into(),
        filters: vec![Filter {
            column: "opened_at".into(),
            op: FilterOp::Lt,
            value: Some(json!("2025-01-01 05:30:00+00")),
        }],
        ..Default::default()
    };
    assert_eq!(gw.read_table(&id, &dated).await.expect("runs").row_count, 5);
    for bad in [
        ReadTableRequest {
            table: "servers".into(),
            columns: Some(vec!["nope".into()]),
            ..Default::default()
        },
        ReadTableRequest {
            table: "servers".into(),
            limit: Some(101),
            ..Default::default()
        },
        ReadTableRequest {
            table: "no_such_table".into(),
            ..Default::default()
        },
    ] {
        let e = gw.read_table(&id, &bad).await.expect_err("bad request");
        assert!(matches!(e.code(), "invalid_input" | "unknown_table"), "{e}");
    }
    // The deny-list applies to read_table too.
    let e = gw
        .read_table(
            &id,
            &ReadTableRequest {
                table: "pg_authid".into(),
                ..Default::default()
            },
        )
        .await
        .expect_err("denied");
    assert!(
        matches!(e.code(), "policy_refused" | "unknown_table"),
        "{e}"
    );

    let found = gw.search_tables(&id, "depart").await.expect("search");
    assert!(
        found
            .iter()
            .any(|m| m.table == "departments" && m.column.is_none())
    );
    assert!(
        found
            .iter()
            .any(|m| m.table == "servers" && m.column.as_deref() == Some("department_id"))
    );
    let none = gw.search_tables(&id, "%").await.expect("search");
    assert!(
        none.is_empty(),
        "`%` is a literal character, not a wildcard: {none:?}"
    );
    assert_eq!(
        gw.search_tables(&id, &"x".repeat(101))
            .await
            .expect_err("too long")
            .code(),
        "invalid_input"
    );

    let stats = gw
        .get_table_stats(&id, None, "incidents")
        .await
        .expect("stats");
    assert!(stats.total_bytes.unwrap_or(0) > 0);
    assert_eq!(stats.columns.len(), 5);
    assert!(stats.indexes.iter().any(|i| i.name == "incidents_pkey"));

    let plan = gw
        .explain_query(&id, "SELECT * FROM servers WHERE department_id = 2", false)
        .await
        .expect("explain");
    assert!(
        plan.plan[0]["Plan"]["Node Type"].is_string(),
        "{}",
        plan.plan
    );
    let analyzed = gw
        .explain_query(&id, "SELECT count(*) FROM incidents", true)
        .await
        .expect("explain analyze");
    assert!(
        analyzed.plan[0]["Execution Time"].is_number(),
        "{}",
        analyzed.plan
    );
    let e = gw
        .explain_query(&id, "DELETE FROM servers", true)
        .await
        .expect_err("refused");
    assert_eq!(e.code(), "policy_refused");

    // SHOW runs through the utility path.
    let r = gw
        .execute_query(&id, "SHOW default_transaction_read_only", &[], None)
        .await
        .expect("show");
    assert_eq!(r.rows[0][0], json!("on"));

    // The owner can write: the posture says so.
    let p = gw.security_posture(&id).await.expect("posture");
    assert!(p.role.can_write && p.role.writable_tables >= 5, "{p:?}");
    assert!(!p.warnings.is_empty());
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

#[tokio::test]
async fn setup_role_sql_creates_a_role_that_cannot_write() {
    use dbward_gateway::tools::security_posture::setup_role_sql;
    let fx = PgFixture::new().await;
    let role = common::unique("dbward_reader");
    let sql = setup_role_sql(dbward_gateway::DbKind::Postgresql, &role, &fx.db)
        .replace("'change-me'", &format!("'{PASSWORD}'"));
    let mut admin_here =
        sqlx::PgConnection::connect(&format!("postgresql://postgres@127.0.0.1:5432/{}", fx.db))
            .await
            .expect("admin");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut admin_here)
        .await
        .expect("setup-role SQL runs");
    admin_here.close().await.ok();
    let gw = Gateway::new(client_config());
    let info = gw
        .connect(ConnectRequest::Url(SecretString::from(format!(
            "postgresql://{role}:{PASSWORD}@127.0.0.1:5432/{}",
            fx.db
        ))))
        .await
        .expect("reader connects");
    let p = gw
        .security_posture(info.id.as_str())
        .await
        .expect("posture");
    assert!(!p.role.can_write, "{p:?}");
    // Functions are executable by PUBLIC until the operator takes that away, as the
    // printed SQL explains: the posture says the role can run the owner's code.
    assert_eq!(p.role.executable_user_functions, Some(2), "{p:?}");
    assert!(
        p.warnings.len() == 2
            && p.warnings[0].contains("2 user-defined functions")
            && p.warnings[1].contains("catalog version is not installed"),
        "{:?}",
        p.warnings
    );
    let mut admin_here =
        sqlx::PgConnection::connect(&format!("postgresql://postgres@127.0.0.1:5432/{}", fx.db))
            .await
            .expect("admin");
    sqlx::raw_sql("REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC")
        .execute(&mut admin_here)
        .await
        .expect("revoke execute");
    admin_here.close().await.ok();
    let p = gw
        .security_posture(info.id.as_str())
        .await
        .expect("posture");
    assert_eq!(p.role.executable_user_functions, Some(0), "{p:?}");
    assert!(
        p.warnings.len() == 1 && p.warnings[0].contains("catalog version is not installed"),
        "{:?}",
        p.warnings
    );
    let r = gw
        .execute_query(info.id.as_str(), "SELECT count(*) FROM servers", &[], None)
        .await
        .expect("reads");
    assert_eq!(r.rows[0][0], json!(300));
    gw.close_connection(info.id.as_str()).await.expect("close");
    let mut admin = common::pg_admin().await;
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{0}'; \
         ",
        fx.db
    )))
    .execute(&mut admin)
    .await;
    fx.drop().await;
    // The database (and with it the role's grants) is gone; the role can go too.
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
        .execute(&mut admin)
        .await;
}

#[tokio::test]
async fn open_connections_are_limited_and_idle_ones_expire() {
    let fx = PgFixture::new().await;
    let mut cfg = client_config();
    cfg.limits.max_open_connections = 2;
    let gw = Gateway::new(cfg);
    let a = common::pg_connect(&gw, &fx).await;
    let _b = common::pg_connect(&gw, &fx).await;
    let e = gw
        .connect(ConnectRequest::Url(SecretString::from(fx.url())))
        .await
        .expect_err("third connection");
    assert_eq!(e.code(), "too_many_connections");
    gw.close_connection(&a).await.expect("close");
    let _c = common::pg_connect(&gw, &fx).await;
    assert_eq!(gw.list_connections().len(), 2);

    let mut cfg = client_config();
    cfg.limits.connection_idle_expiry_s = 0;
    let gw = Gateway::new(cfg);
    let old = common::pg_connect(&gw, &fx).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let _new = common::pg_connect(&gw, &fx).await; // opening sweeps expired ids
    assert_eq!(
        gw.execute_query(&old, "SELECT 1", &[], None)
            .await
            .expect_err("expired")
            .code(),
        "unknown_connection"
    );
    fx.drop().await;
}

#[tokio::test]
async fn connect_by_parameters_and_reader_role_and_identifier_limits() {
    use dbward_gateway::config::SslMode;
    let fx = PgFixture::new().await;
    let gw = Gateway::new(client_config());
    let spec = ConnectSpec {
        kind: dbward_gateway::DbKind::Postgresql,
        host: "127.0.0.1".into(),
        port: 5432,
        database: Some(fx.db.clone()),
        username: Some(fx.role.clone()),
        password: Some(SecretString::from(PASSWORD)),
        path: None,
        sslmode: SslMode::Disable,
        reader_role: None,
        name: None,
    };
    let info = gw
        .connect(ConnectRequest::Params(Box::new(spec)))
        .await
        .expect("connect by parameters");
    assert_eq!(
        info.target.as_str(),
        format!("postgresql://{}:****@127.0.0.1:5432/{}", fx.role, fx.db)
    );
    let long = "x".repeat(64);
    assert_eq!(
        gw.describe_table(info.id.as_str(), None, &long)
            .await
            .expect_err("64 bytes")
            .code(),
        "invalid_input"
    );
    gw.close_connection(info.id.as_str()).await.expect("close");

    // A named connection with reader_role runs every query as that role (SET LOCAL ROLE).
    let reader = common::unique("dbward_rr");
    let mut admin =
        sqlx::PgConnection::connect(&format!("postgresql://postgres@127.0.0.1:5432/{}", fx.db))
            .await
            .expect("admin");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {reader} NOLOGIN; GRANT SELECT ON departments TO {reader}; GRANT {reader} TO {}",
        fx.role
    )))
    .execute(&mut admin)
    .await
    .expect("reader role");
    let var = format!("DBWARD_TEST_RR_{}", std::process::id());
    // SAFETY: the variable name is unique to this test and nothing else reads or writes it.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(&var, format!("{}:{PASSWORD}", fx.role))
    };
    let cfg = GatewayConfig::from_toml(&format!(
        "[connections.ro]\ntype = \"postgresql\"\nhost = \"127.0.0.1\"\ndatabase = \"{}\"\ncredentials_env = \"{var}\"\nreader_role = \"{reader}\"\n",
        fx.db
    ))
    .expect("config");
    let gw = Gateway::new(cfg);
    let id = gw
        .connect(ConnectRequest::Named("ro".into()))
        .await
        .expect("named")
        .id
        .to_string();
    let r = gw
        .execute_query(&id, "SELECT current_user::text", &[], None)
        .await
        .expect("runs");
    assert_eq!(r.rows[0][0], json!(reader));
    assert_eq!(
        gw.execute_query(&id, "SELECT count(*) FROM departments", &[], None)
            .await
            .expect("granted")
            .rows[0][0],
        json!(3)
    );
    let e = gw
        .execute_query(&id, "SELECT count(*) FROM servers", &[], None)
        .await
        .expect_err("not granted");
    assert_eq!(e.code(), "permission_denied", "{e}");
    let p = gw.security_posture(&id).await.expect("posture");
    assert_eq!(p.role.role, reader);
    assert!(!p.role.can_write, "{p:?}");
    gw.close_connection(&id).await.expect("close");
    admin.close().await.ok();
    fx.drop().await;
    let mut admin = common::pg_admin().await;
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {reader}")))
        .execute(&mut admin)
        .await;
}

/// A call abandoned mid-query (the client cancelled it) cancels the statement on the
/// server, and the pool stays usable.
#[tokio::test]
async fn an_abandoned_query_is_cancelled_on_the_server() {
    let fx = PgFixture::new().await;
    let backend = direct_backend(&fx).await;
    let caps = Caps {
        max_rows: 10,
        max_bytes: 1 << 20,
        timeout_ms: 60_000,
        lock_timeout_ms: 500,
        idle_in_transaction_timeout_ms: 60_000,
    };
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        backend.execute("SELECT pg_sleep(30)", &[], caps),
    )
    .await;
    assert!(abandoned.is_err(), "the call was abandoned while running");
    assert_eq!(
        common::pg_fetches_still_running(&fx.db).await,
        0,
        "the statement was cancelled on the server"
    );
    let r = backend
        .execute("SELECT 1", &[], caps)
        .await
        .expect("the pool still works");
    assert_eq!(r.rows[0][0], json!(1));
    assert_eq!(fx.leftovers().await, (0, 0));
    backend.close().await;
    fx.drop().await;
}

#[tokio::test]
async fn no_prepared_statement_outlives_a_call() {
    // One pooled session, so every call below runs on the one the last query inspects.
    let fx = PgFixture::new().await;
    let mut cfg = client_config();
    cfg.limits.pool_max_size = 1;
    let gw = Gateway::new(cfg);
    let id = common::pg_connect(&gw, &fx).await;
    gw.execute_query(
        &id,
        "SELECT hostname FROM servers WHERE id = $1",
        &[json!(7)],
        None,
    )
    .await
    .expect("a row");
    // The session as it was opened.
    common::assert_no_statements_of_earlier_calls(&gw, &id).await;
    // An empty result (its shape from the FETCH's description).
    gw.execute_query(
        &id,
        "SELECT hostname FROM servers WHERE id = $1",
        &[json!(-1)],
        None,
    )
    .await
    .expect("no rows");
    // A string parameter whose type the database infers: a named Parse/Describe, after
    // which every statement of the session is dropped and dbward's own prepared again.
    gw.execute_query(
        &id,
        "SELECT id FROM servers WHERE hostname = $1",
        &[json!("srv-7")],
        None,
    )
    .await
    .expect("a row");
    gw.list_tables(&id, None).await.expect("catalog read");
    gw.describe_table(&id, None, "servers")
        .await
        .expect("catalog read");
    common::assert_no_statements_of_earlier_calls(&gw, &id).await;
    gw.close_connection(&id).await.ok();
    fx.drop().await;
}

/// A result cut at the byte cap stops reading mid-FETCH: that pooled session is closed, not
/// drained and reused, and nothing of it lingers on the server. A result cut at the row cap
/// reads to its end (one row past the cap) and keeps its session.
#[tokio::test]
async fn a_byte_capped_result_closes_its_session_and_a_row_capped_one_keeps_it() {
    let fx = PgFixture::new().await;
    let mut cfg = client_config();
    cfg.limits.pool_max_size = 1;
    cfg.limits.max_bytes = 10_000;
    let gw = Gateway::new(cfg);
    let id = common::pg_connect(&gw, &fx).await;
    let first = backend_pid(&gw, &id).await;

    let r = gw
        .execute_query(
            &id,
            "SELECT g FROM generate_series(1, 100000) g",
            &[],
            Some(10),
        )
        .await
        .expect("row-capped");
    assert_eq!((r.row_count, r.truncated), (10, true));
    assert_eq!(
        backend_pid(&gw, &id).await,
        first,
        "a row-capped call keeps its session"
    );

    let r = gw
        .execute_query(
            &id,
            "SELECT g, repeat('x', 1000) FROM generate_series(1, 100000) g",
            &[],
            None,
        )
        .await
        .expect("byte-capped");
    assert!(r.truncated);
    // Rows 1-9 take 9 * 1,001 bytes; the 10th (1,002) would pass 10,000.
    assert_eq!(r.row_count, 9);
    let second = backend_pid(&gw, &id).await;
    assert_ne!(second, first, "the byte-capped session was reused");
    let mut gone = false;
    for _ in 0..50 {
        let mut admin = common::pg_admin().await;
        let alive: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = $1")
            .bind(first as i32)
            .fetch_one(&mut admin)
            .await
            .expect("activity");
        if alive == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the cut session {first} is still on the server");
    assert_eq!(fx.leftovers().await, (0, 0));
    gw.close_connection(&id).await.ok();
    fx.drop().await;
}

/// The server process of the (one) pooled session a call runs on.
async fn backend_pid(gw: &Gateway, id: &str) -> i64 {
    let r = gw
        .execute_query(id, "SELECT pg_backend_pid()", &[], None)
        .await
        .expect("pid");
    r.rows[0][0].as_i64().expect("an integer pid")
}

/// `strpos` scans in one C loop that never checks for interrupts: neither the server's
/// statement timeout nor a cancel stops it. The largest one the policy lets through is
/// still gone from the server within a few seconds of the call's answer.
#[tokio::test]
async fn a_statement_that_ignores_cancel_is_gone_soon_after_its_call() {
    let fx = PgFixture::new().await;
    let mut config = client_config();
    config.limits.statement_timeout_ms = 300;
    let gw = Gateway::new(config);
    let id = common::pg_connect(&gw, &fx).await;
    let sql = "SELECT strpos(repeat('a', 100000), 'X' || repeat('a', 50000)) AS uninterruptible";
    let started = std::time::Instant::now();
    let outcome = gw.execute_query(&id, sql, &[], None).await;
    let answered = started.elapsed();
    assert!(
        matches!(&outcome, Err(e) if e.code() == "timeout") || outcome.is_ok(),
        "{outcome:?}"
    );
    let mut admin = common::pg_admin().await;
    let gone_after = loop {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
             AND query LIKE '%uninterruptible%' AND pid <> pg_backend_pid()",
        )
        .bind(&fx.db)
        .fetch_one(&mut admin)
        .await
        .expect("activity");
        if running == 0 {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "still running 20 s after the call started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    eprintln!("answered after {answered:?}, gone from the server after {gone_after:?}");
    assert!(
        gone_after < answered + std::time::Duration::from_secs(10),
        "answered after {answered:?}, still running until {gone_after:?}"
    );
    // The refusal of the policy is what bounds it: a larger scan never reaches the server.
    let e = gw
        .execute_query(
            &id,
            "SELECT strpos(repeat('a', 700000), 'X' || repeat('a', 150000))",
            &[],
            None,
        )
        .await
        .expect_err("bomb");
    assert_eq!(e.rule(), Some("resource.bomb"));
    // Nor does a text the query builds or reads, whose size the policy cannot see, searched
    // for a long or computed string...
    for sql in [
        "SELECT strpos(string_agg('a', ''), 'X' || repeat('a', 50000)) FROM generate_series(1, 700000)",
        "SELECT strpos(h, n) FROM (SELECT string_agg('a', '') AS h, 'X' || string_agg('a', '') AS n FROM generate_series(1, 300000)) s",
        "SELECT replace(hostname, status, '') FROM servers",
    ] {
        let e = gw.execute_query(&id, sql, &[], None).await.expect_err(sql);
        assert_eq!(e.rule(), Some("resource.bomb"), "{sql}: {e}");
    }
    // ...or for a long parameter; a short one runs.
    let sql = "SELECT count(*) AS n FROM servers WHERE strpos(hostname, $1) > 0";
    let long = json!(format!("X{}", "a".repeat(100)));
    let e = gw
        .execute_query(&id, sql, &[long], None)
        .await
        .expect_err("a long searched-for parameter");
    assert_eq!(e.rule(), Some("resource.bomb"), "{e}");
    let r = gw
        .execute_query(&id, sql, &[json!("srv-1")], None)
        .await
        .expect("a short one runs");
    assert_eq!(r.rows[0][0], json!(111));
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}
