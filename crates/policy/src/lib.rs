//! dbward's policy engine: reads one query in the target database's own grammar and decides,
//! with reasons, whether it may run.
//!
//! Pure: no I/O, no async, no database crates. `parse -> classify -> decide`:
//! - [`input`] refuses what must never reach a parser (NUL bytes, over-long, empty);
//! - [`postgres`] reads PostgreSQL with libpg_query, the parser PostgreSQL itself runs;
//! - [`sqlparser_dialects`] reads MySQL/MariaDB and SQLite with `sqlparser`, after
//!   [`mysql_lexical`] has refused whatever MySQL would read differently;
//! - [`functions`] is the one table of function rules.
//!
//! Invariants:
//! - Default deny: only the statement kinds listed in [`StatementKind`] can be allowed, and
//!   whatever does not parse, or is deeper than the walk limit, is refused.
//! - The decision is made on the syntax tree, never by matching the query text: a keyword
//!   inside a string literal, identifier or comment is never a reason to refuse.
//! - Every node of the tree is visited (functions hide in FROM, FILTER, OVER, ORDER BY,
//!   LIMIT, casts, lateral joins and EXPLAIN's target).
//! - The engine decides only what it knows: functions it has no rule for are listed in
//!   [`Verdict::unknown_functions`] for the gateway to check against the database.

#![deny(clippy::print_stdout, clippy::print_stderr)]
// The module docs describe the design and link to private items: they resolve in
// `cargo doc --document-private-items`, the documentation a contributor reads.
#![allow(rustdoc::private_intra_doc_links)]

mod config;
mod functions;
mod input;
mod mysql_builtins;
mod mysql_checks;
mod mysql_lexical;
mod mysql_syntax;
mod normalize;
mod pg_consts;
mod pg_scan;
mod postgres;
mod recent;
pub mod sqlite;
mod sqlparser_consts;
mod sqlparser_dialects;
mod verdict;

pub use config::{BUILTIN_DENIED_COLUMNS, BUILTIN_DENIED_TABLES, PolicyConfig};
pub use normalize::normalize;
pub use recent::Judged;
pub use verdict::{
    Decision, Dialect, FunctionRef, Reason, Rule, Severity, StatementKind, TableRef, Verdict,
};

use config::NamePattern;
use functions::Classification;

/// A policy ready to check queries: the configuration, with its name patterns compiled.
///
/// Build it once and share it; [`Policy::check`] takes `&self` and is cheap to call from many
/// threads.
#[derive(Debug, Clone)]
pub struct Policy {
    config: PolicyConfig,
    functions: functions::FunctionTable,
    denied_functions: Vec<NamePattern>,
    allowed_functions: Vec<NamePattern>,
    denied_tables: Vec<NamePattern>,
    denied_schemas: Vec<String>,
    allowed_tables: Vec<NamePattern>,
    /// `(table, column)` pairs.
    denied_columns: Vec<(NamePattern, String)>,
    /// Recent judgements (see [`Policy::judge`]); clones share it, as they share the
    /// configuration.
    recent: std::sync::Arc<recent::Recent>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::new(PolicyConfig::default())
    }
}

impl Policy {
    /// Compiles a configuration.
    pub fn new(config: PolicyConfig) -> Policy {
        let pats = |v: &[String]| v.iter().map(|s| NamePattern::parse(s)).collect::<Vec<_>>();
        // Built-in denials always apply; the operator's lists add to them.
        let denied_tables: Vec<String> = config::BUILTIN_DENIED_TABLES
            .iter()
            .map(|s| s.to_string())
            .chain(config.denied_tables.iter().cloned())
            .collect();
        let denied_columns = config::BUILTIN_DENIED_COLUMNS
            .iter()
            .map(|s| s.to_string())
            .chain(config.denied_columns.iter().cloned())
            .collect::<Vec<_>>()
            .iter()
            .filter_map(|c| {
                let (table, column) = c.trim().rsplit_once('.')?;
                Some((NamePattern::parse(table), column.to_string()))
            })
            .collect();
        Policy {
            functions: functions::FunctionTable::build(),
            denied_functions: pats(&config.denied_functions),
            allowed_functions: pats(&config.allowed_functions),
            denied_tables: pats(&denied_tables),
            allowed_tables: pats(&config.allowed_tables),
            denied_schemas: config.denied_schemas.clone(),
            denied_columns,
            config,
            recent: Default::default(),
        }
    }

    /// The configuration this policy was built from.
    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// Decides whether `sql` may run against a database of `dialect`.
    pub fn check(&self, dialect: Dialect, sql: &str) -> Verdict {
        self.check_within(dialect, sql, self.config.max_query_chars)
    }

