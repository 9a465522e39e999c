//! PostgreSQL through sqlx.
//!
//! Sessions start with `default_transaction_read_only=on` and `application_name=dbward`.
//! Each query runs in `BEGIN READ ONLY` with `statement_timeout`, `lock_timeout` and
//! `idle_in_transaction_session_timeout` set locally (and `SET LOCAL ROLE` when a reader role
//! is configured), as `DECLARE ... NO SCROLL CURSOR` over the extended protocol (one
//! statement per message: a second statement cannot ride along), then one `FETCH` of at most
//! the row cap plus one, read as it streams until the byte cap, and always rolled back (in
//! the same round trip as the FETCH), with session-level advisory locks released (everything
//! else a read-only statement can change is undone by the rollback). Four round trips in all.
//!
//! The `FETCH` is our own constant text; it goes over the simple protocol so that every
//! value of every type comes back in its text form (and is then converted to JSON by type
//! name). No client text ever reaches the simple protocol.
//!
//! Invariant: a connection that saw an error, a timeout or a cancellation is closed, never
//! returned to the pool, so nothing (a lock, a setting, a cursor) carries over.

use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::TryStreamExt;
use secrecy::ExposeSecret;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::{
    AssertSqlSafe, Column as _, Executor, Row, SqlSafeStr, Statement as _, TypeInfo, ValueRef,
};

use super::pg_catalog_conn::CatalogConn;
use super::pg_params;
use super::pg_resolve::{self, Resolver};
use super::{Caps, Column, ColumnInfo, ForeignKey, QueryResult, TableDescription, TableInfo};
use crate::config::{Limits, SslMode};
use crate::connection::ConnectSpec;
use crate::error::{GatewayError, scrub};

/// A pooled connection idle longer than this is pinged before use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// An open PostgreSQL connection pool.
#[derive(Debug, Clone)]
pub struct PgBackend {
    pool: PgPool,
    /// Names of types the driver does not know (enums, domains...), by OID: results read
    /// over the simple protocol carry only the OID.
    type_names: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u32, String>>>,
    reader_role: Option<String>,
    /// The server's version string.
    pub server_version: String,
}

fn ssl(mode: SslMode) -> PgSslMode {
    match mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require => PgSslMode::Require,
        SslMode::VerifyCa => PgSslMode::VerifyCa,
        SslMode::VerifyFull => PgSslMode::VerifyFull,
    }
}

/// Classifies a driver error into a user-facing error; secrets are scrubbed.
pub(crate) fn classify(e: sqlx::Error, secrets: &[&str]) -> GatewayError {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let msg = scrub(db.message(), secrets);
            match code.as_str() {
                "57014" => GatewayError::Timeout(0),
                "42501" => GatewayError::PermissionDenied(msg),
                "42601" => GatewayError::Syntax(msg),
                "42P01" => GatewayError::UnknownTable(msg),
                "25006" => GatewayError::ReadOnlyViolation(msg),
                "28P01" | "28000" => {
                    GatewayError::ConnectionUnavailable(format!("login refused: {msg}"))
                }
                "3D000" => GatewayError::ConnectionUnavailable(msg),
                _ => GatewayError::Database(msg),
            }
        }
        sqlx::Error::PoolTimedOut => {
            GatewayError::ConnectionUnavailable("no pooled connection became free in time".into())
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
            GatewayError::ConnectionUnavailable(scrub(&e.to_string(), secrets))
        }
        _ => GatewayError::Database(scrub(&e.to_string(), secrets)),
    }
}

