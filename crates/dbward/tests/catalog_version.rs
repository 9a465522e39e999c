//! `dbward setup-role --catalog-version`, applied to real PostgreSQL exactly as printed, with
//! queries run as a least-privilege reader role: the posture reports it, a kept resolution
//! answer survives a write (its guard, run as the reader, reads the number), and a DDL
//! command still makes the next call resolve afresh.

mod common;

use dbward_gateway::Gateway;
use sqlx::{Connection, Executor};

use common::BIN;

/// Calls sent behind the guard of a kept answer and those whose guard failed.
fn kept_and_stale(g: &Gateway) -> (u64, u64) {
    let text = g.metrics_text();
    let read = |answer: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("dbward_pg_resolutions{{answer=\"{answer}\"}} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    (read("kept"), read("stale"))
}

#[test]
fn catalog_version_is_postgresqls_only() {
    let out = std::process::Command::new(BIN)
        .args(["setup-role", "--catalog-version", "--type", "mysql"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--catalog-version is PostgreSQL's"), "{err}");
}

#[tokio::test]
async fn the_printed_catalog_version_keeps_answers_across_writes_for_a_reader_role() {
    let fresh = common::pg::Fresh::new("catver").await;
    let reader = fresh.reader.clone();
    let mut su = fresh.superuser().await;
    su.execute(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE servers (id int PRIMARY KEY, name text);
         INSERT INTO servers SELECT g, 'srv-' || g FROM generate_series(1, 20) g;
         GRANT USAGE ON SCHEMA public TO {reader}; GRANT SELECT ON servers TO {reader};"
    )))
    .await
    .expect("fixture");
    // The SQL exactly as printed, comments and all.
    let sql = common::pg::setup_role_sql(&["--catalog-version"]);
    assert!(sql.contains("CREATE EVENT TRIGGER"), "{sql}");
    su.execute(sqlx::AssertSqlSafe(sql))
        .await
        .expect("the printed SQL applies");

    let (config, spec) = fresh.gateway_config("");
    let g = Gateway::new(config);
    let id = g.connect_trusted(spec).await.expect("opens").id.to_string();
    let posture = g.security_posture(&id).await.expect("posture");
    assert_eq!(posture.layers.catalog_version, Some(true));

    let q = "SELECT name FROM servers WHERE id = 3";
    for _ in 0..2 {
        g.execute_query(&id, q, &[], None).await.expect("runs");
    }
    su.execute("UPDATE servers SET name = 'renamed' WHERE id = 3")
        .await
        .expect("a write");
    let before = kept_and_stale(&g);
    let r = g.execute_query(&id, q, &[], None).await.expect("runs");
    assert_eq!(
        r.rows[0][0],
        serde_json::json!("renamed"),
        "the row as written"
    );
    let after = kept_and_stale(&g);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 0),
        "after a write: on the kept answer, its guard passing"
    );
    // A DDL command: the next call's guard fails and the names are resolved afresh.
    su.execute("ALTER TABLE servers ADD COLUMN note text")
        .await
        .expect("DDL");
    let before = kept_and_stale(&g);
    g.execute_query(&id, q, &[], None).await.expect("runs");
    let after = kept_and_stale(&g);
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 1),
        "after DDL: the kept answer's guard failed"
    );

    g.close_connection(&id).await.expect("close");
    su.close().await.ok();
    fresh.drop().await;
}
