//! A process about to exit waits for the statements of its abandoned calls to be ended on
//! their servers (`Gateway::end_abandoned_statements`), on PostgreSQL and on MariaDB.
//!
//! `dbward serve` over stdio runs on a current-thread runtime, as `#[tokio::test]` does: a
//! task runs only while the runtime is polled. The ending of an abandoned statement (a
//! cancel from another connection) is such a task; once `serve` returns, nothing polls it,
//! and a statement waiting on a lock waits on without its client. So here, once the wait
//! has returned, the server is read from another thread while this runtime stands still:
//! what ended the statement must already have run. (PostgreSQL fails this without the wait:
//! measured, the statement was still waiting. MariaDB also ends a statement waiting on a
//! table lock when its client's connection closes, so its test holds either way; it stands
//! for the guarantee, whichever of the two ends the statement.)

mod common;

use std::time::Duration;

use common::mysql::MyFixture;
use common::{PgFixture, client_config};
use dbward_gateway::{ConnectRequest, Gateway};
use secrecy::SecretString;
use sqlx::{Connection, Executor};

/// `read` run to its end on a runtime of its own, in another thread, while the caller's
/// runtime is blocked (not polled) until it returns.
fn read_from_elsewhere<T: Send + 'static>(
    read: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>
    + Send
    + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(read())
    })
    .join()
    .expect("the reading thread")
}

/// Abandons `sql` (which waits on a lock held by another session) after half a second,
/// then waits for its ending.
async fn abandon_and_wait(gw: &Gateway, id: &str, sql: &str) {
    let abandoned = tokio::time::timeout(
        Duration::from_millis(500),
        gw.execute_query(id, sql, &[], None),
    )
    .await;
    assert!(abandoned.is_err(), "the call was abandoned while running");
    assert!(
        gw.end_abandoned_statements(Duration::from_secs(5)).await,
        "the ending finished within the limit"
    );
}

#[tokio::test]
async fn postgres_statements_of_abandoned_calls_are_ended_before_the_wait_returns() {
    let fx = PgFixture::new().await;
    let mut cfg = client_config();
    // Only the cancel can end it.
    cfg.limits.statement_timeout_ms = 120_000;
    cfg.limits.lock_timeout_ms = 120_000;
    let gw = Gateway::new(cfg);
    let id = common::pg_connect(&gw, &fx).await;
    let mut locker = sqlx::PgConnection::connect(&fx.url())
        .await
        .expect("locker");
    locker
        .execute("BEGIN; LOCK TABLE servers IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    abandon_and_wait(&gw, &id, "SELECT count(*) FROM servers").await;
    let db = fx.db.clone();
    let running: i64 = read_from_elsewhere(move || {
        Box::pin(async move {
            let mut admin = common::pg_admin().await;
            sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                 AND application_name = 'dbward' AND state <> 'idle'",
            )
            .bind(db)
            .fetch_one(&mut admin)
            .await
            .expect("activity")
        })
    });
    assert_eq!(running, 0, "the statement was still running on the server");
    drop(locker);
    // Nothing to wait for now.
    assert!(gw.end_abandoned_statements(Duration::ZERO).await);
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

#[tokio::test]
async fn mariadb_statements_of_abandoned_calls_are_ended_before_the_wait_returns() {
    let fx = MyFixture::new().await;
    let mut cfg = client_config();
    cfg.limits.statement_timeout_ms = 120_000;
    cfg.limits.lock_timeout_ms = 120_000;
    let gw = Gateway::new(cfg);
    let id = gw
        .connect(ConnectRequest::Url(SecretString::from(fx.url())))
        .await
        .expect("connects")
        .id
        .to_string();
    let mut locker = common::mysql::my_admin().await;
    locker
        .execute(sqlx::AssertSqlSafe(format!(
            "LOCK TABLES `{}`.servers WRITE",
            fx.db
        )))
        .await
        .expect("lock");
    abandon_and_wait(&gw, &id, "SELECT COUNT(*) FROM servers").await;
    let user = fx.user.clone();
    let running: i64 = read_from_elsewhere(move || {
        Box::pin(async move {
            let mut admin = common::mysql::my_admin().await;
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE USER = ? AND INFO LIKE '%COUNT(*) FROM servers%'",
            )
            .bind(user)
            .fetch_one(&mut admin)
            .await
            .expect("processlist")
        })
    });
    assert_eq!(running, 0, "the statement was still running on the server");
    drop(locker);
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}
