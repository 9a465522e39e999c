//! PostgreSQL privileges as the database layer under the policy: what the serving role can
//! read of what the configuration denies, and what owner code it can execute. The posture
//! check reports these; `dbward setup-role --config` prints the GRANTs that close them.
//!
//! Invariant: privileges are read from the database's own checks (`has_table_privilege`,
//! `has_column_privilege`, `has_function_privilege`), never inferred from configuration.

use sqlx::Row;

use crate::error::GatewayError;

/// One deny rule from configuration, as a catalog lookup: `(schema or None, LIKE pattern
/// of the table name, column or None)`.
pub type DenyLookup = (Option<String>, String, Option<String>);

/// Turns `schema.name`, `name` or `prefix*` (and `table.column`) into catalog lookups.
pub fn lookups(tables: &[String], columns: &[String]) -> Vec<DenyLookup> {
    fn like(name: &str) -> String {
        let (base, prefix) = match name.strip_suffix('*') {
            Some(b) => (b, true),
            None => (name, false),
        };
        let escaped = base
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        if prefix {
            format!("{escaped}%")
        } else {
            escaped
        }
    }
    let split = |s: &str| -> (Option<String>, String) {
        match s.trim().rsplit_once('.') {
            Some((schema, name)) => (Some(schema.to_string()), like(name)),
            None => (None, like(s.trim())),
        }
    };
    let mut out: Vec<DenyLookup> = tables
        .iter()
        .map(|t| {
            let (s, n) = split(t);
            (s, n, None)
        })
        .collect();
    for c in columns {
        if let Some((table, column)) = c.trim().rsplit_once('.') {
            let (s, n) = split(table);
            out.push((s, n, Some(column.to_string())));
        }
    }
    out
}

/// What the role can reach that only the policy keeps from it.
#[derive(Debug, Default, Clone)]
pub struct Exposure {
    /// Denied tables and columns the role can SELECT (`schema.table` or `schema.table.column`).
    pub denied_readable: Vec<String>,
    /// User-defined functions (not from an extension) the role can EXECUTE.
    pub executable_user_functions: i64,
}

/// Reads the exposure of `role` (or the session user) from the catalog.
pub(crate) async fn exposure(
    pool: &sqlx::PgPool,
    role: Option<&str>,
    denied: &[DenyLookup],
) -> Result<Exposure, GatewayError> {
    let schemas: Vec<Option<String>> = denied.iter().map(|d| d.0.clone()).collect();
    let names: Vec<String> = denied.iter().map(|d| d.1.clone()).collect();
    let columns: Vec<Option<String>> = denied.iter().map(|d| d.2.clone()).collect();
    let rows = sqlx::query(
        "WITH RECURSIVE me AS (SELECT coalesce($1::text, current_user::text) AS name), \
         d AS (SELECT * FROM unnest($2::text[], $3::text[], $4::text[]) AS d(s, n, col)), \
         m(oid, s, n, col) AS ( \
           SELECT c.oid, d.s, d.n, d.col FROM d JOIN pg_catalog.pg_class c ON c.relname LIKE d.n \
           JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace \
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND (d.s IS NULL OR ns.nspname = d.s) \
           UNION SELECT i.inhrelid, m.s, m.n, m.col FROM pg_catalog.pg_inherits i JOIN m ON i.inhparent = m.oid) \
         SELECT DISTINCT ns.nspname::text || '.' || c.relname::text \
                || coalesce('.' || a.attname::text, '') \
         FROM m d JOIN pg_catalog.pg_class c ON c.oid = d.oid \
         JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_attribute a \
           ON d.col IS NOT NULL AND a.attrelid = c.oid AND a.attname = d.col AND NOT a.attisdropped, me \
         WHERE (d.col IS NULL OR a.attnum IS NOT NULL) \
           AND CASE WHEN d.col IS NULL \
                    THEN pg_catalog.has_table_privilege(me.name, c.oid, 'SELECT') \
                    ELSE pg_catalog.has_column_privilege(me.name, c.oid, a.attnum, 'SELECT') END \
         ORDER BY 1",
    )
    .persistent(false)
    .bind(role)
    .bind(schemas)
    .bind(names)
    .bind(columns)
    .fetch_all(pool)
    .await
    .map_err(|e| super::classify(e, &[]))?;
    let denied_readable = rows.iter().map(|r| r.get::<String, _>(0)).collect();
    let executable_user_functions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_catalog.pg_proc p, \
           (SELECT coalesce($1::text, current_user::text) AS name) me \
         WHERE p.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid \
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass \
                           AND e.objid = p.oid AND e.deptype = 'e') \
           AND pg_catalog.has_function_privilege(me.name, p.oid, 'EXECUTE')",
    )
    .persistent(false)
    .bind(role)
    .fetch_one(pool)
    .await
    .map_err(|e| super::classify(e, &[]))?;
    Ok(Exposure {
        denied_readable,
        executable_user_functions,
    })
}

