//! Reading a client query's cursor: the DECLARE and one FETCH under the row and byte caps
//! in one flush behind the call's first statements (the shape of a result with no row from
//! the FETCH's own description), the names of types the driver does not know, and the rows
//! of an EXPLAIN or SHOW.
//!
//! Invariant: the client's text goes over the extended protocol only, one statement per
//! message (the DECLARE, or the EXPLAIN or SHOW itself);
//! every statement around it is our own text.

use futures_util::TryStreamExt;
use serde_json::Value;
use sqlx::postgres::PipelinedStatement;
use sqlx::{AssertSqlSafe, Column as _, Row, TypeInfo, ValueRef};

use super::execute::Head;
use super::session::{Session, end_pipelined};
use super::types::text_to_json;
use super::{PgBackend, classify, guard, params};
use crate::backends::{Caps, Column, QueryResult};
use crate::error::GatewayError;

impl PgBackend {
    /// Declares the cursor for `sql` and reads it under the caps, the transaction ended
    /// after (one round trip; `params.rs` adds one for parameters whose types are to be
    /// inferred). With `head`, the call's first statements (its BEGIN, the role and the
    /// guard of a kept answer) go first in the same flush; `None` back means the guard
    /// failed (the answer was stale) and nothing of the query ran.
    pub(super) async fn declare_and_fetch(
        &self,
        conn: &mut sqlx::PgConnection,
        sql: &str,
        params: &[Value],
        caps: Caps,
        session: &mut Session,
        head: Option<Head<'_>>,
    ) -> Result<Option<QueryResult>, GatewayError> {
        let err = |e| classify(e, &[]);
        let declare = format!("DECLARE dbward_cursor NO SCROLL CURSOR FOR {sql}");
        let (bound, named) = params::infer(conn, &declare, params, &self.type_names).await?;
        let mut q = sqlx::query(AssertSqlSafe(declare)).persistent(false);
        for p in &bound {
            q = p.bind(q);
        }

        // One FETCH of up to max_rows + 1 rows (the extra row tells a cut result from a
        // complete one) and the end of the transaction. A row past the byte cap stops the
        // reading there: the connection is then closed rather than drained, so the
        // server's remaining output is never read (closing it ends the transaction on the
        // server).
        // (FETCH takes an int4 count.)
        let (head, mut head_rows, post) = head.map_or((Vec::new(), None, Vec::new()), |h| {
            (h.statements, h.rows, h.post)
        });
        let post_len = post.len();
        let mut fetch = post;
        fetch.push(PipelinedStatement::Text(format!(
            "FETCH FORWARD {} FROM dbward_cursor",
            caps.max_rows.saturating_add(1).min(i32::MAX as usize),
        )));
        fetch.extend(end_pipelined(conn, named, self.catalog_versioned()));
        // The DECLARE (extended protocol: one statement, unnamed, its parameters bound with
        // their own types), the FETCH and the end go out in one flush, one batch of the
        // extended protocol with one Sync, answered with one flush (the driver's
        // `fetch_pipelined`, `vendor/README.md`); nothing after a failed statement runs
        // (the server skips the rest of the batch up to its Sync).
        let mut columns: Vec<Column> = Vec::new();
        let mut unknown_oids: Vec<(usize, u32)> = Vec::new();
        // Whether `columns` holds the result's shape (from its first row, or from the
        // FETCH's RowDescription when no row came).
        let mut shaped = false;
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        let mut truncated = false;
        {
            let head_len = head.len();
            let mut stream = conn.fetch_pipelined(head, q, fetch);
            // The head's results come first; then the DECLARE's CommandComplete; then the
            // check's (its row dropped); then the FETCH's rows until its CommandComplete;
            // after it come the end's own (pg_advisory_unlock_all's row).
            let mut head_done = 0;
            let mut declared = false;
            let mut post_done = 0;
            let mut fetched = false;
            'read: loop {
                let item = match stream.try_next().await {
                    Ok(Some(item)) if head_done < head_len => {
                        match item {
                            sqlx::Either::Left(_) => head_done += 1,
                            sqlx::Either::Right(row) => {
                                if let Some(rows) = head_rows.as_deref_mut() {
                                    rows.push(row);
                                }
                            }
                        }
                        continue;
                    }
                    Ok(Some(item)) => item,
                    Ok(None) => break,
                    // A guard or recheck failed, before the DECLARE or after it (before the
                    // FETCH): a stale answer, and no row was read (any other failure of the
                    // head is the call's error).
                    Err(sqlx::Error::Database(e))
                        if (head_done < head_len || (declared && post_done < post_len))
                            && e.code().as_deref() == Some(guard::STALE) =>
                    {
                        return Ok(None);
                    }
                    // A row over the message limit (`message_limit`): refused from its
                    // header, never buffered. The result is cut there, as at the byte cap,
                    // and the session closed (it stands mid-message).
                    Err(e) if super::too_large(&e).is_some_and(|m| m.format == b'D') => {
                        truncated = true;
                        session.discard = true;
                        break 'read;
                    }
                    Err(e) => return Err(err(e)),
                };
                let row = match item {
                    sqlx::Either::Left(_) if !declared => {
                        declared = true;
                        continue;
                    }
                    sqlx::Either::Left(_) if post_done < post_len => {
                        post_done += 1;
                        continue;
                    }
                    sqlx::Either::Right(_) if post_done < post_len => continue,
                    sqlx::Either::Left(done) => {
                        fetched = true;
                        // The FETCH's own description: the shape of a result with no row.
                        if !shaped && let Some(described) = done.described_columns() {
                            (columns, unknown_oids) = shape(described);
                            shaped = true;
                        }
                        continue;
                    }
                    sqlx::Either::Right(_) if fetched => continue,
                    sqlx::Either::Right(row) => row,
                };
                if !shaped {
                    (columns, unknown_oids) = shape(row.columns());
                    shaped = true;
                }
                if rows.len() == caps.max_rows {
                    // The extra row: the result was cut. The FETCH ends here anyway.
                    truncated = true;
                    continue;
                }
                let mut out = Vec::with_capacity(columns.len());
                for (i, col) in columns.iter().enumerate() {
                    let raw = row.try_get_raw(i).map_err(err)?;
                    let v = if raw.is_null() {
                        Value::Null
                    } else {
                        let text = raw
                            .as_str()
                            .map_err(|e| GatewayError::Database(e.to_string()))?;
                        bytes += text.len();
                        text_to_json(&col.type_name, text)
                    };
                    out.push(v);
                }
                if bytes > caps.max_bytes {
                    truncated = true;
                    session.discard = true;
                    break 'read;
                }
                rows.push(out);
            }
        }
        if !shaped {
            // The first row was too large to read (so neither it nor the FETCH's end
            // gave the shape): the FETCH's RowDescription, which the server sent just
            // before it. (Describing the query again, in a transaction of its own, would
            // parse the client's text where no check proves the answer judged still
            // current, and parsing can run owner code: a literal of a composite or array
            // type runs its domains' CHECKs.)
            let described = conn.last_described_columns().ok_or_else(|| {
                GatewayError::Internal("a cut result with no description of its columns".into())
            })?;
            (columns, unknown_oids) = shape(described);
        }
        // Our own catalog lookup (cached per type), after the rollback, in an implicit
        // transaction that the session's default makes read-only. A session cut at the byte
        // cap is closed, not reused (so a client can make a call cost a new session, at most
        // one per call): the lookup then goes over another.
        if !unknown_oids.is_empty() {
            if session.discard {
                let mut other = self.pool.acquire().await.map_err(err)?;
                self.name_types(&mut other, &mut columns, &unknown_oids)
                    .await?;
            } else {
                self.name_types(conn, &mut columns, &unknown_oids).await?;
            }
        }
        Ok(Some(QueryResult {
            row_count: rows.len(),
            columns,
            rows,
            truncated,
            elapsed_ms: 0,
        }))
    }

    /// Fills in the names of types the driver reported as `?`, from the catalog (cached).
    async fn name_types(
        &self,
        conn: &mut sqlx::PgConnection,
        columns: &mut [Column],
        unknown: &[(usize, u32)],
    ) -> Result<(), GatewayError> {
        let oids: Vec<u32> = unknown.iter().map(|&(_, oid)| oid).collect();
        let names = params::names_of(conn, &self.type_names, &oids).await?;
        for (&(i, _), name) in unknown.iter().zip(names) {
            if let (Some(c), Some(name)) = (columns.get_mut(i), name) {
                c.type_name = name;
            }
        }
        Ok(())
    }
}

