//! `dbward serve`: wiring for the MCP server. Reads the command line and environment,
//! opens the one start-up connection (a URL, a named connection, or the embedded demo
//! database), and hands it to `dbward-mcp` on the chosen transport.
//!
//! Invariant: stdout is the MCP channel under `--transport stdio`; this module and the
//! logger write only to stderr.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use dbward_gateway::config::SslMode;
use dbward_gateway::{ConnectSpec, ConnectionInfo, DbKind, Gateway, GatewayConfig};
use dbward_mcp::{HttpOptions, ServerOptions, TokenSet};
use secrecy::SecretString;

/// Longest `serve` waits at exit for the statements of abandoned calls to be ended on their
/// servers: a cancel's round trip, or the terminate sent when a statement ignores its
/// cancel for 2 s.
const ABANDONED_ENDING: Duration = Duration::from_secs(3);

const AFTER_HELP: &str = r#"Client configuration (stdio), ready to paste into an MCP client's config
(e.g. Claude Desktop's claude_desktop_config.json, or .mcp.json):

  {
    "mcpServers": {
      "dbward": {
        "command": "dbward",
        "args": ["serve"],
        "env": {
          "DBWARD_DATABASE_URL": "postgresql://reader:PASSWORD@localhost:5432/mydb"
        }
      }
    }
  }

Leave out DBWARD_DATABASE_URL to explore the embedded SQLite demo database (created on
first run in $DBWARD_DATA_DIR, $XDG_DATA_HOME/dbward or ~/.local/share/dbward).
Named connections: "args": ["serve", "--config", "/path/dbward.toml", "--connection", "NAME"].

Over HTTP (`dbward serve --transport http`, token in DBWARD_HTTP_TOKEN or --token-file):

  {
    "mcpServers": {
      "dbward": {
        "type": "http",
        "url": "http://127.0.0.1:8808/mcp",
        "headers": { "Authorization": "Bearer YOUR_TOKEN" }
      }
    }
  }

Logs go to stderr (level from DBWARD_LOG, e.g. DBWARD_LOG=debug); stdout is the MCP channel."#;

/// The MCP transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// One client on stdin/stdout (the client starts dbward).
    Stdio,
    /// Streamable HTTP at /mcp, bearer token required.
    Http,
}

/// Arguments of `dbward serve`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct ServeArgs {
    /// How clients reach the server.
    #[arg(long, value_enum, default_value = "stdio")]
    transport: Transport,
    /// Address to listen on (http transport).
    #[arg(long, default_value = "127.0.0.1:8808")]
    listen: SocketAddr,
    /// Connection string of the database to serve (postgresql://..., sqlite:///path.db).
    /// Prefer the environment variable: command lines are visible to other users.
    #[arg(
        long,
        env = "DBWARD_DATABASE_URL",
        hide_env_values = true,
        conflicts_with = "connection"
    )]
    database_url: Option<String>,
    /// A named connection from the config file.
    #[arg(long)]
    connection: Option<String>,
    /// Config file (TOML, or JSON with a `.json` extension). Default: dbward.toml if
    /// --connection is given, else built-in defaults.
    #[arg(long, env = "DBWARD_CONFIG")]
    config: Option<PathBuf>,
    /// Where the demo database lives. Default $XDG_DATA_HOME/dbward or ~/.local/share/dbward.
    #[arg(long, env = "DBWARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The audit log file. Default: `[audit] path` in the config, else audit.jsonl in the
    /// data directory. Auditing is on unless `[audit] enabled = false`.
    #[arg(long, env = "DBWARD_AUDIT_LOG")]
    audit_log: Option<PathBuf>,
    /// File of accepted bearer tokens, one `name:token` per line (http transport). The
    /// environment variable DBWARD_HTTP_TOKEN adds one more, named `default`.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Serve HTTP without a token; only allowed on a loopback address.
    #[arg(long)]
    allow_unauthenticated_loopback: bool,
    /// An accepted Host header value (repeatable). Default: localhost, 127.0.0.1, ::1.
    #[arg(long = "allowed-host", value_name = "HOST")]
    allowed_hosts: Vec<String>,
    #[allow(rustdoc::bare_urls)]
    /// An accepted Origin header value, e.g. https://app.example.com:443 (repeatable).
    /// Default: none, so requests from web pages are refused.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// A reverse proxy whose X-Forwarded-For is believed (repeatable); only the right-most
    /// entry it did not add itself is used. Default: none (the header is ignored).
    #[arg(long = "trusted-proxy", value_name = "IP")]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// Largest HTTP request body accepted, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Serve HTTP on a non-loopback address even if the database role can write.
    #[arg(long)]
    accept_writable_role: bool,
    /// Longest a tool call may take, in seconds, before it is abandoned.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    call_timeout_secs: u64,
    /// On SIGTERM or Ctrl-C, how long running calls may finish, in seconds, before they
    /// are cancelled on the database (and answered and audited as `shutdown`).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=600))]
    drain_secs: u64,
    /// HTTP: seconds a client has to send a request's headers, and that a kept-alive
    /// connection may sit idle, before it is closed.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    header_timeout_secs: u64,
    /// HTTP: seconds an authenticated client has to send a request's body (else 408).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    body_timeout_secs: u64,
    /// HTTP: failed authentications one client address may make per minute before it is
    /// answered 429 until the minute ends (raise it for many users behind one NAT).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_auth_failures: u64,
}

