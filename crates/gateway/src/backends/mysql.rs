//! MySQL and MariaDB through sqlx.
//!
//! What must hold, whatever the policy layer decided:
//! - Client SQL reaches the server only through the prepared-statement protocol
//!   (`COM_STMT_PREPARE` + `COM_STMT_EXECUTE`, via `sqlx::query` with binds). The server
//!   prepares exactly one statement per message, so a second statement cannot ride along.
//!   (sqlx always advertises `CLIENT_MULTI_STATEMENTS` and offers no way to turn it off;
//!   that flag only matters to the text protocol, which carries nothing but our own
//!   constant statements.)
//! - Every query runs inside `START TRANSACTION READ ONLY`, after
//!   `SET SESSION TRANSACTION READ ONLY`. The session setting matters: DDL commits the open
//!   transaction implicitly and would then run outside it, but it cannot run while the
//!   session's own access mode is read-only. The transaction is always rolled back.
//! - A statement that returns no result set (SET, DO, KILL, HANDLER, CALL, plain DML, DDL)
//!   is refused after `PREPARE` and before it runs: the server's own prepare response says
//!   how many columns the statement returns, and a read-only query returns some.
//! - The statement timeout is set per query on the server (MariaDB `max_statement_time`,
//!   MySQL `max_execution_time`), with a client-side deadline as a backstop, after which
//!   the server thread is killed from another pooled connection.
//! - Rows are streamed and the stream stops at the row or byte cap. A connection that saw
//!   an early stop, an error, a timeout or a cancellation is closed, never returned to the
//!   pool: the unread rest of the result and any session state die with it (dropping a
//!   stream alone does not stop the server). A connection goes back to the pool only after
//!   `ROLLBACK` and `RELEASE_ALL_LOCKS()` succeeded.
//!
//! Values are read in the binary protocol's raw form and converted to JSON by the column's
//! type, without float rounding of DECIMAL. Sessions run with `time_zone = '+00:00'` (the
//! sqlx default), so TIMESTAMP values are UTC.

use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::TryStreamExt;
use secrecy::ExposeSecret;
use serde_json::Value;
use sqlx::mysql::{
    MySql, MySqlArguments, MySqlColumn, MySqlConnectOptions, MySqlConnection, MySqlDatabaseError,
    MySqlPool, MySqlPoolOptions, MySqlRow, MySqlSslMode, MySqlTypeInfo, MySqlValueRef,
};
use sqlx::{
    AssertSqlSafe, Column as _, ColumnOrigin, Decode, Either, Executor, Row, SqlSafeStr,
    Statement as _, Type, TypeInfo, ValueRef,
};

use super::{Caps, Column, ColumnInfo, ForeignKey, QueryResult, TableDescription, TableInfo};
use crate::config::{Limits, SslMode};
use crate::connection::ConnectSpec;
use crate::error::{GatewayError, scrub};

/// Schemas that belong to the server, not to the user's data.
const SYSTEM_SCHEMAS: &str = "'mysql', 'information_schema', 'performance_schema', 'sys'";

/// An open MySQL or MariaDB connection pool.
#[derive(Debug, Clone)]
pub struct MyBackend {
    pool: MySqlPool,
    /// MariaDB and MySQL differ in the timeout variable and in how JSON columns look.
    mariadb: bool,
    /// The server's version string, as `SELECT version()` reports it.
    pub server_version: String,
}

fn ssl(mode: SslMode) -> MySqlSslMode {
    match mode {
        SslMode::Disable => MySqlSslMode::Disabled,
        SslMode::Prefer => MySqlSslMode::Preferred,
        SslMode::Require => MySqlSslMode::Required,
        SslMode::VerifyCa => MySqlSslMode::VerifyCa,
        SslMode::VerifyFull => MySqlSslMode::VerifyIdentity,
    }
}

