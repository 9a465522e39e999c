//! MySQL/MariaDB privileges as the database layer under the policy: what the login can read
//! of what the configuration denies (the posture reports it), and the per-table GRANTs
//! `dbward setup-role --config` prints so that a reader user cannot read it at all.
//!
//! Invariants:
//! - Readability is the server's own answer: each candidate is `PREPARE`d as
//!   `SELECT col FROM db.t LIMIT 0` on this login (the server checks table and column
//!   privileges when it prepares; nothing runs), never inferred from configuration.
//! - The printed GRANTs are static, from the catalog as read now: MySQL cannot take a
//!   column back from a database-wide grant, so every table is granted on its own, a table
//!   with denied columns column by column, a denied table not at all. A view is granted
//!   only if its definition (judged by the policy, through other views) reads nothing
//!   denied and calls no stored routine: a view runs with its definer's rights.
//! - Names read from the catalog are quoted with backticks, never taken from client text.

use std::collections::{BTreeMap, BTreeSet};

use dbward_policy::{Dialect, Policy, Rule, TableRef};
use sqlx::mysql::MySqlDatabaseError;
use sqlx::{AssertSqlSafe, Executor, SqlSafeStr};

use super::catalog::quote_ident;
use super::types::text_at;
use super::{MyBackend, classify};
use crate::backends::postgres::grants::DenyLookup;
use crate::error::GatewayError;

/// One table or view of the database being granted.
#[derive(Debug, Clone)]
pub struct GrantTable {
    /// Table name.
    pub name: String,
    /// Columns, in order.
    pub columns: Vec<String>,
    /// For a view, its definition (`None` inside: this login is not shown it).
    pub view: Option<Option<String>>,
}

/// What `setup-role` grants from: one database's tables, views and routine names.
#[derive(Debug, Clone, Default)]
pub struct GrantCatalog {
    /// The database.
    pub database: String,
    /// Tables and views by name.
    pub tables: Vec<GrantTable>,
    /// Stored routine names of every database this login sees, as `db.name`, lower-cased.
    pub routines: BTreeSet<String>,
}