impl PgBackend {
    /// Opens a pool and checks the connection with one round trip.
    pub async fn connect(spec: &ConnectSpec, limits: &Limits) -> Result<PgBackend, GatewayError> {
        let mut opts = PgConnectOptions::new_without_pgpass()
            .host(&spec.host)
            .port(spec.port)
            .ssl_mode(ssl(spec.sslmode))
            .application_name("dbward")
            // Every statement of the session runs under timeouts, catalog reads included;
            // a query's transaction sets its own with SET LOCAL.
            .options([
                ("default_transaction_read_only", "on"),
                (
                    "statement_timeout",
                    &limits.statement_timeout_ms.to_string(),
                ),
                ("lock_timeout", &limits.lock_timeout_ms.to_string()),
            ])
            // No named prepared statements: every client query text would otherwise stay
            // behind as a server-side prepared statement in each pooled session. A cache
            // capacity of 0 alone is not enough (the driver then names the statement and
            // never closes it): every query here is also `persistent(false)`, and `end`
            // deallocates whatever a call prepared.
            .statement_cache_capacity(0);
        if let Some(u) = &spec.username {
            opts = opts.username(u);
        }
        if let Some(p) = &spec.password {
            opts = opts.password(p.expose_secret());
        }
        if let Some(d) = &spec.database {
            opts = opts.database(d);
        }
        let pool = PgPoolOptions::new()
            .max_connections(limits.pool_max_size)
            .acquire_timeout(Duration::from_millis(limits.acquire_timeout_ms))
            .idle_timeout(Duration::from_secs(limits.idle_timeout_s))
            // A connection that sat idle may have been closed by the server: ping it first.
            // One in steady use has just proved itself, and a ping on every acquire would be
            // one more round trip per call; if it did break, the call fails and the
            // connection is closed, never reused.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > IDLE_BEFORE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(opts)
            .await
            .map_err(|e| classify(e, &spec.secrets()))?;
        let server_version: String = sqlx::query_scalar("SELECT version()")
            .persistent(false)
            .fetch_one(&pool)
            .await
            .map_err(|e| classify(e, &spec.secrets()))?;
        Ok(PgBackend {
            pool,
            type_names: Default::default(),
            reader_role: spec.reader_role.clone(),
            server_version,
        })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs a policy-approved query under the caps.
    pub async fn execute(
        &self,
        sql: &str,
        params: &[Value],
        caps: Caps,
    ) -> Result<QueryResult, GatewayError> {
        self.execute_with(sql, params, caps, false, None).await
    }

    /// Runs a policy-approved query (or, with `utility`, an EXPLAIN or SHOW) under the
    /// caps, after the resolver has judged, inside the same transaction, what the database
    /// resolves its names to.
    pub async fn execute_resolved(
        &self,
        sql: &str,
        params: &[Value],
        caps: Caps,
        utility: bool,
        resolver: &Resolver<'_>,
    ) -> Result<QueryResult, GatewayError> {
        self.execute_with(sql, params, caps, utility, Some(resolver))
            .await
    }

    /// Runs a policy-approved EXPLAIN or SHOW, which cannot be declared as a cursor: the
    /// statement itself goes over the extended protocol (still one statement per message),
    /// in the same rolled-back read-only transaction, its rows capped as they stream.
    pub async fn execute_utility(
        &self,
        sql: &str,
        caps: Caps,
    ) -> Result<QueryResult, GatewayError> {
        self.execute_with(sql, &[], caps, true, None).await
    }

    async fn execute_with(
        &self,
        sql: &str,
        params: &[Value],
        caps: Caps,
        utility: bool,
        resolver: Option<&Resolver<'_>>,
    ) -> Result<QueryResult, GatewayError> {
        let started = Instant::now();
        let conn = self.pool.acquire().await.map_err(|e| classify(e, &[]))?;
        let mut flight = InFlight {
            conn: Some(conn),
            pool: self.pool.clone(),
            session: Session::default(),
            armed: true,
        };
        // The server cancels at statement_timeout; the client deadline is a backstop a
        // little later, after which the query is cancelled on the server and the
        // connection closed. If this future is dropped (the client cancelled the call),
        // `InFlight` does the same.
        let deadline = Duration::from_millis(caps.timeout_ms + 2_000);
        let InFlight { conn, session, .. } = &mut flight;
        let Some(conn) = conn.as_mut() else {
            return Err(GatewayError::Internal("no pooled connection".into()));
        };
        let run = self.run(conn, sql, params, caps, utility, resolver, session);
        let outcome = tokio::time::timeout(deadline, run).await;
        match outcome {
            Ok(Ok(mut r)) => {
                flight.armed = false;
                if flight.session.discard
                    && let Some(c) = flight.conn.as_mut()
                {
                    c.close_on_drop();
                }
                r.elapsed_ms = started.elapsed().as_millis() as u64;
                Ok(r)
            }
            Ok(Err(e)) => {
                // The server already ended the statement; close the connection all the
                // same so nothing of it carries over.
                flight.armed = false;
                if let Some(c) = flight.conn.as_mut() {
                    c.close_on_drop();
                }
                Err(match e {
                    GatewayError::Timeout(_) => GatewayError::Timeout(caps.timeout_ms),
                    other => other,
                })
            }
            Err(_) => Err(GatewayError::Timeout(caps.timeout_ms)),
        }
    }

    // The pieces of one call, each used once; bundling them would only rename them.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        conn: &mut sqlx::PgConnection,
        sql: &str,
        params: &[Value],
        caps: Caps,
        utility: bool,
        resolver: Option<&Resolver<'_>>,
        session: &mut Session,
    ) -> Result<QueryResult, GatewayError> {
        let err = |e| classify(e, &[]);
        // One round trip of our own constant-shaped text (the numbers are ours, the role
        // comes from config and is quoted): no client text ever goes over this simple-
        // protocol message.
        let role = self
            .reader_role
            .as_ref()
            .map(|r| format!("; SET LOCAL ROLE {}", quote_ident(r)))
            .unwrap_or_default();
        // (A savepoint when parameters need their types inferred: see pg_params.)
        let savepoint = if pg_params::describes(params) && !utility {
            pg_params::SAVEPOINT
        } else {
            ""
        };
        let begin = format!(
            "BEGIN READ ONLY{role}; SELECT pg_catalog.set_config('statement_timeout', '{}', true), \
             pg_catalog.set_config('lock_timeout', '{}', true), \
             pg_catalog.set_config('idle_in_transaction_session_timeout', '{}', true), \
             pg_catalog.pg_backend_pid(){savepoint}",
            caps.timeout_ms, caps.lock_timeout_ms, caps.idle_in_transaction_timeout_ms
        );
        let started = sqlx::raw_sql(AssertSqlSafe(begin.clone()))
            .fetch_all(&mut *conn)
            .await
            .map_err(err)?;
        // The backend's pid, so a cancelled call can cancel its statement on the server.
        session.pid = started
            .first()
            .and_then(|r| r.try_get_raw(3).ok())
            .and_then(|v| v.as_str().ok().and_then(|t| t.parse().ok()));
        // What the names resolve to, judged before anything of the client's runs (an
        // EXPLAIN plans, and planning folds immutable functions: it runs them too).
        if let Some(r) = resolver {
            let resolution = pg_resolve::resolve(conn, &r.names).await?;
            (r.judge)(&resolution)?;
        }
        if utility {
            let r = utility_rows(conn, sql, caps).await?;
            end(conn).await?;
            return Ok(r);
        }
        let declare = format!("DECLARE dbward_cursor NO SCROLL CURSOR FOR {sql}");
        let bound = pg_params::infer(conn, &declare, params).await?;
        let mut q = sqlx::query(AssertSqlSafe(declare)).persistent(false);
        for p in &bound {
            q = p.bind(q);
        }
        q.execute(&mut *conn).await.map_err(err)?;

        // One FETCH of up to max_rows + 1 rows (the extra row tells a cut result from a
        // complete one) and the end of the transaction, in one round trip. A row past the
        // byte cap stops the reading there: the connection is then closed rather than
        // drained, so the server's remaining output is never read (closing it ends the
        // transaction on the server).
        // (FETCH takes an int4 count.)
        let fetch = format!(
            "FETCH FORWARD {} FROM dbward_cursor; {END}",
            caps.max_rows.saturating_add(1).min(i32::MAX as usize)
        );
        let mut columns: Vec<Column> = Vec::new();
        let mut unknown_oids: Vec<(usize, u32)> = Vec::new();
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        let mut truncated = false;
        {
            let mut stream = sqlx::raw_sql(AssertSqlSafe(fetch)).fetch_many(&mut *conn);
            // Rows before the first CommandComplete are the FETCH's; after it come the
            // end's own (pg_advisory_unlock_all's row).
            let mut fetched = false;
            'read: while let Some(item) = stream.try_next().await.map_err(err)? {
                let row = match item {
                    sqlx::Either::Left(_) => {
                        fetched = true;
                        continue;
                    }
                    sqlx::Either::Right(_) if fetched => continue,
                    sqlx::Either::Right(row) => row,
                };
                if columns.is_empty() {
                    columns = columns_of(&row);
                    unknown_oids = row
                        .columns()
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.type_info().name() == "?")
                        .filter_map(|(i, c)| Some((i, c.type_info().oid()?.0)))
                        .collect();
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
        if rows.is_empty() && !session.discard {
            // No row to read the shape from: a Parse/Describe of the query (nothing runs),
            // in a read-only transaction of its own, since the first one has ended.
            sqlx::raw_sql(AssertSqlSafe(begin))
                .execute(&mut *conn)
                .await
                .map_err(err)?;
            let prepared = conn
                .prepare(AssertSqlSafe(sql.to_string()).into_sql_str())
                .await
                .map_err(err)?;
            columns = prepared.columns().iter().map(column_of).collect();
            end(conn).await?;
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
        Ok(QueryResult {
            row_count: rows.len(),
            columns,
            rows,
            truncated,
            elapsed_ms: 0,
        })
    }

    /// Fills in the names of types the driver reported as `?`, from the catalog (cached).
    async fn name_types(
        &self,
        conn: &mut sqlx::PgConnection,
        columns: &mut [Column],
        unknown: &[(usize, u32)],
    ) -> Result<(), GatewayError> {
        let missing: Vec<i64> = {
            let known = self.type_names.lock().unwrap_or_else(|p| p.into_inner());
            unknown
                .iter()
                .filter(|(_, oid)| !known.contains_key(oid))
                .map(|(_, oid)| i64::from(*oid))
                .collect()
        };
        if !missing.is_empty() {
            let named: Vec<(i64, String)> = sqlx::query_as(
                "SELECT oid::int8, pg_catalog.format_type(oid, NULL) FROM pg_catalog.pg_type WHERE oid = ANY($1::int8[]::oid[])",
            )
            .persistent(false)
            .bind(&missing)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| classify(e, &[]))?;
            let mut known = self.type_names.lock().unwrap_or_else(|p| p.into_inner());
            for (oid, name) in named {
                known.insert(oid as u32, name);
            }
        }
        let known = self.type_names.lock().unwrap_or_else(|p| p.into_inner());
        for (i, oid) in unknown {
            if let (Some(c), Some(name)) = (columns.get_mut(*i), known.get(oid)) {
                c.type_name = name.clone();
            }
        }
        Ok(())
    }

    /// Tables and views, optionally in one schema (system schemas excluded), at most `max`.
    pub async fn list_tables(
        &self,
        schema: Option<&str>,
        max: usize,
    ) -> Result<Vec<TableInfo>, GatewayError> {
        let mut catalog = CatalogConn::acquire(&self.pool).await?;
        let rows = sqlx::query(
            "SELECT n.nspname::text, c.relname::text, \
                    CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' \
                                   WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'table' ELSE 'table' END \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r','v','m','f','p') \
               AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
               AND ($1::text IS NULL OR n.nspname = $1) \
               AND has_schema_privilege(n.oid, 'USAGE') \
             ORDER BY 1, 2 LIMIT $2",
        )
            .persistent(false)
        .bind(schema)
        .bind(max as i64)
        .fetch_all(&mut *catalog)
        .await
        .map_err(|e| classify(e, &[]))?;
        catalog.done();
        Ok(rows
            .iter()
            .map(|r| TableInfo {
                schema: r.get(0),
                name: r.get(1),
                kind: r.get(2),
            })
            .collect())
    }

    /// Resolves a table name against the catalog: `(schema, name)` of the one match.
    pub async fn resolve_table(
        &self,
        schema: Option<&str>,
        table: &str,
    ) -> Result<(String, String), GatewayError> {
        let mut catalog = CatalogConn::acquire(&self.pool).await?;
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT n.nspname::text, c.relname::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = $2 AND c.relkind IN ('r','v','m','f','p') \
               AND (($1::text IS NULL AND pg_catalog.pg_table_is_visible(c.oid)) OR n.nspname = $1) \
             LIMIT 1",
        )
            .persistent(false)
        .bind(schema)
        .bind(table)
        .fetch_optional(&mut *catalog)
        .await
        .map_err(|e| classify(e, &[]))?;
        catalog.done();
        row.ok_or_else(|| {
            GatewayError::UnknownTable(match schema {
                Some(s) => format!("{s}.{table}"),
                None => table.to_string(),
            })
        })
    }

