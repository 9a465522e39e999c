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

use crate::pg_consts::{
    call_size, epoch_seconds, int_const, interval_seconds, size_arg, str_const,
};
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
                out.refuse(Rule::TooDeep, crate::syntax_error(&msg), None);
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
        joins: Joins::default(),
        exists_stars: exists_star_locations(&parsed),
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
    /// Relations read: the table, its alias, whether the alias renames its columns
    /// (`AS c(a, b)`), and the position.
    relations: Vec<(TableRef, Option<String>, bool, Option<usize>)>,
    /// Column references: each field (`None` for `*`), the byte offset, and the position.
    columns: Vec<ColumnUse>,
    /// What the joins say about columns.
    joins: Joins,
    /// Byte offsets of `*` in the select list of an `EXISTS` subquery: they read no column.
    exists_stars: std::collections::HashSet<i64>,
}

/// A column reference: its fields (`None` for `*`), byte offset and character position.
type ColumnUse = (Vec<Option<String>>, Option<i64>, Option<usize>);

/// Join forms that compare or expose columns without naming them in a column reference.
#[derive(Default)]
struct Joins {
    /// A `NATURAL JOIN` compares every same-named column.
    natural: bool,
    /// Columns named in `USING (...)`.
    using: Vec<String>,
    /// Aliases of joins (`(a JOIN b USING (id)) AS j`): a whole-row `j` holds both sides.
    aliases: Vec<String>,
}

/// Stars in the select list of an `EXISTS (SELECT * ...)`: the subquery's columns are never
/// read. pg_query's `nodes()` may skip some positions; a star it misses is only judged
/// more strictly.
fn exists_star_locations(parsed: &pg_query::ParseResult) -> std::collections::HashSet<i64> {
    use pg_query::protobuf::SubLinkType;
    let mut out = std::collections::HashSet::new();
    for (node, _, _, _) in parsed.protobuf.nodes() {
        let pg_query::NodeRef::SubLink(link) = node else {
            continue;
        };
        if link.sub_link_type != SubLinkType::ExistsSublink as i32 {
            continue;
        }
        let Some(NodeEnum::SelectStmt(sel)) =
            link.subselect.as_deref().and_then(|n| n.node.as_ref())
        else {
            continue;
        };
        for target in &sel.target_list {
            if let Some(NodeEnum::ResTarget(rt)) = target.node.as_ref()
                && let Some(NodeEnum::ColumnRef(cr)) =
                    rt.val.as_deref().and_then(|v| v.node.as_ref())
                && cr
                    .fields
                    .last()
                    .is_some_and(|f| matches!(f.node, Some(NodeEnum::AStar(_))))
            {
                out.insert(i64::from(cr.location));
            }
        }
    }
    out
}

impl Walker<'_> {
    fn pos(&self, v: &Value) -> Option<usize> {
        let loc = v.get("location")?.as_i64()?;
        (loc >= 0).then(|| char_position(self.sql, loc as usize))
    }
}

