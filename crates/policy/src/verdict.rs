//! What the engine says about one query: the decision, the statement kind, every reason
//! (each with a stable rule id), and what the query references.
//!
//! Invariant: a [`Verdict`] whose decision is [`Decision::Allowed`] has no reasons, and one
//! whose decision is [`Decision::Refused`] has at least one. Constructors below are the only
//! way the engine builds a verdict, so the two cannot drift apart.

use serde::Serialize;
use std::fmt;

/// The SQL dialect a query is read in: the target database's own grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// PostgreSQL, parsed by libpg_query (PostgreSQL's own parser).
    Postgres,
    /// MySQL and MariaDB, parsed by `sqlparser` plus a lexical check for what the server
    /// would read differently.
    Mysql,
    /// SQLite, parsed by `sqlparser`.
    Sqlite,
}

impl Dialect {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
            Dialect::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" | "pg" => Ok(Dialect::Postgres),
            "mysql" | "mariadb" => Ok(Dialect::Mysql),
            "sqlite" | "sqlite3" => Ok(Dialect::Sqlite),
            other => Err(format!(
                "unknown dialect `{other}` (expected postgres, mysql or sqlite)"
            )),
        }
    }
}

/// Allowed or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The query may run (subject to the database check of `unknown_functions`).
    Allowed,
    /// The query must not run; `reasons` says why.
    Refused,
}

/// What kind of statement the query is. Serialised as one lower-case string whatever the
/// kind (`"select"`, `"explain_analyze"`, `"delete"`), so clients read one shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementKind {
    /// SELECT, including `TABLE t` and set operations.
    Select,
    /// A bare VALUES list.
    Values,
    /// EXPLAIN without ANALYZE.
    Explain,
    /// EXPLAIN ANALYZE: runs the query.
    ExplainAnalyze,
    /// SHOW of a setting or of catalog information.
    Show,
    /// DESCRIBE / DESC of a table (MySQL), or an introspection PRAGMA (SQLite).
    Describe,
    /// Anything else, named as the parser names it (always refused).
    Other(String),
}

impl Serialize for StatementKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StatementKind::Select => s.serialize_str("select"),
            StatementKind::Values => s.serialize_str("values"),
            StatementKind::Explain => s.serialize_str("explain"),
            StatementKind::ExplainAnalyze => s.serialize_str("explain_analyze"),
            StatementKind::Show => s.serialize_str("show"),
            StatementKind::Describe => s.serialize_str("describe"),
            StatementKind::Other(name) => s.serialize_str(&name.to_lowercase()),
        }
    }
}

impl fmt::Display for StatementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatementKind::Select => f.write_str("SELECT"),
            StatementKind::Values => f.write_str("VALUES"),
            StatementKind::Explain => f.write_str("EXPLAIN"),
            StatementKind::ExplainAnalyze => f.write_str("EXPLAIN ANALYZE"),
            StatementKind::Show => f.write_str("SHOW"),
            StatementKind::Describe => f.write_str("DESCRIBE"),
            StatementKind::Other(name) => f.write_str(name),
        }
    }
}

/// How serious a rule's firing is; the detector weighs refusals by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Mistakes an honest client makes (a typo, an over-long query).
    Low,
    /// Something no read-only client needs, but not an attack in itself.
    Medium,
    /// An attempt to write, escape the sandbox, or hide SQL from the policy.
    High,
}

/// Every rule the engine can fire. The id strings are a stable interface: clients, the audit
/// log and the detector key on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "&'static str")]
#[allow(missing_docs)] // each variant is documented by `id` and `describe`
pub enum Rule {
    InputEmpty,
    InputTooLong,
    InputNulByte,
    ParseError,
    TooDeep,
    MultipleStatements,
    StatementKind,
    SelectInto,
    LockingClause,
    DataModifying,
    ExplainAnalyzeDisabled,
    ExplainTarget,
    ShowDisabled,
    ShowSensitive,
    FunctionSleep,
    FunctionFileAccess,
    FunctionConfig,
    FunctionSequence,
    FunctionAdvisoryLock,
    FunctionBackendControl,
    FunctionNotify,
    FunctionRemote,
    FunctionReplication,
    FunctionStatsReset,
    FunctionWrites,
    FunctionScheduler,
    FunctionSqlText,
    FunctionExtension,
    FunctionDenied,
    FunctionOtherSessions,
    ResourceBomb,
    TableDenied,
    ColumnDenied,
    MysqlExecutableComment,
    MysqlCommentSyntax,
    MysqlIntoOutfile,
}

