//! `dbward connections`: the named connections of a config file, optionally checked.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use dbward_gateway::{ConnectRequest, Gateway, GatewayConfig};

/// Arguments of `dbward connections`.
#[derive(Debug, Args)]
pub struct ConnectionsArgs {
    /// Config file (TOML, or JSON with a `.json` extension).
    #[arg(long, default_value = "dbward.toml", env = "DBWARD_CONFIG")]
    config: PathBuf,
    /// Connect to each and report its version and role posture.
    #[arg(long)]
    check: bool,
}

/// Lists (and optionally checks) the named connections. Exit 1 if a check fails.
pub fn run(args: &ConnectionsArgs) -> ExitCode {
    let config = match GatewayConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut lines = Vec::new();
    for (name, c) in &config.connections {
        let target = match (&c.path, &c.host) {
            (Some(p), _) => format!("sqlite://{}", p.display()),
            (None, host) => format!(
                "{}://{}:{}/{}",
                c.kind.as_str(),
                host.as_deref().unwrap_or("localhost"),
                c.port
                    .unwrap_or(dbward_gateway::connection::default_port(c.kind)),
                c.database.as_deref().unwrap_or("")
            ),
        };
        let creds = c
            .credentials_env
            .as_deref()
            .map(|v| format!(" (credentials from ${v})"))
            .unwrap_or_default();
        lines.push((
            name.clone(),
            format!("{name}\t{}\t{target}{creds}", c.kind.as_str()),
        ));
    }
    let mut ok = true;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let gateway = Gateway::new(config);
    for (name, line) in lines {
        let mut line = line;
        if args.check {
            let outcome = runtime.block_on(async {
                let info = gateway.connect(ConnectRequest::Named(name.clone())).await?;
                let posture = gateway.security_posture(info.id.as_str()).await?;
                gateway.close_connection(info.id.as_str()).await?;
                Ok::<_, dbward_gateway::GatewayError>((info, posture))
            });
            match outcome {
                Ok((info, posture)) => {
                    line.push_str(&format!(
                        "\n  ok: {}; role {} {}",
                        info.server_version,
                        posture.role.role,
                        if posture.role.can_write {
                            "CAN WRITE"
                        } else {
                            "is read-only"
                        }
                    ));
                    for w in posture.warnings {
                        line.push_str(&format!("\n  warning: {w}"));
                    }
                }
                Err(e) => {
                    ok = false;
                    line.push_str(&format!("\n  failed: {e}"));
                }
            }
        }
        #[allow(clippy::print_stdout)] // command output
        {
            println!("{line}");
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
