//! The authorizer: SQLite calls it for every action a statement will take, after its own
//! name resolution (CTEs, aliases, views, `NATURAL JOIN` and `USING` columns all resolved to
//! the real table and column). Denied data is enforced here on what SQLite resolved, so it
//! holds when the policy is fooled by a name.
//!
//! Decision: a read of a denied column is refused (`SQLITE_DENY`: the whole statement fails
//! with "not authorized"), not ignored (`SQLITE_IGNORE` would read NULL in its place). NULLs
//! would look like data: an analyst would conclude the column is empty, and a `WHERE` or
//! join on it would silently change meaning. The policy refuses `SELECT *` on such tables
//! already, so a clear refusal is what a client sees from both layers.
//!
//! Invariants:
//! - Only reads, SELECT, recursive CTEs, functions outside [`DENIED_FUNCTIONS`] and the
//!   introspection pragmas are allowed; every other action is denied.
//! - A read is denied when configuration denies the table, its schema or the column, when
//!   the table holds statistics samples, when it is a virtual table over denied data or
//!   one of its shadow tables, or when the column is a generated column of a table with
//!   denied columns ([`ReadRules::refresh`] finds those in the catalog, again whenever the
//!   schema changes).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use dbward_policy::{Dialect, Policy};
use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

use super::pool::classify;
use crate::error::GatewayError;

/// Functions the authorizer refuses whatever the policy said.
const DENIED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fsdir",
    "fts3_tokenizer",
];

/// What a query on one database may read.
#[derive(Debug)]
pub struct ReadRules {
    /// The configured deny-lists (tables, schemas, columns) and SQLite's built-in ones.
    policy: Arc<Policy>,
    /// What the catalog adds, with the schema version it was computed at.
    derived: Mutex<(Option<i64>, Arc<Derived>)>,
}

/// Denied data the catalog makes readable by other names (lower case).
#[derive(Debug, Default)]
struct Derived {
    /// Virtual tables over denied data and their shadow tables.
    tables: HashSet<String>,
    /// `(table, column)`: the generated columns of a table with denied columns. SQLite asks
    /// the authorizer about the generated column a query reads, not about the columns its
    /// expression reads, so one computed from a denied column would be a readable copy.
    /// (An expression reads only its own row, so only such tables matter; every generated
    /// column of them is refused, whatever its expression reads.)
    columns: HashSet<(String, String)>,
}

impl ReadRules {
    /// Rules from the policy's deny-lists; the catalog part is filled by `refresh`.
    pub fn new(policy: Arc<Policy>) -> ReadRules {
        ReadRules {
            policy,
            derived: Mutex::new((None, Arc::new(Derived::default()))),
        }
    }

    /// Re-reads the virtual tables if the schema changed since last time. Runs on a
    /// connection without the authorizer.
    pub(super) fn refresh(&self, conn: &Connection) -> Result<(), GatewayError> {
        let version: i64 = conn
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .map_err(classify)?;
        if crate::lock(&self.derived).0 == Some(version) {
            return Ok(());
        }
        let mut stmt = conn
            .prepare(
                "SELECT name, sql FROM sqlite_schema WHERE type = 'table' \
                 AND sql LIKE 'CREATE VIRTUAL TABLE%'",
            )
            .map_err(classify)?;
        let vtabs = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(classify)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(classify)?;
        let tables = sensitive_tables(&self.policy, &vtabs);
        let columns = self.generated_over_denied(conn)?;
        *crate::lock(&self.derived) = (Some(version), Arc::new(Derived { tables, columns }));
        Ok(())
    }

