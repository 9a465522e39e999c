//! PostgreSQL: the definition judged is the definition that runs. The database's owner
//! redefines a view in a tight loop from another session, between a harmless body, one that
//! reads a denied column and one whose WHERE calls an IMMUTABLE owner function that
//! terminates a victim session (the planner runs such a function while it plans the query,
//! before anything executes). Calls of `execute_query` and `explain_query` raced against it
//! never return a denied value, and the function never runs: the relations the answer names
//! are locked before it is proved current, and it is proved current again after the
//! DECLARE, before the FETCH (`execute::Head`). Without those checks 46 of 400 calls
//! returned the denied column.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{PgFixture, client_config};
use dbward_gateway::{ConnectRequest, Gateway, GatewayConfig};
use secrecy::SecretString;
use sqlx::{Connection, Executor, PgConnection};

/// Calls raced against the redefining owner, over four callers.
const CALLS: usize = 600;

const FIXTURE: &str = r#"
CREATE TABLE pub_names (id int, name text);
INSERT INTO pub_names VALUES (1, 'ada');
CREATE TABLE people (id int, ssn text);
INSERT INTO people VALUES (1, 'SSN-111-11-1111');
CREATE FUNCTION imm_kill() RETURNS int LANGUAGE sql IMMUTABLE AS $$
  SELECT count(pg_catalog.pg_terminate_backend(pid))::int FROM pg_catalog.pg_stat_activity
  WHERE application_name = 'dbward_victim'
$$;
CREATE VIEW v_race AS SELECT id, name FROM pub_names;
"#;

/// The owner's bodies for `v_race`, in turn.
const BODIES: [&str; 4] = [
    "CREATE OR REPLACE VIEW v_race AS SELECT id, name FROM pub_names",
    "CREATE OR REPLACE VIEW v_race AS SELECT id, ssn AS name FROM people",
    "CREATE OR REPLACE VIEW v_race AS SELECT id, name FROM pub_names",
    "CREATE OR REPLACE VIEW v_race AS SELECT id, name FROM pub_names WHERE imm_kill() >= 0",
];

fn config() -> GatewayConfig {
    let mut c = client_config();
    c.policy.denied_columns = vec!["people.ssn".into()];
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_view_redefined_during_calls_never_returns_denied_data_nor_runs_owner_code() {
    race(None).await;
}

/// The same with the database's default isolation set to REPEATABLE READ by its owner:
/// every statement of a call's transaction would then see its first statement's snapshot,
/// and the checks around the DECLARE with it (dbward's transactions say READ COMMITTED).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_set_default_isolation_does_not_blind_the_checks() {
    race(Some("repeatable read")).await;
}

