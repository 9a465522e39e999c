//! PostgreSQL: the schemas a session looks names up in are fixed when it opens.
//!
//! The database's default `search_path` may list a schema the role cannot use yet: the
//! server skips it, then looks in it as soon as the role can. A change of role membership
//! (`GRANT other TO owner`, by a role with CREATEROLE; no DDL, so no event trigger and no
//! lock) followed by any change to the role's own row (which makes every session recompute
//! its path, mid-transaction) did that between the check of a call's answer and the parse
//! of its query: a red-team pass got a view over a denied column read in about a quarter of
//! the calls. Each session's path is now the schemas usable when it opened, by name; and the
//! resolution judges every one of them, usable at that moment or not.

mod common;

use common::{PgFixture, client_config};
use dbward_gateway::{Gateway, GatewayConfig};
use sqlx::{Connection, PgConnection};

fn config() -> GatewayConfig {
    let mut c = client_config();
    c.policy.denied_columns = vec!["people.ssn".into()];
    c
}

async fn read(
    gw: &Gateway,
    id: &str,
) -> Result<dbward_gateway::backends::QueryResult, dbward_gateway::error::GatewayError> {
    gw.execute_query(id, "SELECT note FROM notes", &[], None)
        .await
}

async fn run(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn a_schema_the_role_could_not_use_at_open_never_joins_the_path() {
    let fx = PgFixture::new().await;
    let other = common::unique("dbward_other");
    let mut admin = common::pg_admin().await;
    run(
        &mut admin,
        &format!(
            "CREATE ROLE {other} NOLOGIN; ALTER ROLE {owner} CREATEROLE; \
             ALTER DATABASE {db} SET search_path = elsewhere, public",
            owner = fx.role,
            db = fx.db
        ),
    )
    .await;
    let mut su = PgConnection::connect(&format!("postgresql://postgres@127.0.0.1:5432/{}", fx.db))
        .await
        .expect("superuser");
    run(
        &mut su,
        &format!(
            "CREATE TABLE public.people (id int, ssn text);
             INSERT INTO public.people VALUES (1, 'SSN-123-45-6789');
             ALTER TABLE public.people OWNER TO {owner};
             CREATE VIEW public.notes AS SELECT 'public' AS note;
             ALTER VIEW public.notes OWNER TO {owner};
             CREATE SCHEMA elsewhere AUTHORIZATION {other};
             CREATE VIEW elsewhere.notes AS SELECT ssn AS note FROM public.people;
             ALTER VIEW elsewhere.notes OWNER TO {owner};",
            owner = fx.role
        ),
    )
    .await;
    su.close().await.ok();

    // The owner may not use `elsewhere` when dbward's session opens.
    let gw = Gateway::new(config());
    let id = common::pg_connect(&gw, &fx).await;
    let r = read(&gw, &id).await.expect("public.notes");
    assert_eq!(r.rows, vec![vec![serde_json::json!("public")]]);

    // The owner makes itself a member of `elsewhere`'s owner, then touches its own row:
    // every session recomputes its path.
    let mut owner = PgConnection::connect(&fx.url()).await.expect("owner");
    run(
        &mut owner,
        &format!(
            "GRANT {other} TO {owner}; ALTER ROLE {owner} CONNECTION LIMIT -1",
            owner = fx.role
        ),
    )
    .await;
    for _ in 0..3 {
        let r = read(&gw, &id).await.expect("still public.notes");
        assert_eq!(
            r.rows,
            vec![vec![serde_json::json!("public")]],
            "the session's path grew"
        );
    }

    // A session opened now may use `elsewhere`: its `notes` reads the denied column, and
    // `public.notes` is judged too. Once the membership is taken back, `elsewhere` is still
    // judged (it may come back mid-call), so the query stays refused.
    let gw2 = Gateway::new(config());
    let id2 = common::pg_connect(&gw2, &fx).await;
    let e = read(&gw2, &id2)
        .await
        .expect_err("elsewhere.notes is denied");
    assert_eq!(e.rule(), Some("column.denied"), "{e}");
    run(
        &mut owner,
        &format!(
            "REVOKE {other} FROM {owner}; ALTER ROLE {owner} CONNECTION LIMIT -1",
            owner = fx.role
        ),
    )
    .await;
    let e = read(&gw2, &id2)
        .await
        .expect_err("elsewhere is judged while it is on the session's path");
    assert_eq!(e.rule(), Some("column.denied"), "{e}");
    assert!(!e.to_string().contains("SSN-"), "{e}");

    owner.close().await.ok();
    gw.close_connection(&id).await.expect("close");
    gw2.close_connection(&id2).await.expect("close");
    run(&mut admin, &format!("ALTER ROLE {} NOCREATEROLE", fx.role)).await;
    fx.drop().await;
    run(&mut admin, &format!("DROP ROLE IF EXISTS {other}")).await;
    admin.close().await.ok();
}
