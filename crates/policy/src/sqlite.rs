//! What only SQLite needs: its introspection PRAGMAs, the tables that hold copies of other
//! tables' values (statistics samples, full-text shadow tables), and the size of the values
//! its builders make (`randomblob`, `zeroblob`, `printf('%.*c', ...)`, `replace`, `hex`).
//!
//! The gateway's SQLite backend enforces the same rules on what SQLite itself resolved (its
//! authorizer), with the lists exported here, so the two layers cannot drift apart.
//!
//! Invariants:
//! - A PRAGMA is allowed only when it is one of [`INTROSPECTION_PRAGMAS`], read (never
//!   assigned), with at most one argument; anything else starting with PRAGMA is refused.
//! - A builder whose size argument is not a constant (after folding `abs`, negation,
//!   arithmetic, casts) is refused, and so is any call whose constant output is over
//!   `max_constant_string_bytes`. Sizes that depend on data are bounded by the database
//!   (`SQLITE_LIMIT_LENGTH` on dbward's connections), not here.

use sqlparser::ast::{BinaryOperator, Expr, FunctionArguments, UnaryOperator, Value};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::sqlparser_consts::{arg_expr, str_const};
use crate::verdict::{Dialect, Rule, StatementKind, TableRef, Verdict};
use crate::{Findings, Policy};

/// PRAGMAs that only describe the schema (names, types, keys, indexes) or the library, and
/// cannot be assigned. Also allowed as table-valued functions (`pragma_table_info('t')`).
/// Left out on purpose: `database_list` (the file's path), `compile_options` (not needed),
/// and every pragma that reads table data (`integrity_check`, `foreign_key_check`).
pub const INTROSPECTION_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "collation_list",
    "function_list",
    "module_list",
    "pragma_list",
];

/// Whether `name` (any case) is an introspection pragma dbward allows.
pub fn is_introspection_pragma(name: &str) -> bool {
    INTROSPECTION_PRAGMAS
        .iter()
        .any(|p| p.eq_ignore_ascii_case(name))
}

/// Statistics tables that hold samples of indexed column values (`sqlite_stat1` holds only
/// counts and stays readable). Denied always: a sample can be any row of any table.
pub const STAT_SAMPLE_TABLES: &[&str] = &["sqlite_stat3", "sqlite_stat4"];

/// Suffixes of the shadow tables virtual tables keep their data in: FTS5 (`content`, `data`,
/// `docsize`, `idx`, `config`), FTS3/4 (`content`, `segments`, `segdir`, `docsize`,
/// `stat`), R*Tree (`node`, `rowid`, `parent`). `<vtab>_<suffix>` holds `<vtab>`'s data.
pub const SHADOW_SUFFIXES: &[&str] = &[
    "content", "data", "docsize", "idx", "config", "segments", "segdir", "stat", "node", "rowid",
    "parent",
];

impl Policy {
    /// Whether configuration denies reading a table the database resolved (`column` `None`)
    /// or one column of it. For enforcement on resolved names (SQLite's authorizer): built-in
    /// SQLite rules ([`STAT_SAMPLE_TABLES`]) apply too.
    pub fn denies_resolved_read(
        &self,
        dialect: Dialect,
        schema: Option<&str>,
        table: &str,
        column: Option<&str>,
    ) -> bool {
        let t = TableRef {
            schema: schema.map(str::to_lowercase),
            name: table.to_lowercase(),
        };
        let mut out = Findings::default();
        self.judge_table(dialect, t.clone(), true, None, &mut out);
        if !out.reasons.is_empty() {
            return true;
        }
        column.is_some_and(|c| {
            self.denied_columns_of(dialect, &t)
                .iter()
                .any(|d| d.eq_ignore_ascii_case(c))
        })
    }
}