/// Classifies a driver error into a user-facing error; secrets are scrubbed.
pub(crate) fn classify(e: sqlx::Error, secrets: &[&str]) -> GatewayError {
    match &e {
        sqlx::Error::Database(db) => {
            let msg = scrub(db.message(), secrets);
            let number = db
                .try_downcast_ref::<MySqlDatabaseError>()
                .map(|m| m.number())
                .unwrap_or(0);
            match number {
                1064 => GatewayError::Syntax(msg),
                1044 | 1045 | 1142 | 1143 | 1227 | 1370 => GatewayError::PermissionDenied(msg),
                1146 => GatewayError::UnknownTable(msg),
                1792 => GatewayError::ReadOnlyViolation(msg),
                // 1969: MariaDB max_statement_time; 3024: MySQL max_execution_time.
                1969 | 3024 => GatewayError::Timeout(0),
                // Too many connections, unknown database, server shutting down.
                1040 | 1049 | 1053 | 1203 => GatewayError::ConnectionUnavailable(msg),
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

/// Any failure while opening the pool means the connection is unavailable; a login refusal
/// says so.
fn classify_connect(e: sqlx::Error, secrets: &[&str]) -> GatewayError {
    let login = matches!(&e, sqlx::Error::Database(db)
        if db.try_downcast_ref::<MySqlDatabaseError>()
            .is_some_and(|m| matches!(m.number(), 1044 | 1045 | 1698)));
    match classify(e, secrets) {
        GatewayError::ConnectionUnavailable(m) => GatewayError::ConnectionUnavailable(m),
        other => {
            let msg = match other {
                GatewayError::PermissionDenied(m) | GatewayError::Database(m) => m,
                o => o.to_string(),
            };
            if login {
                GatewayError::ConnectionUnavailable(format!("login refused: {msg}"))
            } else {
                GatewayError::ConnectionUnavailable(msg)
            }
        }
    }
}

/// What one execution left on its connection, readable after a timeout dropped the query.
#[derive(Default)]
struct Session {
    /// The server thread id, to kill it if the client deadline passes.
    thread_id: Option<u64>,
    /// True only once the transaction is rolled back and nothing is left unread.
    clean: bool,
}

/// The session statement-timeout assignment, in each server's own variable and unit.
fn timeout_assignment(mariadb: bool, timeout_ms: u64) -> String {
    if mariadb {
        format!(
            "max_statement_time = {}.{:03}",
            timeout_ms / 1000,
            timeout_ms % 1000
        )
    } else {
        format!("max_execution_time = {timeout_ms}")
    }
}

impl MyBackend {
    /// Opens a pool and checks the connection with one round trip.
    pub async fn connect(spec: &ConnectSpec, limits: &Limits) -> Result<MyBackend, GatewayError> {
        let mut opts = MySqlConnectOptions::new()
            .host(&spec.host)
            .port(spec.port)
            .ssl_mode(ssl(spec.sslmode))
            // Keep the server's own meaning of `||`: the policy parsed the query as the
            // server's sql_mode reads it, not with sqlx's PIPES_AS_CONCAT.
            .pipes_as_concat(false);
        if let Some(u) = &spec.username {
            opts = opts.username(u);
        }
        if let Some(p) = &spec.password {
            opts = opts.password(p.expose_secret());
        }
        if let Some(d) = &spec.database {
            opts = opts.database(d);
        }
        let secrets = spec.secrets();
        let pool = MySqlPoolOptions::new()
            .max_connections(limits.pool_max_size)
            .acquire_timeout(Duration::from_millis(limits.acquire_timeout_ms))
            .idle_timeout(Duration::from_secs(limits.idle_timeout_s))
            .test_before_acquire(true)
            .connect_with(opts)
            .await
            .map_err(|e| classify_connect(e, &secrets))?;
        let row = sqlx::query("SELECT version()")
            .fetch_one(&pool)
            .await
            .map_err(|e| classify_connect(e, &secrets))?;
        let server_version = text_at(&row, 0).unwrap_or_default();
        let mariadb = server_version.to_ascii_lowercase().contains("mariadb");
        Ok(MyBackend {
            pool,
            mariadb,
            server_version,
        })
    }

    /// Pool size and idle connections, for metrics.
    pub fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Whether the server is MariaDB.
    pub fn is_mariadb(&self) -> bool {
        self.mariadb
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
        let started = Instant::now();
        let mut conn = self.pool.acquire().await.map_err(|e| classify(e, &[]))?;
        let mut session = Session::default();
        // The server cancels at its statement timeout; the client deadline is a backstop a
        // little later (a query can override the server timeout for itself, e.g. MariaDB's
        // `SET STATEMENT max_statement_time=... FOR SELECT ...`).
        let deadline = Duration::from_millis(caps.timeout_ms + 2_000);
        let outcome = tokio::time::timeout(
            deadline,
            self.run(&mut conn, sql, params, caps, &mut session),
        )
        .await;
        if !session.clean {
            conn.close_on_drop();
        }
        match outcome {
            Ok(Ok(mut r)) => {
                r.elapsed_ms = started.elapsed().as_millis() as u64;
                Ok(r)
            }
            Ok(Err(e)) => Err(match e {
                GatewayError::Timeout(_) => GatewayError::Timeout(caps.timeout_ms),
                other => other,
            }),
            Err(_) => {
                if let Some(id) = session.thread_id {
                    self.kill(id);
                }
                Err(GatewayError::Timeout(caps.timeout_ms))
            }
        }
    }

    /// Kills a server thread from another pooled connection, in the background: closing our
    /// socket does not stop a statement that is not writing to it (e.g. a sleep).
    fn kill(&self, thread_id: u64) {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            if let Ok(mut c) = pool.acquire().await {
                // The id is a number we read from the server, not client text.
                let kill = format!("KILL {thread_id}");
                if c.execute(AssertSqlSafe(kill)).await.is_err() {
                    c.close_on_drop();
                }
            }
        });
    }

    async fn run(
        &self,
        conn: &mut MySqlConnection,
        sql: &str,
        params: &[Value],
        caps: Caps,
        session: &mut Session,
    ) -> Result<QueryResult, GatewayError> {
        let err = |e| classify(e, &[]);
        // Our own constant statements, in one text-protocol message. Lock waits are bounded
        // too (whole seconds, at least 1: the server's unit and minimum).
        let lock_s = caps.lock_timeout_ms.div_ceil(1000).max(1);
        let setup = format!(
            "SET SESSION TRANSACTION READ ONLY; \
             SET SESSION {}, lock_wait_timeout = {lock_s}, innodb_lock_wait_timeout = {lock_s}; \
             START TRANSACTION READ ONLY; \
             SELECT CAST(CONNECTION_ID() AS CHAR)",
            timeout_assignment(self.mariadb, caps.timeout_ms)
        );
        let ids = sqlx::raw_sql(AssertSqlSafe(setup))
            .fetch_all(&mut *conn)
            .await
            .map_err(err)?;
        session.thread_id = ids
            .first()
            .and_then(|r| text_at(r, 0))
            .and_then(|t| t.parse().ok());

        // Prepare first (nothing runs): the server reports the statement's columns and
        // parameter count. The statement is cached on the connection, so the execution
        // below reuses it.
        let prepared = conn
            .prepare(AssertSqlSafe(sql.to_string()).into_sql_str())
            .await
            .map_err(err)?;
        if prepared.columns().is_empty() {
            return Err(GatewayError::InvalidInput(
                "only statements that return rows can run (the server reports no result set for this one)"
                    .into(),
            ));
        }
        if let Some(Either::Right(n)) = prepared.parameters()
            && n != params.len()
        {
            return Err(GatewayError::InvalidInput(format!(
                "the query has {n} parameter placeholders but {} parameters were given",
                params.len()
            )));
        }
        let json = if self.mariadb {
            mariadb_json_columns(conn, prepared.columns()).await?
        } else {
            vec![false; prepared.columns().len()]
        };
        let mut columns = describe_columns(prepared.columns(), &json);

        let mut q = sqlx::query(AssertSqlSafe(sql.to_string()));
        for p in params {
            q = bind_json(q, p);
        }
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        let mut truncated = false;
        {
            let mut stream = q.fetch(&mut *conn);
            let mut first = true;
            while let Some(row) = stream.try_next().await.map_err(err)? {
                if rows.len() == caps.max_rows {
                    truncated = true;
                    break;
                }
                if first {
                    // The execution's own metadata is the truth (a placeholder's type is
                    // only known once bound).
                    columns = describe_columns(row.columns(), &json);
                    first = false;
                }
                let mut out = Vec::with_capacity(row.len());
                for i in 0..row.len() {
                    let raw = row.try_get_raw(i).map_err(err)?;
                    let is_json = json.get(i).copied().unwrap_or(false);
                    let (v, n) = value_to_json(raw, is_json);
                    bytes += n;
                    out.push(v);
                }
                if bytes > caps.max_bytes {
                    truncated = true;
                    break;
                }
                rows.push(out);
            }
        }
        if !truncated {
            // The result is complete; release what the query may have taken and roll back.
            // If this fails the connection is closed instead (and the server rolls back).
            let done = sqlx::raw_sql("ROLLBACK; DO RELEASE_ALL_LOCKS()")
                .execute(&mut *conn)
                .await;
            session.clean = done.is_ok();
        }
        // When truncated, rows are left unread: session.clean stays false, so the connection
        // is closed rather than drained.
        Ok(QueryResult {
            row_count: rows.len(),
            columns,
            rows,
            truncated,
            elapsed_ms: 0,
        })
    }

    /// Tables and views in one database (default: the connection's current database; with
    /// none, every non-system database), at most `max`.
    pub async fn list_tables(
        &self,
        schema: Option<&str>,
        max: usize,
    ) -> Result<Vec<TableInfo>, GatewayError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, \
                    CASE TABLE_TYPE WHEN 'VIEW' THEN 'view' ELSE 'table' END \
             FROM information_schema.TABLES \
             WHERE TABLE_TYPE IN ('BASE TABLE', 'VIEW', 'SYSTEM VERSIONED') \
               AND TABLE_SCHEMA NOT IN ({SYSTEM_SCHEMAS}) \
               AND (COALESCE(?, DATABASE()) IS NULL OR TABLE_SCHEMA = COALESCE(?, DATABASE())) \
             ORDER BY 1, 2 LIMIT ?"
        )))
        .bind(schema)
        .bind(schema)
        .bind(max as u64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| classify(e, &[]))?;
        Ok(rows
            .iter()
            .map(|r| TableInfo {
                schema: text_at(r, 0).unwrap_or_default(),
                name: text_at(r, 1).unwrap_or_default(),
                kind: text_at(r, 2).unwrap_or_default(),
            })
            .collect())
    }

    /// Resolves a table name against the catalog: `(database, name, comment)` of the one
    /// match. The name is a bound parameter, never spliced.
    pub async fn resolve_table(
        &self,
        schema: Option<&str>,
        table: &str,
    ) -> Result<(String, String, Option<String>), GatewayError> {
        let row = sqlx::query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, \
                    CASE WHEN TABLE_TYPE = 'VIEW' THEN NULL ELSE NULLIF(TABLE_COMMENT, '') END \
             FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
               AND TABLE_TYPE IN ('BASE TABLE', 'VIEW', 'SYSTEM VERSIONED') \
             LIMIT 1",
        )
        .bind(schema)
        .bind(table)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| classify(e, &[]))?;
        match row {
            Some(r) => Ok((
                text_at(&r, 0).unwrap_or_default(),
                text_at(&r, 1).unwrap_or_default(),
                text_at(&r, 2),
            )),
            None => Err(GatewayError::UnknownTable(match schema {
                Some(s) => format!("{s}.{table}"),
                None => table.to_string(),
            })),
        }
    }

    /// Columns, keys, indexes and comments of one table.
    pub async fn describe_table(
        &self,
        schema: Option<&str>,
        table: &str,
    ) -> Result<TableDescription, GatewayError> {
        let (schema, name, comment) = self.resolve_table(schema, table).await?;
        let err = |e| classify(e, &[]);
        let mut conn = self.pool.acquire().await.map_err(err)?;
        let cols = sqlx::query(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, \
                    NULLIF(COLUMN_COMMENT, '') \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
        )
        .bind(&schema)
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?;
        // MariaDB's JSON is LONGTEXT with a json_valid check; report it as json.
        let json_cols = if self.mariadb {
            json_checked_columns(&mut conn, &schema, &name).await?
        } else {
            Vec::new()
        };
        let columns = cols
            .iter()
            .map(|r| {
                let col = text_at(r, 0).unwrap_or_default();
                let declared = text_at(r, 1).unwrap_or_default();
                ColumnInfo {
                    type_name: if json_cols.contains(&col) {
                        "json".into()
                    } else {
                        declared
                    },
                    name: col,
                    nullable: text_at(r, 2).as_deref() == Some("YES"),
                    default: text_at(r, 3),
                    comment: text_at(r, 4),
                }
            })
            .collect();
        let pk = sqlx::query(
            "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' \
             ORDER BY ORDINAL_POSITION",
        )
        .bind(&schema)
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?;
        let fks = sqlx::query(
            "SELECT COLUMN_NAME, \
                    CASE WHEN REFERENCED_TABLE_SCHEMA = TABLE_SCHEMA THEN REFERENCED_TABLE_NAME \
                         ELSE CONCAT(REFERENCED_TABLE_SCHEMA, '.', REFERENCED_TABLE_NAME) END, \
                    REFERENCED_COLUMN_NAME \
             FROM information_schema.KEY_COLUMN_USAGE \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND REFERENCED_TABLE_NAME IS NOT NULL \
             ORDER BY COLUMN_NAME, CONSTRAINT_NAME, ORDINAL_POSITION",
        )
        .bind(&schema)
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?;
        let index_rows = sqlx::query(
            "SELECT INDEX_NAME, IF(NON_UNIQUE = 0, 'UNIQUE', ''), COLUMN_NAME, INDEX_TYPE \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        )
        .bind(&schema)
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .map_err(err)?;
        Ok(TableDescription {
            columns,
            primary_key: pk.iter().filter_map(|r| text_at(r, 0)).collect(),
            foreign_keys: fks
                .iter()
                .map(|r| ForeignKey {
                    column: text_at(r, 0).unwrap_or_default(),
                    references_table: text_at(r, 1).unwrap_or_default(),
                    references_column: text_at(r, 2).unwrap_or_default(),
                })
                .collect(),
            indexes: index_definitions(&name, &index_rows),
            comment,
            schema,
            name,
        })
    }
}