    /// Columns, keys, indexes and comments of one table.
    pub async fn describe_table(
        &self,
        schema: Option<&str>,
        table: &str,
    ) -> Result<TableDescription, GatewayError> {
        let (schema, name) = self.resolve_table(schema, table).await?;
        let mut catalog = CatalogConn::acquire(&self.pool).await?;
        let err = |e| classify(e, &[]);
        let cols = sqlx::query(
            "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, \
                    pg_catalog.pg_get_expr(d.adbin, d.adrelid), pg_catalog.col_description(a.attrelid, a.attnum) \
             FROM pg_catalog.pg_attribute a \
             LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass \
               AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        )
            .persistent(false)
        .bind(&schema)
        .bind(&name)
        .fetch_all(&mut *catalog)
        .await
        .map_err(err)?;
        let columns = cols
            .iter()
            .map(|r| ColumnInfo {
                name: r.get(0),
                type_name: r.get(1),
                nullable: r.get(2),
                default: r.get(3),
                comment: r.get(4),
            })
            .collect();
        let pk: Vec<(String,)> = sqlx::query_as(
            "SELECT a.attname::text FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass AND i.indisprimary \
             ORDER BY array_position(i.indkey, a.attnum)",
        )
            .persistent(false)
        .bind(&schema)
        .bind(&name)
        .fetch_all(&mut *catalog)
        .await
        .map_err(err)?;
        let fks: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT a.attname::text, cf.relname::text, af.attname::text \
             FROM pg_catalog.pg_constraint c \
             JOIN LATERAL unnest(c.conkey, c.confkey) AS k(col, fcol) ON true \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.col \
             JOIN pg_catalog.pg_class cf ON cf.oid = c.confrelid \
             JOIN pg_catalog.pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = k.fcol \
             WHERE c.contype = 'f' AND c.conrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass \
             ORDER BY 1",
        )
            .persistent(false)
        .bind(&schema)
        .bind(&name)
        .fetch_all(&mut *catalog)
        .await
        .map_err(err)?;
        let indexes: Vec<(String,)> = sqlx::query_as(
            "SELECT pg_catalog.pg_get_indexdef(indexrelid) FROM pg_catalog.pg_index \
             WHERE indrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass ORDER BY 1",
        )
        .persistent(false)
        .bind(&schema)
        .bind(&name)
        .fetch_all(&mut *catalog)
        .await
        .map_err(err)?;
        let comment: Option<String> = sqlx::query_scalar(
            "SELECT pg_catalog.obj_description((quote_ident($1) || '.' || quote_ident($2))::regclass, 'pg_class')",
        )
            .persistent(false)
        .bind(&schema)
        .bind(&name)
        .fetch_one(&mut *catalog)
        .await
        .map_err(err)?;
        catalog.done();
        Ok(TableDescription {
            schema,
            name,
            columns,
            primary_key: pk.into_iter().map(|p| p.0).collect(),
            foreign_keys: fks
                .into_iter()
                .map(|(column, t, c)| ForeignKey {
                    column,
                    references_table: t,
                    references_column: c,
                })
                .collect(),
            indexes: indexes.into_iter().map(|i| i.0).collect(),
            comment,
        })
    }
}