/// The SQLite-only table rules, called for every table the query names.
pub(crate) fn judge_table(
    policy: &Policy,
    t: &TableRef,
    position: Option<usize>,
    out: &mut Findings,
) {
    let name = t.name.to_lowercase();
    if let Some(pragma) = name.strip_prefix("pragma_")
        && !is_introspection_pragma(pragma)
    {
        out.refuse(
            Rule::StatementKind,
            format!("`{name}` is not allowed: only the read-only introspection pragmas are"),
            position,
        );
    }
    if STAT_SAMPLE_TABLES.contains(&name.as_str()) {
        out.refuse(
            Rule::TableDenied,
            format!("`{name}` holds samples of indexed values from every table"),
            position,
        );
        return;
    }
    // `secrets_content` is the text of FTS table `secrets`: denied when `secrets` is.
    for suffix in SHADOW_SUFFIXES {
        let Some(base) = name
            .strip_suffix(suffix)
            .and_then(|b| b.strip_suffix('_'))
            .filter(|b| !b.is_empty())
        else {
            continue;
        };
        let base_ref = TableRef {
            schema: t.schema.clone(),
            name: base.to_string(),
        };
        let mut probe = Findings::default();
        policy.judge_table(Dialect::Sqlite, base_ref, true, None, &mut probe);
        if !probe.reasons.is_empty() {
            out.refuse(
                Rule::TableDenied,
                format!("`{name}` is where the virtual table `{base}` keeps its data, and `{base}` is denied"),
                position,
            );
        }
    }
}

/// `PRAGMA ...` read lexically (sqlparser refuses most PRAGMA forms SQLite accepts). `None`
/// when the statement does not start with PRAGMA.
pub(crate) fn check_pragma(sql: &str) -> Option<Verdict> {
    let tokens = Tokenizer::new(&SQLiteDialect {}, sql).tokenize().ok()?;
    let mut it = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)));
    match it.next()? {
        Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("pragma") => {}
        _ => return None,
    }
    let rest: Vec<Token> = it.collect();
    let mut out = Findings::default();
    let shape = pragma_shape(&rest);
    match shape {
        Ok(name) if is_introspection_pragma(&name) => {}
        Ok(name) => out.refuse(
            Rule::StatementKind,
            format!(
                "PRAGMA {name} is not allowed: only the read-only introspection pragmas are ({})",
                INTROSPECTION_PRAGMAS.join(", ")
            ),
            None,
        ),
        Err(why) => out.refuse(Rule::StatementKind, why, None),
    }
    let kind = if out.reasons.is_empty() {
        StatementKind::Describe
    } else {
        StatementKind::Other("PRAGMA".into())
    };
    Some(Verdict::from_findings(Dialect::Sqlite, Some(kind), out))
}

/// `[schema.]name [( arg )] [;]`: the pragma's name, or why the form is refused.
fn pragma_shape(tokens: &[Token]) -> Result<String, String> {
    let word = |t: Option<&Token>| match t {
        Some(Token::Word(w)) => Some(w.value.clone()),
        _ => None,
    };
    let mut i = 0;
    let mut name = word(tokens.first()).ok_or("PRAGMA without a name is not allowed")?;
    i += 1;
    if tokens.get(i) == Some(&Token::Period) {
        name = word(tokens.get(i + 1)).ok_or("PRAGMA without a name is not allowed")?;
        i += 2;
    }
    match tokens.get(i) {
        Some(Token::LParen) => {
            // One name or literal, then `)`.
            match tokens.get(i + 1) {
                Some(Token::Word(_) | Token::SingleQuotedString(_) | Token::Number(..)) => {}
                _ => return Err(format!("PRAGMA {name}(...) takes one name here")),
            }
            if tokens.get(i + 2) != Some(&Token::RParen) {
                return Err(format!("PRAGMA {name}(...) takes one name here"));
            }
            i += 3;
        }
        Some(Token::Eq) => {
            return Err(format!(
                "PRAGMA {name} = ... changes a setting: only reads are allowed"
            ));
        }
        _ => {}
    }
    let rest: Vec<&Token> = tokens[i..]
        .iter()
        .filter(|t| !matches!(t, Token::SemiColon | Token::EOF))
        .collect();
    if !rest.is_empty()
        || tokens[i..]
            .iter()
            .filter(|t| **t == Token::SemiColon)
            .count()
            > 1
    {
        return Err("a PRAGMA must be the only statement, in the form PRAGMA name(table)".into());
    }
    Ok(name.to_lowercase())
}

