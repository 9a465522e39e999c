//! The catalog as the call's own transaction sees it: what the query's names refer to is
//! read on the query's connection, inside its `START TRANSACTION READ ONLY`, after every
//! relation it names is locked, so what dbward judges is what runs.
//!
//! Why a lock, and which: MariaDB and MySQL hold a shared metadata lock (MDL) on every
//! table and view a transaction has opened until it ends, and `CREATE OR REPLACE VIEW`,
//! `ALTER TABLE` and `DROP` need an exclusive one, so they wait for the ROLLBACK. Opening a
//! view opens the views and tables it reads, down to the bottom, so one lock covers a web
//! of views. The lock is taken by [`LOCK_ONLY`]: a statement that names the relations and
//! fails in name resolution (`Operand should contain 1 column(s)`), after the server
//! opened them and before anything is optimized or run. Checked on MariaDB 10.11:
//! - the lock outlives the failed statement: a redefinition from another session waits
//!   until the transaction ends;
//! - no function in a view body runs, in any of a dozen view shapes (merged, TEMPTABLE,
//!   aggregate, table-less, derived, CTE, UNION, window, subquery in WHERE). A
//!   `LIMIT 0`, `WHERE FALSE` or `EXPLAIN` does run a DETERMINISTIC function in several of
//!   them (the optimizer evaluates it), and a prepared statement (`COM_STMT_PREPARE`)
//!   releases its locks when the prepare ends: neither can take the lock;
//! - a name that does not exist cannot be locked (the failed open releases its lock).
//!
//! Invariants:
//! - The lock statement goes over the text protocol (a prepare would release the lock),
//!   with names quoted by [`quote`], never otherwise spliced; catalog reads bind names as
//!   parameters.
//! - A relation name that could not be locked is recorded in [`InTxn::unlocked`]: the
//!   caller refuses if it is a view, and checks again after the query that it still is
//!   not one (a view created in between is refused, though it has run by then).

use sqlx::AssertSqlSafe;
use sqlx::mysql::{MySqlConnection, MySqlDatabaseError, MySqlRow};

use super::classify;
use super::types::text_at;
use crate::error::GatewayError;

/// Names asked about in one round trip at most (the statement stays small).
const NAMES_PER_QUERY: usize = 100;

/// The server's answer to [`LOCK_ONLY`] once every named relation is open and locked.
const OPERAND_COLUMNS: u16 = 1241;

/// A select list the server refuses while resolving names: the statement opens (and locks)
/// the relations after `FROM`, then fails before it is optimized or run.
const LOCK_ONLY: &str = "SELECT ROW(1, 1) FROM ";

/// The call's connection, inside its read-only transaction, for the judgement of what the
/// query's names refer to.
pub struct InTxn<'c> {
    pub(super) conn: &'c mut MySqlConnection,
    /// Relation names the transaction could not lock (no such relation, or an error
    /// opening it): `(qualifier, name)`.
    pub unlocked: Vec<(Option<String>, String)>,
}

impl InTxn<'_> {
    /// Takes a shared metadata lock, until the transaction ends, on every relation among
    /// `names` that exists, and on every view and table those read; records the others in
    /// [`InTxn::unlocked`]. One round trip when all exist, one per name otherwise.
    pub async fn lock_relations(
        &mut self,
        names: &[(Option<String>, String)],
    ) -> Result<(), GatewayError> {
        if names.is_empty() || self.lock(names).await? {
            return Ok(());
        }
        for name in names {
            if !self.lock(std::slice::from_ref(name)).await? {
                self.unlocked.push(name.clone());
            }
        }
        Ok(())
    }

    /// Whether [`LOCK_ONLY`] over `names` opened them all.
    async fn lock(&mut self, names: &[(Option<String>, String)]) -> Result<bool, GatewayError> {
        let mut from = Vec::with_capacity(names.len());
        for (i, (schema, name)) in names.iter().enumerate() {
            let name = quote(name)?;
            // Each its own alias: the same name twice is no error.
            from.push(match schema {
                Some(s) => format!("{}.{name} AS t{i}", quote(s)?),
                None => format!("{name} AS t{i}"),
            });
        }
        let sql = format!("{LOCK_ONLY}{}", from.join(", "));
        match sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *self.conn)
            .await
        {
            Err(sqlx::Error::Database(db))
                if db
                    .try_downcast_ref::<MySqlDatabaseError>()
                    .is_some_and(|m| m.number() == OPERAND_COLUMNS) =>
            {
                Ok(true)
            }
            Err(sqlx::Error::Database(_)) => Ok(false),
            Err(e) => Err(classify(e, &[])),
            Ok(_) => Err(GatewayError::Database(
                "the server ran a statement meant to fail; refused".into(),
            )),
        }
    }

    /// The generated columns of the tables among `(qualifier, name)` (no qualifier: the
    /// current database), as `(database, table, column)`. Names are bound, never spliced;
    /// information_schema compares them case-insensitively, which only finds more.
    pub async fn generated_columns(
        &mut self,
        tables: &[(Option<String>, String)],
    ) -> Result<Vec<(String, String, String)>, GatewayError> {
        // MariaDB leaves GENERATION_EXPRESSION NULL for a plain column, MySQL empty.
        let rows = self
            .catalog_rows(
                "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR), \
                        CAST(COLUMN_NAME AS CHAR) \
                 FROM information_schema.COLUMNS \
                 WHERE COALESCE(GENERATION_EXPRESSION, '') <> '' AND",
                tables,
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((text_at(r, 0)?, text_at(r, 1)?, text_at(r, 2)?)))
            .collect())
    }

    /// The rows of `head` (an information_schema `SELECT ... WHERE`, or `... WHERE ... AND`)
    /// for the relations `(qualifier, name)` (no qualifier: the current database), a
    /// hundred names a query. Names are bound, never spliced; information_schema compares
    /// them case-insensitively, which only finds more.
    pub(super) async fn catalog_rows(
        &mut self,
        head: &str,
        names: &[(Option<String>, String)],
    ) -> Result<Vec<MySqlRow>, GatewayError> {
        let mut out = Vec::new();
        for chunk in names.chunks(NAMES_PER_QUERY) {
            let one = "(TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?)";
            let sql = format!("{head} ({})", vec![one; chunk.len()].join(" OR "));
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (schema, name) in chunk {
                q = q.bind(schema.as_deref()).bind(name.as_str());
            }
            out.extend(
                q.fetch_all(self.conn())
                    .await
                    .map_err(|e| classify(e, &[]))?,
            );
        }
        Ok(out)
    }

    /// The connection, for the catalog reads of the judgement.
    pub(super) fn conn(&mut self) -> &mut MySqlConnection {
        self.conn
    }
}

/// `name` as a backquoted identifier. A backquote inside is doubled; NUL cannot be in a
/// name.
fn quote(name: &str) -> Result<String, GatewayError> {
    if name.is_empty() || name.contains('\0') {
        return Err(GatewayError::InvalidInput(
            "a relation name is empty or contains NUL".into(),
        ));
    }
    Ok(format!("`{}`", name.replace('`', "``")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_backquoted_with_backquotes_doubled() {
        assert_eq!(quote("users").expect("quotes"), "`users`");
        assert_eq!(quote("a`b").expect("quotes"), "`a``b`");
        assert_eq!(quote("x` FROM y; --").expect("quotes"), "`x`` FROM y; --`");
        assert!(quote("a\0b").is_err());
        assert!(quote("").is_err());
    }
}
