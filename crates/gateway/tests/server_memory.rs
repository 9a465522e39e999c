//! dbward's own memory when a PostgreSQL or MariaDB query returns values of hundreds of
//! megabytes: its own test binary, so the process's peak (VmHWM) is this test's alone.
//!
//! The queries go straight to the backends, with no policy in front: the bound must hold
//! even if the policy were fooled into allowing any of them. The values are stored in a
//! table (so no builder function is involved) and repeated, concatenated or aggregated by
//! the query. Each must be cut or refused without its row ever being buffered: the driver
//! refuses a message larger than `message_limit` from its header.

mod common;

use common::mysql::MyFixture;
use common::{PgFixture, client_config};
use dbward_gateway::ConnectSpec;
use dbward_gateway::backends::mysql::MyBackend;
use dbward_gateway::backends::postgres::PgBackend;
use dbward_gateway::backends::{Caps, QueryResult};
use dbward_gateway::error::GatewayError;
use secrecy::SecretString;
use sqlx::{Connection, Executor};

/// Peak resident memory of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Cut (with the result's shape known) or refused with an error that names the limit.
fn cut_or_refused(sql: &str, r: &Result<QueryResult, GatewayError>) {
    match r {
        Ok(r) => {
            assert!(r.truncated, "{sql}: the result was not cut");
            assert!(r.rows.is_empty(), "{sql}: a row came back");
            assert!(!r.columns.is_empty(), "{sql}: the result's shape was lost");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("over dbward's limit") && msg.contains("session was closed"),
                "{sql}: unexpected error: {msg}"
            );
        }
    }
}

#[tokio::test]
async fn values_of_hundreds_of_megabytes_are_never_buffered() {
    let limits = client_config().limits;
    let mut caps = Caps::new(&limits, 1_000);
    caps.timeout_ms = 60_000;

    // PostgreSQL: one stored value of 100 MB (it compresses to almost nothing on disk).
    let pg = PgFixture::new().await;
    let mut owner = sqlx::PgConnection::connect(&pg.url()).await.expect("owner");
    owner
        .execute("CREATE TABLE blob AS SELECT repeat('x', 100000000) AS v")
        .await
        .expect("blob");
    owner.close().await.ok();
    let spec = ConnectSpec::from_url(&SecretString::from(pg.url())).expect("spec");
    let b = PgBackend::connect(&spec, &limits).await.expect("connects");
    let before = vm_hwm_kib();
    for sql in [
        // 400 MB in one value, in one row of four values, and aggregated.
        "SELECT v || v || v || v AS big FROM blob",
        "SELECT v AS a, v AS b, v AS c, v AS d FROM blob",
        "SELECT string_agg(v, '') AS big FROM blob, generate_series(1, 4)",
        // A small row first, then the big one: the small one may come back, the result cut.
        "SELECT * FROM (SELECT 'small' AS v UNION ALL SELECT v || v || v FROM blob) s",
    ] {
        let r = b.execute(sql, &[], caps).await;
        if sql.contains("small") {
            let r = r.expect("cut, not refused");
            assert!(r.truncated && r.rows.len() <= 1, "{sql}: {r:?}");
        } else {
            cut_or_refused(sql, &r);
        }
    }
    // An error whose message would carry the 200 MB value: refused too.
    let r = b
        .execute("SELECT (v || v)::int AS n FROM blob", &[], caps)
        .await;
    let e = r.expect_err("an error either way");
    assert!(
        e.to_string().len() < 1_000,
        "the error is not short: {} bytes",
        e.to_string().len()
    );
    // The pool goes on working: cut sessions were closed, not reused.
    let r = b
        .execute("SELECT length(v) AS n FROM blob", &[], caps)
        .await
        .expect("a normal query after the cut ones");
    assert_eq!(r.rows[0][0], serde_json::json!(100000000));
    let after_pg = vm_hwm_kib();
    b.close().await;
    pg.drop().await;

    // MariaDB: a value is at most max_allowed_packet (16 MiB here), but a row is not.
    let my = MyFixture::new().await;
    let mut owner = sqlx::MySqlConnection::connect(&my.url())
        .await
        .expect("owner");
    owner
        .execute("CREATE TABLE big (v LONGTEXT)")
        .await
        .expect("big table");
    owner
        .execute("INSERT INTO big SELECT repeat('x', 15000000)")
        .await
        .expect("big row");
    owner.close().await.ok();
    let spec = ConnectSpec::from_url(&SecretString::from(my.url())).expect("spec");
    let b = MyBackend::connect(&spec, &limits).await.expect("connects");
    let wide = (0..26)
        .map(|i| format!("v AS c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    for sql in [
        // 390 MB in one row, and one 15 MB value.
        format!("SELECT {wide} FROM big"),
        "SELECT v FROM big".to_string(),
    ] {
        let r = b.execute(&sql, &[], caps).await;
        cut_or_refused(&sql, &r);
    }
    let r = b
        .execute("SELECT length(v) AS n FROM big", &[], caps)
        .await
        .expect("a normal query after the cut ones");
    assert_eq!(r.rows[0][0], serde_json::json!(15000000));
    let after_my = vm_hwm_kib();
    b.close().await;
    my.drop().await;

    eprintln!(
        "VmHWM before {before} KiB, after PostgreSQL {after_pg} KiB, after MariaDB {after_my} KiB"
    );
    let grown_mb = after_my.saturating_sub(before) / 1024;
    assert!(grown_mb < 100, "peak memory grew by {grown_mb} MiB");
}