/// The SQLite-only function rules: `pragma_*` table-valued functions and value builders.
pub(crate) fn judge_call(
    policy: &Policy,
    name: &str,
    args: &[Option<&Expr>],
    position: Option<usize>,
    out: &mut Findings,
) {
    let lname = name.to_lowercase();
    if let Some(pragma) = lname.strip_prefix("pragma_")
        && !is_introspection_pragma(pragma)
    {
        out.refuse(
            Rule::StatementKind,
            format!(
                "`{lname}` is not allowed: only the read-only introspection pragmas are ({})",
                INTROSPECTION_PRAGMAS.join(", ")
            ),
            position,
        );
    }
    let max = u128::from(policy.config().max_constant_string_bytes);
    let mut bomb = |why: String| out.refuse(Rule::ResourceBomb, why, position);
    let arg = |i: usize| args.get(i).copied().flatten();
    match lname.as_str() {
        "randomblob" | "zeroblob" => match arg(0).and_then(fold_int) {
            None => bomb(format!(
                "the size given to `{lname}` must be a constant (at most {max} bytes)"
            )),
            Some(n) if n.max(0) as u128 > max => bomb(format!(
                "`{lname}({n})` would build a value over {max} bytes"
            )),
            Some(_) => {}
        },
        "printf" | "format" => match arg(0).and_then(str_const) {
            None => bomb(format!(
                "the format of `{lname}` must be a constant string (its widths size the result)"
            )),
            Some(fmt) => {
                if let Err(why) = printf_widths(fmt, &args[1.min(args.len())..], max) {
                    bomb(format!("`{lname}`: {why}"));
                }
            }
        },
        _ => {}
    }
    if let Some(size) = call_size(&lname, args)
        && size > max
    {
        bomb(format!(
            "`{lname}` would build a value of about {size} bytes, over {max}"
        ));
    }
}

/// Checks every width and precision of a printf format: constant, at most `max`. A `*`
/// takes its value from the next argument, which must then fold to a constant.
fn printf_widths(fmt: &str, args: &[Option<&Expr>], max: u128) -> Result<(), String> {
    let b = fmt.as_bytes();
    let (mut i, mut next_arg) = (0usize, 0usize);
    let take = |next_arg: &mut usize| -> Result<u128, String> {
        let e = args.get(*next_arg).copied().flatten();
        *next_arg += 1;
        e.and_then(fold_int)
            .map(i128::unsigned_abs)
            .ok_or_else(|| "a `*` width or precision must come from a constant".to_string())
    };
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        i += 1;
        if b.get(i) == Some(&b'%') {
            i += 1;
            continue;
        }
        while i < b.len() && b"-+ #0,!".contains(&b[i]) {
            i += 1;
        }
        for part in 0..2 {
            if part == 1 {
                if b.get(i) != Some(&b'.') {
                    break;
                }
                i += 1;
            }
            let n = if b.get(i) == Some(&b'*') {
                i += 1;
                take(&mut next_arg)?
            } else {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                fmt[start..i]
                    .parse::<u128>()
                    .unwrap_or(if i > start { u128::MAX } else { 0 })
            };
            if n > max {
                return Err(format!("a width or precision of {n} is over {max} bytes"));
            }
        }
        while i < b.len() && b[i] == b'l' {
            i += 1;
        }
        i += 1; // the conversion itself takes one argument
        next_arg += 1;
    }
    Ok(())
}

