//! What the server resolves a called function name to. MySQL resolves an unqualified call
//! to a native builtin first, then to a loadable function (UDF), then to a stored function
//! of the current database; a qualified call `db.f()` is always a stored function. The
//! policy knows names only, so every call is asked about here, per call and never cached:
//! an answer cannot be stale after the owner creates or redefines a routine.
//!
//! Invariant: names are compared case-insensitively (routine names are; database names
//! may not be, and over-matching only refuses more), and only bound parameters carry them.

use sqlx::AssertSqlSafe;

use super::classify;
use super::resolve::InTxn;
use super::types::text_at;
use crate::error::GatewayError;

/// The server's answer for a set of called names.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// For each call asked about, in order: the database of a stored routine of that name
    /// in the call's scope (its qualifier, or the current database), if one exists.
    pub stored: Vec<Option<String>>,
    /// Loadable functions (UDFs) among the names; `None` when this login cannot read
    /// `mysql.func`, so a name could be one without dbward knowing.
    pub loadable: Option<Vec<String>>,
}

impl InTxn<'_> {
    /// Resolves `(qualifier, name)` calls: stored routines in scope and loadable functions.
    /// Two round trips, whatever the number of calls.
    pub async fn resolve_functions(
        &mut self,
        calls: &[(Option<String>, String)],
    ) -> Result<Resolution, GatewayError> {
        if calls.is_empty() {
            return Ok(Resolution::default());
        }
        let err = |e| classify(e, &[]);
        // Any routine type: a procedure cannot be called as a function, but refusing on a
        // same-named procedure costs little and needs no knowledge of MariaDB packages.
        let one = "SELECT CAST(? AS CHAR), CAST(ROUTINE_SCHEMA AS CHAR) \
                   FROM information_schema.ROUTINES \
                   WHERE LOWER(ROUTINE_SCHEMA) = LOWER(COALESCE(?, DATABASE())) \
                     AND LOWER(ROUTINE_NAME) = LOWER(?)";
        let sql = vec![one; calls.len()].join(" UNION ALL ");
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (i, (schema, name)) in calls.iter().enumerate() {
            q = q
                .bind(i.to_string())
                .bind(schema.as_deref())
                .bind(name.as_str());
        }
        let marks = vec!["LOWER(?)"; calls.len()].join(", ");
        let udf_sql =
            format!("SELECT CAST(name AS CHAR) FROM mysql.func WHERE LOWER(name) IN ({marks})");
        // Both on the call's own connection, inside its transaction, under its statement
        // timeout.
        let rows = q.fetch_all(self.conn()).await.map_err(err)?;
        let mut q = sqlx::query(AssertSqlSafe(udf_sql));
        for (_, name) in calls {
            q = q.bind(name.as_str());
        }
        let loadable: Option<Vec<String>> = q
            .fetch_all(self.conn())
            .await
            .ok()
            .map(|rows| rows.iter().filter_map(|r| text_at(r, 0)).collect());
        let mut stored = vec![None; calls.len()];
        for r in &rows {
            if let (Some(i), Some(db)) = (
                text_at(r, 0).and_then(|i| i.parse::<usize>().ok()),
                text_at(r, 1),
            ) && let Some(slot) = stored.get_mut(i)
            {
                *slot = Some(db);
            }
        }
        Ok(Resolution { stored, loadable })
    }
}
