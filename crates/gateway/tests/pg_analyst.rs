//! What an analyst sends to PostgreSQL runs: parameters take the types the database
//! infers (as in psql), and a broad corpus of real-world analytical and DBA queries
//! (`corpus/postgres_analyst.sql`, run against `corpus/postgres_analyst_schema.sql`) is
//! allowed by the policy and runs through the gateway on the real database.

mod common;

use common::{PgFixture, client_config};
use dbward_gateway::{ConnectRequest, Gateway, GatewayError};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::Connection;

const SCHEMA: &str = include_str!("corpus/postgres_analyst_schema.sql");
const CORPUS: &str = include_str!("corpus/postgres_analyst.sql");

/// A fresh database with the CMDB fixture and the analyst schema, and a gateway connected
/// to it as the owner (pool of `pool` sessions).
async fn setup(pool: u32) -> (PgFixture, Gateway, String) {
    let fx = PgFixture::new().await;
    let mut owner = sqlx::PgConnection::connect(&fx.url())
        .await
        .expect("connect as owner");
    sqlx::raw_sql(SCHEMA)
        .execute(&mut owner)
        .await
        .expect("load the analyst schema");
    owner.close().await.ok();
    let mut cfg = client_config();
    cfg.limits.pool_max_size = pool;
    let gw = Gateway::new(cfg);
    let id = gw
        .connect(ConnectRequest::Url(SecretString::from(fx.url())))
        .await
        .expect("connects")
        .id
        .to_string();
    (fx, gw, id)
}

/// Parameter cases: query, parameters, and the expected result (rows of the first column).
fn parameter_cases() -> Vec<(&'static str, Vec<Value>, Vec<Value>)> {
    let ids = |v: &[i64]| v.iter().map(|i| json!(i)).collect::<Vec<_>>();
    vec![
        // bit: a string of three bits stays three bits (a cast to `bit` would make it one)
        (
            "SELECT 1 AS one WHERE B'101' = $1",
            vec![json!("101")],
            ids(&[1]),
        ),
        // timestamptz (the example)
        (
            "SELECT id FROM readings WHERE created_at >= $1 ORDER BY id",
            vec![json!("2024-02-01")],
            ids(&[4, 5, 6, 7, 8, 9, 10]),
        ),
        (
            "SELECT id FROM readings WHERE created_at BETWEEN $1 AND $2 ORDER BY id",
            vec![json!("2024-01-15"), json!("2024-03-01 00:00:00+00")],
            ids(&[2, 3, 4, 5]),
        ),
        (
            "SELECT id FROM readings WHERE date_trunc('month', created_at) = $1 ORDER BY id",
            vec![json!("2024-02-01 00:00:00+00")],
            ids(&[4, 5]),
        ),
        // date, explicit and inferred
        (
            "SELECT id FROM readings WHERE taken_on = $1",
            vec![json!("2024-01-21")],
            ids(&[2]),
        ),
        (
            "SELECT id FROM readings WHERE taken_on > $1::date ORDER BY id",
            vec![json!("2024-03-15")],
            ids(&[8, 9, 10]),
        ),
        // numeric: the string keeps its precision
        (
            "SELECT id FROM readings WHERE amount > $1 ORDER BY id",
            vec![json!("20.5")],
            ids(&[9, 10]),
        ),
        (
            "SELECT $1::numeric(30,20) * 1",
            vec![json!("1.00000000000000000001")],
            vec![json!("1.00000000000000000001")],
        ),
        // uuid
        (
            "SELECT id FROM readings WHERE ref = $1",
            vec![json!("00000000-0000-0000-0000-000000000003")],
            ids(&[3]),
        ),
        // an integer given as a string
        (
            "SELECT id FROM readings WHERE id = $1",
            vec![json!("5")],
            ids(&[5]),
        ),
        // bool
        (
            "SELECT count(*) FROM readings WHERE active = $1",
            vec![json!("true")],
            ids(&[5]),
        ),
        // jsonb
        (
            "SELECT count(*) FROM readings WHERE doc @> $1",
            vec![json!("{\"kind\": \"even\"}")],
            ids(&[5]),
        ),
        // inet
        (
            "SELECT count(*) FROM readings WHERE addr << $1",
            vec![json!("10.1.0.0/29")],
            ids(&[7]),
        ),
        // interval
        (
            "SELECT count(*) FROM readings WHERE span >= $1",
            vec![json!("5 hours")],
            ids(&[6]),
        ),
        (
            "SELECT count(*) FROM readings WHERE created_at > timestamptz '2024-03-01 00:00:00+00' - $1::interval",
            vec![json!("30 days")],
            ids(&[8]),
        ),
        // an array given in PostgreSQL's text form
        (
            "SELECT id FROM readings WHERE id = ANY($1) ORDER BY id",
            vec![json!("{1,2,3}")],
            ids(&[1, 2, 3]),
        ),
        // text types stay text
        (
            "SELECT id FROM readings WHERE label = $1",
            vec![json!("label-3")],
            ids(&[3]),
        ),
        (
            "SELECT id FROM readings WHERE code = $1",
            vec![json!("C03")],
            ids(&[3]),
        ),
        (
            "SELECT id FROM readings WHERE doc->>'kind' = $1 AND id < $2 ORDER BY id",
            vec![json!("odd"), json!(6)],
            ids(&[1, 3, 5]),
        ),
        // mixed: JSON-typed numbers beside inferred strings
        (
            "SELECT id FROM readings WHERE taken_on >= $1 AND id < $2 AND label <> $3 AND active = $4 ORDER BY id",
            vec![json!("2024-01-01"), json!(5), json!("x"), json!(true)],
            ids(&[2, 4]),
        ),
        // a null takes the inferred type too
        (
            "SELECT count(*) FROM readings WHERE created_at >= $1",
            vec![Value::Null],
            ids(&[0]),
        ),
        (
            "SELECT count(*) FROM readings WHERE created_at >= coalesce($1, timestamptz '2024-02-01')",
            vec![Value::Null],
            ids(&[7]),
        ),
        // no type the server can infer: bound as text, as before
        ("SELECT $1 AS echo", vec![json!("hi")], vec![json!("hi")]),
        (
            "SELECT count(*) FROM readings WHERE $1 IS NULL",
            vec![json!("x")],
            ids(&[0]),
        ),
        // an enum takes its type (its label is its binary form)
        (
            "SELECT id FROM readings WHERE feeling = $1 ORDER BY id",
            vec![json!("happy")],
            ids(&[2, 5, 8]),
        ),
        (
            "SELECT $1::mood::text",
            vec![json!("ok")],
            vec![json!("ok")],
        ),
        // an explicit cast to text keeps text
        (
            "SELECT count(*) FROM readings WHERE label = $1::text",
            vec![json!("label-1")],
            ids(&[1]),
        ),
        // an empty result still names its columns (another Parse/Describe)
        (
            "SELECT id FROM readings WHERE created_at >= $1",
            vec![json!("2030-01-01")],
            vec![],
        ),
    ]
}

