//! PostgreSQL, with dbward's catalog version installed (`dbward setup-role
//! --catalog-version`): no DDL commits during a call. The event trigger takes the exclusive
//! side of an advisory lock at the start of every DDL command, each call's transaction the
//! shared side first of all (`guard::DDL_LOCK`). So a DDL command waits for the calls in
//! flight, and a call waits for a DDL transaction that has begun, then sees what it did.
//!
//! That closes what no relation lock can: an owner adding a CHECK to a domain between the
//! check that proves a call's answer current and the parse of its query, where a literal of
//! a composite or array type runs its domain attributes' CHECKs. Without the catalog
//! version that window stays open (README, "How a query is kept read-only").

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{PgFixture, client_config};
use dbward_gateway::{Gateway, GatewayConfig};
use sqlx::{Connection, Executor, PgConnection};

const FIXTURE: &str = r#"
CREATE DOMAIN dd AS int;
CREATE TYPE cc AS (x dd);
CREATE FUNCTION owner_code(int) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'OWNER-CODE-RAN %', $1; END $$;
"#;

/// A literal of a composite type with a domain attribute: converted (and the domain's
/// CHECKs run) while the query is parsed.
const QUERY: &str = "SELECT ('(1)'::cc).x AS x";
const EXPLAINED: &str = "SELECT ('(2)'::cc).x AS x";

fn config(lock_timeout_ms: u64) -> GatewayConfig {
    let mut c = client_config();
    c.limits.lock_timeout_ms = lock_timeout_ms;
    c.limits.statement_timeout_ms = 30_000;
    c
}