/// Index definitions in `SHOW CREATE TABLE`'s spelling, from STATISTICS rows ordered by
/// index and position: `PRIMARY KEY (`id`)`, `UNIQUE KEY `name` (`name`)`,
/// `KEY `servers_department_idx` (`department_id`)`.
fn index_definitions(table: &str, rows: &[MySqlRow]) -> Vec<String> {
    let mut groups: Vec<(String, bool, Vec<String>, String)> = Vec::new();
    for r in rows {
        let index = text_at(r, 0).unwrap_or_default();
        let unique = text_at(r, 1).as_deref() == Some("UNIQUE");
        // Functional index parts (MySQL 8) have no column name.
        let column = text_at(r, 2)
            .map(|c| quote_ident(&c))
            .unwrap_or_else(|| "(expression)".into());
        let kind = text_at(r, 3).unwrap_or_default();
        match groups.last_mut() {
            Some(g) if g.0 == index => g.2.push(column),
            _ => groups.push((index, unique, vec![column], kind)),
        }
    }
    groups
        .into_iter()
        .map(|(index, unique, cols, kind)| {
            let cols = cols.join(", ");
            let using = match kind.as_str() {
                "BTREE" | "" => String::new(),
                k => format!(" USING {k}"),
            };
            if index == "PRIMARY" {
                format!("PRIMARY KEY ({cols}){using}")
            } else {
                let u = if unique { "UNIQUE " } else { "" };
                format!(
                    "{u}KEY {} ON {} ({cols}){using}",
                    quote_ident(&index),
                    quote_ident(table)
                )
            }
        })
        .collect()
}

