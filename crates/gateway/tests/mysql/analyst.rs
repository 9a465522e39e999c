//! The MariaDB analyst corpus (`analyst.sql`, one query per line): every query is allowed
//! by the whole gateway path (policy, function resolution) and runs on the real server.

use super::*;

#[tokio::test]
async fn analyst_corpus_is_allowed_and_runs() {
    let fx = MyFixture::new().await;
    let gw = Gateway::new(client_config());
    let id = connect(&gw, &fx).await;
    let corpus = include_str!("analyst.sql");
    let mut failures = Vec::new();
    let mut n = 0;
    for sql in corpus
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("--"))
    {
        n += 1;
        if let Err(e) = gw.execute_query(&id, sql, &[], Some(50)).await {
            failures.push(format!("{sql}\n    -> {} {e}", e.code()));
        }
    }
    assert!(n >= 100, "the corpus has {n} queries, want at least 100");
    assert!(
        failures.is_empty(),
        "{} of {n} analyst queries failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    gw.close_connection(&id).await.expect("close");
    fx.drop().await;
}
