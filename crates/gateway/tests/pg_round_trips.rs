//! How many round trips an `execute_query` call makes to PostgreSQL, observed on the wire:
//! the gateway connects through a relay on a local port that counts the client's bursts
//! (client bytes sent after the server last spoke), each one a round trip.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{PgFixture, client_config};
use dbward_gateway::{ConnectRequest, Gateway};
use secrecy::SecretString;
use serde_json::json;
use sqlx::{AssertSqlSafe, Connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Held by each test for its whole run: a transaction anywhere in the cluster makes a kept
/// answer stale, so this binary's tests, which count the round trips of kept answers, do
/// not run beside each other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Round trips seen so far, over every relayed connection.
#[derive(Default)]
struct Wire {
    round_trips: AtomicUsize,
}

/// Relays every connection on a local port to PostgreSQL, counting round trips. Returns the
/// port.
async fn relay(wire: Arc<Wire>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect("127.0.0.1:5432").await.expect("pg");
            let wire = wire.clone();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                // Whether the server spoke since the client last did.
                let server_spoke = Arc::new(AtomicBool::new(true));
                let spoke = server_spoke.clone();
                let up = async move {
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        if spoke.swap(false, Ordering::SeqCst) {
                            wire.round_trips.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                };
                let down = async move {
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n) = sr.read(&mut buf).await {
                        server_spoke.store(true, Ordering::SeqCst);
                        if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::join!(up, down);
            });
        }
    });
    port
}

/// Round trips of one call of `sql` with `params`, and its row count.
async fn trips(
    gw: &Gateway,
    wire: &Wire,
    id: &str,
    sql: &str,
    params: &[serde_json::Value],
) -> usize {
    let before = wire.round_trips.load(Ordering::SeqCst);
    let r = gw.execute_query(id, sql, params, None).await.expect("runs");
    assert_eq!(r.rows.len(), 1, "{sql}");
    wire.round_trips.load(Ordering::SeqCst) - before
}

/// A gateway with one pooled session to `fx`'s database through the relay; its
/// connection id.
async fn through_relay(fx: &PgFixture, wire: &Arc<Wire>) -> (Gateway, String) {
    through_relay_with_pool(fx, wire, 1).await
}

/// [`through_relay`] with a pool of up to `pool_max_size` sessions.
async fn through_relay_with_pool(
    fx: &PgFixture,
    wire: &Arc<Wire>,
    pool_max_size: u32,
) -> (Gateway, String) {
    let port = relay(wire.clone()).await;
    // Without TLS, so the relay sees the protocol (not needed for the count).
    let url = format!(
        "{}?sslmode=disable",
        fx.url().replace(":5432/", &format!(":{port}/"))
    );
    let mut config = client_config();
    config.limits.pool_max_size = pool_max_size;
    let gw = Gateway::new(config);
    let id = gw
        .connect(ConnectRequest::Url(SecretString::from(url)))
        .await
        .expect("connects through the relay")
        .id
        .to_string();
    (gw, id)
}

