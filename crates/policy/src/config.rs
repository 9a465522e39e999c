//! The policy's settings. Every field has a safe default; the gateway fills this from the
//! `[policy]` section of `dbward.toml`.
//!
//! Invariant: built-in denials ([`BUILTIN_DENIED_TABLES`], [`BUILTIN_DENIED_COLUMNS`])
//! always apply; operator lists only add to them.
//!
//! Invariant: a setting can only make the policy stricter than its rules table, except
//! `allowed_functions`, which an operator uses to vouch for a function the engine or the
//! database would otherwise refuse (and which never overrides a built-in deny rule).

use serde::Deserialize;

/// The policy engine's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Longest query accepted, in characters. Default 10,000.
    pub max_query_chars: usize,
    /// Deepest syntax tree walked before the query is refused. Default 200.
    pub max_depth: usize,
    /// Whether SHOW statements are allowed (sensitive settings never are). Default true.
    pub allow_show: bool,
    /// Whether EXPLAIN ANALYZE (which runs the query) is allowed. Default true.
    pub allow_explain_analyze: bool,
    /// Extra functions to refuse, by name or `schema.name`; `prefix*` matches a prefix.
    /// Default empty.
    pub denied_functions: Vec<String>,
    /// Functions the operator vouches for: not refused for being unknown or volatile. They
    /// cannot lift a built-in deny rule. Default empty.
    pub allowed_functions: Vec<String>,
    /// Tables no query may read, by name or `schema.name`, *in addition to*
    /// [`BUILTIN_DENIED_TABLES`], which always apply. Default empty. Patterns in
    /// `pg_catalog` apply to PostgreSQL only, and patterns in `mysql` to MySQL only.
    pub denied_tables: Vec<String>,
    /// Schemas no query may read. Default empty.
    pub denied_schemas: Vec<String>,
    /// If not empty, the only schemas queries may read (scope by allowlist, safer than
    /// deny-lists): a table must be in one of these schemas or in `allowed_tables`.
    /// Include `pg_catalog` / `information_schema` to allow catalog reads. Default empty
    /// (no allowlist).
    pub allowed_schemas: Vec<String>,
    /// If not empty (or `allowed_schemas` is not), the only tables queries may read, by
    /// name or `schema.name`, `prefix*` allowed. Default empty (no allowlist).
    pub allowed_tables: Vec<String>,
    /// Columns no query may read, as `table.column` or `schema.table.column`, in addition
    /// to [`BUILTIN_DENIED_COLUMNS`]; `SELECT *` and whole-row references on their tables
    /// are refused too. Default empty.
    pub denied_columns: Vec<String>,
    /// Largest string a constant expression may build (`repeat`, `lpad`, `rpad`, ...), in
    /// bytes. Default 100,000: big enough for any padding or bar chart, small enough that a
    /// builtin which never checks for interrupts (`strpos`, `position`, `replace` scan
    /// their inputs in one C loop that neither a cancel nor a terminate stops) finishes
    /// within a few seconds on the largest inputs it can build.
    pub max_constant_string_bytes: u64,
    /// Most rows a `generate_series` with constant bounds may produce. Default 10,000,000.
    pub max_generate_series_rows: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            max_query_chars: 10_000,
            max_depth: 200,
            allow_show: true,
            allow_explain_analyze: true,
            denied_functions: Vec::new(),
            allowed_functions: Vec::new(),
            denied_tables: Vec::new(),
            denied_schemas: Vec::new(),
            allowed_schemas: Vec::new(),
            allowed_tables: Vec::new(),
            denied_columns: Vec::new(),
            max_constant_string_bytes: 100_000,
            max_generate_series_rows: 10_000_000,
        }
    }
}

/// Tables no query may read whatever the configuration says: credentials, server paths and
/// settings, statistics that sample column values, and other sessions' SQL.
pub const BUILTIN_DENIED_TABLES: &[&str] = &[
    "pg_catalog.pg_authid",
    "pg_catalog.pg_shadow",
    "pg_catalog.pg_user_mapping",
    "pg_catalog.pg_user_mappings",
    "pg_catalog.pg_largeobject",
    "pg_catalog.pg_statistic",
    "pg_catalog.pg_statistic_ext_data",
    "pg_catalog.pg_hba_file_rules",
    "pg_catalog.pg_ident_file_mappings",
    "pg_catalog.pg_file_settings",
    // Server paths; use SHOW for a single setting.
    "pg_catalog.pg_settings",
    "pg_catalog.pg_config",
    // Other sessions' SQL text (an extension, in whatever schema it was installed).
    "pg_stat_statements",
    "pg_stat_statements_info",
    "mysql.user",
    "mysql.global_priv",
];

/// Columns no query may read whatever the configuration says: other sessions' SQL text, and
/// the statistics views' samples of column values (`most_common_vals`, `histogram_bounds`:
/// a denied column's values, read without naming it; the fractions and counts stay readable).
pub const BUILTIN_DENIED_COLUMNS: &[&str] = &[
    "pg_catalog.pg_stat_activity.query",
    "pg_catalog.pg_stats.most_common_vals",
    "pg_catalog.pg_stats.histogram_bounds",
    "pg_catalog.pg_stats.most_common_elems",
    "pg_catalog.pg_stats_ext.most_common_vals",
    "pg_catalog.pg_stats_ext_exprs.most_common_vals",
    "pg_catalog.pg_stats_ext_exprs.histogram_bounds",
    "pg_catalog.pg_stats_ext_exprs.most_common_elems",
];

/// A `schema.name` or `name` pattern from config, with an optional trailing `*`.
#[derive(Debug, Clone)]
pub(crate) struct NamePattern {
    schema: Option<String>,
    name: String,
    prefix: bool,
}

impl NamePattern {
    pub(crate) fn parse(text: &str) -> NamePattern {
        let text = text.trim();
        let (schema, name) = match text.rsplit_once('.') {
            Some((s, n)) => (Some(s.to_string()), n),
            None => (None, text),
        };
        let (name, prefix) = match name.strip_suffix('*') {
            Some(n) => (n.to_string(), true),
            None => (name.to_string(), false),
        };
        NamePattern {
            schema,
            name,
            prefix,
        }
    }

    /// Whether `schema.name` matches. Comparison is exact: callers fold case first where
    /// the dialect folds it. An unqualified pattern matches any schema; a qualified
    /// pattern matches a qualified name in that schema, or an unqualified name (which the
    /// database may resolve to that schema).
    /// Whether the pattern applies to a dialect: the catalog schemas `pg_catalog` and
    /// `mysql` exist only in their own database.
    pub(crate) fn applies_to(&self, dialect: crate::Dialect) -> bool {
        match self.schema.as_deref() {
            Some("pg_catalog") => dialect == crate::Dialect::Postgres,
            Some("mysql") => dialect == crate::Dialect::Mysql,
            _ => true,
        }
    }

    pub(crate) fn matches(&self, schema: Option<&str>, name: &str, fold: bool) -> bool {
        let eq = |a: &str, b: &str| {
            if fold {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        let name_ok = if self.prefix {
            name.len() >= self.name.len()
                && name.is_char_boundary(self.name.len())
                && eq(&name[..self.name.len()], &self.name)
        } else {
            eq(name, &self.name)
        };
        let schema_ok = match (&self.schema, schema) {
            (None, _) | (Some(_), None) => true,
            (Some(p), Some(s)) => eq(p, s),
        };
        name_ok && schema_ok
    }
}