impl Visit for Walker<'_> {
    fn wants(&self, _key: &str) -> bool {
        // Column references matter for denied columns and for `t.f`, which PostgreSQL
        // may read as the call `f(t)`.
        true
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
                let renamed = node
                    .get("alias")
                    .and_then(|a| a.get("colnames"))
                    .and_then(Value::as_array)
                    .is_some_and(|c| !c.is_empty());
                let table = TableRef {
                    schema: schema.map(String::from),
                    name: name.to_string(),
                };
                let pos = self.pos(node);
                self.relations.push((table, alias, renamed, pos));
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
                if let [_, .., Some(field)] = fields.as_slice() {
                    self.out.field_names.push(field.clone());
                }
                let offset = node.get("location").and_then(Value::as_i64);
                let pos = self.pos(node);
                self.columns.push((fields, offset, pos));
            }
            "JoinExpr" => {
                let natural = node.get("is_natural").and_then(Value::as_bool) == Some(true);
                let using = node
                    .get("using_clause")
                    .and_then(Value::as_array)
                    .filter(|c| !c.is_empty());
                if natural || using.is_some() {
                    // The join compares the columns with `=`, looked up by name.
                    self.out.operators.push(implied_op("="));
                }
                self.joins.natural |= natural;
                if let Some(cols) = using {
                    self.joins
                        .using
                        .extend(cols.iter().filter_map(string_node).map(String::from));
                }
                for key in ["alias", "join_using_alias"] {
                    if let Some(a) = node.get(key).and_then(|a| str_field(a, "aliasname")) {
                        self.joins.aliases.push(a.to_string());
                    }
                }
            }
            // An operator, by name (`=`, `~~`, `OPERATOR(s.=)`): resolved by the database.
            // `BETWEEN` compares with `>=` and `<=`, looked up by name.
            "name" | "oper_name" | "use_op" => {
                if let Some(op) = qualified(node) {
                    if op.schema.is_none() && op.name.contains("BETWEEN") {
                        self.out.operators.push(implied_op(">="));
                        self.out.operators.push(implied_op("<="));
                    } else {
                        self.out.operators.push(op);
                    }
                }
            }
            // `CASE x WHEN v` compares with `=`, looked up by name.
            "CaseExpr" if node.get("arg").is_some_and(|a| !a.is_null()) => {
                self.out.operators.push(implied_op("="));
            }
            // `(x).f` selects a field, or calls `f(x)`: the database resolves `f`.
            "indirection" => {
                for f in node
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(string_node)
                {
                    self.out.field_names.push(f.to_string());
                }
            }
            // A type named in a cast (its input function, domain checks and casts run).
            "names" => {
                if let Some(t) = qualified(node) {
                    self.out.types.push(t);
                }
            }
            "JsonScalarExpr"
            | "JsonSerializeExpr"
            | "JsonParseExpr"
            | "JsonFuncExpr"
            | "JsonTable"
            | "JsonObjectConstructor"
            | "JsonArrayConstructor"
            | "JsonArrayQueryConstructor"
            | "JsonObjectAgg"
            | "JsonArrayAgg" => {
                self.sql_json(key, node);
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
    /// SQL/JSON syntax (`json_scalar(x)`, `json_value(...)`) is a plain function call to a
    /// server older than PostgreSQL 16/17, where it may resolve to a user's function of that
    /// name: record it as the call it may be, so the database check resolves the name.
    fn sql_json(&mut self, key: &str, node: &Value) {
        let name = match key {
            "JsonScalarExpr" => "json_scalar",
            "JsonSerializeExpr" => "json_serialize",
            "JsonParseExpr" => "json",
            "JsonTable" => "json_table",
            "JsonObjectConstructor" => "json_object",
            "JsonArrayConstructor" | "JsonArrayQueryConstructor" => "json_array",
            "JsonObjectAgg" => "json_objectagg",
            "JsonArrayAgg" => "json_arrayagg",
            _ => match node.get("op").and_then(Value::as_i64) {
                Some(1) => "json_exists",
                Some(2) => "json_query",
                _ => "json_value",
            },
        };
        let f = FunctionRef {
            schema: None,
            name: name.to_string(),
        };
        let position = self.pos(node);
        self.policy
            .judge_function(Dialect::Postgres, f, position, &mut self.out);
    }

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
        if (bombs::is_repeat(name) || bombs::is_pad(name) || name == "array_fill")
            && args.len() >= 2
            && size_arg(name, args[1]).is_none()
        {
            self.out.refuse(
                Rule::ResourceBomb,
                format!(
                    "the size argument of `{name}` must be a constant (a computed size can build a value of any size)"
                ),
                position,
            );
        }
        if name == "array_fill"
            && size_arg(name, args[1..].first().copied().unwrap_or(&Value::Null))
                .is_some_and(|n| n > max as i128)
        {
            self.out.refuse(
                Rule::ResourceBomb,
                format!("`array_fill` would build an array of over {max} elements"),
                position,
            );
        }
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
        if bombs::is_uninterruptible_search(name) && args.len() >= 2 {
            // A text of unknown size (read, aggregated or computed) may only be searched for
            // a short constant; a constant text bounds the work on its own (it is at most
            // `max_constant_string_bytes`, and a longer search string ends at once).
            let text = crate::pg_consts::str_size(args[0]);
            let needle = crate::pg_consts::str_size(args[1]);
            // A parameter's size is known only at the call: the gateway bounds it.
            let param = is_param(args[1]);
            self.out.params_searched |= text.is_none() && param;
            if text.is_none() && !param && needle.is_none_or(|n| n > bombs::SEARCH_NEEDLE_MAX) {
                self.out.refuse(
                    Rule::ResourceBomb,
                    format!(
                        "`{name}` must look for a constant of at most {} bytes when the text it searches is not a constant: PostgreSQL cannot cancel or stop `{name}` once it scans, and a long or computed search string over a large text runs for minutes",
                        bombs::SEARCH_NEEDLE_MAX
                    ),
                    position,
                );
            }
        }
        if bombs::is_format(name) && args.first().and_then(|a| str_const(a)).is_none() {
            self.out.refuse(
                Rule::ResourceBomb,
                format!(
                    "the format string of `{name}` must be a constant (its widths size the result)"
                ),
                position,
            );
        }
        if bombs::is_format(name)
            && let Some(fmt) = args.first().and_then(|a| str_const(a))
        {
            let (width, star) = bombs::format_widths(fmt);
            // `%*s` takes its width from an argument: it must be a constant within bounds.
            let star_arg = star
                && args[1..]
                    .iter()
                    .any(|a| int_const(a).is_none_or(|n| n.unsigned_abs() > max));
            if width > max || star_arg {
                self.out.refuse(
                    Rule::ResourceBomb,
                    format!("`{name}` would pad a value to over {max} bytes"),
                    position,
                );
            }
        }
        if name == "current_setting" && args.first().and_then(|a| str_const(a)).is_none() {
            self.out.refuse(
                Rule::ShowSensitive,
                "`current_setting` takes a constant setting name here (a computed name could be a sensitive one)".into(),
                position,
            );
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

    /// After the walk: judge tables and denied columns.
    ///
    /// A name a CTE also defines is judged as the table it may be: CTE scopes nest, and a
    /// CTE in one subquery must not hide the real table read under the same name elsewhere.
    fn finish(&mut self) {
        const D: Dialect = Dialect::Postgres;
        let relations = std::mem::take(&mut self.relations);
        let mut read: Vec<(TableRef, Option<String>, bool, Option<usize>)> = Vec::new();
        for (table, alias, renamed, pos) in relations {
            let cte = table.schema.is_none() && self.ctes.contains(&table.name);
            self.policy
                .judge_table(D, table.clone(), cte, pos, &mut self.out);
            self.out.relation_names.push(table.clone());
            read.push((table, alias, renamed, pos));
        }
        for (table, alias, renamed, table_pos) in &read {
            let denied = self.policy.denied_columns_of(D, table);
            if denied.is_empty() {
                continue;
            }
            let t = &table.name;
            if *renamed {
                self.out.refuse(
                    Rule::ColumnDenied,
                    format!(
                        "`{t}` has denied columns: its columns cannot be renamed in an alias list"
                    ),
                    *table_pos,
                );
            }
            if self.joins.natural {
                self.out.refuse(
                    Rule::ColumnDenied,
                    format!("`{t}` has denied columns: NATURAL JOIN compares them; join with ON and named columns"),
                    *table_pos,
                );
            }
            for col in self
                .joins
                .using
                .iter()
                .filter(|c| denied.contains(&c.as_str()))
            {
                self.out.refuse(
                    Rule::ColumnDenied,
                    format!("column `{t}.{col}` is denied by configuration (in USING)"),
                    *table_pos,
                );
            }
            // Functional notation: `ssn(c)` reads `c.ssn`.
            let notation: Vec<String> = self
                .out
                .functions
                .iter()
                .filter(|f| f.schema.is_none() && denied.contains(&f.name.as_str()))
                .map(|f| f.name.clone())
                .collect();
            for col in notation {
                self.out.refuse(
                    Rule::ColumnDenied,
                    format!("column `{t}.{col}` is denied by configuration"),
                    *table_pos,
                );
            }
            let names_row = |q: &str| {
                q == t || alias.as_deref() == Some(q) || self.joins.aliases.iter().any(|a| a == q)
            };
            let mut reasons = Vec::new();
            for (fields, offset, pos) in &self.columns {
                let last = fields.last().cloned().flatten();
                let star = fields.last().is_some_and(Option::is_none);
                if let Some(col) = last.as_deref().filter(|c| denied.contains(c)) {
                    reasons.push((
                        format!("column `{t}.{col}` is denied by configuration"),
                        *pos,
                    ));
                    continue;
                }
                let whole = if star {
                    // `*` reads every relation in scope; `q.*` only `q`.
                    let exists = offset.is_some_and(|o| self.exists_stars.contains(&o));
                    !exists
                        && match fields
                            .len()
                            .checked_sub(2)
                            .and_then(|i| fields[i].as_deref())
                        {
                            None => true,
                            Some(q) => names_row(q),
                        }
                } else {
                    fields.len() == 1 && fields[0].as_deref().is_some_and(names_row)
                };
                if whole {
                    reasons.push((
                        format!(
                            "`{t}` has denied columns: name the columns you need instead of `*` or a whole-row reference"
                        ),
                        *pos,
                    ));
                }
            }
            for (message, pos) in reasons {
                self.out.refuse(Rule::ColumnDenied, message, pos);
            }
        }
    }
}

/// An operator the grammar implies, by the name PostgreSQL looks up.
fn implied_op(name: &str) -> FunctionRef {
    FunctionRef {
        schema: None,
        name: name.to_string(),
    }
}

/// A possibly qualified name from a list of `String` nodes: `["public", "="]`.
fn qualified(v: &Value) -> Option<FunctionRef> {
    let parts: Vec<&str> = v.as_array()?.iter().filter_map(string_node).collect();
    match parts.as_slice() {
        [name] => Some(FunctionRef {
            schema: None,
            name: name.to_string(),
        }),
        [.., schema, name] => Some(FunctionRef {
            schema: Some(schema.to_string()),
            name: name.to_string(),
        }),
        [] => None,
    }
}

fn str_field<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key)?.as_str()
}

