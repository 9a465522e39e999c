//! A query's text with its literals replaced by placeholders: what the audit log keeps by
//! default, so that it says what ran without the values (names, numbers, secrets that were
//! typed into a WHERE clause).
//!
//! PostgreSQL: libpg_query's own `normalize` (`$1`, `$2`, ...). MySQL and SQLite: the same
//! idea over sqlparser's tree: every literal value except `NULL`, `TRUE`/`FALSE` and the
//! query's own placeholders becomes `?`, and the tree is printed again.
//!
//! Invariant: a query that does not parse has no normalized form (`None`): its text is never
//! kept in part.

use sqlparser::ast::{Expr, Value, visit_expressions_mut};
use sqlparser::dialect::{MySqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use crate::verdict::Dialect;

/// The normalized text of `sql` in `dialect`, or `None` if it does not parse.
pub fn normalize(dialect: Dialect, sql: &str) -> Option<String> {
    match dialect {
        Dialect::Postgres => pg_query::normalize(sql).ok(),
        Dialect::Mysql => {
            let text = crate::mysql_syntax::normalize(sql);
            let statements = Parser::parse_sql(&MySqlDialect {}, &text).ok()?;
            Some(placeholders(statements))
        }
        Dialect::Sqlite => {
            let statements = Parser::parse_sql(&SQLiteDialect {}, sql).ok()?;
            Some(placeholders(statements))
        }
    }
}

fn placeholders(mut statements: Vec<sqlparser::ast::Statement>) -> String {
    let _ = visit_expressions_mut(&mut statements, |e| {
        if let Expr::Value(v) = e
            && !matches!(
                v.value,
                Value::Null | Value::Boolean(_) | Value::Placeholder(_)
            )
        {
            v.value = Value::Placeholder("?".into());
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    statements
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::normalize;
    use crate::verdict::Dialect;

    #[test]
    fn literals_become_placeholders() {
        let cases = [
            (
                Dialect::Postgres,
                "SELECT * FROM users WHERE email = 'a@b.c' AND id > 5 LIMIT 10",
                Some("SELECT * FROM users WHERE email = $1 AND id > $2 LIMIT $3"),
            ),
            (
                Dialect::Sqlite,
                "SELECT name FROM servers WHERE hostname = 'db-01' AND cpu > 4 AND x IS NULL AND id = ?1",
                Some(
                    "SELECT name FROM servers WHERE hostname = ? AND cpu > ? AND x IS NULL AND id = ?1",
                ),
            ),
            (
                Dialect::Mysql,
                "SELECT * FROM t WHERE a = \"secret\" AND b IN (1, 2) AND c = TRUE",
                Some("SELECT * FROM t WHERE a = ? AND b IN (?, ?) AND c = true"),
            ),
            (Dialect::Postgres, "SELEC 1", None),
            (Dialect::Sqlite, "SELEC 'secret'", None),
        ];
        for (dialect, sql, want) in cases {
            assert_eq!(normalize(dialect, sql).as_deref(), want, "{sql}");
        }
    }
}