async fn run(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A fixture with [`FIXTURE`] and the catalog version installed by the superuser, and a
/// gateway connected as the owner.
async fn setup(config: GatewayConfig) -> (PgFixture, Arc<Gateway>, String) {
    let fx = PgFixture::new().await;
    let mut owner = PgConnection::connect(&fx.url()).await.expect("owner");
    run(&mut owner, FIXTURE).await;
    owner.close().await.ok();
    common::pg_install_catalog_version(&fx.db).await;
    let gw = Arc::new(Gateway::new(config));
    let id = common::pg_connect(&gw, &fx).await;
    let posture = gw.security_posture(&id).await.expect("posture");
    assert_eq!(
        posture.layers.catalog_version,
        Some(true),
        "the install is trusted"
    );
    (fx, gw, id)
}

/// A call on a kept answer, started while the owner's transaction that adds a CHECK to the
/// domain is open, waits for it to end; once it commits, the call sees the CHECK and is
/// refused, and the owner's function never runs. (Without the lock the call ran at once,
/// on the catalog as it was.) The same for `explain_query`, and a DDL transaction left open
/// makes a call fail after `lock_timeout`, with nothing run.
#[tokio::test]
async fn a_call_waits_for_a_ddl_transaction_and_then_sees_what_it_did() {
    let (fx, gw, id) = setup(config(20_000)).await;
    // Answers kept: the second call of each runs on the kept one.
    for _ in 0..2 {
        let r = gw.execute_query(&id, QUERY, &[], None).await.expect("runs");
        assert_eq!(r.rows, vec![vec![serde_json::json!(1)]]);
        gw.explain_query(&id, EXPLAINED, false)
            .await
            .expect("explains");
    }
    let mut owner = PgConnection::connect(&fx.url()).await.expect("owner");
    run(
        &mut owner,
        "BEGIN; ALTER DOMAIN dd ADD CONSTRAINT dd_owner CHECK (owner_code(VALUE))",
    )
    .await;
    let call = {
        let (gw, id) = (gw.clone(), id.clone());
        tokio::spawn(async move { gw.execute_query(&id, QUERY, &[], None).await })
    };
    let explain = {
        let (gw, id) = (gw.clone(), id.clone());
        tokio::spawn(async move { gw.explain_query(&id, EXPLAINED, false).await })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !call.is_finished() && !explain.is_finished(),
        "the calls did not wait for the open DDL transaction"
    );
    run(&mut owner, "COMMIT").await;
    let e = call
        .await
        .expect("task")
        .expect_err("the CHECK the owner added is seen");
    assert_eq!(e.rule(), Some("function.user_defined"), "{e}");
    assert!(!e.to_string().contains("OWNER-CODE-RAN"), "{e}");
    let e = explain
        .await
        .expect("task")
        .expect_err("the EXPLAIN sees it too");
    assert_eq!(e.rule(), Some("function.user_defined"), "{e}");
    assert!(!e.to_string().contains("OWNER-CODE-RAN"), "{e}");

    // A DDL transaction left open: a call waits `lock_timeout`, then fails, nothing run.
    let gw_short = Gateway::new(config(300));
    let short = common::pg_connect(&gw_short, &fx).await;
    run(&mut owner, "BEGIN; CREATE TABLE left_open (x int)").await;
    let started = std::time::Instant::now();
    let e = gw_short
        .execute_query(&short, "SELECT 1 AS one", &[], None)
        .await
        .expect_err("waits, then fails");
    assert!(
        e.to_string().contains("lock timeout") && e.to_string().contains("DDL transaction"),
        "{e}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    run(&mut owner, "ROLLBACK").await;
    let r = gw_short
        .execute_query(&short, "SELECT 1 AS one", &[], None)
        .await
        .expect("runs once the DDL transaction ended");
    assert_eq!(r.rows, vec![vec![serde_json::json!(1)]]);
    gw_short.close_connection(&short).await.expect("close");
    owner.close().await.ok();
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

/// A DDL command waits for a call in flight: here a call held at its lock of a table
/// another session holds. The owner's `CREATE FUNCTION` times out meanwhile, and goes
/// through once the call has ended.
#[tokio::test]
async fn a_ddl_command_waits_for_the_calls_in_flight() {
    let (fx, gw, id) = setup(config(20_000)).await;
    let mut holder = PgConnection::connect(&fx.url()).await.expect("holder");
    run(
        &mut holder,
        "BEGIN; LOCK TABLE departments IN ACCESS EXCLUSIVE MODE",
    )
    .await;
    let call = {
        let (gw, id) = (gw.clone(), id.clone());
        tokio::spawn(async move {
            gw.execute_query(&id, "SELECT name FROM departments WHERE id = 1", &[], None)
                .await
        })
    };
    // The call is in flight once its session waits for the table's lock.
    let mut owner = PgConnection::connect(&fx.url()).await.expect("owner");
    let mut waiting = false;
    for _ in 0..100 {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE NOT l.granted AND a.application_name = 'dbward' AND l.relation IS NOT NULL",
        )
        .fetch_one(&mut owner)
        .await
        .expect("locks");
        if n > 0 {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(waiting, "the call waits for the table's lock");
    owner
        .execute("SET lock_timeout = '300ms'")
        .await
        .expect("owner session");
    let ddl = "CREATE FUNCTION later() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$";
    let e = owner
        .execute(ddl)
        .await
        .expect_err("the DDL waits for the call in flight");
    assert!(e.to_string().contains("lock timeout"), "{e}");
    assert!(!call.is_finished(), "the call is still in flight");
    run(&mut holder, "COMMIT").await;
    let r = call.await.expect("task").expect("the call ends well");
    assert_eq!(r.rows, vec![vec![serde_json::json!("Engineering")]]);
    owner
        .execute(ddl)
        .await
        .expect("no call in flight: the DDL goes through");
    holder.close().await.ok();
    owner.close().await.ok();
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

/// Calls raced against the owner's loop, over four callers.
const CALLS: usize = 800;

/// The owner adds and drops, in a tight loop, a CHECK on the domain of `cc`'s attribute
/// that terminates a victim session, while four callers run [`QUERY`] (on kept answers
/// mostly) and EXPLAINs of it. The CHECK never runs in a call: the victim lives, and no
/// call fails with the owner's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_domain_check_added_in_a_loop_never_runs_in_a_call() {
    let (fx, gw, id) = setup(config(5_000)).await;
    let mut owner = PgConnection::connect(&fx.url()).await.expect("owner");
    run(
        &mut owner,
        "CREATE FUNCTION kill_victim(int) RETURNS bool LANGUAGE sql AS $$
           SELECT count(pg_catalog.pg_terminate_backend(pid)) >= 0 FROM pg_catalog.pg_stat_activity
           WHERE application_name = 'dbward_victim' $$",
    )
    .await;
    owner.close().await.ok();
    let mut victim = PgConnection::connect(&format!("{}?application_name=dbward_victim", fx.url()))
        .await
        .expect("victim");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swaps = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let looping = {
        let (stop, swaps, url) = (stop.clone(), swaps.clone(), fx.url());
        tokio::spawn(async move {
            let mut owner = PgConnection::connect(&url).await.expect("owner");
            owner
                .execute("SET lock_timeout = '1s'")
                .await
                .expect("owner session");
            let steps = [
                "ALTER DOMAIN dd ADD CONSTRAINT k CHECK (kill_victim(VALUE))",
                "ALTER DOMAIN dd DROP CONSTRAINT k",
            ];
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if owner.execute(steps[i % 2]).await.is_ok() {
                    swaps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    i += 1;
                }
            }
            if i % 2 == 1 {
                owner.execute(steps[1]).await.expect("the check dropped");
            }
            owner.close().await.ok();
        })
    };
    let mut tasks = Vec::new();
    for caller in 0..4 {
        let (gw, id) = (gw.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for call in 0..CALLS / 4 {
                if (caller + call) % 4 == 0 {
                    let r = gw.explain_query(&id, QUERY, false).await;
                    out.push(r.map(|_| ()));
                } else {
                    let r = gw.execute_query(&id, QUERY, &[], None).await;
                    out.push(r.map(|_| ()));
                }
            }
            out
        }));
    }
    let (mut served, mut refused) = (0, 0);
    for t in tasks {
        for r in t.await.expect("caller") {
            match r {
                Ok(()) => served += 1,
                Err(e) => {
                    refused += 1;
                    let text = e.to_string();
                    assert!(
                        !text.contains("terminat") && !text.contains("OWNER-CODE"),
                        "{text}"
                    );
                }
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    looping.await.expect("owner loop");
    let swaps = swaps.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("served {served}, refused {refused}, swaps {swaps}");
    assert!(
        swaps >= 50,
        "the owner changed the domain only {swaps} times"
    );
    assert!(
        served > 0 && refused > 0,
        "served {served}, refused {refused}"
    );
    let alive: Result<i32, _> = sqlx::query_scalar("SELECT 1").fetch_one(&mut victim).await;
    assert!(
        alive.is_ok(),
        "the owner's CHECK ran in a call: the victim session was terminated ({alive:?})"
    );
    victim.close().await.ok();
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}
