//! Point-query throughput through the gateway with auditing off and on (fsync every 100 ms),
//! in one process, alternating rounds so machine noise hits both: `audit_overhead [URL]`.
//! Without a URL it uses a fresh SQLite file. Prints each median and the ratio.

// A measuring tool: its report is its stdout.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use dbward_gateway::audit::{AuditConfig, AuditLog};
use dbward_gateway::{ConnectRequest, Gateway, GatewayConfig};
use secrecy::SecretString;

const QUERIES: usize = 2_000;
const ROUNDS: usize = 5;

async fn run(gw: &Gateway, id: &str, sql: &str) -> f64 {
    let started = Instant::now();
    for i in 0..QUERIES {
        gw.execute_query(id, sql, &[serde_json::json!(1 + i % 100)], None)
            .await
            .expect("point query");
    }
    QUERIES as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("dbward_audit_bench_{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = match std::env::args().nth(1) {
        Some(u) => u,
        None => {
            let db = dir.join("bench.db");
            rusqlite::Connection::open(&db)?.execute_batch(
                "CREATE TABLE servers (id INTEGER PRIMARY KEY, hostname TEXT);
                 WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 100)
                 INSERT INTO servers (hostname) SELECT 'srv-' || n FROM g;",
            )?;
            format!("sqlite://{}", db.display())
        }
    };
    let mut config = GatewayConfig {
        allow_client_connections: true,
        ..Default::default()
    };
    config.detector.max_calls = usize::MAX;
    let plain = Gateway::new(config.clone());
    let audited =
        Gateway::new(config).with_audit(AuditLog::open(AuditConfig::new(dir.join("audit.jsonl")))?);
    let a = plain
        .connect(ConnectRequest::Url(SecretString::from(url.clone())))
        .await?
        .id
        .to_string();
    let b = audited
        .connect(ConnectRequest::Url(SecretString::from(url.clone())))
        .await?
        .id
        .to_string();
    let sql = if url.starts_with("sqlite") {
        "SELECT id, hostname FROM servers WHERE id = ?1"
    } else {
        "SELECT id, hostname FROM servers WHERE id = $1"
    };
    run(&plain, &a, sql).await; // warm-up
    run(&audited, &b, sql).await;
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        off.push(run(&plain, &a, sql).await);
        on.push(run(&audited, &b, sql).await);
    }
    let (off, on) = (median(off), median(on));
    println!("audit off: {off:.0} queries/s");
    println!("audit on (fsync every 100 ms): {on:.0} queries/s");
    println!(
        "on/off throughput ratio: {:.3} ({:.1}% slower)",
        on / off,
        (1.0 - on / off) * 100.0
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