/// Quotes an identifier with backticks.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// MariaDB declares JSON columns as LONGTEXT with a `json_valid(col)` check constraint and
/// sends them as text. For each result column that comes straight from a table column of
/// that kind, true: its values are JSON and are parsed. (MySQL has a real JSON type.)
async fn mariadb_json_columns(
    conn: &mut MySqlConnection,
    cols: &[MySqlColumn],
) -> Result<Vec<bool>, GatewayError> {
    let mut out = vec![false; cols.len()];
    let mut checked: Vec<(String, String, Vec<String>)> = Vec::new();
    for (i, c) in cols.iter().enumerate() {
        // The protocol sends every TEXT/BLOB size as one type code, so any of these names
        // may be a LONGTEXT.
        if !matches!(
            c.type_info().name(),
            "TEXT"
                | "BLOB"
                | "TINYTEXT"
                | "TINYBLOB"
                | "MEDIUMTEXT"
                | "MEDIUMBLOB"
                | "LONGTEXT"
                | "LONGBLOB"
        ) {
            continue;
        }
        let ColumnOrigin::Table(origin) = c.origin() else {
            continue;
        };
        // sqlx joins the origin as `schema.table`.
        let Some((schema, table)) = origin.table.split_once('.') else {
            continue;
        };
        let pos = match checked
            .iter()
            .position(|(s, t, _)| s == schema && t == table)
        {
            Some(p) => p,
            None => {
                let json = json_checked_columns(conn, schema, table).await?;
                checked.push((schema.to_string(), table.to_string(), json));
                checked.len() - 1
            }
        };
        out[i] = checked[pos].2.iter().any(|j| *j == *origin.name);
    }
    Ok(out)
}