impl PgBackend {
    /// What the serving role (the reader role if configured) can read of the denied data,
    /// and how much owner code it can run.
    pub async fn exposure(
        &self,
        denied: &[super::pg_grants::DenyLookup],
    ) -> Result<super::pg_grants::Exposure, GatewayError> {
        super::pg_grants::exposure(&self.pool, self.reader_role.as_deref(), denied).await
    }

    /// Pool size and idle connections, for metrics.
    pub fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// The configured reader role, if any.
    pub fn reader_role(&self) -> Option<&str> {
        self.reader_role.as_deref()
    }

    /// Tables and columns whose names match a LIKE pattern (escaped with `\`).
    pub async fn search(
        &self,
        pattern: &str,
        max: usize,
    ) -> Result<Vec<crate::tools::search_tables::SearchMatch>, GatewayError> {
        let mut catalog = CatalogConn::acquire(&self.pool).await?;
        let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT * FROM ( \
               SELECT table_schema::text, table_name::text, NULL::text AS column_name, NULL::text AS data_type \
               FROM information_schema.tables \
               WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_name ILIKE $1 ESCAPE '\\' \
               UNION ALL \
               SELECT table_schema::text, table_name::text, column_name::text, data_type::text \
               FROM information_schema.columns \
               WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND column_name ILIKE $1 ESCAPE '\\' \
             ) m ORDER BY 1, 2, 3 NULLS FIRST LIMIT $2",
        )
            .persistent(false)
        .bind(pattern)
        .bind(max as i64)
        .fetch_all(&mut *catalog)
        .await
        .map_err(|e| classify(e, &[]))?;
        catalog.done();
        Ok(rows
            .into_iter()
            .map(
                |(schema, table, column, column_type)| crate::tools::search_tables::SearchMatch {
                    schema,
                    table,
                    column,
                    column_type,
                },
            )
            .collect())
    }

    /// Planner statistics of one (catalog-resolved) table.
    pub async fn table_stats(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<crate::tools::table_stats::TableStats, GatewayError> {
        use crate::tools::table_stats::{ColumnStats, IndexStats, TableStats};
        let err = |e| classify(e, &[]);
        let mut catalog = CatalogConn::acquire(&self.pool).await?;
        let (rows, table_bytes, total_bytes): (f32, i64, i64) = sqlx::query_as(
            "SELECT c.reltuples, pg_catalog.pg_table_size(c.oid), pg_catalog.pg_total_relation_size(c.oid) \
             FROM pg_catalog.pg_class c WHERE c.oid = (quote_ident($1) || '.' || quote_ident($2))::regclass",
        )
            .persistent(false)
        .bind(schema)
        .bind(table)
        .fetch_one(&mut *catalog)
        .await
        .map_err(err)?;
        let cols: Vec<(String, Option<f32>, Option<f32>)> = sqlx::query_as(
            "SELECT a.attname::text, s.null_frac, s.n_distinct FROM pg_catalog.pg_attribute a \
             LEFT JOIN pg_catalog.pg_stats s ON s.schemaname = $1 AND s.tablename = $2 AND s.attname = a.attname \
             WHERE a.attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
        )
            .persistent(false)
        .bind(schema)
        .bind(table)
        .fetch_all(&mut *catalog)
        .await
        .map_err(err)?;
        let idx: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT i.relname::text, pg_catalog.pg_relation_size(i.oid), pg_catalog.pg_get_indexdef(i.oid) \
             FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid \
             WHERE x.indrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass ORDER BY 1",
        )
            .persistent(false)
        .bind(schema)
        .bind(table)
        .fetch_all(&mut *catalog)
        .await
        .map_err(err)?;
        catalog.done();
        Ok(TableStats {
            schema: schema.to_string(),
            table: table.to_string(),
            // reltuples is -1 before the first ANALYZE.
            row_estimate: rows.max(0.0) as i64,
            exact: false,
            table_bytes: Some(table_bytes),
            total_bytes: Some(total_bytes),
            columns: cols
                .into_iter()
                .map(|(column, n, d)| ColumnStats {
                    column,
                    null_fraction: n.map(f64::from),
                    distinct_estimate: d.map(f64::from),
                })
                .collect(),
            indexes: idx
                .into_iter()
                .map(|(name, size, definition)| IndexStats {
                    name,
                    size_bytes: Some(size),
                    definition,
                })
                .collect(),
        })
    }

    /// What the role queries run as could do on its own.
    pub async fn posture(
        &self,
    ) -> Result<crate::tools::security_posture::RolePosture, GatewayError> {
        type Row = (String, bool, bool, bool, i64, i64, Vec<String>);
        let (role, superuser, createrole, createdb, writable, create_schemas, dangerous): Row =
            sqlx::query_as(
                "WITH me AS (SELECT coalesce($1::text, current_user::text) AS name) \
                 SELECT r.rolname::text, r.rolsuper, r.rolcreaterole, r.rolcreatedb OR has_database_privilege(r.rolname, current_database(), 'CREATE'), \
                   (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                       AND n.nspname NOT LIKE 'pg_toast%' \
                       AND (has_table_privilege(r.rolname, c.oid, 'INSERT') OR has_table_privilege(r.rolname, c.oid, 'UPDATE') \
                         OR has_table_privilege(r.rolname, c.oid, 'DELETE') OR has_table_privilege(r.rolname, c.oid, 'TRUNCATE'))), \
                   (SELECT count(*) FROM pg_catalog.pg_namespace n WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
                       AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
                       AND has_schema_privilege(r.rolname, n.oid, 'CREATE')), \
                   ARRAY(SELECT b.rolname::text FROM pg_catalog.pg_roles b \
                     WHERE b.rolname IN ('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program', \
                                         'pg_signal_backend', 'pg_write_all_data', 'pg_checkpoint') \
                       AND pg_has_role(r.rolname, b.oid, 'MEMBER') ORDER BY 1) \
                 FROM pg_catalog.pg_roles r, me WHERE r.rolname = me.name",
            )
            .persistent(false)
            .bind(self.reader_role.as_deref())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| classify(e, &[]))?;
        let can_create = createrole || createdb || create_schemas > 0;
        Ok(crate::tools::security_posture::RolePosture {
            role,
            superuser,
            writable_tables: writable,
            can_create,
            can_write: superuser || writable > 0 || can_create || !dangerous.is_empty(),
            dangerous_roles: dangerous,
            ..Default::default()
        })
    }
}

