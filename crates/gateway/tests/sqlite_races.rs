//! SQLite: the schema the read rules were computed from is the schema the query runs
//! against. Another process adds and drops, in a loop, a generated column computed from a
//! denied column (SQLite asks the authorizer about the generated column, not about what its
//! expression reads, so dbward denies every generated column of a table with denied
//! columns, from the catalog). Reading it through dbward meanwhile never returns a denied
//! value: the rules are refreshed inside the read transaction the query then runs in.
//! (Refreshed before a prepare in autocommit, 35 of 3,000 calls returned the hashes.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::client_config;
use dbward_gateway::{ConnectRequest, Gateway};
use secrecy::SecretString;

const CALLS: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_column_added_during_calls_never_returns_denied_data() {
    let dir = std::env::temp_dir().join(common::unique("dbward_sqlite_races"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("users.db");
    let setup = rusqlite::Connection::open(&path).expect("create");
    setup
        .execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, password_hash TEXT);
             INSERT INTO users VALUES (1, 'ada', 'HASH-do-not-leak');",
        )
        .expect("fixture");
    drop(setup);

    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, rounds, path) = (stop.clone(), rounds.clone(), path.clone());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&path).expect("writer");
            conn.busy_timeout(std::time::Duration::from_secs(1))
                .expect("busy timeout");
            while !stop.load(Ordering::Relaxed) {
                let added = conn.execute_batch(
                    "ALTER TABLE users ADD COLUMN ph_copy TEXT \
                     GENERATED ALWAYS AS (password_hash) VIRTUAL",
                );
                let dropped = conn.execute_batch("ALTER TABLE users DROP COLUMN ph_copy");
                if added.is_ok() && dropped.is_ok() {
                    rounds.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    let mut config = client_config();
    config.policy.denied_columns = vec!["users.password_hash".into()];
    // Thousands of calls a second from one principal: the rate limit lifted.
    config.detector.max_calls = 1_000_000;
    let gw = Gateway::new(config);
    let id = gw
        .connect(ConnectRequest::Url(SecretString::from(format!(
            "sqlite://{}",
            path.display()
        ))))
        .await
        .expect("connects")
        .id
        .to_string();
    let (mut refused, mut missing) = (0, 0);
    // At least CALLS calls, and on until the writer made 100 rounds meanwhile (a loaded
    // machine can starve it), for at most a minute.
    let started = std::time::Instant::now();
    let mut calls = 0;
    while calls < CALLS
        || (rounds.load(Ordering::Relaxed) < 100 && started.elapsed().as_secs() < 60)
    {
        calls += 1;
        match gw
            .execute_query(&id, "SELECT ph_copy FROM users", &[], None)
            .await
        {
            Ok(r) => panic!("the generated copy was read: {:?}", r.rows),
            Err(e) if e.to_string().contains("no such column") => missing += 1,
            Err(e) => {
                assert!(!e.to_string().contains("HASH-"), "{e}");
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let rounds = rounds.load(Ordering::Relaxed);
    eprintln!("refused {refused}, no such column {missing}, writer rounds {rounds}");
    assert!(rounds >= 100, "the writer made only {rounds} rounds");
    assert!(
        refused > 0 && missing > 0,
        "refused {refused}, missing {missing}"
    );
    // Readable columns still read, and no pooled connection is left in a read transaction:
    // a checkpoint that must wait for every reader's snapshot is not kept busy.
    let r = gw
        .execute_query(&id, "SELECT name FROM users", &[], None)
        .await
        .expect("reads");
    assert_eq!(r.rows, vec![vec![serde_json::json!("ada")]]);
    let conn = rusqlite::Connection::open(&path).expect("writer again");
    conn.execute_batch("UPDATE users SET name = 'ada2'")
        .expect("a write after the calls");
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .expect("checkpoint");
    assert_eq!(
        busy, 0,
        "a dbward connection still holds a read transaction"
    );
    drop(conn);
    gw.close_connection(&id).await.expect("close");
    let _ = std::fs::remove_dir_all(&dir);
}