/// Columns of one table with a MariaDB `json_valid(`col`)` column check (what `JSON`
/// declares). Bound parameters only.
async fn json_checked_columns(
    conn: &mut MySqlConnection,
    schema: &str,
    table: &str,
) -> Result<Vec<String>, GatewayError> {
    let rows = sqlx::query(
        "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
         WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? AND CHECK_CLAUSE LIKE 'json\\_valid(%'",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| classify(e, &[]))?;
    Ok(rows
        .iter()
        .filter_map(|r| text_at(r, 0))
        .filter_map(|clause| {
            let inner = clause.strip_prefix("json_valid(`")?.strip_suffix("`)")?;
            // A column name with a backtick is written doubled inside the clause.
            (!inner.replace("``", "").contains('`')).then(|| inner.replace("``", "`"))
        })
        .collect())
}

/// Result columns with lower-case type names, corrected where the protocol's type code
/// misleads: text with a binary collation (`utf8mb4_bin`) carries the BINARY flag and sqlx
/// names it like a blob; MariaDB's JSON arrives as LONGTEXT.
fn describe_columns(cols: &[MySqlColumn], json: &[bool]) -> Vec<Column> {
    cols.iter()
        .enumerate()
        .map(|(i, c)| {
            let ti = c.type_info();
            let type_name = if json.get(i).copied().unwrap_or(false) {
                "json".to_string()
            } else if is_binary_name(ti.name()) && !is_binary(ti) {
                text_name(ti.name()).to_string()
            } else {
                ti.name().to_ascii_lowercase()
            };
            Column {
                name: c.name().to_string(),
                type_name,
            }
        })
        .collect()
}

fn is_binary_name(name: &str) -> bool {
    matches!(
        name,
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB"
    )
}

/// The text type a blob-named type code stands for when its collation is not `binary`.
fn text_name(name: &str) -> &'static str {
    match name {
        "BINARY" => "char",
        "VARBINARY" => "varchar",
        "TINYBLOB" => "tinytext",
        "MEDIUMBLOB" => "mediumtext",
        "LONGBLOB" => "longtext",
        _ => "text",
    }
}

/// True when the value's collation is `binary` (raw bytes), for string-family types.
fn is_binary(ti: &MySqlTypeInfo) -> bool {
    // sqlx's own test: string data is anything of a string type whose collation is not
    // `binary`.
    !<str as Type<MySql>>::compatible(ti)
}

/// A text column of a row (catalog queries), whatever the exact string type.
fn text_at(row: &MySqlRow, i: usize) -> Option<String> {
    let raw = row.try_get_raw(i).ok()?;
    let bytes = <&[u8] as Decode<MySql>>::decode(raw).ok()?;
    Some(String::from_utf8_lossy(bytes).into_owned())
}

fn bind_json<'q>(
    q: sqlx::query::Query<'q, MySql, MySqlArguments>,
    v: &'q Value,
) -> sqlx::query::Query<'q, MySql, MySqlArguments> {
    match v {
        Value::Null => q.bind(None::<String>),
        Value::Bool(b) => q.bind(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                q.bind(i)
            } else if let Some(u) = n.as_u64() {
                q.bind(u)
            } else {
                q.bind(n.as_f64())
            }
        }
        Value::String(s) => q.bind(s.as_str()),
        other => q.bind(other.to_string()),
    }
}

/// One value of a binary-protocol row as JSON, and the bytes it took on the wire.
fn value_to_json(raw: MySqlValueRef<'_>, json: bool) -> (Value, usize) {
    let ti = raw.type_info().into_owned();
    // `is_null` also reports zero dates as NULL; read the bytes first so that a zero date
    // stays `0000-00-00` rather than becoming null.
    let Ok(bytes) = <&[u8] as Decode<MySql>>::decode(raw) else {
        return (Value::Null, 0);
    };
    let kind = Kind {
        unsigned: <u64 as Type<MySql>>::compatible(&ti),
        binary: is_binary(&ti),
        json,
    };
    (binary_to_json(ti.name(), kind, bytes), bytes.len())
}

/// What the type name alone does not say about a value.
#[derive(Debug, Clone, Copy, Default)]
struct Kind {
    /// An integer column with the UNSIGNED flag.
    unsigned: bool,
    /// A string-family column with the `binary` collation.
    binary: bool,
    /// A MariaDB JSON column (LONGTEXT with a json_valid check).
    json: bool,
}