/// A query in flight. If it is dropped while armed (the call was cancelled, or the client
/// deadline passed), the statement is cancelled on the server from another connection and
/// the connection is closed, never returned to the pool mid-query.
struct InFlight {
    conn: Option<sqlx::pool::PoolConnection<sqlx::Postgres>>,
    pool: PgPool,
    session: Session,
    armed: bool,
}

/// What a call learns about its pooled session as it runs.
#[derive(Default)]
struct Session {
    /// The server process, for a cancel request from another connection.
    pid: Option<i32>,
    /// The session must not be reused (reading stopped mid-result at the byte cap).
    discard: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(c) = self.conn.as_mut() {
            c.close_on_drop();
        }
        if let (Some(pid), Ok(rt)) = (self.session.pid, tokio::runtime::Handle::try_current()) {
            let pool = self.pool.clone();
            rt.spawn(end_abandoned(pool, pid));
        }
    }
}

/// How long an abandoned statement has to end after its cancel request before its session
/// is terminated: a cancel is handled at the next interrupt check, which a well-behaved
/// statement reaches within milliseconds.
const CANCEL_GRACE: Duration = Duration::from_secs(2);
/// How long after the terminate request the session is watched (and, if still there,
/// reported) before giving up.
const TERMINATE_WATCH: Duration = Duration::from_secs(10);

