//! Point-query tool calls per second and p50/p99 latency over MCP stdio and streamable HTTP
//! with 8 and 32 concurrent clients, beside the same point query run directly with sqlx
//! (the baseline), in one run: `mcp_bench DBWARD_BINARY POSTGRES_URL [SECONDS]`.
//! Used by `bench/mcp.sh`, which prepares the database. Every figure is also printed as a
//! ratio to the direct-driver figure at the same concurrency. Two more lines split the cost:
//! the direct driver running the query inside the gateway's read-only transaction (the
//! database side of a call, without dbward), and MCP over HTTP against the embedded SQLite
//! demo (dbward's side, with an almost free database). `MCP_BENCH_ONLY=http32` (or
//! `stdio8`, ...) runs the baseline and that one measurement, for profiling.
//!
//! The HTTP clients speak the 2026-07-28 protocol the way a lean client does: each
//! `tools/call` is one POST carrying its own protocol metadata (no session, no handshake),
//! over kept-alive connections, answered with one JSON body. Every answer is checked (a
//! JSON-RPC result, not an error, with one row). For comparison, x32 is also measured with
//! rmcp's own client, which negotiates a legacy session and reads each answer as an SSE
//! stream.

// A measuring tool: its report is its stdout.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::{
    ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess,
    streamable_http_client::StreamableHttpClientTransportConfig,
};
use serde_json::json;

struct Figures {
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn figures(mut lat: Vec<Duration>, elapsed: Duration) -> Figures {
    lat.sort();
    let pick =
        |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    Figures {
        qps: lat.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
    }
}

/// Runs `clients` loops of `call` for `secs` seconds.
async fn drive<F, Fut>(clients: usize, secs: u64, call: F) -> Figures
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                call(c, i).await;
                lat.push(t.elapsed());
                i += 1;
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    figures(all, started.elapsed())
}

const SQL: &str = "SELECT id, hostname FROM servers WHERE id = $1";

