//! The database tools beyond `execute_query`, one file each. Every tool that reads rows
//! builds its SQL from names checked against the catalog and values bound as parameters,
//! then sends it down the same path as any client query (policy, database enforcement).

pub mod explain_query;
pub mod read_table;
pub mod search_tables;
pub mod security_posture;
pub mod table_stats;

use crate::config::DbKind;

/// Quotes an identifier for a dialect (doubling the quote character inside).
pub(crate) fn quote(kind: DbKind, ident: &str) -> String {
    match kind {
        DbKind::Mysql => format!("`{}`", ident.replace('`', "``")),
        _ => format!("\"{}\"", ident.replace('"', "\"\"")),
    }
}

/// The `n`th (1-based) bind placeholder for a dialect.
pub(crate) fn placeholder(kind: DbKind, n: usize) -> String {
    match kind {
        DbKind::Postgresql => format!("${n}"),
        DbKind::Sqlite => format!("?{n}"),
        DbKind::Mysql => "?".to_string(),
    }
}

/// A `LIKE` pattern matching `term` anywhere, with `\` escaping the term's wildcards.
pub(crate) fn contains_pattern(term: &str) -> String {
    let escaped = term
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_patterns() {
        assert_eq!(quote(DbKind::Postgresql, "we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote(DbKind::Mysql, "a`b"), "`a``b`");
        assert_eq!(contains_pattern("50%_x"), "%50\\%\\_x%");
        assert_eq!(placeholder(DbKind::Postgresql, 3), "$3");
        assert_eq!(placeholder(DbKind::Sqlite, 3), "?3");
    }
}
