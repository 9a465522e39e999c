//! PostgreSQL: parsed by libpg_query (the `pg_query` crate), the parser PostgreSQL itself
//! runs, so the engine and the server can never read a query differently.
//!
//! The top-level statement is classified on the typed tree (an allow-list: SELECT, VALUES,
//! TABLE, EXPLAIN of those, SHOW). Then the *whole* tree is walked generically, through its
//! serde form: pg_query's own `nodes()` iterator skips calls inside FILTER, OVER, WINDOW,
//! ROLLUP, `(f()).x` and `xmlelement`, whereas serialisation visits every field of every node
//! by construction, so no position can be missed when the grammar grows.
//!
//! Invariant: every `FuncCall`, `RangeVar` and `ColumnRef` anywhere in the tree is judged,
//! and any DML node below the root refuses the query.

use pg_query::NodeEnum;
use serde::Serialize;
use serde_json::Value;

use crate::pg_scan::{Scan, Visit};

use crate::verdict::{Dialect, FunctionRef, Rule, StatementKind, TableRef, Verdict};
use crate::{Findings, Policy, bombs, char_position};

/// Settings that reveal server file paths, commands or connection strings.
const SENSITIVE_SETTINGS: &[&str] = &[
    "all",
    "data_directory",
    "config_file",
    "hba_file",
    "ident_file",
    "external_pid_file",
    "ssl_key_file",
    "ssl_cert_file",
    "ssl_ca_file",
    "ssl_crl_file",
    "ssl_crl_dir",
    "ssl_dh_params_file",
    "ssl_passphrase_command",
    "krb_server_keyfile",
    "archive_command",
    "archive_library",
    "archive_cleanup_command",
    "restore_command",
    "recovery_end_command",
    "primary_conninfo",
    "primary_slot_name",
    "promote_trigger_file",
    "log_directory",
    "log_filename",
    "unix_socket_directories",
    "dynamic_library_path",
    "shared_preload_libraries",
    "session_preload_libraries",
    "local_preload_libraries",
    "stats_temp_directory",
];

pub(crate) fn analyze(policy: &Policy, sql: &str) -> Verdict {
    const D: Dialect = Dialect::Postgres;
    let mut out = Findings::default();
    let parsed = match pg_query::parse(sql, 0) {
        Ok(p) => p,
        Err(pg_query::Error::Decode(_)) => {
            // prost refuses messages nested deeper than 100 levels: fail closed.
            out.refuse(
                Rule::TooDeep,
                "the query is nested too deeply to check (over 100 syntax levels)".into(),
                None,
            );
            return Verdict::from_findings(D, None, out);
        }
        Err(e) => {
            let msg = match e {
                pg_query::Error::Parse(m) => m,
                other => other.to_string(),
            };
            // PostgreSQL's own parser guards its stack; that is nesting, not a typo.
            if msg.contains("stack depth limit exceeded") {
                out.refuse(Rule::TooDeep, format!("syntax error: {msg}"), None);
            } else {
                crate::refuse_unparsable(D, sql, &msg, &mut out);
            }
            return Verdict::from_findings(D, None, out);
        }
    };
    let stmts = &parsed.protobuf.stmts;
    match stmts.len() {
        0 => {
            out.refuse(
                Rule::InputEmpty,
                "the query has no statement (only comments or semicolons)".into(),
                None,
            );
            return Verdict::from_findings(D, None, out);
        }
        1 => {}
        n => {
            let second = stmts[1].stmt_location.max(0) as usize;
            out.refuse(
                Rule::MultipleStatements,
                format!("the query holds {n} statements; exactly one is allowed"),
                Some(char_position(sql, second)),
            );
            return Verdict::from_findings(D, None, out);
        }
    }
    let Some(root) = stmts[0].stmt.as_deref().and_then(|n| n.node.as_ref()) else {
        out.refuse(
            Rule::ParseError,
            "the parser returned no statement".into(),
            None,
        );
        return Verdict::from_findings(D, None, out);
    };

    let kind = match root {
        NodeEnum::SelectStmt(s) if !s.values_lists.is_empty() => StatementKind::Values,
        NodeEnum::SelectStmt(_) => StatementKind::Select,
        NodeEnum::ExplainStmt(e) => {
            let analyze = e.options.iter().any(|o| match &o.node {
                Some(NodeEnum::DefElem(d)) => d.defname == "analyze" && def_is_on(&d.arg),
                _ => false,
            });
            let target_ok = matches!(
                e.query.as_deref().and_then(|q| q.node.as_ref()),
                Some(NodeEnum::SelectStmt(_))
            );
            if !target_ok {
                let what = e
                    .query
                    .as_deref()
                    .and_then(|q| q.node.as_ref())
                    .map(statement_name)
                    .unwrap_or_else(|| "nothing".into());
                out.refuse(
                    Rule::ExplainTarget,
                    format!("EXPLAIN is allowed only of a SELECT, not of {what}"),
                    None,
                );
            }
            if analyze && !policy.config().allow_explain_analyze {
                out.refuse(
                    Rule::ExplainAnalyzeDisabled,
                    "EXPLAIN ANALYZE is disabled by configuration".into(),
                    None,
                );
            }
            if analyze {
                StatementKind::ExplainAnalyze
            } else {
                StatementKind::Explain
            }
        }
        NodeEnum::VariableShowStmt(show) => {
            if !policy.config().allow_show {
                out.refuse(
                    Rule::ShowDisabled,
                    "SHOW is disabled by configuration".into(),
                    None,
                );
            } else if SENSITIVE_SETTINGS.contains(&show.name.to_ascii_lowercase().as_str()) {
                out.refuse(
                    Rule::ShowSensitive,
                    format!(
                        "SHOW {} is refused: it reveals server paths or secrets",
                        show.name
                    ),
                    None,
                );
            }
            StatementKind::Show
        }
        other => {
            let name = statement_name(other);
            out.refuse(
                Rule::StatementKind,
                format!("{name} statements are not allowed: only SELECT, VALUES, TABLE, EXPLAIN and SHOW are"),
                None,
            );
            return Verdict::from_findings(D, Some(StatementKind::Other(name)), out);
        }
    };

    let mut walker = Walker {
        policy,
        sql,
        out,
        ctes: Vec::new(),
        relations: Vec::new(),
        columns: Vec::new(),
    };
    let mut scan = Scan {
        visitor: &mut walker,
        depth: 0,
        max_depth: policy.config().max_depth,
        stopped: false,
    };
    if let Err(e) = root.serialize(&mut scan) {
        // Walking plain data cannot fail today; if it ever does, fail closed.
        walker.out.refuse(
            Rule::ParseError,
            format!("the query could not be inspected: {e}"),
            None,
        );
    }
    walker.finish();
    Verdict::from_findings(D, Some(kind), walker.out)
}