    /// The generated columns of every table that has denied columns (see [`Derived`]).
    fn generated_over_denied(
        &self,
        conn: &Connection,
    ) -> Result<HashSet<(String, String)>, GatewayError> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
            .map_err(classify)?;
        let tables = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(classify)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(classify)?;
        let mut out = HashSet::new();
        // `hidden` is 2 for a virtual generated column, 3 for a stored one.
        let mut cols = conn
            .prepare("SELECT name FROM pragma_table_xinfo(?1) WHERE hidden IN (2, 3)")
            .map_err(classify)?;
        for table in tables {
            let t = dbward_policy::TableRef {
                schema: Some("main".into()),
                name: table.clone(),
            };
            if self
                .policy
                .denied_columns_of(Dialect::Sqlite, &t)
                .is_empty()
            {
                continue;
            }
            let generated = cols
                .query_map([&table], |r| r.get::<_, String>(0))
                .map_err(classify)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(classify)?;
            for c in generated {
                out.insert((table.to_lowercase(), c.to_lowercase()));
            }
        }
        Ok(out)
    }

    /// Whether reading `table.column` (`column` empty: the table without a column, as in
    /// `count(*)`) is denied.
    pub fn denies(&self, schema: Option<&str>, table: &str, column: &str) -> bool {
        let derived = crate::lock(&self.derived).1.clone();
        let table_lower = table.to_lowercase();
        derived.tables.contains(&table_lower)
            || (!column.is_empty()
                && derived
                    .columns
                    .contains(&(table_lower, column.to_lowercase())))
            || self.policy.denies_resolved_read(
                Dialect::Sqlite,
                schema,
                table,
                (!column.is_empty()).then_some(column),
            )
    }

    /// The authorizer callback.
    pub(super) fn authorize(&self, ctx: &AuthContext<'_>) -> Authorization {
        match ctx.action {
            AuthAction::Select | AuthAction::Recursive => Authorization::Allow,
            AuthAction::Read {
                table_name,
                column_name,
            } => {
                if self.denies(ctx.database_name, table_name, column_name) {
                    Authorization::Deny
                } else {
                    Authorization::Allow
                }
            }
            AuthAction::Function { function_name } => {
                if DENIED_FUNCTIONS
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(function_name))
                {
                    Authorization::Deny
                } else {
                    Authorization::Allow
                }
            }
            // The introspection pragmas take a table or index name and cannot be set, so
            // their argument needs no check. FTS tables read `data_version` (never set).
            AuthAction::Pragma {
                pragma_name,
                pragma_value,
            } => {
                if dbward_policy::sqlite::is_introspection_pragma(pragma_name)
                    || (pragma_name.eq_ignore_ascii_case("data_version") && pragma_value.is_none())
                {
                    Authorization::Allow
                } else {
                    Authorization::Deny
                }
            }
            _ => Authorization::Deny,
        }
    }
}

/// One virtual table as its `CREATE VIRTUAL TABLE` declares it.
struct VirtualTable {
    name: String,
    module: String,
    /// Column names (FTS) and every other argument, unquoted and lower case.
    columns: Vec<String>,
    args: Vec<String>,
    /// FTS `content=` table, if external.
    content: Option<String>,
}

/// Virtual tables that expose denied data, and their shadow tables: FTS tables over a
/// denied table or column (external content, or named columns denied on the FTS table
/// itself), virtual tables denied by name, and any virtual table whose arguments name one
/// of those (`fts5vocab` over a denied FTS table).
fn sensitive_tables(policy: &Policy, vtabs: &[(String, String)]) -> HashSet<String> {
    let parsed: Vec<VirtualTable> = vtabs
        .iter()
        .filter_map(|(name, sql)| parse_virtual(name, sql))
        .collect();
    let denies =
        |t: &str, c: Option<&str>| policy.denies_resolved_read(Dialect::Sqlite, Some("main"), t, c);
    let mut sensitive: HashSet<String> = HashSet::new();
    loop {
        let before = sensitive.len();
        for v in &parsed {
            if sensitive.contains(&v.name) {
                continue;
            }
            let fts = v.module.starts_with("fts");
            let over_denied = denies(&v.name, None)
                || v.columns.iter().any(|c| denies(&v.name, Some(c)))
                || (fts
                    && v.content.as_deref().is_some_and(|t| {
                        denies(t, None)
                            || sensitive.contains(t)
                            || v.columns.iter().any(|c| denies(t, Some(c)))
                    }))
                || v.args.iter().any(|a| sensitive.contains(a));
            if over_denied {
                sensitive.insert(v.name.clone());
            }
        }
        if sensitive.len() == before {
            break;
        }
    }
    let shadows: Vec<String> = sensitive
        .iter()
        .flat_map(|v| {
            dbward_policy::sqlite::SHADOW_SUFFIXES
                .iter()
                .map(move |s| format!("{v}_{s}"))
        })
        .collect();
    sensitive.extend(shadows);
    sensitive
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    let inner = match (s.chars().next(), s.chars().last()) {
        (Some('\''), Some('\'')) | (Some('"'), Some('"')) | (Some('`'), Some('`'))
            if s.len() >= 2 =>
        {
            &s[1..s.len() - 1]
        }
        (Some('['), Some(']')) => &s[1..s.len() - 1],
        _ => s,
    };
    inner.to_lowercase()
}