/// An integer constant, folding literals, casts, negation, arithmetic, `abs`, `min`, `max`
/// and `length` of a constant string. `None` when it depends on data or parameters.
pub(crate) fn fold_int(e: &Expr) -> Option<i128> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => {
                let f: f64 = n.parse().ok()?;
                f.is_finite().then_some(f.clamp(-1e30, 1e30) as i128)
            }
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                let f: f64 = s.trim().parse().ok()?;
                f.is_finite().then_some(f.clamp(-1e30, 1e30) as i128)
            }
            _ => None,
        },
        Expr::Nested(e) | Expr::Cast { expr: e, .. } => fold_int(e),
        Expr::UnaryOp { op, expr } => match op {
            UnaryOperator::Minus => fold_int(expr).map(|n| -n),
            UnaryOperator::Plus => fold_int(expr),
            UnaryOperator::BitwiseNot => fold_int(expr).map(|n| !n),
            _ => None,
        },
        Expr::BinaryOp { left, op, right } => {
            let (a, b) = (fold_int(left)?, fold_int(right)?);
            match op {
                BinaryOperator::Plus => a.checked_add(b),
                BinaryOperator::Minus => a.checked_sub(b),
                BinaryOperator::Multiply => a.checked_mul(b),
                BinaryOperator::Divide if b != 0 => Some(a / b),
                BinaryOperator::Modulo if b != 0 => Some(a % b),
                BinaryOperator::PGBitwiseShiftLeft => u32::try_from(b.clamp(0, 127))
                    .ok()
                    .and_then(|s| a.checked_shl(s)),
                BinaryOperator::PGBitwiseShiftRight => {
                    u32::try_from(b.clamp(0, 127)).ok().map(|s| a >> s)
                }
                BinaryOperator::BitwiseOr => Some(a | b),
                BinaryOperator::BitwiseAnd => Some(a & b),
                _ => None,
            }
        }
        Expr::Function(f) => {
            let name = f.name.to_string().to_lowercase();
            let FunctionArguments::List(l) = &f.args else {
                return None;
            };
            let args: Vec<Option<&Expr>> = l.args.iter().map(arg_expr).collect();
            let ints = || {
                args.iter()
                    .map(|a| a.and_then(fold_int))
                    .collect::<Option<Vec<_>>>()
            };
            match name.as_str() {
                "abs" => fold_int(args.first().copied().flatten()?).map(i128::abs),
                "max" if args.len() > 1 => ints()?.into_iter().max(),
                "min" if args.len() > 1 => ints()?.into_iter().min(),
                "length" | "octet_length" => const_size(args.first().copied().flatten()?)
                    .and_then(|s| i128::try_from(s).ok()),
                "round" | "ceil" | "ceiling" | "floor" | "trunc" => {
                    fold_int(args.first().copied().flatten()?)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Bytes a constant expression builds, if it is constant.
fn const_size(e: &Expr) -> Option<u128> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.len() as u128),
            Value::HexStringLiteral(s) => Some(s.len() as u128 / 2),
            Value::Number(n, _) => Some(n.len() as u128),
            Value::Null | Value::Boolean(_) => Some(4),
            _ => None,
        },
        Expr::Nested(e) | Expr::Cast { expr: e, .. } => const_size(e),
        Expr::UnaryOp { expr, .. } => const_size(expr).map(|s| s + 1),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::StringConcat,
            right,
        } => Some(const_size(left)?.saturating_add(const_size(right)?)),
        Expr::Function(f) => {
            let FunctionArguments::List(l) = &f.args else {
                return None;
            };
            let args: Vec<Option<&Expr>> = l.args.iter().map(arg_expr).collect();
            call_size(&f.name.to_string().to_lowercase(), &args)
        }
        _ => None,
    }
}

