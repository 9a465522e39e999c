//! MySQL/MariaDB and SQLite, parsed by `sqlparser` and walked with its `Visitor`, which the
//! crate derives for every AST type, so every expression and table factor is reached.
//!
//! sqlparser reports a function called in FROM (`SELECT * FROM load_file('x')`) as a table
//! with arguments: that is treated as the function call it is.
//!
//! Invariant: every function call, table and nested statement anywhere in the tree is
//! judged; a nested statement that is not a query refuses the whole query.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Join, JoinConstraint,
    JoinOperator, ObjectName, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr,
    ShowStatementFilter, Spanned, Statement, TableFactor, UnaryOperator, Value, Visit, Visitor,
};
use sqlparser::dialect::{MySqlDialect, SQLiteDialect};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Span;

use crate::mysql_lexical::{LineIndex, position_of};
use crate::sqlparser_consts::{arg_expr, str_const};
use crate::verdict::{Dialect, FunctionRef, Rule, StatementKind, TableRef, Verdict};
use crate::{Findings, Policy, bombs};

pub(crate) fn analyze(policy: &Policy, dialect: Dialect, sql: &str) -> Verdict {
    let mut out = Findings::default();
    // The parser's own recursion limit bounds the tree depth (and so this walk's stack).
    let depth = policy.config().max_depth.min(100);
    let parsed = match dialect {
        Dialect::Mysql => Parser::new(&MySqlDialect {})
            .with_recursion_limit(depth)
            .try_with_sql(&crate::mysql_syntax::normalize(sql))
            .and_then(|mut p| p.parse_statements()),
        _ => Parser::new(&SQLiteDialect {})
            .with_recursion_limit(depth)
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statements()),
    };
    let statements = match parsed {
        Ok(s) => s,
        Err(ParserError::RecursionLimitExceeded) => {
            out.refuse(
                Rule::TooDeep,
                format!("the query is nested deeper than {depth} levels"),
                None,
            );
            return Verdict::from_findings(dialect, None, out);
        }
        Err(e) => {
            let msg = e.to_string();
            let msg = msg.strip_prefix("sql parser error: ").unwrap_or(&msg);
            crate::refuse_unparsable(dialect, sql, msg, &mut out);
            return Verdict::from_findings(dialect, None, out);
        }
    };
    let root = match statements.as_slice() {
        [] => {
            out.refuse(
                Rule::InputEmpty,
                "the query has no statement (only comments or semicolons)".into(),
                None,
            );
            return Verdict::from_findings(dialect, None, out);
        }
        [one] => one,
        [_, second, ..] => {
            let pos = span_position(sql, second.span());
            out.refuse(
                Rule::MultipleStatements,
                format!(
                    "the query holds {} statements; exactly one is allowed",
                    statements.len()
                ),
                pos,
            );
            return Verdict::from_findings(dialect, None, out);
        }
    };

    let kind = match classify(policy, dialect, root, &mut out) {
        Ok(kind) => kind,
        Err(kind) => return Verdict::from_findings(dialect, Some(kind), out),
    };

    let mut walker = Walker {
        policy,
        dialect,
        lines: LineIndex::new(sql),
        root,
        out,
        ctes: Vec::new(),
        relations: Vec::new(),
        columns: Vec::new(),
        natural: false,
        using: Vec::new(),
        exists_stars: std::collections::HashSet::new(),
    };
    let _ = root.visit(&mut walker);
    walker.finish();
    Verdict::from_findings(dialect, Some(kind), walker.out)
}

