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
    /// Print instead a PostgreSQL row-level security policy for this table (`schema.table`
    /// or `table`): each caller sees the rows whose `--rls-column` equals the setting dbward
    /// sets from the caller's verified identity (`session_settings`).
    #[arg(long, value_name = "TABLE")]
    rls_example: Option<String>,
    /// Print instead the PostgreSQL catalog version (run it as a superuser in each
    /// database dbward reads): a counter an event trigger raises with every DDL command,
    /// so that dbward's kept resolution answers survive writes (without it, any commit in
    /// the cluster makes the next call re-read its answer: one more round trip).
    #[arg(long, conflicts_with = "rls_example")]
    catalog_version: bool,
    /// With --rls-example: the column compared with the caller's setting.
    #[arg(long, default_value = "department_id", requires = "rls_example")]
    rls_column: String,
    /// With --rls-example: the custom setting (`prefix.name`) dbward sets per call.
    #[arg(long, default_value = "app.user_dept", requires = "rls_example")]
    rls_setting: String,
    /// With --rls-example: the identity claim the setting comes from.
    #[arg(long, default_value = "department", requires = "rls_example")]
    rls_claim: String,
    /// With --rls-example: the role dbward logs in as (it keeps EXECUTE on set_config).
    #[arg(long, default_value = "dbward_login", requires = "rls_example")]
    login_role: String,
    /// The named MySQL connection (in `--config`) whose catalog the per-table GRANTs are
    /// read from; default: the config's only MySQL connection. Its login must see every
    /// table (the owner's or an administrator's); nothing is written.
    #[arg(long)]
    connection: Option<String>,
}

/// `"a"."b"` for `a.b`: each part quoted, embedded quotes doubled.
fn quote_qualified(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.trim_matches('"').replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Single-quoted SQL literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The row-level security example for `--rls-example`.
fn rls_example(args: &SetupRoleArgs, table: &str) -> Result<String, String> {
    if !dbward_gateway::access::valid_setting_name(&args.rls_setting) {
        return Err(format!(
            "--rls-setting `{}` must be a custom setting `prefix.name`, such as app.user_dept",
            args.rls_setting
        ));
    }
    let t = quote_qualified(table);
    let col = quote_qualified(&args.rls_column);
    let reader = quote_qualified(&args.role);
    let login = quote_qualified(&args.login_role);
    let setting = literal(&args.rls_setting);
    let policy = quote_qualified(&format!("dbward_by_{}", args.rls_setting.replace('.', "_")));
    Ok(format!(
        "-- Row-level security on {table}: a caller sees the rows whose {column} equals the\n\
-- setting {name}, which dbward sets in each call's read-only transaction from the\n\
-- caller's verified identity (bound as a parameter, before SET ROLE). In dbward.toml:\n\
--\n\
--   [connections.NAME]\n\
--   reader_role = \"{role}\"\n\
--   session_settings = {{ \"{name}\" = \"{{claim:{claim}}}\" }}\n\
--\n\
-- A caller whose token lacks the `{claim}` claim is refused by dbward; with the setting\n\
-- unset, current_setting(..., true) is NULL and the policy shows no rows (fail closed).\n\
-- Superusers, roles with BYPASSRLS and (unless forced) the table's owner are not bound\n\
-- by policies: dbward must reach the table as the reader role.\n\
ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;\n\
ALTER TABLE {t} FORCE ROW LEVEL SECURITY;\n\
CREATE POLICY {policy} ON {t} FOR SELECT TO {reader}\n  USING ({col}::text = pg_catalog.current_setting({setting}, true));\n\
-- Or through a lookup table, e.g. departments(id, code) with the claim holding a code:\n\
--   USING ({col} IN (SELECT id FROM departments\n\
--                    WHERE code = pg_catalog.current_setting({setting}, true)))\n\
\n\
-- Hardening: the reader role cannot change the setting even if a query got past every\n\
-- check of dbward's (a SET statement cannot run inside dbward's cursor; set_config can,\n\
-- unless revoked). dbward calls set_config as the login role, before SET ROLE.\n\
REVOKE EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) FROM PUBLIC;\n\
GRANT EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) TO {login};\n",
        column = args.rls_column,
        name = args.rls_setting,
        role = args.role,
        claim = args.rls_claim,
    ))
}

/// The `--catalog-version` script, with what it does and costs.
fn catalog_version_sql() -> String {
    format!(
        "-- dbward's catalog version for PostgreSQL 13 or later. Review, then run as a superuser in\n\
-- each database dbward reads (event triggers are per database).\n\
--\n\
-- Before a query runs, dbward asks the database what its names resolve to and keeps the\n\
-- answer, reusing it only while the database proves nothing it depends on has changed.\n\
-- Without this, that proof is \"no transaction has committed since\", so on a database\n\
-- in use the call after each commit reads its answer again (one more round trip and a\n\
-- fraction of a millisecond of the server's CPU). With it, the proof is this number,\n\
-- raised in the same transaction by every DDL command, so writes leave kept answers\n\
-- alone. dbward trusts it only while the event trigger, its function, the table and the\n\
-- schema are a superuser's, the trigger fires for every command, and no one else may\n\
-- write the table; it checks this when a session opens and falls back to the snapshot in\n\
-- the same statement should the trigger be disabled. The trigger also keeps the catalog\n\
-- still during each dbward call: a DDL command waits, at its start, for the calls in\n\
-- flight, and a call waits (up to its lock_timeout) for a DDL transaction that has\n\
-- begun; so no owner's DDL can slip in between dbward's check of what a query runs and\n\
-- its parse and plan. Cost: each DDL command updates one row, so concurrent DDL\n\
-- transactions (temporary tables included) wait for each other's commit and for the\n\
-- dbward calls in flight (at most their statement timeout). Running this again brings\n\
-- an earlier install up to date. To remove it: DROP EVENT TRIGGER\n\
-- dbward_catalog_version; DROP SCHEMA dbward CASCADE; then reconnect dbward.\n\
{}",
        dbward_gateway::backends::postgres::resolve::CATALOG_VERSION_SQL
    )
}

/// An option only PostgreSQL has, asked for with another `--type`: says `why` and exits 2.
fn postgres_only(args: &SetupRoleArgs, why: &str) -> Option<ExitCode> {
    let other = args
        .kind
        .as_deref()
        .is_some_and(|k| !k.starts_with("postgres"));
    other.then(|| {
        eprintln!("error: {why}");
        ExitCode::from(2)
    })
}

/// Prints the SQL to stdout.
pub fn run(args: &SetupRoleArgs) -> ExitCode {
    if args.catalog_version {
        if let Some(refused) = postgres_only(
            args,
            "--catalog-version is PostgreSQL's: MySQL/MariaDB routines are resolved on every call (never kept), and SQLite has no DDL from other sessions to follow",
        ) {
            return refused;
        }
        #[allow(clippy::print_stdout)] // command output
        {
            println!("{}", catalog_version_sql());
        }
        return ExitCode::SUCCESS;
    }
    if let Some(table) = &args.rls_example {
        if let Some(refused) = postgres_only(
            args,
            "--rls-example is PostgreSQL's: MySQL/MariaDB and SQLite have no row-level security (use views per audience, or a separate connection per role)",
        ) {
            return refused;
        }
        return match rls_example(args, table) {
            Ok(sql) => {
                #[allow(clippy::print_stdout)] // command output
                {
                    println!("{sql}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
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
