//! The definition judged is the definition that runs: an owner redefining a view in a
//! tight loop, between a harmless body and one that reads a denied column or calls a
//! stored function that KILLs a victim session, never gets a denied value out of dbward,
//! and the function never runs (the call's transaction locks the view before its
//! definition is read, and the redefinition waits for the rollback).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;
use sqlx::{Connection, Executor};

/// Calls of `SELECT x FROM v_race` raced against the redefining owner.
const CALLS: usize = 600;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_view_redefined_during_calls_never_returns_denied_data_nor_runs_its_new_body() {
    let fx = MyFixture::new().await;
    let (mut victim, vid) = victim_session(&fx).await;
    fx.owner_exec(&format!(
        "CREATE FUNCTION kfn() RETURNS VARCHAR(100) BEGIN KILL {vid}; RETURN 'killed'; END;
         CREATE VIEW v_race AS SELECT id, service AS x FROM secrets;"
    ))
    .await;
    let bodies = [
        "CREATE OR REPLACE VIEW v_race AS SELECT id, service AS x FROM secrets",
        "CREATE OR REPLACE VIEW v_race AS SELECT id, api_key AS x FROM secrets",
        "CREATE OR REPLACE VIEW v_race AS SELECT id, service AS x FROM secrets",
        "CREATE OR REPLACE VIEW v_race AS SELECT 1 AS id, kfn() AS x",
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let owner = {
        let (stop, swaps, url) = (stop.clone(), swaps.clone(), fx.url());
        tokio::spawn(async move {
            let mut owner = sqlx::MySqlConnection::connect(&url).await.expect("owner");
            owner
                .execute("SET SESSION lock_wait_timeout = 1")
                .await
                .expect("owner session");
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                // A redefinition that waited too long for dbward's lock just fails.
                if owner.execute(bodies[i % bodies.len()]).await.is_ok() {
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
            owner.close().await.ok();
        })
    };
    let gw = Arc::new(Gateway::new(config_with_denials()));
    let id = connect(&gw, &fx).await;
    let (mut served, mut refused) = (0, 0);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (gw, id) = (gw.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..CALLS / 4 {
                out.push(
                    gw.execute_query(&id, "SELECT x FROM v_race", &[], None)
                        .await,
                );
            }
            out
        }));
    }
    for t in tasks {
        for r in t.await.expect("caller") {
            match r {
                Ok(r) => {
                    served += 1;
                    assert_eq!(
                        r.rows,
                        vec![vec![json!("billing")]],
                        "a denied value came back"
                    );
                }
                Err(e) => {
                    refused += 1;
                    assert!(!e.to_string().contains("sk_live"), "{e}");
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    owner.await.expect("owner loop");
    eprintln!(
        "served {served}, refused {refused}, swaps {}",
        swaps.load(Ordering::Relaxed)
    );
    assert!(
        swaps.load(Ordering::Relaxed) >= 20,
        "the owner redefined the view only {} times",
        swaps.load(Ordering::Relaxed)
    );
    assert!(
        served > 0 && refused > 0,
        "served {served}, refused {refused}"
    );
    assert!(
        sqlx::query("SELECT 1").fetch_one(&mut victim).await.is_ok(),
        "the planted function ran: the victim session was killed"
    );
    victim.close().await.ok();
    fx.drop().await;
}

fn config_with_denials() -> GatewayConfig {
    let mut c = client_config();
    c.policy.denied_columns = vec!["secrets.api_key".into()];
    c
}