/// The top-level allow-list. `Err` carries the kind of a statement refused outright.
fn classify(
    policy: &Policy,
    dialect: Dialect,
    root: &Statement,
    out: &mut Findings,
) -> Result<StatementKind, StatementKind> {
    match root {
        Statement::Query(q) => Ok(query_kind(q)),
        Statement::Explain {
            statement,
            analyze,
            options,
            ..
        } => {
            let analyze = *analyze
                || options.as_ref().is_some_and(|opts| {
                    opts.iter().any(|o| {
                        o.name.value.eq_ignore_ascii_case("analyze")
                            && !matches!(&o.arg, Some(Expr::Value(v)) if matches!(v.value, Value::Boolean(false)))
                    })
                });
            if !matches!(**statement, Statement::Query(_)) {
                out.refuse(
                    Rule::ExplainTarget,
                    format!(
                        "EXPLAIN is allowed only of a SELECT, not of {}",
                        statement_name(statement)
                    ),
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
            Ok(if analyze {
                StatementKind::ExplainAnalyze
            } else {
                StatementKind::Explain
            })
        }
        Statement::ExplainTable { .. } if dialect == Dialect::Mysql => Ok(StatementKind::Describe),
        Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowCollation { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowViews { .. }
            if dialect == Dialect::Mysql =>
        {
            if !policy.config().allow_show {
                out.refuse(
                    Rule::ShowDisabled,
                    "SHOW is disabled by configuration".into(),
                    None,
                );
            }
            if let Statement::ShowVariables { filter, .. } = root {
                let sensitive = match filter {
                    None | Some(ShowStatementFilter::Where(_)) => true,
                    Some(
                        ShowStatementFilter::Like(p)
                        | ShowStatementFilter::ILike(p)
                        | ShowStatementFilter::NoKeyword(p),
                    ) => crate::mysql_checks::like_matches_sensitive(p),
                };
                if sensitive {
                    out.refuse(
                        Rule::ShowSensitive,
                        "SHOW VARIABLES here could list server paths or key files: name the variables with LIKE 'name'".into(),
                        None,
                    );
                }
            }
            Ok(StatementKind::Show)
        }
        // `SHOW INDEX FROM t` / `SHOW KEYS FROM t` (catalog information).
        Statement::ShowVariable { variable }
            if dialect == Dialect::Mysql
                && (variable.first().is_some_and(|v| {
                    ["index", "indexes", "keys"]
                        .iter()
                        .any(|k| v.value.eq_ignore_ascii_case(k))
                }) || crate::mysql_checks::is_show_table_status(variable)) =>
        {
            if !policy.config().allow_show {
                out.refuse(
                    Rule::ShowDisabled,
                    "SHOW is disabled by configuration".into(),
                    None,
                );
            }
            Ok(StatementKind::Show)
        }
        other => {
            let name = statement_name(other);
            let allowed = match dialect {
                Dialect::Mysql => "SELECT, VALUES, EXPLAIN, SHOW and DESCRIBE are",
                _ => "SELECT, VALUES and EXPLAIN are",
            };
            out.refuse(
                Rule::StatementKind,
                format!("{name} statements are not allowed: only {allowed}"),
                None,
            );
            Err(StatementKind::Other(name))
        }
    }
}

fn query_kind(q: &Query) -> StatementKind {
    match &*q.body {
        SetExpr::Values(_) => StatementKind::Values,
        _ => StatementKind::Select,
    }
}

/// A readable name for a statement: `CreateTable { .. }` -> `CREATE TABLE`.
fn statement_name(s: &Statement) -> String {
    let debug = format!("{s:?}");
    let variant: String = debug.chars().take_while(|c| c.is_alphanumeric()).collect();
    let mut words = String::new();
    for (i, c) in variant.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            words.push(' ');
        }
        words.push(c.to_ascii_uppercase());
    }
    words
}

fn span_position(sql: &str, span: Span) -> Option<usize> {
    (span.start.line > 0).then(|| position_of(sql, span.start))
}

impl Walker<'_> {
    fn pos(&self, span: Span) -> Option<usize> {
        (span.start.line > 0).then(|| self.lines.position(span.start))
    }
}

/// Folded name parts of an object name: `(schema, name)`.
fn split_name(name: &ObjectName) -> Option<(Option<String>, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(|i| i.value.to_lowercase())
        .collect();
    match parts.as_slice() {
        [n] => Some((None, n.clone())),
        [.., s, n] => Some((Some(s.clone()), n.clone())),
        [] => None,
    }
}

struct Walker<'a> {
    policy: &'a Policy,
    dialect: Dialect,
    lines: LineIndex,
    root: &'a Statement,
    out: Findings,
    ctes: Vec<String>,
    relations: Vec<(TableRef, Option<String>, Option<usize>)>,
    /// Column references (folded; `None` is `*`), with the position.
    columns: Vec<(Vec<Option<String>>, Option<usize>)>,
    /// A `NATURAL` join compares every same-named column.
    natural: bool,
    /// Columns named in `USING (...)` (folded).
    using: Vec<String>,
    /// Positions of `*` in the select list of an `EXISTS` subquery: they read no column.
    exists_stars: std::collections::HashSet<usize>,
}