/// Whether a `DefElem` option argument means "on" (`EXPLAIN (ANALYZE)`, `(ANALYZE true)`).
fn def_is_on(arg: &Option<Box<pg_query::protobuf::Node>>) -> bool {
    match arg.as_deref().and_then(|a| a.node.as_ref()) {
        None => true,
        Some(NodeEnum::String(s)) => !matches!(
            s.sval.to_ascii_lowercase().as_str(),
            "false" | "off" | "0" | "no"
        ),
        Some(NodeEnum::Boolean(b)) => b.boolval,
        Some(NodeEnum::Integer(i)) => i.ival != 0,
        Some(_) => true,
    }
}

/// A readable name for a statement node: `DeleteStmt` -> `DELETE`.
fn statement_name(node: &NodeEnum) -> String {
    let debug = format!("{node:?}");
    let variant: String = debug.chars().take_while(|c| c.is_alphanumeric()).collect();
    let special = match variant.as_str() {
        "VariableSetStmt" => Some("SET"),
        "TransactionStmt" => Some("transaction control (BEGIN/COMMIT/ROLLBACK)"),
        "CreateTableAsStmt" => Some("CREATE TABLE AS / SELECT INTO"),
        "DoStmt" => Some("DO"),
        "CopyStmt" => Some("COPY"),
        "CallStmt" => Some("CALL"),
        "ExecuteStmt" => Some("EXECUTE"),
        "PrepareStmt" => Some("PREPARE"),
        _ => None,
    };
    if let Some(s) = special {
        return s.to_string();
    }
    let base = variant.strip_suffix("Stmt").unwrap_or(&variant);
    let mut words = String::new();
    for (i, c) in base.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            words.push(' ');
        }
        words.push(c.to_ascii_uppercase());
    }
    words
}

struct Walker<'a> {
    policy: &'a Policy,
    sql: &'a str,
    out: Findings,
    /// Names defined by WITH: not tables.
    ctes: Vec<String>,
    /// Relations read: the table and its alias, with the position.
    relations: Vec<(TableRef, Option<String>, Option<usize>)>,
    /// Column references: each field (`None` for `*`), with the position.
    columns: Vec<(Vec<Option<String>>, Option<usize>)>,
}