/// Bytes a call with constant arguments builds; `None` when it depends on data (the
/// database's length limit bounds those) or the function is not a builder.
fn call_size(name: &str, args: &[Option<&Expr>]) -> Option<u128> {
    let size = |i: usize| args.get(i).copied().flatten().and_then(const_size);
    let all = || {
        args.iter()
            .map(|a| a.and_then(const_size))
            .try_fold(0u128, |acc, s| Some(acc.saturating_add(s?)))
    };
    match name {
        "randomblob" | "zeroblob" => {
            Some(fold_int(args.first().copied().flatten()?)?.max(0) as u128)
        }
        "hex" => Some(size(0)?.saturating_mul(2)),
        "quote" => Some(size(0)?.saturating_mul(2).saturating_add(3)),
        "upper" | "lower" | "trim" | "ltrim" | "rtrim" | "substr" | "substring" | "unhex"
        | "unicode" | "soundex" | "reverse" => size(0),
        // Each match of the pattern becomes the replacement: at most len(x) * len(z).
        "replace" => Some(size(0)?.saturating_mul(size(2)?.max(1))),
        "concat" | "json_array" | "json_object" | "json" | "jsonb" | "char" | "coalesce"
        | "ifnull" | "iif" => all(),
        "concat_ws" => {
            let n = args.len().saturating_sub(1) as u128;
            Some(all()?.saturating_add(size(0)?.saturating_mul(n)))
        }
        "printf" | "format" => {
            // Widths were checked against the limit; their sum bounds the padding.
            let fmt = args.first().copied().flatten().and_then(str_const)?;
            let digits: u128 = fmt
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|d| d.parse::<u128>().ok())
                .fold(0u128, u128::saturating_add);
            Some(all()?.saturating_add(digits))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PolicyConfig;

    fn sqlite(policy: &Policy, sql: &str) -> Verdict {
        policy.check(Dialect::Sqlite, sql)
    }

    #[test]
    fn introspection_pragmas_are_allowed_in_both_forms_and_others_refused() {
        let p = Policy::default();
        for ok in [
            "PRAGMA table_info(servers)",
            "PRAGMA table_info('servers');",
            "pragma main.table_xinfo(servers)",
            "PRAGMA index_list(servers)",
            "PRAGMA index_info(servers_dept)",
            "PRAGMA index_xinfo(servers_dept)",
            "PRAGMA foreign_key_list(\"servers\")",
            "PRAGMA collation_list",
            "PRAGMA function_list",
            "PRAGMA table_list",
            "/* c */ PRAGMA table_info(servers) -- why",
            "SELECT * FROM pragma_table_info('servers')",
            "SELECT name FROM pragma_index_list('servers') WHERE \"unique\"",
            "SELECT m.name, p.name FROM sqlite_schema m JOIN pragma_table_info(m.name) p",
        ] {
            let v = sqlite(&p, ok);
            assert!(v.is_allowed(), "{ok}: {:?}", v.reasons);
        }
        for bad in [
            "PRAGMA database_list",
            "PRAGMA query_only = 0",
            "PRAGMA query_only(0)",
            "PRAGMA writable_schema = 1",
            "PRAGMA main.journal_mode = WAL",
            "PRAGMA table_info = 1",
            "PRAGMA table_info(servers); DELETE FROM servers",
            "PRAGMA table_info(servers) x",
            "PRAGMA compile_options",
            "PRAGMA integrity_check",
            "PRAGMA foreign_key_check",
            "PRAGMA",
            "SELECT * FROM pragma_database_list",
            "SELECT * FROM pragma_compile_options()",
            "SELECT file FROM pragma_database_list()",
            "SELECT * FROM pragma_integrity_check('servers')",
        ] {
            let v = sqlite(&p, bad);
            assert!(!v.is_allowed(), "{bad}");
            assert!(
                v.reasons.iter().any(|r| r.rule == Rule::StatementKind),
                "{bad}: {:?}",
                v.reasons
            );
        }
    }

    #[test]
    fn builders_need_constant_sizes_within_the_limit() {
        let p = Policy::default();
        for ok in [
            "SELECT hex(randomblob(16)), length(zeroblob(100))",
            "SELECT zeroblob(abs(-1000))",
            "SELECT randomblob(16 * 1024)",
            "SELECT printf('%5.2f|%-10s|%*d', x, y, 8, z) FROM t",
            "SELECT printf('%d%%', 5), format('%q', 'it''s')",
            "SELECT replace(name, 'a', 'bb'), substr(name, 1, n) FROM t",
            "SELECT printf('%.*c', 3, 'x')",
        ] {
            let v = sqlite(&p, ok);
            assert!(v.is_allowed(), "{ok}: {:?}", v.reasons);
        }
        for bad in [
            "SELECT hex(randomblob(200000000))",
            "SELECT zeroblob(n) FROM t",
            "SELECT zeroblob(?1)",
            "SELECT randomblob(abs(-400000000))",
            "SELECT randomblob(-(-400000000))",
            "SELECT randomblob(CAST('400000000' AS INTEGER))",
            "SELECT randomblob(1 << 30)",
            "SELECT randomblob(max(1, 2000000000))",
            "SELECT zeroblob(length(name)) FROM t",
            "SELECT printf('%.*c', n, 'x') FROM t",
            "SELECT printf('%.*c', 2000000000, 'x')",
            "SELECT printf('%*s', abs(-500000000), '')",
            "SELECT printf('%1000000000d', 1)",
            "SELECT printf(fmt, 1) FROM t",
            "SELECT format('%.' || 9 || 'c', 'x')",
            "SELECT hex(hex(hex(zeroblob(200000))))",
            "SELECT replace(replace(replace(replace('aaaaaaaaaa', 'a', 'aaaaaaaaaa'), 'a', 'aaaaaaaaaa'), 'a', 'aaaaaaaaaa'), 'a', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')",
            "SELECT * FROM t WHERE 1 = like('ABCDEFG', upper(hex(randomblob(500000000/2))))",
        ] {
            let v = sqlite(&p, bad);
            assert!(
                v.reasons.iter().any(|r| r.rule == Rule::ResourceBomb),
                "{bad}: {:?}",
                v.reasons
            );
        }
    }

    #[test]
    fn statistics_samples_and_shadow_tables_of_denied_tables_are_refused() {
        let p = Policy::new(PolicyConfig {
            denied_tables: vec!["secrets".into()],
            denied_columns: vec!["customers.ssn".into()],
            ..PolicyConfig::default()
        });
        for bad in [
            "SELECT * FROM sqlite_stat4",
            "SELECT sample FROM main.sqlite_stat4",
            "SELECT * FROM SQLITE_STAT3",
            "SELECT * FROM secrets_content",
            "SELECT block FROM secrets_data",
            "SELECT * FROM secrets_segdir",
            "SELECT * FROM (SELECT * FROM secrets_idx)",
        ] {
            let v = sqlite(&p, bad);
            assert!(
                v.reasons.iter().any(|r| r.rule == Rule::TableDenied),
                "{bad}: {:?}",
                v.reasons
            );
        }
        for ok in [
            "SELECT * FROM sqlite_stat1",
            "SELECT * FROM server_config",
            "SELECT * FROM docs_content",
        ] {
            assert!(sqlite(&p, ok).is_allowed(), "{ok}");
        }
        assert!(p.denies_resolved_read(Dialect::Sqlite, Some("main"), "Customers", Some("SSN")));
        assert!(!p.denies_resolved_read(Dialect::Sqlite, Some("main"), "customers", Some("name")));
        assert!(p.denies_resolved_read(Dialect::Sqlite, None, "secrets", Some("")));
        assert!(p.denies_resolved_read(Dialect::Sqlite, Some("main"), "sqlite_stat4", None));
        assert!(!p.denies_resolved_read(Dialect::Sqlite, Some("main"), "sqlite_stat1", None));
    }
}