/// Strings take the type the database infers for their parameter (issue 12), bad values
/// get a clear error, and no prepared statement outlives the calls.
#[tokio::test]
async fn parameters_take_the_types_the_database_infers() {
    let (fx, gw, id) = setup(1).await;
    let mut failures = Vec::new();
    // Twice: the second time in sessions whose statements were prepared again after the
    // first (the unnamed Describe leaves nothing to drop, unless the driver named a lookup
    // of its own).
    let cases = parameter_cases();
    for (sql, params, expected) in cases.iter().chain(cases.iter()).cloned() {
        match gw.execute_query(&id, sql, &params, None).await {
            Ok(r) => {
                let got: Vec<Value> = r.rows.iter().map(|row| row[0].clone()).collect();
                if got != expected {
                    failures.push(format!(
                        "{sql} {params:?}: got {got:?}, expected {expected:?}"
                    ));
                }
                if r.columns.is_empty() {
                    failures.push(format!("{sql} {params:?}: no columns"));
                }
            }
            Err(e) => failures.push(format!("{sql} {params:?}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A value that does not fit the inferred type: a clear error naming the parameter.
    let e = gw
        .execute_query(
            &id,
            "SELECT id FROM readings WHERE id > $1 AND created_at >= $2",
            &[json!(1), json!("not-a-date")],
            None,
        )
        .await
        .expect_err("not a date");
    assert!(matches!(e, GatewayError::InvalidInput(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("$2 as timestamp with time zone") && msg.contains("not-a-date"),
        "{msg}"
    );
    // The session after the failed call is a new one, and works.
    let r = gw
        .execute_query(
            &id,
            "SELECT count(*) FROM readings WHERE taken_on < $1",
            &[json!("2024-02-01")],
            None,
        )
        .await
        .expect("runs after an error");
    assert_eq!(r.rows[0][0], json!(3));

    // One pooled session: whatever the Describe prepared was dropped at the end of the call.
    common::assert_no_statements_of_earlier_calls(&gw, &id).await;
    gw.close_connection(&id).await.ok();
    fx.drop().await;
}

/// One corpus entry: a name and one statement.
struct Entry {
    name: String,
    sql: String,
}

/// Splits the corpus at its `-- name: ` lines; text before the first is the header.
fn corpus() -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for line in CORPUS.lines() {
        if let Some(name) = line.strip_prefix("-- name: ") {
            entries.push(Entry {
                name: name.trim().to_string(),
                sql: String::new(),
            });
        } else if let Some(e) = entries.last_mut() {
            e.sql.push_str(line);
            e.sql.push('\n');
        }
    }
    for e in &mut entries {
        e.sql = e.sql.trim().trim_end_matches(';').trim_end().to_string();
    }
    entries
}

/// Every query of the corpus is allowed by the policy and runs on the real database.
#[tokio::test]
async fn the_analyst_corpus_is_allowed_and_runs() {
    let entries = corpus();
    assert!(entries.len() >= 200, "{} entries", entries.len());
    let mut names = std::collections::HashSet::new();
    for e in &entries {
        assert!(names.insert(e.name.as_str()), "duplicate name {}", e.name);
        assert!(!e.sql.is_empty(), "{} is empty", e.name);
    }
    let (fx, gw, id) = setup(2).await;
    let before = fx.fingerprint().await;
    let mut failures = Vec::new();
    for e in &entries {
        if let Err(err) = gw.execute_query(&id, &e.sql, &[], None).await {
            failures.push(format!(
                "{}: {err}\n    {}",
                e.name,
                e.sql.replace('\n', "\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus queries failed:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
    assert_eq!(fx.fingerprint().await, before, "the corpus changed nothing");
    gw.close_connection(&id).await.ok();
    fx.drop().await;
}