fn report(label: &str, f: &Figures, base: &Figures) {
    println!(
        "{label:<38} {:>7.0} calls/s  p50 {:>7.2} ms  p99 {:>7.2} ms  throughput ratio to direct {:.3}",
        f.qps,
        f.p50_ms,
        f.p99_ms,
        f.qps / base.qps
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, bin, url, rest @ ..] = args.as_slice() else {
        return Err("usage: mcp_bench DBWARD_BINARY POSTGRES_URL [SECONDS]".into());
    };
    let secs: u64 = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let data = tempfile::tempdir()?;
    // A load test is a query-rate anomaly by design: lift that one threshold.
    let bench_cfg = data.path().join("bench.toml");
    std::fs::write(
        &bench_cfg,
        "[detector]\nmax_calls = 1000000000\n[limits]\npool_max_size = 32\n",
    )?;
    let bench_cfg = bench_cfg.to_string_lossy().into_owned();
    // MCP_BENCH_ONLY=http32 (say) runs the baseline and that one measurement, for profiling.
    let only = std::env::var("MCP_BENCH_ONLY").ok();
    let want = |phase: &str| only.as_deref().is_none_or(|o| o == phase);
    for clients in [8usize, 32] {
        if only
            .as_deref()
            .is_some_and(|o| !o.ends_with(&clients.to_string()))
        {
            continue;
        }
        // Baseline: the same point query straight through sqlx, same concurrency.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(clients as u32)
            .connect(url)
            .await?;
        let p = pool.clone();
        let direct = drive(clients, secs, move |_, i| {
            let p = p.clone();
            async move {
                sqlx::query(SQL)
                    .bind((1 + i % 100) as i32)
                    .fetch_all(&p)
                    .await
                    .expect("direct query");
            }
        })
        .await;
        report(&format!("direct sqlx x{clients}"), &direct, &direct);
        if want(&format!("envelope{clients}")) {
            // The database side of a gateway call, without the gateway: the same query in the
            // read-only transaction the PostgreSQL backend wraps it in, round trip for round
            // trip (begin and timeouts; DECLARE over the extended protocol; FETCH and rollback).
            let p = pool.clone();
            let envelope = drive(clients, secs, move |_, i| {
                let p = p.clone();
                async move { envelope_call(&p, (1 + i % 100) as i32).await }
            })
            .await;
            report(
                &format!("direct sqlx x{clients}, gateway's transaction"),
                &envelope,
                &direct,
            );
        }
        pool.close().await;

        // stdio: one `dbward serve` child, `clients` calls in flight on its session.
        if want(&format!("stdio{clients}")) {
            let (transport, _) =
                TokioChildProcess::builder(tokio::process::Command::new(bin).configure(|c| {
                    c.args(["serve", "--database-url", url, "--config", &bench_cfg])
                        .env("DBWARD_DATA_DIR", data.path())
                        .env("DBWARD_LOG", "error");
                }))
                .stderr(std::process::Stdio::null())
                .spawn()?;
            let client = Arc::new(().serve(transport).await?);
            let c = client.clone();
            let stdio = drive(clients, secs, move |_, i| {
                let c = c.clone();
                async move {
                    let r = c
                        .call_tool(
                            CallToolRequestParams::new("execute_query").with_arguments(
                                json!({"query": SQL, "params": [1 + i % 100]})
                                    .as_object()
                                    .cloned()
                                    .unwrap_or_default(),
                            ),
                        )
                        .await
                        .expect("tool call");
                    assert_eq!(r.is_error, Some(false), "{:?}", r.content);
                }
            })
            .await;
            drop(client);
            report(&format!("mcp stdio x{clients}"), &stdio, &direct);
        }
        if clients == 32 && want("sqlite32") {
            // The MCP and gateway layers over an almost free database: the embedded SQLite
            // demo (its `servers` table has the same two columns).
            let sqlite = http_run(
                bin,
                None,
                data.path(),
                clients,
                secs,
                &["--config", &bench_cfg],
                HttpClient::Stateless,
            )
            .await?;
            report("mcp http x32 sqlite demo", &sqlite, &direct);
        }
        if !want(&format!("http{clients}")) {
            continue;
        }
        let http = http_run(
            bin,
            Some(url),
            data.path(),
            clients,
            secs,
            &["--config", &bench_cfg],
            HttpClient::Stateless,
        )
        .await?;
        report(&format!("mcp http x{clients}"), &http, &direct);
        if clients == 32 && only.is_none() {
            let sessions = http_run(
                bin,
                Some(url),
                data.path(),
                clients,
                secs,
                &["--config", &bench_cfg],
                HttpClient::RmcpSessions,
            )
            .await?;
            report("mcp http x32 rmcp-sse", &sessions, &direct);
        }
        if clients == 8 && only.is_none() {
            // The audit log's cost: the same loop with auditing off, in the same run.
            let cfg = data.path().join("no-audit.toml");
            std::fs::write(
                &cfg,
                "[audit]\nenabled = false\n[detector]\nmax_calls = 1000000000\n[limits]\npool_max_size = 32\n",
            )?;
            let cfg = cfg.to_string_lossy().into_owned();
            let off = http_run(
                bin,
                Some(url),
                data.path(),
                clients,
                secs,
                &["--config", &cfg],
                HttpClient::Stateless,
            )
            .await?;
            report("mcp http x8 no audit", &off, &direct);
            println!(
                "audit on/off throughput ratio (http x8): {:.3} ({:.1}% slower with auditing)",
                http.qps / off.qps,
                (1.0 - http.qps / off.qps) * 100.0
            );
        }
    }
    Ok(())
}

