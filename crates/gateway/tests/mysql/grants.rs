//! Issue 11 on the real MariaDB: the database layer under the policy. The owner's posture
//! reports the denied data it can read; the SQL `dbward setup-role --config` prints, applied
//! to a fresh user, leaves that user unable to read denied tables, denied columns and views
//! over them (checked by the server, with no policy in front), able to read the rest, and
//! with a clean posture.

use super::*;
use dbward_gateway::backends::mysql::grants::setup_sql;
use sqlx::{Connection, Executor};

fn config_with_denials() -> GatewayConfig {
    let mut c = client_config();
    c.policy.denied_columns = vec!["secrets.api_key".into()];
    c.policy.denied_tables = vec!["payroll".into()];
    c
}

#[tokio::test]
async fn setup_role_grants_keep_denied_data_from_the_reader_and_the_posture_says_so() {
    let fx = MyFixture::new().await;
    fx.owner_exec(
        "CREATE TABLE payroll (id INT PRIMARY KEY, salary INT);
         INSERT INTO payroll VALUES (1, 100);
         CREATE FUNCTION f_one() RETURNS INT RETURN 1;
         CREATE VIEW v_secret AS SELECT id, api_key AS k FROM secrets;
         CREATE VIEW v_over_secret AS SELECT k FROM v_secret;
         CREATE VIEW v_calls AS SELECT f_one() AS one;
         CREATE VIEW v_ok AS SELECT name FROM departments;",
    )
    .await;
    let cfg = config_with_denials();
    let gw = Gateway::new(cfg.clone());

    // The owner can read everything: the posture says only the policy guards it.
    let id = connect(&gw, &fx).await;
    let posture = gw.security_posture(&id).await.expect("posture");
    let db = &fx.db;
    for item in [format!("{db}.secrets.api_key"), format!("{db}.payroll")] {
        assert!(
            posture.role.denied_readable.contains(&item),
            "{item}: {:?}",
            posture.role.denied_readable
        );
    }
    assert!(
        posture
            .warnings
            .iter()
            .any(|w| w.contains("can read what the configuration denies")),
        "{:?}",
        posture.warnings
    );
    gw.close_connection(&id).await.expect("close");

    // The SQL setup-role prints, from the owner's view of the catalog.
    let backend = backend(&fx).await;
    let catalog = backend.grant_catalog(db).await.expect("catalog");
    backend.close().await;
    let reader = common::unique("dbward_rd");
    let sql = setup_sql(&reader, &catalog, gw.policy());
    assert!(
        sql.contains(&format!(
            "GRANT SELECT (`id`, `service`) ON `{db}`.`secrets` TO '{reader}'@'%';"
        )),
        "{sql}"
    );
    assert!(
        sql.contains(&format!("-- `{db}`.`payroll`: denied")),
        "{sql}"
    );
    assert!(
        !sql.contains(&format!("ON `{db}`.*")),
        "no database-wide grant: {sql}"
    );
    for view in ["v_secret", "v_over_secret", "v_calls"] {
        assert!(
            sql.contains(&format!("-- `{db}`.`{view}`: a view not granted")),
            "{view}: {sql}"
        );
    }
    assert!(
        sql.contains(&format!(
            "GRANT SELECT, SHOW VIEW ON `{db}`.`v_ok` TO '{reader}'@'%';"
        )),
        "{sql}"
    );
    let mut admin = common::mysql::my_admin().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(
        sql.replace("'change-me'", &format!("'{PASSWORD}'")),
    ))
    .execute(&mut admin)
    .await
    .expect("the printed SQL applies");

    // The server alone keeps denied data from the reader.
    let url = format!("mysql://{reader}:{PASSWORD}@127.0.0.1:3306/{db}");
    let mut rd = sqlx::MySqlConnection::connect(&url)
        .await
        .expect("reader connects");
    for denied in [
        "SELECT api_key FROM secrets",
        "SELECT * FROM secrets",
        "SELECT salary FROM payroll",
        "SELECT COUNT(*) FROM payroll",
        "SELECT * FROM v_secret",
        "SELECT * FROM v_over_secret",
        "SELECT * FROM v_calls",
        "SELECT f_one()",
    ] {
        let e = sqlx::query(denied)
            .fetch_all(&mut rd)
            .await
            .expect_err(denied);
        let msg = e.to_string();
        assert!(
            msg.contains("denied") || msg.contains("command denied"),
            "{denied}: {msg}"
        );
    }
    for allowed in [
        "SELECT id, service FROM secrets",
        "SELECT name, budget FROM departments",
        "SELECT COUNT(*) FROM servers",
        "SELECT name FROM v_ok",
    ] {
        let rows = sqlx::query(allowed)
            .fetch_all(&mut rd)
            .await
            .expect(allowed);
        assert!(!rows.is_empty(), "{allowed}");
    }
    rd.close().await.ok();

    // Through dbward, the reader's posture is clean and its view reads work.
    let info = gw
        .connect(ConnectRequest::Url(SecretString::from(url)))
        .await
        .expect("dbward connects as the reader");
    let rid = info.id.to_string();
    let posture = gw.security_posture(&rid).await.expect("posture");
    assert!(
        posture.role.denied_readable.is_empty(),
        "{:?}",
        posture.role.denied_readable
    );
    assert!(!posture.role.can_write, "{posture:?}");
    let r = gw
        .execute_query(&rid, "SELECT name FROM v_ok ORDER BY name", &[], None)
        .await
        .expect("an ordinary view runs for the reader (it has SHOW VIEW)");
    assert_eq!(r.row_count, 3);
    gw.close_connection(&rid).await.expect("close");
    let _ = admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP USER IF EXISTS '{reader}'@'%'"
        )))
        .await;
    fx.drop().await;
}
