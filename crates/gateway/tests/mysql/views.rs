//! Issue 11 on the real MariaDB: a view runs its definition with no call or name in the
//! query's text. Views that call stored functions (one KILLs a victim session), directly or
//! through other views, are refused unless the routine is allowlisted, and denied tables and
//! columns read through a view are refused; ordinary views still run.

use super::*;
use sqlx::{Connection, Executor};

/// A victim session, a stored function that KILLs it, and views over it: `v_kick` calls
/// it, `v_nested` reads `v_kick`, `v_sub` calls it in a subquery, `v_secret` reads the
/// denied column, `v_payroll` the denied table, `v_ok` only allowed data.
async fn views_fixture(fx: &MyFixture) -> sqlx::MySqlConnection {
    let (victim, vid) = victim_session(fx).await;
    fx.owner_exec(&format!(
        "CREATE FUNCTION kick(a INT) RETURNS INT BEGIN KILL {vid}; RETURN a; END"
    ))
    .await;
    fx.owner_exec(
        "CREATE TABLE payroll (id INT PRIMARY KEY, salary INT);
         INSERT INTO payroll VALUES (1, 100);
         CREATE VIEW v_kick AS SELECT kick(id) AS k, hostname FROM servers;
         CREATE VIEW v_nested AS SELECT hostname FROM v_kick;
         CREATE VIEW v_sub AS SELECT id, (SELECT MAX(kick(1)) FROM departments) AS m FROM servers;
         CREATE VIEW v_secret AS SELECT id, api_key AS not_a_secret FROM secrets;
         CREATE VIEW v_payroll AS SELECT p.id, p.salary FROM payroll p;
         CREATE VIEW v_ok AS SELECT d.name, COUNT(s.id) AS n, CAST(d.budget AS CHAR) AS b
           FROM departments d LEFT JOIN servers s ON s.department_id = d.id
           WHERE d.name LIKE 'E%' GROUP BY d.name, d.budget;
         CREATE VIEW v_ok2 AS SELECT name FROM v_ok;",
    )
    .await;
    victim
}

async fn alive(v: &mut sqlx::MySqlConnection) -> bool {
    sqlx::query("SELECT 1").fetch_one(v).await.is_ok()
}

fn config_with_denials() -> GatewayConfig {
    let mut c = client_config();
    c.policy.denied_columns = vec!["secrets.api_key".into()];
    c.policy.denied_tables = vec!["payroll".into()];
    c
}