    /// [`Policy::check`] and [`normalize()`] of `sql` together, judged once per recent text:
    /// the same verdict `check` gives, without parsing a text seen lately again (see
    /// `recent.rs` for the bounds).
    pub fn judge(&self, dialect: Dialect, sql: &str) -> std::sync::Arc<Judged> {
        self.recent.get_or(dialect, sql, || Judged {
            verdict: self.check(dialect, sql),
            normalized: normalize(dialect, sql),
        })
    }

    /// Judges SQL the database itself stores and will run on a query's behalf (a MySQL
    /// view's definition), by the same rules as a query but without the client input
    /// length limit: the text is the server's, and a long definition is no reason to
    /// refuse the query that reads the view.
    pub fn check_definition(&self, dialect: Dialect, sql: &str) -> Verdict {
        self.check_within(dialect, sql, usize::MAX)
    }

    fn check_within(&self, dialect: Dialect, sql: &str, max_chars: usize) -> Verdict {
        if let Some(reason) = input::check(sql, max_chars) {
            return Verdict::refused_early(dialect, reason);
        }
        match dialect {
            Dialect::Postgres => postgres::analyze(self, sql),
            Dialect::Mysql => {
                if let Some(reasons) = mysql_lexical::check(sql) {
                    let findings = Findings {
                        reasons,
                        ..Findings::default()
                    };
                    return Verdict::from_findings(dialect, None, findings);
                }
                sqlparser_dialects::analyze(self, dialect, sql)
            }
            Dialect::Sqlite => {
                // sqlparser refuses most PRAGMA forms SQLite accepts: read them lexically.
                if let Some(verdict) = sqlite::check_pragma(sql) {
                    return verdict;
                }
                sqlparser_dialects::analyze(self, dialect, sql)
            }
        }
    }

    /// Whether the operator allowlisted this function in config.
    pub fn is_function_allowlisted(&self, dialect: Dialect, f: &FunctionRef) -> bool {
        let fold = functions::folds_case(dialect);
        self.allowed_functions
            .iter()
            .any(|p| p.matches(f.schema.as_deref(), &f.name, fold))
    }

    /// Records one function call: its classification, and a reason if refused.
    pub(crate) fn judge_function(
        &self,
        dialect: Dialect,
        f: FunctionRef,
        position: Option<usize>,
        out: &mut Findings,
    ) {
        let fold = functions::folds_case(dialect);
        let config_denied = self
            .denied_functions
            .iter()
            .any(|p| p.matches(f.schema.as_deref(), &f.name, fold));
        match self.functions.classify(dialect, &f) {
            Classification::Denied(rule, why) => out.refuse(
                rule,
                format!("function `{f}` is not allowed: it {why}"),
                position,
            ),
            _ if config_denied => out.refuse(
                Rule::FunctionDenied,
                format!("function `{f}` is denied by configuration"),
                position,
            ),
            Classification::Harmless => {}
            Classification::Unknown => {
                if !self.is_function_allowlisted(dialect, &f) {
                    out.unknown_functions.push(f.clone());
                }
            }
        }
        out.functions.push(f);
    }

    /// Records one table read and refuses it if configuration denies it.
    ///
    /// A name a CTE also defines is still checked against the deny-lists (a CTE in one
    /// scope must not hide a real table read in another) but not reported as a table.
    pub(crate) fn judge_table(
        &self,
        dialect: Dialect,
        t: TableRef,
        shadowed_by_cte: bool,
        position: Option<usize>,
        out: &mut Findings,
    ) {
        let fold = functions::folds_case(dialect);
        if dialect == Dialect::Sqlite {
            sqlite::judge_table(self, &t, position, out);
        }
        if let Some(schema) = &t.schema
            && self.denied_schemas.iter().any(|s| {
                if fold {
                    s.eq_ignore_ascii_case(schema)
                } else {
                    s == schema
                }
            })
        {
            out.refuse(
                Rule::TableDenied,
                format!("schema `{schema}` is denied by configuration"),
                position,
            );
        }
        if self
            .denied_tables
            .iter()
            .any(|p| p.applies_to(dialect) && p.matches(t.schema.as_deref(), &t.name, fold))
        {
            out.refuse(
                Rule::TableDenied,
                format!("table `{t}` is denied by configuration"),
                position,
            );
        }
        // The allowlist: a CTE's own name is no table; an unqualified name outside
        // `allowed_tables` may be in an allowed schema, which only the database knows
        // (PostgreSQL resolves it; see `allowlist_refusal`).
        if !shadowed_by_cte
            && let Some(why) = self.allowlist_refusal(dialect, &t, t.schema.is_none())
        {
            out.refuse(Rule::TableDenied, why, position);
        }
        if !shadowed_by_cte {
            out.tables.push(t);
        }
    }