/// Converts one value in the binary protocol's form to JSON, by sqlx's type name.
/// Integers (signed and unsigned) and floats become numbers; DECIMAL stays a string (it is
/// sent as text; no float rounding); dates and times become `YYYY-MM-DD HH:MM:SS[.ffffff]`;
/// binary strings become base64; JSON is parsed; BIT becomes a number; everything else is
/// its text.
fn binary_to_json(type_name: &str, kind: Kind, b: &[u8]) -> Value {
    let text = || Value::String(String::from_utf8_lossy(b).into_owned());
    let converted = match type_name {
        "TINYINT" | "TINYINT UNSIGNED" | "BOOLEAN" => int(b, 1, kind.unsigned),
        "SMALLINT" | "SMALLINT UNSIGNED" => int(b, 2, kind.unsigned),
        "YEAR" => int(b, 2, true),
        "MEDIUMINT" | "MEDIUMINT UNSIGNED" | "INT" | "INT UNSIGNED" => int(b, 4, kind.unsigned),
        "BIGINT" | "BIGINT UNSIGNED" => int(b, 8, kind.unsigned),
        "FLOAT" => <[u8; 4]>::try_from(b).ok().and_then(|a| {
            // Through f32's shortest decimal form, so FLOAT 1.1 is 1.1, not 1.100000023841858.
            let f = f32::from_le_bytes(a);
            f.to_string()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
        }),
        "DOUBLE" => <[u8; 8]>::try_from(b)
            .ok()
            .and_then(|a| serde_json::Number::from_f64(f64::from_le_bytes(a)))
            .map(Value::Number),
        "DATE" => date_time(b, false).map(Value::String),
        "DATETIME" | "TIMESTAMP" => date_time(b, true).map(Value::String),
        "TIME" => time(b).map(Value::String),
        "BIT" if b.len() <= 8 => Some(Value::from(
            b.iter()
                .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte)),
        )),
        "JSON" => serde_json::from_slice(b).ok(),
        "NULL" => Some(Value::Null),
        "GEOMETRY" => Some(base64_value(b)),
        n if is_binary_name(n) && kind.binary => Some(base64_value(b)),
        _ if kind.json => serde_json::from_slice(b).ok(),
        _ => None,
    };
    converted.unwrap_or_else(text)
}

fn base64_value(b: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
}

/// A little-endian fixed-size integer; a value of any other length is not this type's binary
/// form and falls back to text.
fn int(b: &[u8], size: usize, unsigned: bool) -> Option<Value> {
    if b.len() != size {
        return None;
    }
    let mut buf = [0u8; 8];
    buf[..size].copy_from_slice(b);
    if unsigned {
        return Some(Value::from(u64::from_le_bytes(buf)));
    }
    // Sign-extend from the value's own width.
    let shift = 64 - 8 * size as u32;
    Some(Value::from((i64::from_le_bytes(buf) << shift) >> shift))
}

/// DATE, DATETIME, TIMESTAMP: `len, year(2), month, day[, hour, minute, second[, micros(4)]]`.
/// Length 0 is the zero date.
fn date_time(b: &[u8], with_time: bool) -> Option<String> {
    let (&len, rest) = b.split_first()?;
    let len = usize::from(len);
    if rest.len() < len || !matches!(len, 0 | 4 | 7 | 11) {
        return None;
    }
    let (year, month, day) = if len == 0 {
        (0, 0, 0)
    } else {
        (u16::from_le_bytes([rest[0], rest[1]]), rest[2], rest[3])
    };
    let date = format!("{year:04}-{month:02}-{day:02}");
    if !with_time {
        return Some(date);
    }
    let (h, m, s) = if len >= 7 {
        (rest[4], rest[5], rest[6])
    } else {
        (0, 0, 0)
    };
    let micros = if len == 11 {
        u32::from_le_bytes([rest[7], rest[8], rest[9], rest[10]])
    } else {
        0
    };
    Some(format!("{date} {h:02}:{m:02}:{s:02}{}", fraction(micros)))
}

/// TIME: `len, negative, days(4), hour, minute, second[, micros(4)]`; hours may exceed 24.
fn time(b: &[u8]) -> Option<String> {
    let (&len, rest) = b.split_first()?;
    let len = usize::from(len);
    if len == 0 {
        return Some("00:00:00".into());
    }
    if rest.len() < len || !matches!(len, 8 | 12) {
        return None;
    }
    let sign = if rest[0] == 1 { "-" } else { "" };
    let days = u64::from(u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]));
    let hours = days * 24 + u64::from(rest[5]);
    let micros = if len == 12 {
        u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]])
    } else {
        0
    };
    Some(format!(
        "{sign}{hours:02}:{:02}:{:02}{}",
        rest[6],
        rest[7],
        fraction(micros)
    ))
}

fn fraction(micros: u32) -> String {
    if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    }
}

