//! Peak resident memory of one capped query: `peak_rss URL SQL CAP [whole|bytes]`.
//! Prints `rows=<n> truncated=<bool> peak_rss_kb=<VmHWM>`. By default only the row cap
//! applies (the byte cap is lifted); with `bytes`, the default byte cap (and so the default
//! limit on one message from the database) applies too; with `whole`, the full result is
//! fetched with sqlx's `fetch_all` instead (the baseline dbward avoids). Used by
//! `bench/memory.sh`.

// A measuring tool: its report is its stdout.
#![allow(clippy::print_stdout)]

use dbward_gateway::{ConnectRequest, Gateway, GatewayConfig};
use secrecy::SecretString;

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, sql, cap, rest @ ..] = args.as_slice() else {
        return Err("usage: peak_rss URL SQL CAP [whole|bytes]".into());
    };
    let cap: usize = cap.parse()?;
    if rest.first().map(String::as_str) == Some("whole") {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_all(&mut c)
            .await?;
        println!(
            "rows={} truncated=false peak_rss_kb={}",
            rows.len(),
            peak_rss_kb()
        );
        return Ok(());
    }
    let mut config = GatewayConfig {
        allow_client_connections: true,
        ..Default::default()
    };
    config.limits.hard_max_rows = cap.max(config.limits.hard_max_rows);
    if rest.first().map(String::as_str) != Some("bytes") {
        config.limits.max_bytes = usize::MAX;
    }
    let gw = Gateway::new(config);
    let info = gw
        .connect(ConnectRequest::Url(SecretString::from(url.clone())))
        .await?;
    let r = gw
        .execute_query(info.id.as_str(), sql, &[], Some(cap))
        .await?;
    println!(
        "rows={} truncated={} peak_rss_kb={}",
        r.row_count,
        r.truncated,
        peak_rss_kb()
    );
    Ok(())
}