    /// Whether an allowlist is configured (`allowed_schemas` or `allowed_tables`).
    pub fn has_allowlist(&self) -> bool {
        !self.config.allowed_schemas.is_empty() || !self.allowed_tables.is_empty()
    }

    /// Why a table is outside the configured allowlist, if it is. With `schema_unknown`
    /// (an unqualified name the database will resolve), only `allowed_tables` can refuse,
    /// and only when no schema is allowed.
    pub fn allowlist_refusal(
        &self,
        dialect: Dialect,
        t: &TableRef,
        schema_unknown: bool,
    ) -> Option<String> {
        if !self.has_allowlist() {
            return None;
        }
        let fold = functions::folds_case(dialect);
        if self
            .allowed_tables
            .iter()
            .any(|p| p.matches(t.schema.as_deref(), &t.name, fold))
        {
            return None;
        }
        let schema_ok = t.schema.as_deref().is_some_and(|schema| {
            self.config.allowed_schemas.iter().any(|s| {
                if fold {
                    s.eq_ignore_ascii_case(schema)
                } else {
                    s == schema
                }
            })
        });
        if schema_ok || (schema_unknown && !self.config.allowed_schemas.is_empty()) {
            return None;
        }
        Some(format!(
            "table `{t}` is outside the tables and schemas this connection may read (allowed_tables, allowed_schemas)"
        ))
    }

    /// Whether configuration (or a built-in rule) denies this table or its schema.
    pub fn denies_table(&self, dialect: Dialect, t: &TableRef) -> bool {
        let mut out = Findings::default();
        self.judge_table(dialect, t.clone(), true, None, &mut out);
        !out.reasons.is_empty()
    }

    /// The denied columns of a table, if any.
    pub fn denied_columns_of(&self, dialect: Dialect, t: &TableRef) -> Vec<&str> {
        let fold = functions::folds_case(dialect);
        self.denied_columns
            .iter()
            .filter(|(p, _)| p.matches(t.schema.as_deref(), &t.name, fold))
            .map(|(_, c)| c.as_str())
            .collect()
    }
}

/// What an analysis collects while it walks the tree.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub(crate) reasons: Vec<Reason>,
    pub(crate) tables: Vec<TableRef>,
    pub(crate) functions: Vec<FunctionRef>,
    pub(crate) unknown_functions: Vec<FunctionRef>,
    pub(crate) operators: Vec<FunctionRef>,
    pub(crate) types: Vec<FunctionRef>,
    pub(crate) relation_names: Vec<TableRef>,
    pub(crate) field_names: Vec<String>,
    pub(crate) params_searched: bool,
}

impl Findings {
    pub(crate) fn refuse(&mut self, rule: Rule, message: String, position: Option<usize>) {
        self.reasons.push(Reason {
            rule,
            message,
            position,
        });
    }
}

/// Decides with the default policy: `dbward_policy::check(Dialect::Postgres, "SELECT 1")`.
pub fn check(dialect: Dialect, sql: &str) -> Verdict {
    Policy::default().check(dialect, sql)
}

/// 1-based character position of a byte offset, for messages.
pub(crate) fn char_position(sql: &str, byte_offset: usize) -> usize {
    let mut end = byte_offset.min(sql.len());
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    sql[..end].chars().count() + 1
}

/// After a parse failure: if the statement's first keyword is not one an allowed statement
/// can start with, the refusal is about the statement kind (an attack, not a typo).
pub(crate) fn refuse_unparsable(
    dialect: Dialect,
    sql: &str,
    parser_message: &str,
    out: &mut Findings,
) {
    use sqlparser::dialect::{MySqlDialect, PostgreSqlDialect, SQLiteDialect};
    use sqlparser::keywords::Keyword;
    use sqlparser::tokenizer::{Token, Tokenizer};
    let tokens = match dialect {
        Dialect::Postgres => Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize(),
        Dialect::Mysql => Tokenizer::new(&MySqlDialect {}, sql).tokenize(),
        Dialect::Sqlite => Tokenizer::new(&SQLiteDialect {}, sql).tokenize(),
    };
    let first = tokens.ok().and_then(|t| {
        t.into_iter().find_map(|t| match t {
            Token::Whitespace(_) => None,
            // Only a real SQL keyword names a statement kind; `SELEC` is a typo.
            Token::Word(w) if w.quote_style.is_none() && w.keyword != Keyword::NoKeyword => {
                Some(Some(w.value.to_ascii_uppercase()))
            }
            _ => Some(None),
        })
    });
    const STARTERS: &[&str] = &[
        "SELECT", "WITH", "VALUES", "TABLE", "EXPLAIN", "SHOW", "DESCRIBE", "DESC",
    ];
    match first.flatten() {
        Some(kw) if !STARTERS.contains(&kw.as_str()) => out.refuse(
            Rule::StatementKind,
            format!(
                "{kw} statements are not allowed (and this one does not parse: {parser_message})"
            ),
            None,
        ),
        _ => out.refuse(Rule::ParseError, syntax_error(parser_message), None),
    }
}