/// The catalog tools beyond list/describe. Every value is read as text (`CAST(.. AS CHAR)`)
/// because information_schema column types differ between MySQL and MariaDB.
impl MyBackend {
    /// Tables and columns whose names match a LIKE pattern (escaped with `\`).
    pub async fn search(
        &self,
        pattern: &str,
        max: usize,
    ) -> Result<Vec<crate::tools::search_tables::SearchMatch>, GatewayError> {
        let rows = sqlx::query(
            "SELECT * FROM ( \
               SELECT CAST(TABLE_SCHEMA AS CHAR) AS s, CAST(TABLE_NAME AS CHAR) AS t, NULL AS c, NULL AS ty \
               FROM information_schema.TABLES \
               WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') \
                 AND TABLE_NAME LIKE ? ESCAPE '\\\\' \
               UNION ALL \
               SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR) \
               FROM information_schema.COLUMNS \
               WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') \
                 AND COLUMN_NAME LIKE ? ESCAPE '\\\\' \
             ) m ORDER BY s, t, c IS NOT NULL, c LIMIT ?",
        )
        .bind(pattern)
        .bind(pattern)
        .bind(max as u64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| classify(e, &[]))?;
        Ok(rows
            .iter()
            .map(|r| crate::tools::search_tables::SearchMatch {
                schema: text_at(r, 0).unwrap_or_default(),
                table: text_at(r, 1).unwrap_or_default(),
                column: text_at(r, 2),
                column_type: text_at(r, 3),
            })
            .collect())
    }