#[tokio::test]
async fn views_calling_stored_functions_or_reading_denied_data_are_refused() {
    let fx = MyFixture::new().await;
    let mut victim = views_fixture(&fx).await;
    let gw = Gateway::new(config_with_denials());
    let id = connect(&gw, &fx).await;
    let db = &fx.db;
    // The policy alone lets these through: the query names only a view.
    assert!(
        gw.policy()
            .check(dbward_policy::Dialect::Mysql, "SELECT * FROM v_kick")
            .is_allowed()
    );
    for sql in [
        "SELECT * FROM v_kick".to_string(),
        "SELECT hostname FROM v_kick LIMIT 1".to_string(),
        format!("SELECT COUNT(*) FROM `{db}`.v_kick"),
        "SELECT * FROM v_nested".to_string(),
        "SELECT id FROM v_sub".to_string(),
        "SELECT 1 FROM departments WHERE EXISTS (SELECT 1 FROM v_nested)".to_string(),
        "SELECT * FROM departments d JOIN v_kick k ON k.k = d.id".to_string(),
        // A CTE named like the view in one scope does not hide the view in another.
        "WITH v_ok AS (SELECT 1 AS x) SELECT * FROM v_ok, (SELECT k FROM v_kick) q".to_string(),
    ] {
        let e = gw
            .execute_query(&id, &sql, &[], None)
            .await
            .expect_err(&sql);
        assert_eq!(e.rule(), Some("function.user_defined"), "{sql}: {e}");
        assert!(
            e.to_string().contains(&format!("`{db}.kick`")),
            "{sql}: names the routine: {e}"
        );
        assert!(alive(&mut victim).await, "{sql} killed the victim");
    }
    for (sql, rule) in [
        ("SELECT * FROM v_secret", "column.denied"),
        ("SELECT id FROM v_secret", "column.denied"),
        ("SELECT * FROM v_payroll", "table.denied"),
        (
            "SELECT d.name FROM departments d WHERE d.id IN (SELECT id FROM v_payroll)",
            "table.denied",
        ),
    ] {
        let e = gw.execute_query(&id, sql, &[], None).await.expect_err(sql);
        assert_eq!(e.rule(), Some(rule), "{sql}: {e}");
    }
    // Ordinary views, nested or not, run.
    let r = gw
        .execute_query(&id, "SELECT name, n, b FROM v_ok", &[], None)
        .await
        .expect("an ordinary view runs");
    assert_eq!(
        r.rows,
        vec![vec![json!("Engineering"), json!(100), json!("1200000.50")]]
    );
    let r = gw
        .execute_query(&id, "SELECT * FROM v_ok2", &[], None)
        .await
        .expect("a view of a view runs");
    assert_eq!(r.row_count, 1);
    // The direct call is refused as before.
    let e = gw
        .execute_query(&id, "SELECT kick(1)", &[], None)
        .await
        .expect_err("direct call");
    assert_eq!(e.rule(), Some("function.volatile"), "{e}");
    assert!(
        alive(&mut victim).await,
        "the victim survived every refusal"
    );
    gw.close_connection(&id).await.expect("close");

    // Allowlisting the routine lets the view run it (which is what allowlisting means).
    let mut cfg = config_with_denials();
    cfg.policy.allowed_functions = vec![format!("{db}.kick")];
    let gw = Gateway::new(cfg);
    let id = connect(&gw, &fx).await;
    let r = gw
        .execute_query(&id, "SELECT k FROM v_kick LIMIT 1", &[], None)
        .await;
    assert!(
        r.is_ok() || r.as_ref().is_err_and(|e| e.code() == "read_only_violation"),
        "{r:?}"
    );
    assert!(!alive(&mut victim).await, "the allowlisted routine ran");
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

#[tokio::test]
async fn a_view_whose_definition_the_login_cannot_see_is_refused() {
    let fx = MyFixture::new().await;
    let _victim = views_fixture(&fx).await;
    // A reader granted SELECT on the views but not SHOW VIEW: the server shows it an empty
    // definition, so dbward cannot know what the view runs.
    let reader = common::unique("dbward_rd");
    let mut admin = common::mysql::my_admin().await;
    for host in ["%", "localhost"] {
        for sql in [
            format!("CREATE USER '{reader}'@'{host}' IDENTIFIED BY '{PASSWORD}'"),
            format!("GRANT SELECT ON `{}`.v_kick TO '{reader}'@'{host}'", fx.db),
            format!("GRANT SELECT ON `{}`.v_ok TO '{reader}'@'{host}'", fx.db),
        ] {
            admin
                .execute(sqlx::AssertSqlSafe(sql))
                .await
                .expect("reader setup");
        }
    }
    let gw = Gateway::new(client_config());
    let info = gw
        .connect(ConnectRequest::Url(SecretString::from(format!(
            "mysql://{reader}:{PASSWORD}@127.0.0.1:3306/{}",
            fx.db
        ))))
        .await
        .expect("connects as the reader");
    let id = info.id.to_string();
    for sql in ["SELECT * FROM v_kick", "SELECT * FROM v_ok"] {
        let e = gw.execute_query(&id, sql, &[], None).await.expect_err(sql);
        assert_eq!(e.rule(), Some("function.user_defined"), "{sql}: {e}");
        assert!(e.to_string().contains("SHOW VIEW"), "{e}");
    }
    gw.close_connection(&id).await.expect("close");
    for host in ["%", "localhost"] {
        let _ = admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP USER IF EXISTS '{reader}'@'{host}'"
            )))
            .await;
    }
    fx.drop().await;
}

