//! `dbward setup-role`: prints the SQL for a least-privilege, read-only role.

use std::process::ExitCode;

use clap::Args;
use dbward_gateway::DbKind;
use dbward_gateway::backends::postgres::grants::{lookups, revoke_sql};
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
    /// Config file whose `[policy]` denied tables and columns the role must not read either
    /// (PostgreSQL: table REVOKEs and column-level GRANTs are appended).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

/// Prints the SQL to stdout.
pub fn run(args: &SetupRoleArgs) -> ExitCode {
    let kinds: Vec<DbKind> = match args.kind.as_deref() {
        Some("postgresql" | "postgres") => vec![DbKind::Postgresql],
        Some("mysql" | "mariadb") => vec![DbKind::Mysql],
        Some(_) => vec![DbKind::Sqlite],
        None => vec![DbKind::Postgresql, DbKind::Mysql, DbKind::Sqlite],
    };
    let denied = match &args.config {
        None => Vec::new(),
        Some(path) => match dbward_gateway::GatewayConfig::load(path) {
            Ok(c) => lookups(&c.policy.denied_tables, &c.policy.denied_columns),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    for kind in kinds {
        let mut sql = setup_role_sql(kind, &args.role, &args.database);
        match kind {
            DbKind::Postgresql => sql.push_str(&revoke_sql(&args.role, &denied)),
            DbKind::Mysql if !denied.is_empty() => sql.push_str(
                "-- Denied tables and columns: MySQL cannot revoke a column from a database-wide grant;\n\
                 -- grant SELECT per table instead, listing only the allowed columns of tables with\n\
                 -- denied ones: GRANT SELECT (id, name) ON db.customers TO 'user'@'%';\n",
            ),
            _ => {}
        }
        #[allow(clippy::print_stdout)] // command output
        {
            println!("{sql}");
        }
    }
    ExitCode::SUCCESS
}
