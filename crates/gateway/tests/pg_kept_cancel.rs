//! PostgreSQL: a call that runs on a kept resolution answer, abandoned mid-query, is still
//! cancelled on the server. In a test binary of its own: a kept answer is used only while no
//! transaction commits anywhere in the cluster, and the other PostgreSQL tests commit all
//! the time.

mod common;

use common::{PgFixture, client_config};
use dbward_gateway::Gateway;
use serde_json::json;

/// A call that runs on a kept resolution answer (one flush: BEGIN, the guard, the query,
/// answered in one flush) and is abandoned mid-query is cancelled on the server too: its
/// pid is known before it is sent.
#[tokio::test]
async fn an_abandoned_call_on_a_kept_answer_is_cancelled_on_the_server() {
    let fx = PgFixture::new().await;
    let mut cfg = client_config();
    // Only the cancel can end it within the wait below.
    cfg.limits.statement_timeout_ms = 120_000;
    let gw = Gateway::new(cfg);
    let id = common::pg_connect(&gw, &fx).await;
    let sql = "SELECT count(*) FROM servers a, servers b, servers c, servers d WHERE a.id > $1";
    // Calls that ran on a kept answer, from the gateway's metrics.
    let kept = |gw: &Gateway| {
        gw.metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix("dbward_pg_resolutions{answer=\"kept\"} "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fast (no row of `a` qualifies); its answer is kept. (A commit anywhere in the
    // cluster, autovacuum's on the new database included, makes a kept answer stale and
    // answers asked afresh for a second: then try again.)
    let mut on_kept = false;
    for _ in 0..10 {
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        for _ in 0..2 {
            gw.execute_query(&id, sql, &[json!(100_000)], None)
                .await
                .expect("fast");
        }
        // 8.1 billion rows, hours of work: abandoned after half a second.
        let before = kept(&gw);
        let abandoned = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            gw.execute_query(&id, sql, &[json!(0)], None),
        )
        .await;
        assert!(abandoned.is_err(), "the call was abandoned while running");
        // (Counted when the call is sent behind the guard.)
        on_kept = kept(&gw) > before;
        if on_kept {
            break;
        }
    }
    assert!(on_kept, "an abandoned call ran on a kept answer");
    assert_eq!(
        common::pg_fetches_still_running(&fx.db).await,
        0,
        "the statement was cancelled on the server"
    );
    let r = gw
        .execute_query(&id, sql, &[json!(100_000)], None)
        .await
        .expect("the pool still works");
    assert_eq!(r.rows[0][0], json!(0));
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}