/// Ends the statement of an abandoned call on the server: cancel, then, if the session is
/// still there after [`CANCEL_GRACE`], terminate it. (Its client connection is already
/// closed, so it would otherwise run until it next reads or writes.) A C function that
/// never checks for interrupts ignores both: PostgreSQL offers no way to stop it short of
/// a server restart, which is why the policy bounds the inputs such loops can get.
async fn end_abandoned(pool: PgPool, pid: i32) {
    // Our own statements about our own session, never a client's; `application_name`
    // guards against a recycled pid.
    let still_there = |pool: PgPool| async move {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity \
             WHERE pid = $1 AND application_name = 'dbward')",
        )
        .persistent(false)
        .bind(pid)
        .fetch_one(&pool)
        .await
        .unwrap_or(false)
    };
    let r = sqlx::query("SELECT pg_catalog.pg_cancel_backend($1)")
        .persistent(false)
        .bind(pid)
        .execute(&pool)
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, pid, "could not cancel an abandoned query");
    }
    let started = Instant::now();
    while started.elapsed() < CANCEL_GRACE {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !still_there(pool.clone()).await {
            return;
        }
    }
    let r = sqlx::query(
        "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
         WHERE pid = $1 AND application_name = 'dbward'",
    )
    .persistent(false)
    .bind(pid)
    .execute(&pool)
    .await;
    match r {
        Ok(_) => tracing::warn!(
            pid,
            "an abandoned query ignored its cancel: its session was terminated"
        ),
        Err(e) => {
            tracing::warn!(error = %e, pid, "could not terminate an abandoned query's session")
        }
    }
    let started = Instant::now();
    while started.elapsed() < TERMINATE_WATCH {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if !still_there(pool.clone()).await {
            return;
        }
    }
    tracing::error!(
        pid,
        "an abandoned query ignores cancel and terminate (a function that never checks for interrupts); it ends only when its work does"
    );
}

