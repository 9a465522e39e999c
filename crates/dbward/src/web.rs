//! `dbward web` and `dbward demo`: the web UI and chat API. A `dbward serve` child holds the
//! database connection and its credentials; this process talks to it over MCP (stdio), with
//! the connection flags passed through (the URL by environment, not argv, so `ps` does not
//! show it). `demo` is `web` over the embedded SQLite demo database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use dbward_assistant::agent::Assistant;
use dbward_assistant::llm::{LlmClient, LlmConfig};
use dbward_gateway::GatewayConfig;
use dbward_mcp::client::ChildServer;
use dbward_web::{WebOptions, WebState};
use secrecy::SecretString;

/// Arguments of `dbward web` / `dbward demo`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WebArgs {
    #[command(subcommand)]
    action: Option<WebAction>,
    /// Address to serve the UI on. A non-loopback address requires a login: named users,
    /// a password (DBWARD_WEB_PASSWORD) or an identity provider ([web.oidc] in the config).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Database URL for the child server (default: DBWARD_DATABASE_URL, read by the child
    /// itself, else the embedded demo database). Ignored by `demo`.
    #[arg(long)]
    database_url: Option<String>,
    /// A named connection from the config file. Ignored by `demo`.
    #[arg(long)]
    connection: Option<String>,
    /// Config file, passed to the child server.
    #[arg(long, env = "DBWARD_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (demo database, audit log), passed to the child server.
    #[arg(long, env = "DBWARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Audit log file, passed to the child server (default: audit.jsonl in the data
    /// directory).
    #[arg(long)]
    audit_log: Option<PathBuf>,
    /// Mark the session cookie Secure: set this when a TLS-terminating proxy serves the UI.
    #[arg(long)]
    secure_cookies: bool,
    /// A host name the UI is reached by (the Host header), besides the loopback names;
    /// repeat for several. Requests naming any other host are refused (DNS rebinding).
    #[arg(long = "allowed-host", value_name = "NAME")]
    allowed_hosts: Vec<String>,
    /// A reverse proxy whose X-Forwarded-For is believed; repeat for several.
    #[arg(long = "trusted-proxy", value_name = "IP")]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// LLM API base URL (OpenAI-compatible), overriding DBWARD_LLM_BASE_URL.
    #[arg(long)]
    llm_base_url: Option<String>,
    /// LLM model name, overriding DBWARD_LLM_MODEL (which turns the assistant on).
    #[arg(long)]
    llm_model: Option<String>,
}