#[tokio::test]
async fn a_point_query_is_one_round_trip_in_the_steady_state() {
    let _serial = SERIAL.lock().await;
    let fx = PgFixture::new().await;
    let wire = Arc::new(Wire::default());
    let (gw, id) = through_relay(&fx, &wire).await;
    let sql = "SELECT hostname, status FROM servers WHERE id = $1";
    // The first call resolves the names (BEGIN with the resolution; then the DECLARE, FETCH
    // and the end in one flush) and keeps the answer.
    assert_eq!(
        trips(&gw, &wire, &id, sql, &[json!(7)]).await,
        2,
        "first call"
    );
    // Then each call is one flush: BEGIN, the guard of the kept answer, the DECLARE, the
    // FETCH and the end. (Any transaction committed anywhere in the cluster makes the next
    // guard fail, so the count is the typical one, not every one.)
    let mut seen: Vec<usize> = Vec::new();
    for i in 0..9 {
        seen.push(trips(&gw, &wire, &id, sql, &[json!(8 + i)]).await);
    }
    seen.sort_unstable();
    assert_eq!(seen[4], 1, "round trips of 9 calls: {seen:?}");
    assert!(seen.iter().all(|&n| n <= 3), "{seen:?}");
    // A string parameter whose type the database infers: resolved afresh (not one flush),
    // plus its Describe.
    let by_name = "SELECT hostname, status FROM servers WHERE hostname = $1";
    assert_eq!(
        trips(&gw, &wire, &id, by_name, &[json!("srv-9")]).await,
        3,
        "{by_name}"
    );
    // And so is the next such call: its Describe (which parses the query, and parsing can
    // run owner code) must follow an answer judged in the call, never a kept one
    // (`pg_races::a_parameter_describe_follows_an_answer_judged_in_the_call`).
    let fresh = common::pg_resolution_counts(&gw)[2];
    assert_eq!(
        trips(&gw, &wire, &id, by_name, &[json!("srv-10")]).await,
        3,
        "{by_name} again"
    );
    assert_eq!(
        common::pg_resolution_counts(&gw)[2],
        fresh + 1,
        "a string parameter's call resolved afresh"
    );
    // A change committed by another session that leaves the answer as it was: the guard
    // fails (nothing of the query runs), and the call goes again behind the recheck, which
    // reads the same answer and lets the query run: two round trips. The answer is then
    // kept under the new fingerprint: the next calls are one again (typically).
    let mut owner = sqlx::PgConnection::connect(&fx.url()).await.expect("owner");
    sqlx::raw_sql("CREATE TABLE unrelated (i int)")
        .execute(&mut owner)
        .await
        .expect("ddl");
    assert_eq!(
        trips(&gw, &wire, &id, sql, &[json!(20)]).await,
        2,
        "after an unrelated change"
    );
    let mut next = Vec::new();
    for i in 0..3 {
        next.push(trips(&gw, &wire, &id, sql, &[json!(21 + i)]).await);
    }
    assert!(next.contains(&1), "the answer kept again is used: {next:?}");
    // A change to what a name resolves to (the table is now a view over it): the guard and
    // the recheck fail, and the call resolves afresh and judges the new answer before the
    // query: four round trips. For a second after, answers are asked afresh (two); then
    // the renewed answer is used (one).
    sqlx::raw_sql(
        "ALTER TABLE servers RENAME TO servers_old; \
         CREATE VIEW servers AS SELECT * FROM servers_old",
    )
    .execute(&mut owner)
    .await
    .expect("ddl");
    assert_eq!(
        trips(&gw, &wire, &id, sql, &[json!(20)]).await,
        4,
        "after a change"
    );
    assert_eq!(
        trips(&gw, &wire, &id, sql, &[json!(21)]).await,
        2,
        "right after"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let mut again = Vec::new();
    for i in 0..3 {
        again.push(trips(&gw, &wire, &id, sql, &[json!(30 + i)]).await);
    }
    assert!(again.contains(&1), "the renewed answer is used: {again:?}");
    owner.close().await.ok();
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

/// A result with no row takes its shape from the FETCH's own description, which comes in
/// the same flush: no second round trip to describe the query (that describe, with the
/// re-preparing of the session's statements after it, made an empty result cost about ten
/// times a one-row result).
#[tokio::test]
async fn an_empty_result_is_one_round_trip_with_its_columns() {
    let _serial = SERIAL.lock().await;
    let fx = PgFixture::new().await;
    let wire = Arc::new(Wire::default());
    let (gw, id) = through_relay(&fx, &wire).await;
    let sql = "SELECT hostname, status, id FROM servers WHERE id = $1";
    let full = gw
        .execute_query(&id, sql, &[json!(7)], None)
        .await
        .expect("a row");
    assert_eq!(full.rows.len(), 1);
    let mut seen = Vec::new();
    for i in 0..9 {
        let before = wire.round_trips.load(Ordering::SeqCst);
        let r = gw
            .execute_query(&id, sql, &[json!(-1 - i)], None)
            .await
            .expect("no row");
        seen.push(wire.round_trips.load(Ordering::SeqCst) - before);
        assert_eq!((r.row_count, r.truncated), (0, false));
        assert_eq!(r.columns, full.columns, "the shape of an empty result");
    }
    seen.sort_unstable();
    // (A commit anywhere in the cluster makes the next guard fail: the typical count.)
    assert_eq!(seen[4], 1, "round trips of 9 empty results: {seen:?}");
    common::assert_no_statements_of_earlier_calls(&gw, &id).await;
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

/// An EXPLAIN (and EXPLAIN ANALYZE) of a query whose answer is kept runs on it: one message
/// of our own (BEGIN, the lock, the guard) before the EXPLAIN, not the resolution.
#[tokio::test]
async fn an_explain_runs_on_a_kept_answer() {
    let _serial = SERIAL.lock().await;
    let fx = PgFixture::new().await;
    let wire = Arc::new(Wire::default());
    let (gw, id) = through_relay(&fx, &wire).await;
    let sql = "SELECT hostname FROM servers WHERE id = 5";
    gw.explain_query(&id, sql, false).await.expect("a plan");
    let before = common::pg_resolution_counts(&gw);
    for i in 0..9 {
        let e = gw
            .explain_query(&id, sql, i % 3 == 0)
            .await
            .expect("a plan");
        assert!(e.plan.to_string().contains("servers"), "{}", e.plan);
        assert_eq!(e.analyzed, i % 3 == 0);
    }
    let after = common::pg_resolution_counts(&gw);
    // (A commit anywhere in the cluster makes a guard fail: the typical count.)
    assert!(
        after[0] - before[0] >= 5,
        "explains on the kept answer: {before:?} -> {after:?}"
    );
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

/// The guard takes the session's fingerprint as a bound parameter: a search path whose
/// schema name holds quotes, a backslash and non-ASCII letters still matches exactly (the
/// kept answer is used: one round trip), and the query sees that schema.
#[tokio::test]
async fn the_guard_matches_a_search_path_of_quoted_names() {
    let _serial = SERIAL.lock().await;
    let fx = PgFixture::new().await;
    let mut owner = sqlx::PgConnection::connect(&fx.url()).await.expect("owner");
    let db = fx.db.replace('"', "\"\"");
    sqlx::raw_sql(AssertSqlSafe(format!(
        r#"CREATE SCHEMA "it's ""odd"" \ ü";
           CREATE TABLE "it's ""odd"" \ ü".gadgets (id int, label text);
           INSERT INTO "it's ""odd"" \ ü".gadgets VALUES (1, 'one'), (2, 'two'), (3, 'three');
           ALTER DATABASE "{db}" SET search_path = "it's ""odd"" \ ü", public;"#
    )))
    .execute(&mut owner)
    .await
    .expect("fixture");
    let wire = Arc::new(Wire::default());
    let (gw, id) = through_relay(&fx, &wire).await;
    let sql = "SELECT label FROM gadgets WHERE id = $1";
    let r = gw
        .execute_query(&id, sql, &[json!(2)], None)
        .await
        .expect("runs");
    assert_eq!(r.rows, vec![vec![json!("two")]]);
    // (A transaction committed anywhere in the cluster makes a kept answer stale, and
    // answers are then asked afresh for a second: let that second pass.)
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let mut seen: Vec<usize> = Vec::new();
    for i in 0..9 {
        seen.push(trips(&gw, &wire, &id, sql, &[json!(1 + i % 3)]).await);
    }
    seen.sort_unstable();
    assert_eq!(seen[4], 1, "round trips of 9 calls: {seen:?}");
    owner.close().await.ok();
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}

/// Connecting reads the server's version and the role's posture on the one session it
/// opens: start-up pays for one connect (its handshake and prepares), not two.
#[tokio::test]
async fn connecting_opens_one_session() {
    let _serial = SERIAL.lock().await;
    let fx = PgFixture::new().await;
    let wire = Arc::new(Wire::default());
    let (gw, id) = through_relay_with_pool(&fx, &wire, 4).await;
    let mut admin = common::pg_admin().await;
    let (sessions,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'dbward'",
    )
    .bind(&fx.db)
    .fetch_one(&mut admin)
    .await
    .expect("sessions");
    assert_eq!(sessions, 1, "sessions opened by connect");
    let info = gw
        .list_connections()
        .into_iter()
        .find(|c| c.id.to_string() == id)
        .expect("listed");
    assert!(!info.role.is_empty(), "the posture was read: {info:?}");
    gw.close_connection(&id).await.expect("close");
}

/// A result whose first row is too large to read (a message over the driver's limit) is
/// cut with its shape known, types named, from the FETCH's own RowDescription: the query
/// is not described again in a transaction of its own (where its parse, which can run
/// owner code, would follow no check that the answer judged is still current).
#[tokio::test]
async fn a_first_row_too_large_to_read_keeps_the_result_s_shape() {
    let _serial = SERIAL.lock().await;
    let fx = PgFixture::new().await;
    let mut owner = sqlx::PgConnection::connect(&fx.url()).await.expect("owner");
    sqlx::raw_sql(
        "CREATE TABLE wide AS SELECT repeat('x', 3000000) AS big, 'ok'::mood AS m, 1 AS id",
    )
    .execute(&mut owner)
    .await
    .expect("a wide row");
    owner.close().await.ok();
    let gw = Gateway::new(client_config());
    let id = common::pg_connect(&gw, &fx).await;
    let small = gw
        .execute_query(
            &id,
            "SELECT left(big, 3) AS big, m, id FROM wide",
            &[],
            None,
        )
        .await
        .expect("a small row");
    let names: Vec<(&str, &str)> = small
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.type_name.as_str()))
        .collect();
    assert_eq!(names, [("big", "text"), ("m", "mood"), ("id", "int4")]);
    for _ in 0..2 {
        let cut = gw
            .execute_query(&id, "SELECT big, m, id FROM wide", &[], None)
            .await
            .expect("cut, not refused");
        assert!(cut.truncated && cut.rows.is_empty(), "{cut:?}");
        assert_eq!(cut.columns, small.columns, "the shape of the cut result");
    }
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}