/// MariaDB refuses a stored function in a generated column (error 1901), so a table read
/// cannot run one that way; checked here so that a server that starts allowing it is noticed.
#[tokio::test]
async fn generated_columns_cannot_call_stored_functions() {
    let fx = MyFixture::new().await;
    fx.owner_exec("CREATE FUNCTION f1(a INT) RETURNS INT RETURN a + 1")
        .await;
    let mut owner = sqlx::MySqlConnection::connect(&fx.url())
        .await
        .expect("owner");
    for ddl in [
        "CREATE TABLE g1 (a INT, b INT AS (f1(a)))",
        "CREATE TABLE g2 (a INT, b INT AS (f1(a)) STORED)",
    ] {
        let e = owner
            .execute(ddl)
            .await
            .expect_err("a stored function in a generated column");
        assert!(e.to_string().contains("GENERATED ALWAYS AS"), "{ddl}: {e}");
    }
    owner.close().await.ok();
    fx.drop().await;
}

/// A generated column over a denied column (`AS (api_key)`, `AS (REVERSE(api_key))`,
/// virtual or stored) is denied like it: named in the query, through `read_table`, through
/// a view, whatever the case or qualifier. A generated column of a table without denied
/// columns still reads.
#[tokio::test]
async fn generated_columns_of_a_table_with_denied_columns_are_denied() {
    let fx = MyFixture::new().await;
    fx.owner_exec(
        "ALTER TABLE secrets ADD COLUMN k_virt VARCHAR(100) AS (api_key) VIRTUAL,
           ADD COLUMN k_rev VARCHAR(100) AS (REVERSE(api_key)) STORED;
         ALTER TABLE departments ADD COLUMN shout VARCHAR(200) AS (UPPER(name)) VIRTUAL;
         CREATE VIEW v_gen AS SELECT id, k_virt AS harmless FROM secrets;
         CREATE VIEW v_gen2 AS SELECT harmless FROM v_gen;",
    )
    .await;
    let gw = Gateway::new(config_with_denials());
    let id = connect(&gw, &fx).await;
    let db = &fx.db;
    for sql in [
        "SELECT id, k_virt FROM secrets".to_string(),
        "SELECT id, k_rev FROM secrets".to_string(),
        "SELECT s.K_VIRT FROM secrets s".to_string(),
        format!("SELECT `{db}`.secrets.k_rev FROM `{db}`.secrets"),
        "SELECT id FROM secrets WHERE k_virt LIKE 'sk%'".to_string(),
        "SELECT * FROM secrets".to_string(),
        "SELECT * FROM v_gen".to_string(),
        "SELECT harmless FROM v_gen2".to_string(),
    ] {
        let e = gw
            .execute_query(&id, &sql, &[], None)
            .await
            .expect_err(&sql);
        assert_eq!(e.rule(), Some("column.denied"), "{sql}: {e}");
    }
    use dbward_gateway::tools::read_table::ReadTableRequest;
    for columns in [vec!["id", "k_virt"], vec!["k_rev"]] {
        let req = ReadTableRequest {
            table: "secrets".into(),
            columns: Some(columns.iter().map(|c| c.to_string()).collect()),
            ..Default::default()
        };
        let e = gw.read_table(&id, &req).await.expect_err("read_table");
        assert_eq!(e.rule(), Some("column.denied"), "{columns:?}: {e}");
        assert!(!e.to_string().contains("sk_live"), "{e}");
    }
    let r = gw
        .execute_query(&id, "SELECT shout FROM departments WHERE id = 1", &[], None)
        .await
        .expect("a generated column of a table without denied columns");
    assert_eq!(r.row_count, 1);
    let r = gw
        .execute_query(&id, "SELECT id, service FROM secrets", &[], None)
        .await
        .expect("allowed columns of the table still read");
    assert_eq!(r.row_count, 1);
    fx.drop().await;
}
