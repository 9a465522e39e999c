//! `security_posture`: what this connection's role could do if every other layer failed,
//! and which layers are on. Also the SQL `dbward setup-role` prints.
//!
//! Invariant: the posture is read from the database's own catalog (privileges as the
//! database would check them), never inferred from configuration.

use serde::Serialize;

use crate::config::DbKind;
use crate::{Backend, Gateway, GatewayError};

/// What the role could do on its own.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RolePosture {
    /// The role queries run as.
    pub role: String,
    /// Superuser (PostgreSQL) or global write/admin privileges (MySQL).
    pub superuser: bool,
    /// Tables the role may INSERT/UPDATE/DELETE/TRUNCATE.
    pub writable_tables: i64,
    /// Whether the role may create objects (schemas, tables).
    pub can_create: bool,
    /// Membership of roles that read/write server files or run programs.
    pub dangerous_roles: Vec<String>,
    /// Whether the role could change data if the other layers failed.
    pub can_write: bool,
    /// Tables and columns the configuration denies that the role can still read
    /// (PostgreSQL, MySQL): only the policy keeps them from clients.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied_readable: Vec<String>,
    /// User-defined functions (outside extensions) the role may execute (PostgreSQL):
    /// owner code only the policy's resolution keeps from clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable_user_functions: Option<i64>,
}

/// The layers in force for a connection.
#[derive(Debug, Clone, Serialize)]
pub struct Layers {
    /// The SQL policy (always on).
    pub policy: bool,
    /// Each query in a read-only transaction, always rolled back (or a read-only file).
    pub read_only_transaction: bool,
    /// Server-side statement timeout, in milliseconds.
    pub statement_timeout_ms: u64,
    /// Rows per result at most.
    pub row_cap: usize,
    /// Bytes per result at most.
    pub byte_cap: usize,
    /// The least-privilege role queries switch to, if configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reader_role: Option<String>,
    /// Whether client-supplied connection strings are accepted.
    pub client_connections_allowed: bool,
    /// PostgreSQL: whether the database has dbward's catalog version
    /// (`dbward setup-role --catalog-version`), so kept resolution answers survive writes
    /// (without it any commit makes them stale and calls resolve their names afresh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalog_version: Option<bool>,
}

/// The answer of `security_posture`.
#[derive(Debug, Clone, Serialize)]
pub struct Posture {
    /// What the role could do.
    pub role: RolePosture,
    /// Which layers are on.
    pub layers: Layers,
    /// Plain-language warnings.
    pub warnings: Vec<String>,
}

impl Gateway {
    /// The posture of a connection.
    pub async fn security_posture(&self, id: &str) -> Result<Posture, GatewayError> {
        let call = self.begin("security_posture", Some(id), None).await?;
        let result = async {
        let open = self.get(id)?;
        let catalog_version = match &open.backend {
            Backend::Postgres(b) => Some(b.catalog_versioned()),
            _ => None,
        };
        let (role, reader_role) = match &open.backend {
            Backend::Postgres(b) => {
                let mut role = b.posture().await?;
                let denied = crate::backends::postgres::grants::lookups(
                    &self.config.policy.denied_tables,
                    &self.config.policy.denied_columns,
                );
                let exposure = b.exposure(&denied).await?;
                role.denied_readable = exposure.denied_readable;
                role.executable_user_functions = Some(exposure.executable_user_functions);
                (role, b.reader_role().map(String::from))
            }
            Backend::Mysql(b) => {
                let mut role = b.posture().await?;
                let denied = crate::backends::postgres::grants::lookups(
                    &self.config.policy.denied_tables,
                    &self.config.policy.denied_columns,
                );
                role.denied_readable = b.denied_readable(&denied).await?;
                (role, None)
            }
            Backend::Sqlite(_) => (
                RolePosture {
                    role: "(file opened read-only)".into(),
                    ..RolePosture::default()
                },
                None,
            ),
        };
        let l = &self.config.limits;
        let mut warnings = Vec::new();
        if role.superuser {
            warnings.push("the connection's role is a superuser: create a read-only role with `dbward setup-role`".into());
        } else if role.can_write {
            warnings.push(format!(
                "the connection's role can write ({} writable tables{}{}): only dbward's layers stand in the way; use a read-only role (`dbward setup-role`)",
                role.writable_tables,
                if role.can_create { ", can create objects" } else { "" },
                if role.dangerous_roles.is_empty() { String::new() } else { format!(", member of {}", role.dangerous_roles.join(", ")) }
            ));
        }
        if !role.denied_readable.is_empty() {
            warnings.push(format!(
                "the role can read what the configuration denies ({}): only the policy keeps it from clients; `dbward setup-role --config` prints the GRANTs that close this",
                role.denied_readable.join(", ")
            ));
        }
        if let Some(n) = role.executable_user_functions.filter(|n| *n > 0) {
            warnings.push(format!(
                "the role can execute {n} user-defined functions: only the policy's resolution keeps clients from running them; a reader role without EXECUTE closes this (see `dbward setup-role`)"
            ));
        }
        if catalog_version == Some(false) {
            warnings.push(
                "dbward's catalog version is not installed: DDL another session commits between dbward's check of a query and its parse and plan (a CHECK added to a domain, a same-named relation) can run that session's code in a call; a superuser running `dbward setup-role --catalog-version` in the database closes this".into(),
            );
        }
        Ok(Posture {
            role,
            layers: Layers {
                policy: true,
                read_only_transaction: true,
                statement_timeout_ms: l.statement_timeout_ms,
                row_cap: l.max_rows,
                byte_cap: l.max_bytes,
                reader_role,
                client_connections_allowed: self.config.allow_client_connections,
                catalog_version,
            },
            warnings,
        })
        }
        .await;
        self.finish(call, result).await
    }
}