impl Rule {
    /// The stable id, e.g. `function.sleep`.
    pub fn id(self) -> &'static str {
        match self {
            Rule::InputEmpty => "input.empty",
            Rule::InputTooLong => "input.too_long",
            Rule::InputNulByte => "input.nul_byte",
            Rule::ParseError => "parse.error",
            Rule::TooDeep => "parse.too_deep",
            Rule::MultipleStatements => "statement.multiple",
            Rule::StatementKind => "statement.kind",
            Rule::SelectInto => "statement.select_into",
            Rule::LockingClause => "statement.locking",
            Rule::DataModifying => "statement.data_modifying",
            Rule::ExplainAnalyzeDisabled => "explain.analyze_disabled",
            Rule::ExplainTarget => "explain.target",
            Rule::ShowDisabled => "show.disabled",
            Rule::ShowSensitive => "show.sensitive",
            Rule::FunctionSleep => "function.sleep",
            Rule::FunctionFileAccess => "function.file_access",
            Rule::FunctionConfig => "function.config",
            Rule::FunctionSequence => "function.sequence",
            Rule::FunctionAdvisoryLock => "function.advisory_lock",
            Rule::FunctionBackendControl => "function.backend_control",
            Rule::FunctionNotify => "function.notify",
            Rule::FunctionRemote => "function.remote",
            Rule::FunctionReplication => "function.replication",
            Rule::FunctionStatsReset => "function.stats_reset",
            Rule::FunctionOtherSessions => "function.other_sessions",
            Rule::FunctionWrites => "function.writes",
            Rule::FunctionScheduler => "function.scheduler",
            Rule::FunctionSqlText => "function.sql_text",
            Rule::FunctionExtension => "function.extension",
            Rule::FunctionDenied => "function.denied",
            Rule::ResourceBomb => "resource.bomb",
            Rule::TableDenied => "table.denied",
            Rule::ColumnDenied => "column.denied",
            Rule::MysqlExecutableComment => "mysql.executable_comment",
            Rule::MysqlCommentSyntax => "mysql.comment_syntax",
            Rule::MysqlIntoOutfile => "mysql.into_outfile",
        }
    }

    /// How serious a firing of this rule is.
    pub fn severity(self) -> Severity {
        use Rule::*;
        match self {
            InputEmpty
            | InputTooLong
            | ParseError
            | TooDeep
            | ExplainAnalyzeDisabled
            | ShowDisabled => Severity::Low,
            StatementKind
            | LockingClause
            | ExplainTarget
            | ShowSensitive
            | FunctionSleep
            | FunctionSequence
            | FunctionAdvisoryLock
            | FunctionNotify
            | FunctionStatsReset
            | FunctionDenied
            | FunctionOtherSessions
            | ResourceBomb
            | TableDenied
            | ColumnDenied => Severity::Medium,
            InputNulByte
            | MultipleStatements
            | SelectInto
            | DataModifying
            | FunctionFileAccess
            | FunctionConfig
            | FunctionBackendControl
            | FunctionRemote
            | FunctionReplication
            | FunctionWrites
            | FunctionScheduler
            | FunctionSqlText
            | FunctionExtension
            | MysqlExecutableComment
            | MysqlCommentSyntax
            | MysqlIntoOutfile => Severity::High,
        }
    }

    /// Every rule, for documentation and exhaustive tests.
    pub const ALL: &'static [Rule] = &[
        Rule::InputEmpty,
        Rule::InputTooLong,
        Rule::InputNulByte,
        Rule::ParseError,
        Rule::TooDeep,
        Rule::MultipleStatements,
        Rule::StatementKind,
        Rule::SelectInto,
        Rule::LockingClause,
        Rule::DataModifying,
        Rule::ExplainAnalyzeDisabled,
        Rule::ExplainTarget,
        Rule::ShowDisabled,
        Rule::ShowSensitive,
        Rule::FunctionSleep,
        Rule::FunctionFileAccess,
        Rule::FunctionConfig,
        Rule::FunctionSequence,
        Rule::FunctionAdvisoryLock,
        Rule::FunctionBackendControl,
        Rule::FunctionNotify,
        Rule::FunctionRemote,
        Rule::FunctionReplication,
        Rule::FunctionStatsReset,
        Rule::FunctionWrites,
        Rule::FunctionScheduler,
        Rule::FunctionSqlText,
        Rule::FunctionExtension,
        Rule::FunctionDenied,
        Rule::FunctionOtherSessions,
        Rule::ResourceBomb,
        Rule::TableDenied,
        Rule::ColumnDenied,
        Rule::MysqlExecutableComment,
        Rule::MysqlCommentSyntax,
        Rule::MysqlIntoOutfile,
    ];

    /// Looks a rule up by its stable id.
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.id() == id)
    }
}

impl From<Rule> for &'static str {
    fn from(rule: Rule) -> Self {
        rule.id()
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One reason for a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// The rule that fired.
    pub rule: Rule,
    /// What was found and why it is refused, for a person or a model to read.
    pub message: String,
    /// 1-based character position in the query, where the parser gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
}

/// A table the query reads, as written (schema-qualified where the query qualifies it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct TableRef {
    /// The schema (or database, for MySQL) if the query names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The table, view or CTE name.
    pub name: String,
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A function the query calls, normalised to the dialect's case rules.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FunctionRef {
    /// The schema if the query names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The function name.
    pub name: String,
}

