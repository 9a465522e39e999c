//! `dbward setup-role`: prints the SQL for a least-privilege, read-only role.

use std::process::ExitCode;

use clap::Args;
use dbward_gateway::DbKind;
use dbward_gateway::tools::security_posture::setup_role_sql;

/// Arguments of `dbward setup-role`.
#[derive(Debug, Args)]
pub struct SetupRoleArgs {
    /// Database type; all three when omitted.
    #[arg(long = "type", value_parser = ["postgresql", "postgres", "mysql", "mariadb", "sqlite"])]
    kind: Option<String>,
    /// Name of the role to create.
    #[arg(long, default_value = "dbward_reader")]
    role: String,
    /// Database the role may read.
    #[arg(long, default_value = "mydatabase")]
    database: String,
}

/// Prints the SQL to stdout.
pub fn run(args: &SetupRoleArgs) -> ExitCode {
    let kinds: Vec<DbKind> = match args.kind.as_deref() {
        Some("postgresql" | "postgres") => vec![DbKind::Postgresql],
        Some("mysql" | "mariadb") => vec![DbKind::Mysql],
        Some(_) => vec![DbKind::Sqlite],
        None => vec![DbKind::Postgresql, DbKind::Mysql, DbKind::Sqlite],
    };
    for kind in kinds {
        #[allow(clippy::print_stdout)] // command output
        {
            println!("{}", setup_role_sql(kind, &args.role, &args.database));
        }
    }
    ExitCode::SUCCESS
}
