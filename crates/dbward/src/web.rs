//! `dbward web` and `dbward demo`: the web UI and chat API. The assistant runs `dbward
//! serve` as a child (the database credentials stay in the child), with the connection
//! flags passed through.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use dbward_assistant::agent::Assistant;
use dbward_assistant::llm::{LlmClient, LlmConfig};
use dbward_mcp::client::ChildServer;
use dbward_web::WebState;

/// Arguments of `dbward web` / `dbward demo`.
#[derive(Debug, Args)]
pub struct WebArgs {
    /// Address to serve the UI on. Only loopback addresses for now: a login for other
    /// addresses is not built yet, so binding elsewhere is refused.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Database URL for the child server (default: the embedded demo database).
    #[arg(long, env = "DBWARD_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// A named connection from the config file.
    #[arg(long)]
    connection: Option<String>,
    /// Config file, passed to the child server.
    #[arg(long, env = "DBWARD_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (demo database, audit log), passed to the child server.
    #[arg(long, env = "DBWARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Audit log file, passed to the child server.
    #[arg(long)]
    audit_log: Option<PathBuf>,
}

/// Runs the UI; exit 1 on failure with the reason on stderr.
pub fn run(args: WebArgs) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(web(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn web(args: WebArgs) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() {
        bail!(
            "refusing to serve the web UI on {}: logins are not built yet, so only loopback addresses are allowed",
            args.listen
        );
    }
    let assistant = match LlmConfig::from_env() {
        None => {
            eprintln!("dbward: {}", dbward_web::NO_LLM);
            None
        }
        Some(cfg) => {
            let mut child_args: Vec<String> = Vec::new();
            // The URL goes by environment, not argv, so it is not visible in `ps`.
            let mut env: Vec<(String, String)> = Vec::new();
            if let Some(url) = &args.database_url {
                env.push(("DBWARD_DATABASE_URL".into(), url.clone()));
            }
            if let Some(c) = &args.connection {
                child_args.extend(["--connection".into(), c.clone()]);
            }
            if let Some(c) = &args.config {
                child_args.extend(["--config".into(), c.display().to_string()]);
            }
            if let Some(d) = &args.data_dir {
                child_args.extend(["--data-dir".into(), d.display().to_string()]);
            }
            if let Some(a) = &args.audit_log {
                child_args.extend(["--audit-log".into(), a.display().to_string()]);
            }
            let exe = std::env::current_exe().context("locating the dbward binary")?;
            let host = ChildServer::spawn(&exe, &child_args, &env).await?;
            Some(Assistant::new(LlmClient::new(cfg), host).await?)
        }
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!("dbward: web UI at http://{addr}/");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    dbward_web::serve(listener, Arc::new(WebState::new(assistant)), shutdown).await?;
    Ok(())
}
