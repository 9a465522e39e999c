//! Point-query tool calls per second and p50/p99 latency over MCP stdio and streamable HTTP
//! with 8 and 32 concurrent clients, beside the same point query run directly with sqlx
//! (the baseline), in one run: `mcp_bench DBWARD_BINARY POSTGRES_URL [SECONDS]`.
//! Used by `bench/mcp.sh`, which prepares the database. Every figure is also printed as a
//! ratio to the direct-driver figure at the same concurrency. Two more lines split the cost:
//! the gateway's PostgreSQL backend called directly (the database side of a call: its
//! read-only transaction, cursor, caps and rollback, without MCP or the policy), and MCP over
//! HTTP against the embedded SQLite demo (dbward's side, with an almost free database). `MCP_BENCH_ONLY=http32` (or
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

use dbward_gateway::backends::Caps;
use dbward_gateway::backends::postgres::PgBackend;
use dbward_gateway::{ConnectSpec, GatewayConfig};
use rmcp::model::CallToolRequestParams;
use rmcp::transport::{
    ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess,
    streamable_http_client::StreamableHttpClientTransportConfig,
};
use rmcp::{Peer, RoleClient, ServiceExt};
use secrecy::SecretString;
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
        pool.close().await;
        let http_run = async |url: Option<&str>, config: &str, how: HttpClient| {
            http_run(bin, url, data.path(), clients, secs, config, how).await
        };
        if want(&format!("envelope{clients}")) {
            // The database side of a call, without MCP or the policy: the gateway's
            // PostgreSQL backend itself (its read-only transaction, cursor, caps, rollback).
            let (backend, caps) = pg_backend(url, clients).await?;
            let backend = Arc::new(backend);
            let b = backend.clone();
            let envelope = drive(clients, secs, move |_, i| {
                let b = b.clone();
                async move {
                    let r = b
                        .execute(SQL, &[json!(1 + i % 100)], caps)
                        .await
                        .expect("backend query");
                    assert_eq!(r.row_count, 1);
                }
            })
            .await;
            backend.close().await;
            report(
                &format!("pg backend x{clients} (no MCP, no policy)"),
                &envelope,
                &direct,
            );
        }

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
                async move { rmcp_call(&c, i).await }
            })
            .await;
            drop(client);
            report(&format!("mcp stdio x{clients}"), &stdio, &direct);
        }
        if clients == 32 && want("sqlite32") {
            // The MCP and gateway layers over an almost free database: the embedded SQLite
            // demo (its `servers` table has the same two columns).
            let sqlite = http_run(None, &bench_cfg, HttpClient::Stateless).await?;
            report("mcp http x32 sqlite demo", &sqlite, &direct);
        }
        if !want(&format!("http{clients}")) {
            continue;
        }
        let http = http_run(Some(url), &bench_cfg, HttpClient::Stateless).await?;
        report(&format!("mcp http x{clients}"), &http, &direct);
        if clients == 32 && only.is_none() {
            let sessions = http_run(Some(url), &bench_cfg, HttpClient::RmcpSessions).await?;
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
            let off = http_run(Some(url), &cfg, HttpClient::Stateless).await?;
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

/// The gateway's PostgreSQL backend on `url` with a pool of `clients` connections, and
/// the caps of a default `execute_query` call.
async fn pg_backend(
    url: &str,
    clients: usize,
) -> Result<(PgBackend, Caps), Box<dyn std::error::Error>> {
    let spec = ConnectSpec::from_url(&SecretString::from(url.to_string()))?;
    let mut limits = GatewayConfig::default().limits;
    limits.pool_max_size = clients as u32;
    let caps = Caps::new(&limits, limits.max_rows);
    Ok((PgBackend::connect(&spec, &limits).await?, caps))
}

/// One `execute_query` of the point query through an rmcp client, checked.
async fn rmcp_call(client: &Peer<RoleClient>, i: u64) {
    let r = client
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
    config: &str,
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
        .args(["--config", config])
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
        async move { rmcp_call(&session, i).await }
    })
    .await;
    drop(sessions);
    server.kill().await.ok();
    Ok(http)
}