/// What `dbward web` does besides serving.
#[derive(Debug, clap::Subcommand)]
enum WebAction {
    /// Add a named user (or change their password): the password is read from the
    /// terminal without echo, or as one line from standard input; its argon2id hash is
    /// stored in `web/users.json` in the data directory. Each user signs in with their
    /// name and is their own principal in the audit log and the detector.
    AddUser {
        /// 1 to 24 lowercase letters, digits, '-' or '_'.
        name: String,
        /// Data directory (where the users file is).
        #[arg(long, env = "DBWARD_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

/// `dbward web add-user NAME`.
fn add_user(name: &str, data_dir: Option<PathBuf>) -> ExitCode {
    use std::io::{BufRead, IsTerminal};
    let data_dir = data_dir.unwrap_or_else(dbward_gateway::demo::default_data_dir);
    let path = dbward_web::users::users_path(&data_dir);
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("Password for {name}: "));
        let again = rpassword::prompt_password("Again: ");
        match (first, again) {
            (Ok(a), Ok(b)) if a == b => a,
            (Ok(_), Ok(_)) => {
                eprintln!("error: the passwords differ");
                return ExitCode::FAILURE;
            }
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("error: cannot read the password: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
            eprintln!("error: cannot read the password from standard input: {e}");
            return ExitCode::FAILURE;
        }
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    match dbward_web::users::add_user(&path, name, &password) {
        Ok(()) => {
            eprintln!("dbward: user {name} saved in {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the UI; exit 1 on failure with the reason on stderr.
pub fn run(mut args: WebArgs, demo: bool) -> ExitCode {
    if let Some(WebAction::AddUser { name, data_dir }) = args.action.take() {
        return add_user(&name, data_dir);
    }
    crate::serve::init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(web(args, demo)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn web(args: WebArgs, demo: bool) -> anyhow::Result<()> {
    let password = std::env::var("DBWARD_WEB_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .map(SecretString::from);
    // The same data directory the child uses (it resolves the same flags the same way).
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(dbward_gateway::demo::default_data_dir);
    let users = dbward_web::users::Users::load(&dbward_web::users::users_path(&data_dir))?;
    if !users.is_empty() {
        tracing::info!("named users configured: a login is required");
    }
    let config = match &args.config {
        Some(path) => GatewayConfig::load(path)?,
        None if args.connection.is_some() && !demo => {
            GatewayConfig::load(std::path::Path::new("dbward.toml"))?
        }
        None => GatewayConfig::default(),
    };
    let oidc = config.web.oidc.clone();
    // The client secret is read here, by name, and never passed to the child.
    let oidc_secret = match oidc.as_ref().and_then(|o| o.client_secret_env.as_deref()) {
        Some(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(SecretString::from(v)),
            _ => bail!("[web.oidc]: client_secret_env names {var}, which is not set"),
        },
        None => None,
    };
    if oidc.is_some() {
        tracing::info!("sign-in through the identity provider configured: a login is required");
    }
    if !args.listen.ip().is_loopback() && password.is_none() && users.is_empty() && oidc.is_none() {
        bail!(
            "refusing to serve the web UI on {} without a login: add users with `dbward web add-user NAME`, set DBWARD_WEB_PASSWORD or configure [web.oidc] (and serve it behind TLS with --secure-cookies), or listen on a loopback address",
            args.listen
        );
    }
    if !args.listen.ip().is_loopback() && !args.secure_cookies {
        eprintln!(
            "dbward: warning: serving on {} without --secure-cookies: put the UI behind a TLS-terminating proxy and set it, or the password and session cookie cross the network in clear text",
            args.listen
        );
    }
    // The same file the child opens (it resolves the same flags and config the same way).
    let audit_path = config.audit.path_for(args.audit_log.clone(), &data_dir);

    let mut child_args: Vec<String> = Vec::new();
    let mut env: Vec<(String, String)> = Vec::new();
    if !demo {
        if let Some(url) = &args.database_url {
            env.push(("DBWARD_DATABASE_URL".into(), url.clone()));
        }
        if let Some(c) = &args.connection {
            child_args.extend(["--connection".into(), c.clone()]);
        }
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
    // The child has no use for the login password or the LLM key; `demo` must not pick up
    // a database URL from the environment. (Otherwise the child reads DBWARD_DATABASE_URL
    // and the config's credential variables itself: this process never parses them.)
    let mut remove: Vec<String> = [
        "DBWARD_WEB_PASSWORD",
        "OPENAI_API_KEY",
        "DBWARD_LLM_API_KEY",
    ]
    .map(String::from)
    .to_vec();
    if demo {
        remove.push("DBWARD_DATABASE_URL".into());
    }
    if let Some(var) = oidc.as_ref().and_then(|o| o.client_secret_env.clone()) {
        remove.push(var);
    }
    let host = Arc::new(ChildServer::spawn_with(&exe, &child_args, &env, &remove).await?);

    let mut llm = LlmConfig::from_env();
    if let Some(model) = &args.llm_model {
        let mut cfg = llm.unwrap_or_else(|| LlmConfig::new("https://api.openai.com/v1", ""));
        cfg.model = model.clone();
        llm = Some(cfg);
    }
    if let (Some(cfg), Some(url)) = (llm.as_mut(), &args.llm_base_url) {
        cfg.base_url = url.clone();
    }
    let assistant = match llm {
        None => {
            eprintln!("dbward: {}", dbward_web::NO_LLM);
            None
        }
        Some(cfg) => {
            let client = LlmClient::new(cfg);
            // Said at start-up, not at the first question: a model server that is down.
            match client.probe(std::time::Duration::from_secs(3)).await {
                Ok(()) => {
                    tracing::info!(model = %client.config().model, url = %client.display_base_url(), "model server answers")
                }
                Err(e) => {
                    tracing::warn!(model = %client.config().model, error = %e, "the model's server is not answering; the chat will fail until it does")
                }
            }
            Some(Assistant::new(client, host.clone()).await?)
        }
    };
    let mut allowed_hosts = args.allowed_hosts.clone();
    if !args.listen.ip().is_unspecified() {
        allowed_hosts.push(args.listen.ip().to_string());
    }
    if !args.listen.ip().is_loopback() && args.allowed_hosts.is_empty() {
        eprintln!(
            "dbward: note: only requests addressed to {} or a loopback name are served; add --allowed-host NAME for the name users type",
            args.listen.ip()
        );
    }
    let options = WebOptions {
        password,
        secure_cookies: args.secure_cookies,
        audit_path,
        policy: dbward_policy::Policy::new(config.policy.clone()),
        allowed_hosts,
        trusted_proxies: args.trusted_proxies.clone(),
        data_dir,
        users,
        oidc,
        oidc_secret,
    };
    let state = WebState::new(host, assistant, options).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!("dbward: web UI at http://{addr}/");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    dbward_web::serve(listener, Arc::new(state), shutdown).await?;
    Ok(())
}