    /// Of the given functions, those that are stored functions (user-defined, in
    /// information_schema.ROUTINES), each reported as unsafe: `(name, true)`.
    pub async fn stored_functions(
        &self,
        functions: &[(Option<String>, String)],
    ) -> Result<Vec<(String, bool)>, GatewayError> {
        let mut out = Vec::new();
        for (schema, name) in functions {
            let row = sqlx::query(
                "SELECT CAST(COUNT(*) AS CHAR) FROM information_schema.ROUTINES \
                 WHERE ROUTINE_TYPE = 'FUNCTION' AND ROUTINE_NAME = ? \
                   AND ROUTINE_SCHEMA = COALESCE(?, DATABASE())",
            )
            .bind(name)
            .bind(schema.as_deref())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| classify(e, &[]))?;
            if text_at(&row, 0).is_some_and(|n| n != "0") {
                out.push((name.clone(), true));
            }
        }
        Ok(out)
    }

    /// Row estimate and sizes from information_schema, and the indexes.
    pub async fn table_stats(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<crate::tools::table_stats::TableStats, GatewayError> {
        use crate::tools::table_stats::{IndexStats, TableStats};
        let err = |e| classify(e, &[]);
        let row = sqlx::query(
            "SELECT CAST(COALESCE(TABLE_ROWS, 0) AS CHAR), CAST(COALESCE(DATA_LENGTH, 0) AS CHAR), \
                    CAST(COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) AS CHAR) \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        )
        .bind(schema)
        .bind(table)
        .fetch_one(&self.pool)
        .await
        .map_err(err)?;
        let num = |i| text_at(&row, i).and_then(|s| s.parse::<i64>().ok());
        let idx = sqlx::query(
            "SELECT CAST(INDEX_NAME AS CHAR), \
                    CAST(GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ', ') AS CHAR), \
                    CAST(MIN(NON_UNIQUE) AS CHAR) \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             GROUP BY INDEX_NAME ORDER BY INDEX_NAME",
        )
        .bind(schema)
        .bind(table)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        Ok(TableStats {
            schema: schema.to_string(),
            table: table.to_string(),
            row_estimate: num(0).unwrap_or(0),
            exact: false,
            table_bytes: num(1),
            total_bytes: num(2),
            columns: Vec::new(),
            indexes: idx
                .iter()
                .map(|r| {
                    let name = text_at(r, 0).unwrap_or_default();
                    let unique = text_at(r, 2).as_deref() == Some("0");
                    IndexStats {
                        definition: format!(
                            "{}KEY {} ({})",
                            if unique { "UNIQUE " } else { "" },
                            quote_ident(&name),
                            text_at(r, 1).unwrap_or_default()
                        ),
                        name,
                        size_bytes: None,
                    }
                })
                .collect(),
        })
    }

    /// What the login user could do: global, database and table privileges that write.
    pub async fn posture(
        &self,
    ) -> Result<crate::tools::security_posture::RolePosture, GatewayError> {
        let err = |e| classify(e, &[]);
        let who = sqlx::query("SELECT CAST(CURRENT_USER() AS CHAR)")
            .fetch_one(&self.pool)
            .await
            .map_err(err)?;
        let role = text_at(&who, 0).unwrap_or_default();
        // GRANTEE looks like 'user'@'host', which is how CURRENT_USER() is quoted there.
        let grantee = match role.rsplit_once('@') {
            Some((u, h)) => format!("'{u}'@'{h}'"),
            None => role.clone(),
        };
        let privs = sqlx::query(
            "SELECT CAST(PRIVILEGE_TYPE AS CHAR), 'global' FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ? \
             UNION ALL SELECT CAST(PRIVILEGE_TYPE AS CHAR), 'schema' FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ? \
             UNION ALL SELECT CAST(PRIVILEGE_TYPE AS CHAR), 'table' FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE = ?",
        )
        .bind(&grantee)
        .bind(&grantee)
        .bind(&grantee)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        const WRITE: &[&str] = &[
            "INSERT",
            "UPDATE",
            "DELETE",
            "DROP",
            "ALTER",
            "CREATE",
            "INDEX",
            "TRIGGER",
            "EXECUTE",
            "CREATE ROUTINE",
            "ALTER ROUTINE",
            "EVENT",
            "LOCK TABLES",
        ];
        const DANGEROUS: &[&str] = &[
            "FILE",
            "SUPER",
            "PROCESS",
            "SHUTDOWN",
            "GRANT OPTION",
            "CREATE USER",
            "RELOAD",
            "BINLOG ADMIN",
            "CONNECTION ADMIN",
        ];
        let mut writes = 0i64;
        let mut superuser = false;
        let mut can_create = false;
        let mut dangerous = Vec::new();
        for r in &privs {
            let p = text_at(r, 0).unwrap_or_default();
            let scope = text_at(r, 1).unwrap_or_default();
            if p == "SUPER" || (scope == "global" && p == "ALL PRIVILEGES") {
                superuser = true;
            }
            if WRITE.contains(&p.as_str()) {
                writes += 1;
                if p.starts_with("CREATE") {
                    can_create = true;
                }
            }
            if DANGEROUS.contains(&p.as_str()) && !dangerous.contains(&p) {
                dangerous.push(p);
            }
        }
        Ok(crate::tools::security_posture::RolePosture {
            role,
            superuser,
            writable_tables: writes,
            can_create,
            can_write: superuser || writes > 0 || !dangerous.is_empty(),
            dangerous_roles: dangerous,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SIGNED: Kind = Kind {
        unsigned: false,
        binary: false,
        json: false,
    };
    const UNSIGNED: Kind = Kind {
        unsigned: true,
        binary: false,
        json: false,
    };
    const BINARY: Kind = Kind {
        unsigned: false,
        binary: true,
        json: false,
    };

    #[test]
    fn binary_forms_become_faithful_json() {
        assert_eq!(binary_to_json("TINYINT", SIGNED, &[0xff]), json!(-1));
        assert_eq!(
            binary_to_json("TINYINT UNSIGNED", UNSIGNED, &[0xff]),
            json!(255)
        );
        assert_eq!(
            binary_to_json("SMALLINT", SIGNED, &[0x00, 0x80]),
            json!(-32768)
        );
        assert_eq!(
            binary_to_json("INT", SIGNED, &(-5i32).to_le_bytes()),
            json!(-5)
        );
        assert_eq!(
            binary_to_json("BIGINT UNSIGNED", UNSIGNED, &u64::MAX.to_le_bytes()),
            json!(u64::MAX)
        );
        assert_eq!(
            binary_to_json("BIGINT", SIGNED, &i64::MIN.to_le_bytes()),
            json!(i64::MIN)
        );
        assert_eq!(
            binary_to_json("FLOAT", SIGNED, &1.1f32.to_le_bytes()),
            json!(1.1)
        );
        assert_eq!(
            binary_to_json("DOUBLE", SIGNED, &2.5f64.to_le_bytes()),
            json!(2.5)
        );
        assert_eq!(
            binary_to_json("DECIMAL", SIGNED, b"12345678901234567890.10"),
            json!("12345678901234567890.10")
        );
        assert_eq!(
            binary_to_json("DATE", SIGNED, &[4, 0xe9, 0x07, 1, 2]),
            json!("2025-01-02")
        );
        assert_eq!(
            binary_to_json("DATETIME", SIGNED, &[7, 0xe9, 0x07, 1, 2, 3, 4, 5]),
            json!("2025-01-02 03:04:05")
        );
        assert_eq!(
            binary_to_json(
                "TIMESTAMP",
                SIGNED,
                &[11, 0xe9, 0x07, 1, 2, 3, 4, 5, 0x40, 0xe2, 0x01, 0]
            ),
            json!("2025-01-02 03:04:05.123456")
        );
        assert_eq!(
            binary_to_json("DATETIME", SIGNED, &[0]),
            json!("0000-00-00 00:00:00")
        );
        assert_eq!(
            binary_to_json("TIME", SIGNED, &[8, 1, 1, 0, 0, 0, 2, 3, 4]),
            json!("-26:03:04")
        );
        assert_eq!(binary_to_json("TIME", SIGNED, &[0]), json!("00:00:00"));
        assert_eq!(binary_to_json("BIT", UNSIGNED, &[0x01, 0x02]), json!(258));
        assert_eq!(binary_to_json("BLOB", BINARY, &[0, 0xff]), json!("AP8="));
        assert_eq!(binary_to_json("BLOB", SIGNED, b"text"), json!("text"));
        assert_eq!(
            binary_to_json("JSON", SIGNED, br#"{"a": [1, 2]}"#),
            json!({"a": [1, 2]})
        );
        let json_kind = Kind {
            json: true,
            ..SIGNED
        };
        assert_eq!(
            binary_to_json("LONGBLOB", json_kind, br#"[1, "x"]"#),
            json!([1, "x"])
        );
        assert_eq!(binary_to_json("LONGTEXT", SIGNED, b"[1]"), json!("[1]"));
        assert_eq!(binary_to_json("ENUM", SIGNED, b"red"), json!("red"));
        assert_eq!(
            binary_to_json("VARCHAR", SIGNED, "héllo".as_bytes()),
            json!("héllo")
        );
    }

    #[test]
    fn timeouts_use_each_servers_variable_and_unit() {
        assert_eq!(
            timeout_assignment(true, 2_500),
            "max_statement_time = 2.500"
        );
        assert_eq!(
            timeout_assignment(true, 30_000),
            "max_statement_time = 30.000"
        );
        assert_eq!(
            timeout_assignment(false, 2_500),
            "max_execution_time = 2500"
        );
    }
}