/// The SQL that creates a least-privilege, read-only role, for an operator to review and
/// run. The password is a placeholder on purpose: dbward never generates or prints one.
pub fn setup_role_sql(kind: DbKind, role: &str, database: &str) -> String {
    match kind {
        DbKind::Postgresql => {
            let r = super::quote(DbKind::Postgresql, role);
            let db = super::quote(DbKind::Postgresql, database);
            format!(
                "-- dbward: a least-privilege, read-only PostgreSQL role. Review, set a password, run as a superuser (or a CREATEROLE role) connected to the database.\n\
                 CREATE ROLE {r} LOGIN PASSWORD 'change-me' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;\n\
                 ALTER ROLE {r} SET default_transaction_read_only = on;\n\
                 ALTER ROLE {r} SET statement_timeout = '30s';\n\
                 ALTER ROLE {r} SET idle_in_transaction_session_timeout = '60s';\n\
                 GRANT CONNECT ON DATABASE {db} TO {r};\n\
                 GRANT USAGE ON SCHEMA public TO {r};\n\
                 GRANT SELECT ON ALL TABLES IN SCHEMA public TO {r};\n\
                 ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {r};\n\
                 REVOKE CREATE ON SCHEMA public FROM {r};\n\
                 -- Functions are executable by PUBLIC by default, so owner code that writes or signals\n\
                 -- other sessions is the role's too. Take EXECUTE from PUBLIC (then grant it back to the\n\
                 -- application roles that need it):\n\
                 --   REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC;\n\
                 --   ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;\n\
                 -- Keep credential tables out of reach, e.g.: REVOKE SELECT ON public.secrets FROM {r};\n\
                 -- Then: [connections.<name>] reader_role = \"{role}\" (SET LOCAL ROLE per query), or log in as it.\n\
                 -- On a database in use, also `dbward setup-role --catalog-version` (as a superuser): dbward then\n\
                 -- reuses what it learned of a query's names across writes instead of asking again each call.\n"
            )
        }
        DbKind::Mysql => {
            let r = role.replace('\'', "''");
            let db = super::quote(DbKind::Mysql, database);
            format!(
                "-- dbward: a least-privilege, read-only MySQL/MariaDB user. Review, set a password, run as an administrator.\n\
                 CREATE USER '{r}'@'%' IDENTIFIED BY 'change-me';\n\
                 GRANT SELECT, SHOW VIEW ON {db}.* TO '{r}'@'%';\n\
                 -- No FILE, PROCESS, SUPER, EXECUTE or global privileges. Keep credential tables out:\n\
                 -- grant per table instead of {db}.* where a table must stay hidden.\n"
            )
        }
        DbKind::Sqlite => {
            "-- SQLite has no roles. dbward opens the file read-only with query_only and an\n\
             -- authorizer; also make the file read-only to the user dbward runs as:\n\
             --   chmod 0444 /path/to/database.db   (or a read-only mount)\n"
                .to_string()
        }
    }
}