/// Runs the server; exit 1 on any failure, with the reason on stderr.
pub fn run(args: ServeArgs) -> ExitCode {
    init_logging();
    // stdio serves one client whose calls mostly wait on the database: one thread runs
    // them all (and the database drivers), so a call wakes no other runtime thread; stdin,
    // stdout and SQLite have threads of their own. HTTP serves many clients at once: a
    // worker per core.
    let runtime = match args.transport {
        Transport::Stdio => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Transport::Http => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(serve(args));
    // A blocking task (a SQLite step being interrupted) is not waited for long.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logging to stderr (`DBWARD_LOG`, default `info`), for `serve` and for `web`/`demo`.
pub(crate) fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("DBWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // rmcp logs whole requests at debug level, arguments included (a `connect` URL with its
    // password, query texts), and its session plumbing at info (the peer's whole
    // initialize request at start-up): warnings only, whatever DBWARD_LOG asks.
    let filter = match "rmcp=warn".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let server = ServerOptions {
        call_timeout: Duration::from_secs(args.call_timeout_secs),
        drain_deadline: Duration::from_secs(args.drain_secs),
        ..ServerOptions::default()
    };
    let config = match (&args.config, &args.connection) {
        (Some(path), _) => GatewayConfig::load(path)?,
        (None, Some(_)) => GatewayConfig::load(std::path::Path::new("dbward.toml"))?,
        (None, None) => GatewayConfig::default(),
    };
    // Check the exposure before touching the database: a refusal should be immediate.
    let http = match args.transport {
        Transport::Http => {
            let mut options = http_options(&args, server.clone())?;
            if let Some(oauth) = &config.auth.oauth {
                options.oauth = Some(Arc::new(dbward_mcp::oauth::OAuthVerifier::new(oauth)?));
            }
            dbward_mcp::check_exposure(args.listen, &options)?;
            Some(options)
        }
        Transport::Stdio => None,
    };
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(dbward_gateway::demo::default_data_dir);
    // Fail closed: if the audit log cannot be opened, do not serve.
    let audit = config
        .audit
        .open(args.audit_log.clone(), &data_dir)
        .context("opening the audit log")?;
    let mut gateway = Gateway::new(config);
    match audit {
        Some(log) => {
            eprintln!("dbward: audit log {}", log.path().display());
            gateway = gateway.with_audit(log);
        }
        None => eprintln!("dbward: auditing is off ([audit] enabled = false)"),
    }
    let gateway = Arc::new(gateway);
    let default = open_default(&gateway, &args).await?;
    tracing::info!(
        id = %default.id,
        target = %default.target,
        version = %default.server_version,
        "default connection open"
    );
    match http {
        None => {
            dbward_mcp::serve_stdio(gateway.clone(), default, server, shutdown_signal()).await?
        }
        Some(options) => {
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            dbward_mcp::serve_http(
                listener,
                gateway.clone(),
                default,
                options,
                shutdown_signal(),
            )
            .await?
        }
    }
    // The statements of calls abandoned at the drain deadline are ended on their servers
    // before the runtime stops (a pending cancel would never be sent): a cancel takes a
    // round trip, a statement that ignores it is terminated after `CANCEL_GRACE` (2 s).
    gateway.end_abandoned_statements(ABANDONED_ENDING).await;
    // Every entry queued so far (abandoned calls' included) is on disk before exit.
    if let Some(log) = gateway.audit_log() {
        log.flush().await.context("flushing the audit log")?;
    }
    tracing::info!("stopped");
    Ok(())
}

fn http_options(args: &ServeArgs, server: ServerOptions) -> anyhow::Result<HttpOptions> {
    let mut tokens = match &args.token_file {
        Some(path) => TokenSet::from_file(path)?,
        None => TokenSet::new(),
    };
    if let Some(token) = std::env::var_os("DBWARD_HTTP_TOKEN").filter(|t| !t.is_empty()) {
        let Some(token) = token.to_str() else {
            bail!("DBWARD_HTTP_TOKEN is not valid UTF-8");
        };
        tokens.add("default", &SecretString::from(token.to_string()))?;
    }
    Ok(HttpOptions {
        trusted_proxies: args.trusted_proxies.clone(),
        tokens,
        allow_unauthenticated_loopback: args.allow_unauthenticated_loopback,
        allowed_hosts: args.allowed_hosts.clone(),
        allowed_origins: args.allowed_origins.clone(),
        max_body_bytes: args.max_body_bytes,
        accept_writable_role: args.accept_writable_role,
        auth_failures_per_window: args.max_auth_failures,
        limits: dbward_mcp::listener::ConnectionLimits {
            header_timeout: Duration::from_secs(args.header_timeout_secs),
            body_timeout: Duration::from_secs(args.body_timeout_secs),
            ..connection_limits()
        },
        server,
        ..HttpOptions::default()
    })
}

/// The accept loop's caps, after raising the soft descriptor limit to the hard one: at
/// most half the descriptors go to client connections (the rest: pools, audit, runtime).
fn connection_limits() -> dbward_mcp::listener::ConnectionLimits {
    let mut limits = dbward_mcp::listener::ConnectionLimits::default();
    if let Some(soft) = dbward_mcp::listener::raise_descriptor_limit() {
        let half = usize::try_from(soft / 2).unwrap_or(usize::MAX).max(16);
        limits.max_connections = limits.max_connections.min(half);
        tracing::info!(
            descriptors = soft,
            max_connections = limits.max_connections,
            "connection cap"
        );
    }
    limits
}

/// The start-up connection: --connection, else the URL, else the demo database.
async fn open_default(gateway: &Gateway, args: &ServeArgs) -> anyhow::Result<ConnectionInfo> {
    if let Some(name) = &args.connection {
        // The operator's own choice: opened as the server's start-up connection (never
        // closed for idling; `[access]` roles reach it as `default` or by its name).
        let named = gateway
            .config()
            .connections
            .get(name)
            .ok_or_else(|| anyhow::anyhow!("unknown connection name `{name}`"))?;
        let spec = ConnectSpec::from_named(name, named)?;
        return gateway
            .connect_trusted(spec)
            .await
            .with_context(|| format!("cannot open connection `{name}`"));
    }
    if let Some(url) = args.database_url.as_ref().filter(|u| !u.is_empty()) {
        let spec = ConnectSpec::from_url(&SecretString::from(url.clone()))?;
        return gateway
            .connect_trusted(spec)
            .await
            .context("cannot open the database given by --database-url / DBWARD_DATABASE_URL");
    }
    let path = match &args.data_dir {
        Some(dir) => dir.join("demo.db"),
        None => dbward_gateway::demo::default_demo_path(),
    };
    let path = tokio::task::spawn_blocking(move || dbward_gateway::demo::ensure_demo_db(&path))
        .await
        .context("building the demo database")??;
    tracing::info!(path = %path.display(), "serving the embedded demo database");
    let spec = ConnectSpec {
        kind: DbKind::Sqlite,
        host: String::new(),
        port: 0,
        database: None,
        username: None,
        password: None,
        path: Some(path),
        sslmode: SslMode::Disable,
        reader_role: None,
        name: Some("demo".into()),
    };
    Ok(gateway.connect_trusted(spec).await?)
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