/// A parser's message as a syntax error, said once: libpg_query's messages already begin
/// with "syntax error" (`syntax error at or near "SELEC"`), sqlparser's do not.
pub(crate) fn syntax_error(parser_message: &str) -> String {
    if parser_message
        .get(..12)
        .is_some_and(|p| p.eq_ignore_ascii_case("syntax error"))
    {
        parser_message.to_string()
    } else {
        format!("syntax error: {parser_message}")
    }
}

/// The longest string a search the server cannot stop (PostgreSQL's `strpos`, `replace`,
/// `split_part`...; MariaDB's `LOCATE`, `INSTR`, `LIKE`...) may look for in a text whose size
/// the query does not show: its work is then at most 64 comparisons per byte of text.
pub const SEARCH_NEEDLE_MAX: usize = 64;

/// Limits on constant expressions that would make the server build huge values while
/// planning (before any statement timeout fires).
pub(crate) mod bombs {
    /// Functions whose output size is `size(arg0) * n` where `n` is the second argument.
    pub(crate) fn is_repeat(name: &str) -> bool {
        name.eq_ignore_ascii_case("repeat")
    }
    /// PostgreSQL functions that look for their second argument in their first in one C
    /// loop that never checks for interrupts (`text_position`): neither the statement
    /// timeout, nor a cancel, nor a terminate stops it, and its worst case is the product
    /// of the two lengths. (`position(a IN b)` is `position(b, a)` in the tree.)
    pub(crate) fn is_uninterruptible_search(name: &str) -> bool {
        [
            "strpos",
            "position",
            "replace",
            "split_part",
            "string_to_array",
            "string_to_table",
        ]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
    }
    /// The longest search string such a function may look for in a text whose size is not
    /// known from the query (a column, an aggregate, a computed value): its worst case is
    /// then at most 64 comparisons per byte of text.
    pub(crate) const SEARCH_NEEDLE_MAX: u128 = super::SEARCH_NEEDLE_MAX as u128;
    /// Functions whose output size is their second argument.
    pub(crate) fn is_pad(name: &str) -> bool {
        ["lpad", "rpad"]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }
    /// Functions whose output size is their first argument.
    pub(crate) fn is_sized_by_first(name: &str) -> bool {
        ["space", "zeroblob", "randomblob"]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }
    /// `format`/`printf`: the largest field width in a constant format string, and whether
    /// it takes widths from arguments (`%*s`).
    pub(crate) fn format_widths(fmt: &str) -> (u128, bool) {
        let bytes = fmt.as_bytes();
        let (mut max, mut star) = (0u128, false);
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'%' {
                i += 1;
                continue;
            }
            i += 1;
            // flags, position (`n$`), width, precision: every digit run counts as a width.
            while i < bytes.len() && b"-+ #0123456789$.*".contains(&bytes[i]) {
                if bytes[i] == b'*' {
                    star = true;
                }
                if bytes[i].is_ascii_digit() {
                    let start = i;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                    let n: u128 = fmt[start..i].parse().unwrap_or(u128::MAX);
                    max = max.max(n);
                    continue;
                }
                i += 1;
            }
            i += 1;
        }
        (max, star)
    }

    /// Whether a function formats with field widths (`format`, `printf`).
    pub(crate) fn is_format(name: &str) -> bool {
        ["format", "printf"]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }

    /// Applies an arithmetic operator to two constants.
    pub(crate) fn arith(op: &str, a: i128, b: i128) -> Option<i128> {
        match op {
            "+" => a.checked_add(b),
            "-" => a.checked_sub(b),
            "*" => a.checked_mul(b),
            "/" if b != 0 => Some(a / b),
            "^" => u32::try_from(b).ok().and_then(|e| a.checked_pow(e)),
            _ => None,
        }
    }

    /// Rows a constant `generate_series(start, stop[, step])` produces.
    pub(crate) fn series_rows(start: i128, stop: i128, step: i128) -> u128 {
        if step == 0 {
            return u128::MAX; // an error in PostgreSQL, but never worth running
        }
        let span = stop - start;
        if (span > 0 && step < 0) || (span < 0 && step > 0) {
            return 0;
        }
        (span / step).unsigned_abs() + 1
    }
}