/// One result column: its label and the driver's name for its type, lower-cased.
fn column_of(c: &sqlx::postgres::PgColumn) -> Column {
    Column {
        name: c.name().to_string(),
        type_name: c.type_info().name().to_ascii_lowercase(),
    }
}

/// A result's columns, and those whose type the driver does not know by name (their index
/// and OID, for `name_types`).
fn shape(described: &[sqlx::postgres::PgColumn]) -> (Vec<Column>, Vec<(usize, u32)>) {
    let unknown = described
        .iter()
        .enumerate()
        .filter(|(_, c)| c.type_info().name() == "?")
        .filter_map(|(i, c)| Some((i, c.type_info().oid()?.0)))
        .collect();
    (described.iter().map(column_of).collect(), unknown)
}

/// Rows of an EXPLAIN or SHOW (text and json columns only), capped as they stream.
pub(super) async fn utility_rows(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    caps: Caps,
) -> Result<QueryResult, GatewayError> {
    let err = |e| classify(e, &[]);
    let mut stream = sqlx::query(AssertSqlSafe(sql.to_string()))
        .persistent(false)
        .fetch(&mut *conn);
    let mut columns: Vec<Column> = Vec::new();
    let mut rows = Vec::new();
    let (mut bytes, mut truncated) = (0usize, false);
    while let Some(row) = stream.try_next().await.map_err(err)? {
        if columns.is_empty() {
            columns = row.columns().iter().map(column_of).collect();
        }
        if rows.len() == caps.max_rows {
            truncated = true;
            break;
        }
        let mut out = Vec::with_capacity(columns.len());
        for (i, col) in columns.iter().enumerate() {
            let raw = row.try_get_raw(i).map_err(err)?;
            if raw.is_null() {
                out.push(Value::Null);
                continue;
            }
            let b = raw
                .as_bytes()
                .map_err(|e| GatewayError::Database(e.to_string()))?;
            // jsonb's binary form is a version byte then the text.
            let b = if col.type_name == "jsonb" {
                b.get(1..).unwrap_or_default()
            } else {
                b
            };
            let text = String::from_utf8_lossy(b);
            bytes += text.len();
            out.push(text_to_json(&col.type_name, &text));
        }
        if bytes > caps.max_bytes {
            truncated = true;
            break;
        }
        rows.push(out);
    }
    drop(stream);
    Ok(QueryResult {
        row_count: rows.len(),
        columns,
        rows,
        truncated,
        elapsed_ms: 0,
    })
}