impl Walker<'_> {
    fn pos(&self, v: &Value) -> Option<usize> {
        let loc = v.get("location")?.as_i64()?;
        (loc >= 0).then(|| char_position(self.sql, loc as usize))
    }
}

impl Visit for Walker<'_> {
    fn wants(&self, key: &str) -> bool {
        // Column references matter only when some columns are denied.
        key != "ColumnRef" || self.policy.has_denied_columns()
    }

    fn too_deep(&mut self) {
        self.out.refuse(
            Rule::TooDeep,
            format!(
                "the query is nested deeper than {} levels",
                self.policy.config().max_depth
            ),
            None,
        );
    }

    fn visit(&mut self, key: &str, node: &Value) {
        match key {
            "FuncCall" => self.func_call(node),
            "RangeVar" => {
                let schema = str_field(node, "schemaname").filter(|s| !s.is_empty());
                let name = str_field(node, "relname").unwrap_or_default();
                let alias = node
                    .get("alias")
                    .and_then(|a| str_field(a, "aliasname"))
                    .map(String::from);
                let table = TableRef {
                    schema: schema.map(String::from),
                    name: name.to_string(),
                };
                let pos = self.pos(node);
                self.relations.push((table, alias, pos));
            }
            "ColumnRef" => {
                let fields = node
                    .get("fields")
                    .and_then(Value::as_array)
                    .map(|fs| {
                        fs.iter()
                            .map(|f| string_node(f).map(String::from))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                let pos = self.pos(node);
                self.columns.push((fields, pos));
            }
            "ctename" => {
                if let Some(name) = node.as_str() {
                    self.ctes.push(name.to_string());
                }
            }
            "into_clause" if !node.is_null() => {
                let pos = node.get("rel").and_then(|r| self.pos(r));
                self.out.refuse(
                    Rule::SelectInto,
                    "SELECT INTO creates a table; only reads are allowed".into(),
                    pos,
                );
            }
            "locking_clause" if node.as_array().is_some_and(|a| !a.is_empty()) => {
                self.out.refuse(
                    Rule::LockingClause,
                    "locking clauses (FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE) take row locks; only plain reads are allowed".into(),
                    None,
                );
            }
            "InsertStmt" | "UpdateStmt" | "DeleteStmt" | "MergeStmt" => {
                let pos = node.get("relation").and_then(|r| self.pos(r));
                let verb = key.trim_end_matches("Stmt").to_ascii_uppercase();
                self.out.refuse(
                    Rule::DataModifying,
                    format!("a data-modifying {verb} inside the query is not allowed"),
                    pos,
                );
            }
            _ => {}
        }
    }
}

impl Walker<'_> {
    fn func_call(&mut self, node: &Value) {
        let names: Vec<&str> = node
            .get("funcname")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(string_node).collect())
            .unwrap_or_default();
        let (schema, name) = match names.as_slice() {
            [name] => (None, *name),
            [.., schema, name] => (Some(*schema), *name),
            [] => return,
        };
        let position = self.pos(node);
        let f = FunctionRef {
            schema: schema.map(String::from),
            name: name.to_string(),
        };
        let args: Vec<&Value> = node
            .get("args")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        if schema.is_none_or(|s| s == "pg_catalog") {
            self.check_bombs(name, &args, position);
        }
        self.policy
            .judge_function(Dialect::Postgres, f, position, &mut self.out);
    }

    fn check_bombs(&mut self, name: &str, args: &[&Value], position: Option<usize>) {
        let cfg = self.policy.config();
        let max = u128::from(cfg.max_constant_string_bytes);
        if bombs::is_repeat(name) || bombs::is_pad(name) {
            let count = args.get(1).and_then(|a| int_const(a));
            let size = call_size(name, args);
            if count.is_some_and(|n| n > max as i128) || size.is_some_and(|s| s > max) {
                self.out.refuse(
                    Rule::ResourceBomb,
                    format!(
                        "`{name}` would build a string over {max} bytes while the query is planned"
                    ),
                    position,
                );
            }
        }
        if bombs::is_format(name)
            && let Some(fmt) = args.first().and_then(|a| str_const(a))
        {
            let (width, star) = bombs::format_widths(fmt);
            let star_arg = star
                && args[1..]
                    .iter()
                    .any(|a| int_const(a).is_some_and(|n| n.unsigned_abs() > max));
            if width > max || star_arg {
                self.out.refuse(
                    Rule::ResourceBomb,
                    format!("`{name}` would pad a value to over {max} bytes"),
                    position,
                );
            }
        }
        if name == "current_setting"
            && let Some(setting) = args.first().and_then(|a| str_const(a))
            && SENSITIVE_SETTINGS.contains(&setting.to_ascii_lowercase().as_str())
        {
            self.out.refuse(
                Rule::ShowSensitive,
                format!("the setting `{setting}` reveals server paths or secrets"),
                position,
            );
        }
        if name == "generate_series"
            && args.len() == 3
            && let (Some(a), Some(b), Some(step)) = (
                str_const(args[0]).and_then(epoch_seconds),
                str_const(args[1]).and_then(epoch_seconds),
                str_const(args[2]).and_then(interval_seconds),
            )
            && step > 0.0
        {
            let rows = ((b - a).abs() as f64 / step) as u128 + 1;
            if rows > u128::from(cfg.max_generate_series_rows) {
                self.out.refuse(
                    Rule::ResourceBomb,
                    format!(
                        "generate_series would produce about {rows} rows (limit {})",
                        cfg.max_generate_series_rows
                    ),
                    position,
                );
            }
        }
        if name == "generate_series" && (args.len() == 2 || args.len() == 3) {
            let start = int_const(args[0]);
            let stop = int_const(args[1]);
            let step = if args.len() == 3 {
                int_const(args[2])
            } else {
                Some(1)
            };
            if let (Some(a), Some(b), Some(s)) = (start, stop, step) {
                let rows = bombs::series_rows(a, b, s);
                if rows > u128::from(cfg.max_generate_series_rows) {
                    self.out.refuse(
                        Rule::ResourceBomb,
                        format!(
                            "generate_series would produce {rows} rows (limit {})",
                            cfg.max_generate_series_rows
                        ),
                        position,
                    );
                }
            }
        }
    }

    /// After the walk: judge tables (CTE names are not tables) and denied columns.
    fn finish(&mut self) {
        let relations = std::mem::take(&mut self.relations);
        let mut read: Vec<(TableRef, Option<String>)> = Vec::new();
        for (table, alias, pos) in relations {
            let cte = table.schema.is_none() && self.ctes.contains(&table.name);
            self.policy
                .judge_table(Dialect::Postgres, table.clone(), cte, pos, &mut self.out);
            if !cte {
                read.push((table, alias));
            }
        }
        for (table, alias) in &read {
            let denied = self.policy.denied_columns_of(Dialect::Postgres, table);
            if denied.is_empty() {
                continue;
            }
            for (fields, pos) in &self.columns {
                let last = fields.last().cloned().flatten();
                let star = fields.last().is_some_and(Option::is_none);
                let whole_row = fields.len() == 1
                    && fields[0]
                        .as_deref()
                        .is_some_and(|f| f == table.name || alias.as_deref() == Some(f));
                if let Some(col) = last.as_deref().filter(|c| denied.contains(c)) {
                    self.out.refuse(
                        Rule::ColumnDenied,
                        format!("column `{}.{col}` is denied by configuration", table.name),
                        *pos,
                    );
                } else if star || whole_row {
                    self.out.refuse(
                        Rule::ColumnDenied,
                        format!(
                            "`{}` has denied columns: name the columns you need instead of `*` or a whole-row reference",
                            table.name
                        ),
                        *pos,
                    );
                }
            }
        }
    }
}