/// The text of a `{"node": {"String": {"sval": ..}}}` node.
pub(crate) fn string_node(v: &Value) -> Option<&str> {
    v.get("node")?.get("String")?.get("sval")?.as_str()
}

/// The inner node of a `{"node": {Kind: {...}}}` wrapper: `(Kind, body)`.
pub(crate) fn inner(v: &Value) -> Option<(&str, &Value)> {
    let obj = v.get("node")?.as_object()?;
    let (k, body) = obj.iter().next()?;
    Some((k.as_str(), body))
}

/// `$n`, `$n::type` or `lower($n)`: a parameter, bound at the call.
fn is_param(v: &Value) -> bool {
    let Some((kind, body)) = inner(v) else {
        return false;
    };
    match kind {
        "ParamRef" => true,
        "TypeCast" => body.get("arg").is_some_and(is_param),
        // `lower($1)`, `upper($1)`: still the parameter's size.
        "FuncCall" => {
            let cased = body
                .get("funcname")
                .and_then(Value::as_array)
                .and_then(|n| n.last())
                .and_then(string_node)
                .is_some_and(|n| n == "lower" || n == "upper");
            let args = body.get("args").and_then(Value::as_array);
            cased && args.is_some_and(|a| a.len() == 1 && is_param(&a[0]))
        }
        _ => false,
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
