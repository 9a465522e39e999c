//! `dbward setup-role`: prints the SQL for a least-privilege, read-only role.

use std::process::ExitCode;

use clap::Args;
use dbward_gateway::backends::mysql::MyBackend;
use dbward_gateway::backends::mysql::grants::setup_sql;
use dbward_gateway::backends::postgres::grants::{lookups, revoke_sql};
use dbward_gateway::tools::security_posture::setup_role_sql;
use dbward_gateway::{ConnectSpec, DbKind};

/// Arguments of `dbward setup-role`.
#[derive(Debug, Args)]
pub struct SetupRoleArgs {
    /// Database type; all three when omitted.
    #[arg(long = "type", value_parser = ["postgresql", "postgres", "mysql", "mariadb", "sqlite"])]
    kind: Option<String>,
    /// Name of the role to create.
    #[arg(long, default_value = "dbward_reader")]
    role: String,
    /// Database the role may read (default: the MySQL connection's, else `mydatabase`).
    #[arg(long)]
    database: Option<String>,
    /// Config file whose `[policy]` denied tables and columns the role must not read either
    /// (PostgreSQL: table REVOKEs and column-level GRANTs are appended; MySQL: GRANTs per
    /// table and column, read from the catalog of a MySQL connection of this config).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// The named MySQL connection (in `--config`) whose catalog the per-table GRANTs are
    /// read from; default: the config's only MySQL connection. Its login must see every
    /// table (the owner's or an administrator's); nothing is written.
    #[arg(long)]
    connection: Option<String>,
}

/// Prints the SQL to stdout.
pub fn run(args: &SetupRoleArgs) -> ExitCode {
    let kinds: Vec<DbKind> = match args.kind.as_deref() {
        Some("postgresql" | "postgres") => vec![DbKind::Postgresql],
        Some("mysql" | "mariadb") => vec![DbKind::Mysql],
        Some(_) => vec![DbKind::Sqlite],
        None => vec![DbKind::Postgresql, DbKind::Mysql, DbKind::Sqlite],
    };
    let config = match &args.config {
        None => None,
        Some(path) => match dbward_gateway::GatewayConfig::load(path) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let denied = config
        .as_ref()
        .map(|c| lookups(&c.policy.denied_tables, &c.policy.denied_columns))
        .unwrap_or_default();
    let database = args.database.as_deref().unwrap_or("mydatabase");
    for kind in kinds {
        let sql = match kind {
            DbKind::Postgresql => {
                setup_role_sql(kind, &args.role, database) + &revoke_sql(&args.role, &denied)
            }
            DbKind::Mysql => match &config {
                None => setup_role_sql(kind, &args.role, database),
                Some(c)
                    if args.connection.is_none()
                        && !c.connections.values().any(|n| n.kind == DbKind::Mysql) =>
                {
                    let mut sql = setup_role_sql(kind, &args.role, database);
                    if !denied.is_empty() {
                        sql.push_str(
                            "-- Denied tables and columns: MySQL cannot revoke a column from a database-wide grant.\n\
                             -- Add the MySQL connection to the config and run this again for GRANTs per table\n\
                             -- and column, read from its catalog.\n",
                        );
                    }
                    sql
                }
                Some(c) => match mysql_grants(args, c) {
                    Ok(sql) => sql,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                },
            },
            DbKind::Sqlite => setup_role_sql(kind, &args.role, database),
        };
        #[allow(clippy::print_stdout)] // command output
        {
            println!("{sql}");
        }
    }
    ExitCode::SUCCESS
}

/// MySQL with denied data: a user granted table by table (denied columns left out, denied
/// tables not granted), from the catalog of the config's MySQL connection.
fn mysql_grants(
    args: &SetupRoleArgs,
    config: &dbward_gateway::GatewayConfig,
) -> anyhow::Result<String> {
    let mysql: Vec<&String> = config
        .connections
        .iter()
        .filter(|(_, c)| c.kind == DbKind::Mysql)
        .map(|(n, _)| n)
        .collect();
    let name = match (&args.connection, mysql.as_slice()) {
        (Some(n), _) => n.clone(),
        (None, [only]) => (*only).clone(),
        (None, _) => anyhow::bail!(
            "the config has {} MySQL connections: name the one whose catalog the GRANTs are read from with --connection",
            mysql.len()
        ),
    };
    let named = config
        .connections
        .get(&name)
        .filter(|c| c.kind == DbKind::Mysql)
        .ok_or_else(|| anyhow::anyhow!("no MySQL connection named `{name}` in the config"))?;
    let spec = ConnectSpec::from_named(&name, named)?;
    let database = match (&args.database, &spec.database) {
        (Some(d), _) | (None, Some(d)) => d.clone(),
        (None, None) => anyhow::bail!("connection `{name}` names no database: pass --database"),
    };
    let policy = dbward_policy::Policy::new(config.policy.clone());
    let runtime = tokio::runtime::Runtime::new()?;
    let catalog = runtime.block_on(async {
        let backend = MyBackend::connect(&spec, &config.limits).await?;
        let catalog = backend.grant_catalog(&database).await;
        backend.close().await;
        catalog
    })?;
    Ok(setup_sql(&args.role, &catalog, &policy))
}