/// The race, with the database's `default_transaction_isolation` set first, if given.
async fn race(isolation: Option<&str>) {
    let fx = PgFixture::new().await;
    let mut owner = PgConnection::connect(&fx.url()).await.expect("owner");
    sqlx::raw_sql(FIXTURE)
        .execute(&mut owner)
        .await
        .expect("fixture");
    if let Some(level) = isolation {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{}\" SET default_transaction_isolation = '{level}'",
            fx.db
        )))
        .execute(&mut owner)
        .await
        .expect("default isolation");
    }
    owner.close().await.ok();
    let mut victim = PgConnection::connect(&format!("{}?application_name=dbward_victim", fx.url()))
        .await
        .expect("victim");

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let looping = {
        let (stop, swaps, url) = (stop.clone(), swaps.clone(), fx.url());
        tokio::spawn(async move {
            let mut owner = PgConnection::connect(&url).await.expect("owner");
            // A redefinition that waits too long for a call's lock just fails.
            owner
                .execute("SET lock_timeout = '1s'")
                .await
                .expect("owner session");
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                if owner.execute(BODIES[i % BODIES.len()]).await.is_ok() {
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
            // Harmless at the end, for the reads after.
            owner.execute(BODIES[0]).await.expect("last body");
            owner.close().await.ok();
        })
    };

    let gw = Arc::new(Gateway::new(config()));
    let id = gw
        .connect(ConnectRequest::Url(SecretString::from(fx.url())))
        .await
        .expect("connects")
        .id
        .to_string();
    let mut tasks = Vec::new();
    for caller in 0..4 {
        let (gw, id) = (gw.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for call in 0..CALLS / 4 {
                // One call in four is an EXPLAIN (it plans the query: the folding runs).
                if (caller + call) % 4 == 0 {
                    let r = gw
                        .explain_query(&id, "SELECT name FROM v_race", false)
                        .await;
                    out.push(r.map(|e| e.plan.to_string()));
                } else if (caller + call) % 4 == 2 {
                    // A string parameter: its type is inferred by a Describe, after the
                    // answer is read and judged, before the lock and the checks.
                    let r = gw
                        .execute_query(
                            &id,
                            "SELECT name FROM v_race WHERE name <> $1",
                            &[serde_json::json!("zzz")],
                            None,
                        )
                        .await;
                    out.push(r.map(|r| serde_json::to_string(&r.rows).expect("rows")));
                } else {
                    let r = gw
                        .execute_query(&id, "SELECT name FROM v_race", &[], None)
                        .await;
                    out.push(r.map(|r| serde_json::to_string(&r.rows).expect("rows")));
                }
            }
            out
        }));
    }
    let (mut served, mut refused) = (0, 0);
    for t in tasks {
        for r in t.await.expect("caller") {
            match r {
                Ok(text) => {
                    served += 1;
                    assert!(!text.contains("SSN-"), "a denied value came back: {text}");
                }
                Err(e) => {
                    refused += 1;
                    assert!(!e.to_string().contains("SSN-"), "{e}");
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    looping.await.expect("owner loop");
    let swaps = swaps.load(Ordering::Relaxed);
    eprintln!("served {served}, refused {refused}, swaps {swaps}");
    assert!(
        swaps >= 50,
        "the owner redefined the view only {swaps} times"
    );
    assert!(
        served > 0 && refused > 0,
        "served {served}, refused {refused}"
    );
    let alive: Result<i32, _> = sqlx::query_scalar("SELECT 1").fetch_one(&mut victim).await;
    assert!(
        alive.is_ok(),
        "the owner's function ran: the victim session was terminated ({alive:?})"
    );
    // The gateway still serves the harmless body.
    let r = gw
        .execute_query(&id, "SELECT name FROM v_race", &[], None)
        .await
        .expect("harmless body");
    assert_eq!(r.rows, vec![vec![serde_json::json!("ada")]]);
    victim.close().await.ok();
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

/// A string parameter's type is inferred by a Describe of the query, and parsing the query
/// can run owner code (a literal of a composite type is converted at parse time, running
/// the CHECKs of its domain attributes). So that Describe follows a resolution answer read
/// and judged in the call itself, never a kept one: with a kept answer it came before the
/// guard, and a CHECK the owner added after the answer was kept ran (a victim session was
/// terminated in 5 of 5 calls); here the call is refused before anything runs.
#[tokio::test]
async fn a_parameter_describe_follows_an_answer_judged_in_the_call() {
    let fx = PgFixture::new().await;
    let mut owner = PgConnection::connect(&fx.url()).await.expect("owner");
    sqlx::raw_sql(
        "CREATE TABLE t_dom (id int); INSERT INTO t_dom VALUES (1); \
         CREATE DOMAIN dk AS int CHECK (VALUE > 0); CREATE TYPE rk AS (a dk, b text); \
         CREATE FUNCTION kill_victim() RETURNS bool LANGUAGE plpgsql VOLATILE AS $$ BEGIN \
           PERFORM pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
           WHERE application_name = 'dbward_describe_victim'; RETURN true; END $$;",
    )
    .execute(&mut owner)
    .await
    .expect("fixture");
    let mut victim = PgConnection::connect(&format!(
        "{}?application_name=dbward_describe_victim",
        fx.url()
    ))
    .await
    .expect("victim");
    let gw = Gateway::new(config());
    let id = gw
        .connect(ConnectRequest::Url(SecretString::from(fx.url())))
        .await
        .expect("connects")
        .id
        .to_string();
    let sql = "SELECT id FROM t_dom WHERE id = $1 AND '(1,x)'::rk IS NOT NULL";
    for _ in 0..3 {
        let r = gw
            .execute_query(&id, sql, &[serde_json::json!("1")], None)
            .await
            .expect("harmless domain");
        assert_eq!(r.rows, vec![vec![serde_json::json!(1)]]);
    }
    sqlx::raw_sql("ALTER DOMAIN dk ADD CONSTRAINT kc CHECK (kill_victim())")
        .execute(&mut owner)
        .await
        .expect("alter domain");
    let refused = gw
        .execute_query(&id, sql, &[serde_json::json!("1")], None)
        .await
        .expect_err("the domain now runs owner code");
    assert_eq!(refused.code(), "policy_refused", "{refused:?}");
    let alive: Result<i32, _> = sqlx::query_scalar("SELECT 1").fetch_one(&mut victim).await;
    assert!(
        alive.is_ok(),
        "the owner's CHECK ran: the victim session was terminated ({alive:?})"
    );
    victim.close().await.ok();
    owner.close().await.ok();
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}