/// One result column: its label and the driver's name for its type, lower-cased.
fn column_of(c: &sqlx::postgres::PgColumn) -> Column {
    Column {
        name: c.name().to_string(),
        type_name: c.type_info().name().to_ascii_lowercase(),
    }
}

/// Column names and types of a result row.
fn columns_of(row: &sqlx::postgres::PgRow) -> Vec<Column> {
    row.columns().iter().map(column_of).collect()
}

/// The end of every call's transaction (see [`end`]).
const END: &str = "ROLLBACK; SELECT pg_catalog.pg_advisory_unlock_all(); DEALLOCATE ALL";

/// Always roll back, then release session-level advisory locks: the one kind of session
/// state a read-only statement can leave behind that a rollback does not undo. (Settings
/// changed with `set_config(..., false)`, LISTEN, cursors and notifications are
/// transactional and die with the rollback; PREPARE, temp tables and sequence changes
/// cannot happen inside a read-only cursor.) Then drop every prepared statement of the
/// session: the driver names the statements it prepares (the Parse/Describe of an empty
/// result's shape), and a named statement outlives the transaction — with its text, which
/// the next caller on this pooled session could read in `pg_prepared_statements`. The
/// driver's statement cache is off and every other statement is unnamed, so nothing the
/// driver relies on is dropped. One round trip.
async fn end(conn: &mut sqlx::PgConnection) -> Result<(), GatewayError> {
    sqlx::raw_sql(END)
        .execute(&mut *conn)
        .await
        .map_err(|e| classify(e, &[]))?;
    Ok(())
}