/// The point query the way the PostgreSQL backend runs it, in four round trips.
async fn envelope_call(pool: &sqlx::PgPool, id: i32) {
    use sqlx::{AssertSqlSafe, Row};
    let mut conn = pool.acquire().await.expect("connection");
    sqlx::raw_sql(
        "BEGIN READ ONLY; SELECT pg_catalog.set_config('statement_timeout', '30000', true), \
         pg_catalog.set_config('lock_timeout', '5000', true), \
         pg_catalog.set_config('idle_in_transaction_session_timeout', '60000', true), \
         pg_catalog.pg_backend_pid()",
    )
    .execute(&mut *conn)
    .await
    .expect("begin");
    sqlx::query(AssertSqlSafe(format!(
        "DECLARE dbward_cursor NO SCROLL CURSOR FOR {SQL}"
    )))
    .persistent(false)
    .bind(id)
    .execute(&mut *conn)
    .await
    .expect("declare");
    let rows = sqlx::raw_sql(
        "FETCH FORWARD 1001 FROM dbward_cursor; ROLLBACK; \
         SELECT pg_catalog.pg_advisory_unlock_all(); DEALLOCATE ALL",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("fetch");
    assert!(rows.first().and_then(|r| r.try_get_raw(0).ok()).is_some());
}

/// How the HTTP clients talk.
#[derive(Clone, Copy, PartialEq)]
enum HttpClient {
    /// One POST per call with 2026-07-28 per-request metadata; JSON answers.
    Stateless,
    /// rmcp's client: a legacy session each, SSE answers.
    RmcpSessions,
}

const TOKEN: &str = "bench-token-0123456789abcdef";

/// One `tools/call` of the point query as a 2026-07-28 request: the protocol version,
/// client info and capabilities ride in `_meta` and the standard headers.
async fn stateless_call(http: &reqwest::Client, endpoint: &str, id: u64, param: u64) {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": {
            "name": "execute_query",
            "arguments": {"query": SQL, "params": [param]},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientInfo": {"name": "mcp_bench", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }
    });
    let response = http
        .post(endpoint)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "execute_query")
        .body(serde_json::to_vec(&body).expect("json"))
        .send()
        .await
        .expect("POST /mcp");
    let status = response.status();
    let bytes = response.bytes().await.expect("response body");
    // A JSON body, or (if the server streams) the SSE event carrying the response.
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(&bytes);
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .find(|v: &serde_json::Value| v.get("id").is_some())
            .unwrap_or_else(|| panic!("HTTP {status}: {text}"))
    });
    let result = &json["result"];
    assert_eq!(
        (
            result["isError"].as_bool(),
            result["structuredContent"]["row_count"].as_u64()
        ),
        (Some(false), Some(1)),
        "HTTP {status}: {json}"
    );
}

/// One `dbward serve --transport http` with `clients` concurrent clients.
async fn http_run(
    bin: &str,
    url: Option<&str>,
    data: &std::path::Path,
    clients: usize,
    secs: u64,
    extra: &[&str],
    how: HttpClient,
) -> Result<Figures, Box<dyn std::error::Error>> {
    // HTTP: one `dbward serve --transport http`, `clients` separate sessions.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let token = TOKEN;
    let mut server = tokio::process::Command::new(bin)
        .args([
            "serve",
            "--transport",
            "http",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        // Without a URL: the embedded SQLite demo database (created in `data`).
        .args(url.iter().flat_map(|u| ["--database-url", u]))
        .args(extra)
        .env("DBWARD_DATA_DIR", data)
        .env("DBWARD_HTTP_TOKEN", token)
        .env("DBWARD_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let endpoint = format!("http://127.0.0.1:{port}/mcp");
    if how == HttpClient::Stateless {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .tcp_nodelay(true)
            .build()?;
        // Wait for the listener, then warm up one call.
        let mut tries = 0;
        while http.get(&endpoint).send().await.is_err() {
            tries += 1;
            if tries > 100 {
                return Err("dbward serve did not start listening".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stateless_call(&http, &endpoint, 0, 1).await;
        let endpoint = Arc::new(endpoint);
        let figures = drive(clients, secs, move |c, i| {
            let http = http.clone();
            let endpoint = endpoint.clone();
            async move {
                stateless_call(&http, &endpoint, (c as u64) << 32 | i, 1 + i % 100).await;
            }
        })
        .await;
        server.kill().await.ok();
        return Ok(figures);
    }
    let mut sessions = Vec::new();
    for _ in 0..clients {
        let mut tries = 0;
        let session = loop {
            let t = StreamableHttpClientTransport::from_config(
                StreamableHttpClientTransportConfig::with_uri(endpoint.clone()).auth_header(token),
            );
            match ().serve(t).await {
                Ok(s) => break s,
                Err(_) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        sessions.push(Arc::new(session));
    }
    let sessions = Arc::new(sessions);
    let s = sessions.clone();
    let http = drive(clients, secs, move |c, i| {
        let session = s[c].clone();
        async move {
            let r = session
                .call_tool(
                    CallToolRequestParams::new("execute_query").with_arguments(
                        json!({"query": SQL, "params": [1 + i % 100]})
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                    ),
                )
                .await
                .expect("tool call");
            assert_eq!(r.is_error, Some(false));
        }
    })
    .await;
    drop(sessions);
    server.kill().await.ok();
    Ok(http)
}