impl MyBackend {
    /// The catalog `setup-role` grants from, as this login sees it.
    pub async fn grant_catalog(&self, database: &str) -> Result<GrantCatalog, GatewayError> {
        let err = |e| classify(e, &[]);
        let rows = sqlx::query(
            "SELECT CAST(t.TABLE_NAME AS CHAR), CAST(t.TABLE_TYPE = 'VIEW' AS CHAR), \
                    CAST(v.VIEW_DEFINITION AS CHAR), CAST(c.COLUMN_NAME AS CHAR) \
             FROM information_schema.TABLES t \
             LEFT JOIN information_schema.VIEWS v \
               ON v.TABLE_SCHEMA = t.TABLE_SCHEMA AND v.TABLE_NAME = t.TABLE_NAME \
             LEFT JOIN information_schema.COLUMNS c \
               ON c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME \
             WHERE t.TABLE_SCHEMA = ? AND t.TABLE_TYPE IN ('BASE TABLE', 'VIEW', 'SYSTEM VERSIONED') \
             ORDER BY t.TABLE_NAME, c.ORDINAL_POSITION",
        )
        .bind(database)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let mut tables: Vec<GrantTable> = Vec::new();
        for r in &rows {
            let name = text_at(r, 0).unwrap_or_default();
            if tables.last().is_none_or(|t| t.name != name) {
                tables.push(GrantTable {
                    view: (text_at(r, 1).as_deref() == Some("1"))
                        .then(|| text_at(r, 2).filter(|d| !d.trim().is_empty())),
                    name,
                    columns: Vec::new(),
                });
            }
            if let (Some(t), Some(c)) = (tables.last_mut(), text_at(r, 3)) {
                t.columns.push(c);
            }
        }
        let routines = sqlx::query(
            "SELECT CAST(LOWER(CONCAT(ROUTINE_SCHEMA, '.', ROUTINE_NAME)) AS CHAR) \
             FROM information_schema.ROUTINES",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?
        .iter()
        .filter_map(|r| text_at(r, 0))
        .collect();
        Ok(GrantCatalog {
            database: database.to_string(),
            tables,
            routines,
        })
    }

    /// Denied tables and columns (`db.table` or `db.table.column`) this login can read, per
    /// the server's own privilege checks.
    pub async fn denied_readable(
        &self,
        denied: &[DenyLookup],
    ) -> Result<Vec<String>, GatewayError> {
        let err = |e| classify(e, &[]);
        let mut candidates: BTreeSet<(String, String, Option<String>)> = BTreeSet::new();
        for (schema, like, column) in denied {
            let rows = sqlx::query(
                "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR) \
                 FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') \
                   AND (? IS NULL OR TABLE_SCHEMA = ?) AND TABLE_NAME LIKE ? ESCAPE '\\\\'",
            )
            .bind(schema.as_deref())
            .bind(schema.as_deref())
            .bind(like.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
            for r in &rows {
                if let (Some(s), Some(t)) = (text_at(r, 0), text_at(r, 1)) {
                    candidates.insert((s, t, column.clone()));
                }
            }
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.pool.acquire().await.map_err(err)?;
        // The probes' prepared statements are cached on the connection: it is not reused.
        conn.close_on_drop();
        let mut out = Vec::new();
        for (schema, table, column) in candidates {
            let what = column.as_deref().map(quote_ident);
            let sql = format!(
                "SELECT {} FROM {}.{} LIMIT 0",
                what.as_deref().unwrap_or("1"),
                quote_ident(&schema),
                quote_ident(&table)
            );
            match conn.prepare(AssertSqlSafe(sql).into_sql_str()).await {
                Ok(_) => out.push(match &column {
                    Some(c) => format!("{schema}.{table}.{c}"),
                    None => format!("{schema}.{table}"),
                }),
                Err(sqlx::Error::Database(db))
                    if db
                        .try_downcast_ref::<MySqlDatabaseError>()
                        .is_some_and(|m| matches!(m.number(), 1054 | 1142 | 1143)) => {}
                Err(e) => return Err(err(e)),
            }
        }
        Ok(out)
    }
}

/// What `dbward setup-role --config` prints for MySQL: the reader user `role` (a password
/// placeholder on purpose) and its GRANTs on `catalog`'s database, with a comment for
/// everything left out and why.
pub fn setup_sql(role: &str, catalog: &GrantCatalog, policy: &Policy) -> String {
    let user = format!("'{}'@'%'", role.replace('\\', "\\\\").replace('\'', "''"));
    format!(
        "-- dbward: a least-privilege, read-only MySQL/MariaDB user. Review, set a password, run as an administrator.\n\
         CREATE USER {user} IDENTIFIED BY 'change-me';\n\
         -- No FILE, PROCESS, SUPER, EXECUTE or global privileges, and no database-wide grant:\n\
         -- MySQL cannot take a column back from one.\n{}",
        grant_sql(&user, catalog, policy)
    )
}

/// The GRANT statements for `user` (`'name'@'%'`, already quoted) on `catalog`'s database.
fn grant_sql(user: &str, catalog: &GrantCatalog, policy: &Policy) -> String {
    const D: Dialect = Dialect::Mysql;
    let db = &catalog.database;
    let qdb = quote_ident(db);
    let tref = |name: &str| TableRef {
        schema: Some(db.clone()),
        name: name.to_string(),
    };
    // Why each view may not be granted; views tainted through other views are found by
    // repeating until nothing changes.
    let mut tainted: BTreeMap<String, String> = BTreeMap::new();
    let mut reads: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for t in &catalog.tables {
        let Some(view) = &t.view else { continue };
        let Some(definition) = view else {
            tainted.insert(
                t.name.clone(),
                "its definition is not shown to the login that read the catalog".into(),
            );
            continue;
        };
        let v = policy.check_definition(D, definition);
        let scoped = |s: &Option<String>| s.clone().unwrap_or_else(|| db.clone());
        let why = v
            .reasons
            .iter()
            .find(|r| r.rule != Rule::TableDenied)
            .map(|r| r.message.clone())
            .or_else(|| {
                v.tables.iter().find_map(|x| {
                    let x = TableRef {
                        schema: Some(scoped(&x.schema)),
                        name: x.name.clone(),
                    };
                    policy
                        .denies_table(D, &x)
                        .then(|| format!("it reads the denied table `{x}`"))
                })
            })
            .or_else(|| {
                v.functions.iter().find_map(|f| {
                    let routine = format!("{}.{}", scoped(&f.schema), f.name).to_lowercase();
                    catalog
                        .routines
                        .contains(&routine)
                        .then(|| format!("it calls the stored routine `{routine}`"))
                })
            });
        match why {
            Some(w) => {
                tainted.insert(t.name.clone(), w);
            }
            None => {
                reads.insert(
                    t.name.clone(),
                    v.relation_names
                        .iter()
                        .map(|r| (scoped(&r.schema), r.name.clone()))
                        .collect(),
                );
            }
        }
    }
    loop {
        let next = reads.iter().find_map(|(view, rel)| {
            rel.iter()
                .find(|(s, n)| s.eq_ignore_ascii_case(db) && tainted.contains_key(n))
                .map(|(_, n)| {
                    (
                        view.clone(),
                        format!("it reads the view `{n}`, not granted"),
                    )
                })
        });
        match next {
            Some((view, why)) => {
                reads.remove(&view);
                tainted.insert(view, why);
            }
            None => break,
        }
    }
    let mut out = format!(
        "-- Per table and view of {qdb}, from its catalog as read now ({} objects): tables created\n\
         -- later are not granted until `dbward setup-role` is run again. Denied tables and views\n\
         -- that read denied data or call stored routines are left out; tables with denied\n\
         -- columns are granted column by column. Views also get SHOW VIEW, which dbward needs to\n\
         -- judge what a view runs.\n",
        catalog.tables.len()
    );
    for t in &catalog.tables {
        let q = format!("{qdb}.{}", quote_ident(&t.name));
        if policy.denies_table(D, &tref(&t.name)) {
            out.push_str(&format!("-- {q}: denied by configuration, not granted.\n"));
            continue;
        }
        if let Some(why) = tainted.get(&t.name) {
            out.push_str(&format!("-- {q}: a view not granted: {why}.\n"));
            continue;
        }
        let denied = policy.denied_columns_of(D, &tref(&t.name));
        let allowed: Vec<&String> = t
            .columns
            .iter()
            .filter(|c| !denied.iter().any(|d| d.eq_ignore_ascii_case(c)))
            .collect();
        let show_view = if t.view.is_some() { ", SHOW VIEW" } else { "" };
        if allowed.len() == t.columns.len() {
            out.push_str(&format!("GRANT SELECT{show_view} ON {q} TO {user};\n"));
        } else if allowed.is_empty() {
            out.push_str(&format!(
                "-- {q}: every column is denied by configuration, not granted.\n"
            ));
        } else {
            let cols: Vec<String> = allowed.iter().map(|c| quote_ident(c)).collect();
            let left_out: Vec<&str> = t
                .columns
                .iter()
                .filter(|c| !allowed.contains(c))
                .map(String::as_str)
                .collect();
            out.push_str(&format!(
                "GRANT SELECT ({}) ON {q} TO {user};  -- denied: {}\n",
                cols.join(", "),
                left_out.join(", ")
            ));
            if t.view.is_some() {
                out.push_str(&format!("GRANT SHOW VIEW ON {q} TO {user};\n"));
            }
        }
    }
    out
}