/// The statements that take denied tables and columns away from `role` (appended to the
/// role's SQL by `dbward setup-role --config`). Names are resolved when the operator runs
/// them, in a DO block, so patterns and unqualified names reach every matching table.
/// Tables with denied columns are granted column by column: first every column, then the
/// denied ones revoked (in that order, so two denied columns of one table both stay
/// revoked); denied tables lose table and column privileges.
pub fn revoke_sql(role: &str, denied: &[DenyLookup]) -> String {
    let lit = |s: &str| format!("'{}'", s.replace('\'', "''"));
    if denied.is_empty() {
        return String::new();
    }
    let r = lit(role);
    let tables = |schema: &Option<String>, name: &str| {
        let schema_cond = match schema {
            Some(s) => format!("n.nspname = {}", lit(s)),
            None => "n.nspname NOT IN ('pg_catalog', 'information_schema')".into(),
        };
        // The matching tables and their partitions and inheritance children, which are
        // read (and privileged) on their own.
        format!(
            "  FOR t IN WITH RECURSIVE m AS (\n      SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace\n      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname LIKE {} AND {schema_cond}\n      UNION SELECT i.inhrelid FROM pg_inherits i JOIN m ON i.inhparent = m.oid)\n    SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS q,\n      (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute\n       WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped) AS cols\n    FROM m JOIN pg_class c ON c.oid = m.oid JOIN pg_namespace n ON n.oid = c.relnamespace LOOP\n",
            lit(name)
        )
    };
    let mut out = String::from(
        "-- Denied tables and columns from the configuration: the role may not read them.\nDO $dbward$\nDECLARE t record;\nBEGIN\n",
    );
    for (schema, name, _) in denied.iter().filter(|d| d.2.is_some()) {
        out.push_str(&tables(schema, name));
        out.push_str(&format!(
            "    EXECUTE format('REVOKE SELECT ON %s FROM %I', t.q, {r});\n    EXECUTE format('GRANT SELECT (%s) ON %s TO %I', t.cols, t.q, {r});\n  END LOOP;\n"
        ));
    }
    for (schema, name, column) in denied.iter() {
        out.push_str(&tables(schema, name));
        match column {
            Some(col) => out.push_str(&format!(
                "    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = t.oid AND attname = {c}) THEN\n      EXECUTE format('REVOKE SELECT (%I) ON %s FROM %I', {c}, t.q, {r});\n    END IF;\n",
                c = lit(col)
            )),
            None => out.push_str(&format!(
                "    EXECUTE format('REVOKE SELECT ON %s FROM %I', t.q, {r});\n    EXECUTE format('REVOKE SELECT (%s) ON %s FROM %I', t.cols, t.q, {r});\n"
            )),
        }
        out.push_str("  END LOOP;\n");
    }
    out.push_str("END $dbward$;\n");
    out
}
