//! Issue 13 on the real MariaDB: the catalog tools run under the session's statement
//! timeout (`max_statement_time`), answer `timeout`, and leave nothing running on the
//! server. (MariaDB's information_schema does not wait on metadata locks, so a slow catalog
//! read is made by many tables and a 1 ms timeout.)

use super::*;
use sqlx::Row;

#[tokio::test]
async fn catalog_reads_run_under_the_statement_timeout() {
    let fx = MyFixture::new().await;
    let many: String = (0..300)
        .map(|i| {
            format!("CREATE TABLE wide_{i} (a INT, b INT, c VARCHAR(10), d DATE) ENGINE=MEMORY;")
        })
        .collect();
    fx.owner_exec(&many).await;
    let mut cfg = client_config();
    cfg.limits.statement_timeout_ms = 1;
    let gw = Gateway::new(cfg);
    let id = connect(&gw, &fx).await;
    let started = Instant::now();
    // Every column of every table the login sees, scanned for a name that matches none.
    let e = gw
        .search_tables(&id, "no_such_column_anywhere")
        .await
        .expect_err("1 ms is not enough to scan 300 tables");
    assert_eq!(e.code(), "timeout", "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Nothing of this user is left running a statement on the server (a moment after the
    // answer: the session is closed, not reused).
    let mut admin = common::mysql::my_admin().await;
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let running: Vec<String> = sqlx::query(
            "SELECT CAST(COALESCE(INFO, '') AS CHAR) FROM information_schema.PROCESSLIST \
             WHERE USER = ? AND COMMAND NOT IN ('Sleep', 'Killed')",
        )
        .bind(&fx.user)
        .fetch_all(&mut admin)
        .await
        .expect("processlist")
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
        if running.is_empty() {
            break;
        }
        assert!(Instant::now() < until, "still running: {running:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.close_connection(&id).await.expect("close");

    // With the default timeout the same reads answer.
    let gw = Gateway::new(client_config());
    let id = connect(&gw, &fx).await;
    let found = gw.search_tables(&id, "wide_29").await.expect("search runs");
    assert!(!found.is_empty());
    let tables = gw.list_tables(&id, None).await.expect("list");
    assert!(tables.len() >= 200, "{}", tables.len());
    let d = gw
        .describe_table(&id, None, "wide_7")
        .await
        .expect("describe");
    assert_eq!(d.columns.len(), 4);
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}
