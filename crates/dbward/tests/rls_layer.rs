//! Row-level security from `dbward setup-role --rls-example`, applied to real PostgreSQL:
//! each layer alone. The gateway sets the caller's setting and the policy filters rows; the
//! database refuses the reader role a `set_config` of its own even with dbward's policy out
//! of the way; and the setting survives the savepoint a parameter's type inference may
//! return to.

mod common;

use std::sync::Arc;

use dbward_gateway::Gateway;
use dbward_gateway::access::Identity;
use dbward_gateway::backends::Caps;
use dbward_gateway::backends::postgres::PgBackend;
use dbward_gateway::calls::{CallContext, with_context};
use serde_json::{Value, json};
use sqlx::Executor;

fn caller(department: Option<&str>) -> CallContext {
    let mut claims = serde_json::Map::new();
    if let Some(d) = department {
        claims.insert("department".into(), json!(d));
    }
    CallContext::new("idp:someone", None).with_identity(Identity {
        keys: vec!["sub:idp:someone".into()],
        sub: Some("someone".into()),
        claims,
    })
}

async fn count(
    g: &Gateway,
    id: &str,
    who: CallContext,
    sql: &str,
    params: &[Value],
) -> Result<i64, String> {
    with_context(who, async {
        g.execute_query(id, sql, params, None)
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.rows[0][0].as_i64().ok_or_else(|| format!("{:?}", r.rows)))
    })
    .await
}

#[tokio::test]
async fn the_printed_rls_policy_filters_by_the_callers_claim_and_the_reader_cannot_change_it() {
    let fresh = common::pg::Fresh::new("rls").await;
    let reader = fresh.reader.clone();
    let mut c = fresh.superuser().await;
    c.execute(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE servers (id int PRIMARY KEY, department_id int);
         INSERT INTO servers SELECT g, 1 + g % 4 FROM generate_series(1, 40) g;
         INSERT INTO servers SELECT g, 2 FROM generate_series(41, 43) g;
         GRANT USAGE ON SCHEMA public TO {reader}; GRANT SELECT ON servers TO {reader};"
    )))
    .await
    .expect("fixture");
    // The SQL exactly as `setup-role --rls-example` prints it.
    let sql = common::pg::setup_role_sql(&[
        "--rls-example",
        "servers",
        "--role",
        &reader,
        "--login-role",
        "postgres",
    ]);
    assert!(
        sql.contains("CREATE POLICY") && sql.contains("REVOKE EXECUTE"),
        "{sql}"
    );
    c.execute(sqlx::AssertSqlSafe(sql))
        .await
        .expect("the printed SQL applies");

    let (config, spec) =
        fresh.gateway_config(r#"session_settings = { "app.user_dept" = "{claim:department}" }"#);
    let g = Arc::new(Gateway::new(config));
    let info = g.connect_trusted(spec).await.expect("opens");
    let id = info.id.to_string();

    // Layer 1: the gateway sets the caller's setting; the policy filters by it.
    let q = "SELECT count(*) FROM servers";
    assert_eq!(count(&g, &id, caller(Some("2")), q, &[]).await, Ok(13));
    assert_eq!(count(&g, &id, caller(Some("3")), q, &[]).await, Ok(10));
    let e = count(&g, &id, caller(None), q, &[])
        .await
        .expect_err("no claim");
    assert!(
        e.starts_with("forbidden") && e.contains("department"),
        "{e}"
    );
    // A string parameter whose type the server cannot infer makes the call return to its
    // savepoint: the setting (made before it) still holds.
    assert_eq!(
        count(
            &g,
            &id,
            caller(Some("2")),
            "SELECT count(*) FROM servers WHERE $1 IS NOT NULL",
            &[json!("x")]
        )
        .await,
        Ok(13)
    );
    // The next call on the same pooled connection, without the setting's claim, is not
    // served the previous caller's value.
    assert!(count(&g, &id, caller(None), q, &[]).await.is_err());

    // Layer 2 alone: no dbward policy at all (the backend directly), the reader role cannot
    // call set_config, so it cannot pick its own department.
    let (_, raw) = fresh.gateway_config("");
    let backend = PgBackend::connect(&raw, &dbward_gateway::Limits::default())
        .await
        .expect("backend");
    let caps = Caps::new(&dbward_gateway::Limits::default(), 10);
    let e = backend
        .execute(
            "SELECT pg_catalog.set_config('app.user_dept', '2', true), (SELECT count(*) FROM servers)",
            &[],
            caps,
        )
        .await
        .expect_err("the reader has no EXECUTE on set_config");
    assert!(e.to_string().contains("permission denied"), "{e}");
    // And without a setting the policy shows nothing (current_setting(..., true) is NULL).
    let r = backend
        .execute("SELECT count(*) FROM servers", &[], caps)
        .await
        .expect("runs");
    assert_eq!(r.rows[0][0], json!(0));
    backend.close().await;
    drop(g);
    fresh.drop().await;
}