impl Walker<'_> {
    fn function(&mut self, name: &ObjectName, args: &[&FunctionArg], span: Span) {
        let Some((schema, fname)) = split_name(name) else {
            return;
        };
        let position = self.pos(span);
        if self.dialect == Dialect::Sqlite {
            let exprs: Vec<Option<&Expr>> = args.iter().map(|a| arg_expr(a)).collect();
            crate::sqlite::judge_call(self.policy, &fname, &exprs, position, &mut self.out);
        } else {
            self.check_bombs(&fname, args, position);
        }
        let f = FunctionRef {
            schema,
            name: fname,
        };
        self.policy
            .judge_function(self.dialect, f, position, &mut self.out);
    }

    fn check_bombs(&mut self, name: &str, args: &[&FunctionArg], position: Option<usize>) {
        let exprs: Vec<Option<&Expr>> = args.iter().map(|a| arg_expr(a)).collect();
        let max = u128::from(self.policy.config().max_constant_string_bytes);
        let n_at = |i: usize| exprs.get(i).copied().flatten().and_then(int_const);
        let format_over = bombs::is_format(name)
            && exprs
                .first()
                .copied()
                .flatten()
                .and_then(str_const)
                .is_some_and(|f| {
                    let (width, star) = bombs::format_widths(f);
                    width > max
                        || (star
                            && exprs[1..].iter().any(|e| {
                                e.and_then(int_const)
                                    .is_some_and(|n| n.unsigned_abs() > max)
                            }))
                });
        let over = format_over
            || if bombs::is_repeat(name) || bombs::is_pad(name) {
                n_at(1).is_some_and(|n| n > max as i128)
                    || call_size(name, &exprs).is_some_and(|s| s > max)
            } else if bombs::is_sized_by_first(name) {
                n_at(0).is_some_and(|n| n > max as i128)
            } else {
                false
            };
        if over {
            self.out.refuse(
                Rule::ResourceBomb,
                format!("`{name}` would build a value over {max} bytes"),
                position,
            );
        }
    }

    /// Notes the join forms that compare columns without naming them in an expression.
    fn joins(&mut self, joins: &[Join]) {
        use JoinOperator as J;
        for j in joins {
            let c = match &j.join_operator {
                J::Join(c)
                | J::Inner(c)
                | J::Left(c)
                | J::LeftOuter(c)
                | J::Right(c)
                | J::RightOuter(c)
                | J::FullOuter(c)
                | J::CrossJoin(c)
                | J::Semi(c)
                | J::LeftSemi(c)
                | J::RightSemi(c)
                | J::Anti(c)
                | J::LeftAnti(c)
                | J::RightAnti(c)
                | J::StraightJoin(c)
                | J::AsOf { constraint: c, .. } => c,
                _ => continue,
            };
            match c {
                JoinConstraint::Natural => self.natural = true,
                JoinConstraint::Using(cols) | JoinConstraint::UsingAlias(cols, _) => {
                    for col in cols {
                        if let Some((_, name)) = split_name(col) {
                            self.using.push(name);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// After the walk: judge tables and denied columns. A name a CTE also defines is judged
    /// as the table it may be: CTE scopes nest, and a CTE in one subquery must not hide the
    /// real table read under the same name elsewhere.
    fn finish(&mut self) {
        let relations = std::mem::take(&mut self.relations);
        let mut read = Vec::new();
        for (table, alias, pos) in relations {
            let cte = table.schema.is_none() && self.ctes.contains(&table.name);
            self.policy
                .judge_table(self.dialect, table.clone(), cte, pos, &mut self.out);
            self.out.relation_names.push(table.clone());
            read.push((table, alias, pos));
        }
        for (table, alias, table_pos) in &read {
            let denied: Vec<String> = self
                .policy
                .denied_columns_of(self.dialect, table)
                .into_iter()
                .map(str::to_lowercase)
                .collect();
            if denied.is_empty() {
                continue;
            }
            let t = &table.name;
            if self.natural {
                self.out.refuse(
                    Rule::ColumnDenied,
                    format!("`{t}` has denied columns: NATURAL JOIN compares them; join with ON and named columns"),
                    *table_pos,
                );
            }
            for col in self.using.iter().filter(|c| denied.contains(c)) {
                self.out.refuse(
                    Rule::ColumnDenied,
                    format!("column `{t}.{col}` is denied by configuration (in USING)"),
                    *table_pos,
                );
            }
            for (fields, pos) in &self.columns {
                let last = fields.last().cloned().flatten();
                let star = fields.last().is_some_and(Option::is_none);
                let whole_row = fields.len() == 1
                    && fields[0]
                        .as_deref()
                        .is_some_and(|f| f == t.as_str() || alias.as_deref() == Some(f));
                // `*` reads every relation in scope; `q.*` only `q`.
                let star_here = star
                    && match fields
                        .len()
                        .checked_sub(2)
                        .and_then(|i| fields[i].as_deref())
                    {
                        None => true,
                        Some(q) => q == t.as_str() || alias.as_deref() == Some(q),
                    };
                if let Some(col) = last.filter(|c| denied.contains(c)) {
                    self.out.refuse(
                        Rule::ColumnDenied,
                        format!("column `{t}.{col}` is denied by configuration"),
                        *pos,
                    );
                } else if star_here || (whole_row && self.dialect == Dialect::Postgres) {
                    self.out.refuse(
                        Rule::ColumnDenied,
                        format!(
                            "`{t}` has denied columns: name the columns you need instead of `*`"
                        ),
                        *pos,
                    );
                }
            }
        }
    }
}

impl Visitor for Walker<'_> {
    type Break = ();

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<()> {
        if !std::ptr::eq(s, self.root) && !matches!(s, Statement::Query(_)) {
            self.out.refuse(
                Rule::DataModifying,
                format!(
                    "a nested {} inside the query is not allowed",
                    statement_name(s)
                ),
                self.pos(s.span()),
            );
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if !q.locks.is_empty() {
            self.out.refuse(
                Rule::LockingClause,
                "locking clauses (FOR UPDATE / FOR SHARE / LOCK IN SHARE MODE) take row locks; only plain reads are allowed".into(),
                None,
            );
        }
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.ctes.push(cte.alias.name.value.to_lowercase());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<()> {
        if s.into.is_some() {
            self.out.refuse(
                Rule::SelectInto,
                "SELECT INTO writes a table or variables; only reads are allowed".into(),
                self.pos(s.span()),
            );
        }
        for item in &s.projection {
            let pos = self.pos(item.span());
            // `EXISTS (SELECT * ...)` reads no column.
            if pos.is_some_and(|p| self.exists_stars.contains(&p)) {
                continue;
            }
            match item {
                SelectItem::Wildcard(_) => self.columns.push((vec![None], pos)),
                // `o.*` reads `o` only.
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(q),
                    _,
                ) => {
                    let mut fields: Vec<Option<String>> =
                        q.0.iter()
                            .filter_map(|p| p.as_ident())
                            .map(|i| Some(i.value.to_lowercase()))
                            .collect();
                    fields.push(None);
                    self.columns.push((fields, pos));
                }
                SelectItem::QualifiedWildcard(..) => self.columns.push((vec![None], pos)),
                _ => {}
            }
        }
        for twj in &s.from {
            self.joins(&twj.joins);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
        match tf {
            TableFactor::Table {
                name,
                args: Some(args),
                ..
            } => {
                let a: Vec<&FunctionArg> = args.args.iter().collect();
                self.function(name, &a, tf.span());
            }
            TableFactor::Table { name, alias, .. } => {
                if let Some((schema, table)) = split_name(name) {
                    let pos = self.pos(tf.span());
                    if self.dialect == Dialect::Mysql
                        && let Some(why) =
                            crate::mysql_checks::sensitive_table(schema.as_deref(), &table)
                    {
                        self.out.refuse(
                            Rule::TableDenied,
                            format!("table `{}` is not readable: {why}", name),
                            pos,
                        );
                    }
                    let alias = alias.as_ref().map(|a| a.name.value.to_lowercase());
                    self.relations.push((
                        TableRef {
                            schema,
                            name: table,
                        },
                        alias,
                        pos,
                    ));
                }
            }
            TableFactor::Function { name, args, .. } => {
                let a: Vec<&FunctionArg> = args.iter().collect();
                self.function(name, &a, tf.span());
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.joins(&table_with_joins.joins),
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if let Expr::Exists { subquery, .. } = e
            && let SetExpr::Select(sel) = &*subquery.body
        {
            for item in &sel.projection {
                if let SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) = item
                    && let Some(p) = self.pos(item.span())
                {
                    self.exists_stars.insert(p);
                }
            }
        }
        if self.dialect == Dialect::Mysql {
            // Searches over built strings cost the product of their sizes, in a loop the
            // server cannot stop: 1e8 character comparisons measured at ~0.2 s.
            let budget = 100_000_000u128;
            crate::mysql_checks::expr(e, self.pos(e.span()), budget, &mut self.out);
        }
        match e {
            Expr::Function(f) => {
                let args: Vec<&FunctionArg> = match &f.args {
                    FunctionArguments::List(l) => l.args.iter().collect(),
                    _ => Vec::new(),
                };
                for a in &args {
                    if let Some(FunctionArgExpr::QualifiedWildcard(_)) = arg_inner(a) {
                        self.columns.push((vec![None], self.pos(e.span())));
                    }
                }
                self.function(&f.name, &args, e.span());
            }
            // System variables are not columns (MySQL: judged in mysql_checks below).
            Expr::Identifier(i) if i.value.starts_with("@@") => {}
            Expr::CompoundIdentifier(p) if p.first().is_some_and(|i| i.value.starts_with("@@")) => {
            }
            Expr::Identifier(i) => self
                .columns
                .push((vec![Some(i.value.to_lowercase())], self.pos(e.span()))),
            Expr::CompoundIdentifier(parts) => self.columns.push((
                parts.iter().map(|i| Some(i.value.to_lowercase())).collect(),
                self.pos(e.span()),
            )),
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn arg_inner(a: &FunctionArg) -> Option<&FunctionArgExpr> {
    match a {
        FunctionArg::Unnamed(x) => Some(x),
        FunctionArg::Named { arg, .. } | FunctionArg::ExprNamed { arg, .. } => Some(arg),
    }
}

fn int_const(e: &Expr) -> Option<i128> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => {
                let f: f64 = n.parse().ok()?;
                f.is_finite().then_some(f as i128)
            }
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                let f: f64 = s.trim().parse().ok()?;
                f.is_finite().then_some(f as i128)
            }
            _ => None,
        },
        Expr::Nested(e) | Expr::Cast { expr: e, .. } => int_const(e),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => int_const(expr).map(|n| -n),
        Expr::BinaryOp { left, op, right } => {
            let op = match op {
                BinaryOperator::Plus => "+",
                BinaryOperator::Minus => "-",
                BinaryOperator::Multiply => "*",
                BinaryOperator::Divide | BinaryOperator::MyIntegerDivide => "/",
                _ => return None,
            };
            bombs::arith(op, int_const(left)?, int_const(right)?)
        }
        _ => None,
    }
}

pub(crate) fn str_size(e: &Expr) -> Option<u128> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.len() as u128),
            _ => None,
        },
        Expr::Nested(e) | Expr::Cast { expr: e, .. } => str_size(e),
        Expr::Function(f) => {
            let (_, name) = split_name(&f.name)?;
            let FunctionArguments::List(l) = &f.args else {
                return None;
            };
            let exprs: Vec<Option<&Expr>> = l.args.iter().map(arg_expr).collect();
            call_size(&name, &exprs)
        }
        _ => None,
    }
}

fn call_size(name: &str, args: &[Option<&Expr>]) -> Option<u128> {
    if bombs::is_repeat(name) {
        let n = int_const(args.get(1).copied().flatten()?)?.max(0) as u128;
        Some(str_size(args.first().copied().flatten()?)?.saturating_mul(n))
    } else if bombs::is_pad(name) {
        Some(int_const(args.get(1).copied().flatten()?)?.max(0) as u128)
    } else {
        None
    }
}