/// Rows of an EXPLAIN or SHOW (text and json columns only), capped as they stream.
async fn utility_rows(
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

/// Quotes an identifier the way PostgreSQL's `quote_ident` does.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Converts one value in PostgreSQL's text form to JSON, by type name. Integers become
/// numbers; numerics stay strings (no float rounding); `bytea` becomes base64; JSON is
/// parsed; arrays of simple types become JSON arrays; everything else is its text form.
pub fn text_to_json(type_name: &str, text: &str) -> Value {
    match type_name {
        "int2" | "int4" | "int8" | "oid" => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.into())),
        "float4" | "float8" => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Value::from(f),
            _ => Value::String(text.into()), // NaN, Infinity
        },
        "bool" => Value::Bool(text == "t"),
        "json" | "jsonb" => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()))
        }
        "bytea" => match text.strip_prefix("\\x").and_then(|h| hex::decode(h).ok()) {
            Some(bytes) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
            None => Value::String(text.into()),
        },
        // sqlx names array types `int4[]`; the catalog names them `_int4`.
        t if t.ends_with("[]") || t.starts_with('_') => {
            let elem = t
                .strip_suffix("[]")
                .or_else(|| t.strip_prefix('_'))
                .unwrap_or(t);
            parse_array(elem, text).unwrap_or_else(|| Value::String(text.into()))
        }
        _ => Value::String(text.into()),
    }
}

/// Parses a PostgreSQL array literal (`{1,2,NULL}`, `{"a b","c\"d"}`, nested) into JSON,
/// converting elements by the element type. `None` if the text is not a plain array literal
/// (e.g. one with explicit bounds).
fn parse_array(elem_type: &str, text: &str) -> Option<Value> {
    fn parse(
        elem_type: &str,
        chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    ) -> Option<Value> {
        if chars.next()? != '{' {
            return None;
        }
        let mut items = Vec::new();
        loop {
            match chars.peek()? {
                '}' => {
                    chars.next();
                    return Some(Value::Array(items));
                }
                '{' => items.push(parse(elem_type, chars)?),
                '"' => {
                    chars.next();
                    let mut s = String::new();
                    loop {
                        match chars.next()? {
                            '\\' => s.push(chars.next()?),
                            '"' => break,
                            c => s.push(c),
                        }
                    }
                    items.push(text_to_json(elem_type, &s));
                }
                _ => {
                    let mut s = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == ',' || c == '}' {
                            break;
                        }
                        s.push(c);
                        chars.next();
                    }
                    items.push(if s == "NULL" {
                        Value::Null
                    } else {
                        text_to_json(elem_type, &s)
                    });
                }
            }
            match chars.peek()? {
                ',' => {
                    chars.next();
                }
                '}' => {}
                _ => return None,
            }
        }
    }
    let mut chars = text.chars().peekable();
    let v = parse(elem_type, &mut chars)?;
    chars.next().is_none().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_forms_become_faithful_json() {
        assert_eq!(
            text_to_json("int8", "9007199254740993"),
            json!(9007199254740993i64)
        );
        assert_eq!(text_to_json("numeric", "1.10"), json!("1.10"));
        assert_eq!(text_to_json("bool", "t"), json!(true));
        assert_eq!(text_to_json("bytea", "\\x0001ff"), json!("AAH/"));
        assert_eq!(text_to_json("jsonb", "{\"a\": [1]}"), json!({"a": [1]}));
        assert_eq!(text_to_json("_int4", "{1,NULL,3}"), json!([1, null, 3]));
        assert_eq!(
            text_to_json("_text", "{\"a b\",\"c\\\"d\",e}"),
            json!(["a b", "c\"d", "e"])
        );
        assert_eq!(
            text_to_json("_int4", "{{1,2},{3,4}}"),
            json!([[1, 2], [3, 4]])
        );
        assert_eq!(text_to_json("float8", "NaN"), json!("NaN"));
    }
}
