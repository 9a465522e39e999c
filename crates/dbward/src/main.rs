//! The `dbward` binary: parses the command line, wires the crates, and decides exit codes.
//! Nothing else lives here. Logs go to stderr; stdout carries command output (and, for
//! `dbward serve`, the MCP stdio channel).

mod audit;
mod check;
mod connections;
mod serve;
mod setup_role;
mod web;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// dbward: a secure, read-only gateway between AI assistants and databases.
#[derive(Debug, Parser)]
#[command(name = "dbward", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the policy verdict for one query: allowed or refused, with reasons.
    ///
    /// Exit status: 0 allowed, 1 refused, 2 usage or input error.
    Check(check::CheckArgs),
    /// Print the SQL that creates a least-privilege, read-only role (review it, then run it).
    SetupRole(setup_role::SetupRoleArgs),
    /// List the named connections in the config; `--check` connects to each and reports
    /// its server version and what its role could do.
    Connections(connections::ConnectionsArgs),
    /// Verify or read the tamper-evident audit log.
    Audit(audit::AuditArgs),
    /// The web UI and chat API (`POST /api/chat`) over the assistant.
    Web(Box<web::WebArgs>),
    /// The web UI over the embedded SQLite demo database (same flags as `web`).
    Demo(Box<web::WebArgs>),
    /// Serve the database tools to AI clients over MCP (stdio or streamable HTTP).
    ///
    /// Without --database-url, DBWARD_DATABASE_URL or --connection, serves the embedded
    /// SQLite demo database.
    Serve(Box<serve::ServeArgs>),
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout with success, errors to stderr.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::SetupRole(args) => setup_role::run(&args),
        Command::Connections(args) => connections::run(&args),
        Command::Audit(args) => audit::run(&args),
        Command::Web(args) => web::run(*args, false),
        Command::Demo(args) => web::run(*args, true),
        Command::Serve(args) => serve::run(*args),
    }
}