impl fmt::Display for FunctionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// The engine's answer for one query.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The dialect the query was read in.
    pub dialect: Dialect,
    /// Allowed or refused.
    pub decision: Decision,
    /// The statement kind, when the query parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<StatementKind>,
    /// Why the query is refused (empty when allowed).
    pub reasons: Vec<Reason>,
    /// Tables and views the query reads (CTE names excluded).
    pub tables: Vec<TableRef>,
    /// Every function the query calls, known or not.
    pub functions: Vec<FunctionRef>,
    /// Functions the engine has no rule for. The gateway must ask the database whether they
    /// are safe (PostgreSQL: `pg_proc.provolatile`) before it runs the query.
    pub unknown_functions: Vec<FunctionRef>,
    /// Operators the query names, as written (PostgreSQL): the database resolves them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<FunctionRef>,
    /// Types the query casts to, as written (PostgreSQL): the database resolves them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<FunctionRef>,
    /// Every relation name in the query, CTE names included (a CTE name may also be a
    /// table's in another scope): what the database must resolve.
    #[serde(skip)]
    pub relation_names: Vec<TableRef>,
    /// Last fields of qualified column references (`t.f`): PostgreSQL reads `t.f` as the
    /// call `f(t)` when `t` has no column `f`, so the database resolves these names too.
    #[serde(skip)]
    pub field_names: Vec<String>,
    /// A parameter is the search string of a search the server cannot stop (PostgreSQL's
    /// `strpos`, MariaDB's `LOCATE`...) over a text of unknown size: the gateway must refuse
    /// the call if any string parameter is longer than [`crate::SEARCH_NEEDLE_MAX`] bytes.
    #[serde(skip)]
    pub params_searched: bool,
}

impl Verdict {
    /// Whether the query may run (pending the database check of unknown functions).
    pub fn is_allowed(&self) -> bool {
        self.decision == Decision::Allowed
    }

    /// The first reason's rule, if refused.
    pub fn first_rule(&self) -> Option<Rule> {
        self.reasons.first().map(|r| r.rule)
    }

    /// Whether any reason has this rule.
    pub fn has_rule(&self, rule: Rule) -> bool {
        self.reasons.iter().any(|r| r.rule == rule)
    }

    /// A refusal before anything was parsed.
    pub(crate) fn refused_early(dialect: Dialect, reason: Reason) -> Verdict {
        Verdict {
            dialect,
            decision: Decision::Refused,
            kind: None,
            reasons: vec![reason],
            tables: Vec::new(),
            functions: Vec::new(),
            unknown_functions: Vec::new(),
            operators: Vec::new(),
            types: Vec::new(),
            relation_names: Vec::new(),
            field_names: Vec::new(),
            params_searched: false,
        }
    }

    /// Builds a verdict from what the analysis found; the decision follows from the reasons.
    pub(crate) fn from_findings(
        dialect: Dialect,
        kind: Option<StatementKind>,
        mut findings: crate::Findings,
    ) -> Verdict {
        findings.tables.sort();
        findings.tables.dedup();
        findings.functions.sort();
        findings.functions.dedup();
        findings.unknown_functions.sort();
        findings.unknown_functions.dedup();
        for v in [&mut findings.operators, &mut findings.types] {
            v.sort();
            v.dedup();
        }
        findings.relation_names.sort();
        findings.relation_names.dedup();
        findings.field_names.sort();
        findings.field_names.dedup();
        // One reason per (rule, message): the same call twice is one problem.
        let mut seen = std::collections::HashSet::new();
        findings
            .reasons
            .retain(|r| seen.insert((r.rule, r.message.clone())));
        let decision = if findings.reasons.is_empty() {
            Decision::Allowed
        } else {
            Decision::Refused
        };
        Verdict {
            dialect,
            decision,
            kind,
            reasons: findings.reasons,
            tables: findings.tables,
            functions: findings.functions,
            unknown_functions: findings.unknown_functions,
            operators: findings.operators,
            types: findings.types,
            relation_names: findings.relation_names,
            field_names: findings.field_names,
            params_searched: findings.params_searched,
        }
    }
}

#[cfg(test)]
mod kind_tests {
    use super::*;

    #[test]
    fn every_kind_serialises_as_one_string() {
        for (kind, want) in [
            (StatementKind::Select, "\"select\""),
            (StatementKind::ExplainAnalyze, "\"explain_analyze\""),
            (StatementKind::Other("DELETE".into()), "\"delete\""),
            (
                StatementKind::Other("CREATE TABLE".into()),
                "\"create table\"",
            ),
        ] {
            assert_eq!(serde_json::to_string(&kind).expect("json"), want);
        }
        let v = crate::check(Dialect::Postgres, "DELETE FROM servers");
        let json = serde_json::to_value(&v).expect("json");
        assert_eq!(json["kind"], "delete");
    }
}