/// `CREATE VIRTUAL TABLE ... USING module(arg, ...)`, arguments split at top-level commas.
fn parse_virtual(name: &str, sql: &str) -> Option<VirtualTable> {
    let lower = sql.to_lowercase();
    let using = lower.find(" using ")? + " using ".len();
    let rest = &sql[using..];
    let (module, args) = match rest.find('(') {
        Some(open) => (
            rest[..open].trim(),
            &rest[open + 1..rest.rfind(')').unwrap_or(rest.len())],
        ),
        None => (rest.trim(), ""),
    };
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0usize);
    for (i, ch) in args.char_indices() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(ch),
            (None, '[') => quote = Some(']'),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(&args[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&args[start..]);
    let mut v = VirtualTable {
        name: name.to_lowercase(),
        module: module.to_lowercase(),
        columns: Vec::new(),
        args: Vec::new(),
        content: None,
    };
    for p in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        if let Some((key, value)) = p.split_once('=') {
            let value = unquote(value);
            if unquote(key) == "content" && !value.is_empty() {
                v.content = Some(value.clone());
            }
            v.args.push(value);
        } else {
            // A column name, possibly followed by a type or UNINDEXED.
            let first = split_first_token(p);
            v.columns.push(unquote(first));
            v.args.push(unquote(p));
        }
    }
    Some(v)
}

fn split_first_token(p: &str) -> &str {
    let p = p.trim();
    let end = match p.chars().next() {
        Some(q @ ('\'' | '"' | '`')) => p[1..].find(q).map_or(p.len(), |i| i + 2),
        Some('[') => p.find(']').map_or(p.len(), |i| i + 1),
        _ => p.find(char::is_whitespace).unwrap_or(p.len()),
    };
    &p[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_tables_over_denied_data_and_their_shadows_are_found() {
        let policy = Policy::new(dbward_policy::PolicyConfig {
            denied_tables: vec!["secrets".into()],
            denied_columns: vec!["customers.ssn".into(), "notes.body".into()],
            ..Default::default()
        });
        let vtabs = [
            ("docs", "CREATE VIRTUAL TABLE docs USING fts5(title, body)"),
            (
                "cust_fts",
                "CREATE VIRTUAL TABLE cust_fts USING fts5(name, \"ssn\", content='customers', content_rowid='id')",
            ),
            (
                "cust_names",
                "CREATE VIRTUAL TABLE cust_names USING fts5(name, content=customers)",
            ),
            (
                "sec_fts",
                "create virtual table sec_fts using fts4(api_key, content=\"secrets\")",
            ),
            (
                "notes",
                "CREATE VIRTUAL TABLE notes USING fts3(title, body TEXT)",
            ),
            (
                "vocab",
                "CREATE VIRTUAL TABLE vocab USING fts5vocab(cust_fts, 'row')",
            ),
            (
                "docs_vocab",
                "CREATE VIRTUAL TABLE docs_vocab USING fts5vocab(main, docs, row)",
            ),
        ];
        let owned: Vec<(String, String)> = vtabs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let s = sensitive_tables(&policy, &owned);
        for t in [
            "cust_fts",
            "cust_fts_data",
            "cust_fts_idx",
            "cust_fts_config",
            "cust_fts_docsize",
            "sec_fts",
            "sec_fts_segdir",
            "sec_fts_segments",
            "sec_fts_stat",
            "notes",
            "notes_content",
            "vocab",
        ] {
            assert!(s.contains(t), "{t} not found in {s:?}");
        }
        for t in ["docs", "docs_content", "cust_names", "docs_vocab"] {
            assert!(!s.contains(t), "{t} wrongly sensitive");
        }
    }
}