fn str_field<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key)?.as_str()
}

/// The text of a `{"node": {"String": {"sval": ..}}}` node.
fn string_node(v: &Value) -> Option<&str> {
    v.get("node")?.get("String")?.get("sval")?.as_str()
}

/// The inner node of a `{"node": {Kind: {...}}}` wrapper: `(Kind, body)`.
fn inner(v: &Value) -> Option<(&str, &Value)> {
    let obj = v.get("node")?.as_object()?;
    let (k, body) = obj.iter().next()?;
    Some((k.as_str(), body))
}

/// An integer constant, through casts: `1000`, `'1000'::int`, `1e12`.
fn int_const(v: &Value) -> Option<i128> {
    let (kind, body) = inner(v)?;
    match kind {
        "AConst" => {
            let val = body.get("val")?;
            if let Some(i) = val.get("Ival") {
                return Some(i128::from(i.get("ival")?.as_i64().unwrap_or(0)));
            }
            let text = val
                .get("Fval")
                .and_then(|f| f.get("fval"))
                .or_else(|| val.get("Sval").and_then(|s| s.get("sval")))?
                .as_str()?;
            let f: f64 = text.trim().parse().ok()?;
            f.is_finite().then_some(f as i128)
        }
        "TypeCast" => int_const(body.get("arg")?),
        "AExpr" => {
            let op = body.get("name")?.as_array()?.iter().find_map(string_node)?;
            let r = int_const(body.get("rexpr")?)?;
            match body.get("lexpr") {
                Some(l) if !l.is_null() => bombs::arith(op, int_const(l)?, r),
                _ if op == "-" => Some(-r),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A string constant, through casts: `'abc'`, `'2025-01-01'::date`.
fn str_const(v: &Value) -> Option<&str> {
    let (kind, body) = inner(v)?;
    match kind {
        "AConst" => body.get("val")?.get("Sval")?.get("sval")?.as_str(),
        "TypeCast" => str_const(body.get("arg")?),
        _ => None,
    }
}

/// Seconds since the epoch of a `YYYY-MM-DD[ HH:MM[:SS]]` constant (close enough to size
/// a series; anything else is not sized).
fn epoch_seconds(text: &str) -> Option<i128> {
    let t = text.trim();
    let (date, time) = t.split_once([' ', 'T']).unwrap_or((t, "00:00:00"));
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i128>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut h = time
        .split(':')
        .map(|p| p.get(..2).unwrap_or(p).parse::<i128>().ok());
    let hours = h.next().flatten().unwrap_or(0);
    let minutes = h.next().flatten().unwrap_or(0);
    let days = y * 365 + y / 4 + (m - 1) * 30 + day;
    Some(days * 86_400 + hours * 3_600 + minutes * 60)
}

/// Seconds in a simple interval constant: `1 second`, `15 minutes`, `2 hours`, `1 day`.
fn interval_seconds(text: &str) -> Option<f64> {
    let mut total = 0f64;
    let mut words = text.split_whitespace();
    while let Some(n) = words.next() {
        let n: f64 = n.parse().ok()?;
        let unit = words.next()?.to_ascii_lowercase();
        let secs = match unit.as_str() {
            "microsecond" | "microseconds" | "us" => 1e-6,
            "millisecond" | "milliseconds" | "ms" => 1e-3,
            "second" | "seconds" | "sec" | "secs" | "s" => 1.0,
            "minute" | "minutes" | "min" | "mins" | "m" => 60.0,
            "hour" | "hours" | "h" => 3_600.0,
            "day" | "days" | "d" => 86_400.0,
            "week" | "weeks" | "w" => 604_800.0,
            "month" | "months" | "mon" | "mons" => 2_592_000.0,
            "year" | "years" | "y" => 31_536_000.0,
            _ => return None,
        };
        total += n * secs;
    }
    (total > 0.0).then_some(total)
}

/// Upper bound of the string a constant expression builds, where it can be known.
fn str_size(v: &Value) -> Option<u128> {
    let (kind, body) = inner(v)?;
    match kind {
        "AConst" => {
            let val = body.get("val")?;
            let s = val.get("Sval").and_then(|s| s.get("sval"))?.as_str()?;
            Some(s.len() as u128)
        }
        "TypeCast" => str_size(body.get("arg")?),
        "FuncCall" => {
            let names: Vec<&str> = body
                .get("funcname")?
                .as_array()?
                .iter()
                .filter_map(string_node)
                .collect();
            let name = *names.last()?;
            let args: Vec<&Value> = body.get("args")?.as_array()?.iter().collect();
            call_size(name, &args)
        }
        _ => None,
    }
}

fn call_size(name: &str, args: &[&Value]) -> Option<u128> {
    if bombs::is_repeat(name) {
        let n = int_const(args.get(1)?)?.max(0) as u128;
        Some(str_size(args.first()?)?.saturating_mul(n))
    } else if bombs::is_pad(name) {
        Some(int_const(args.get(1)?)?.max(0) as u128)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_names_are_readable() {
        let p = pg_query::parse("DELETE FROM t", 0).expect("parses");
        let node = p.protobuf.stmts[0]
            .stmt
            .as_deref()
            .and_then(|n| n.node.as_ref())
            .expect("a statement");
        assert_eq!(statement_name(node), "DELETE");
        let p = pg_query::parse("CREATE TABLE x (a int)", 0).expect("parses");
        let node = p.protobuf.stmts[0]
            .stmt
            .as_deref()
            .and_then(|n| n.node.as_ref())
            .expect("a statement");
        assert_eq!(statement_name(node), "CREATE");
    }
}
