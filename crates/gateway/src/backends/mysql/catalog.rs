//! The catalog reads the tools need: tables, descriptions, search, statistics, stored
//! functions and the login user's posture. Names are always bound parameters, never
//! spliced; every value is read as text because information_schema column types differ
//! between MySQL and MariaDB.

use sqlx::mysql::{MySqlColumn, MySqlConnection, MySqlRow};
use sqlx::{AssertSqlSafe, Column as _, ColumnOrigin, TypeInfo};

use super::types::text_at;
use super::{MyBackend, classify};
use crate::backends::{ColumnInfo, ForeignKey, TableDescription, TableInfo};
use crate::error::GatewayError;

/// Schemas that belong to the server, not to the user's data.
const SYSTEM_SCHEMAS: &str = "'mysql', 'information_schema', 'performance_schema', 'sys'";

impl MyBackend {
    /// Tables and views in one database (default: the connection's current database; with
    /// none, every non-system database), at most `max`.
    pub async fn list_tables(
        &self,
        schema: Option<&str>,
        max: usize,
    ) -> Result<Vec<TableInfo>, GatewayError> {
        let q = sqlx::query(AssertSqlSafe(format!(
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
        .bind(max as u64);
        let rows = self
            .bounded_catalog(async |c| q.fetch_all(&mut *c).await.map_err(|e| classify(e, &[])))
            .await?;
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
    /// match, on a bounded catalog checkout.
    pub async fn resolve_table(
        &self,
        schema: Option<&str>,
        table: &str,
    ) -> Result<(String, String, Option<String>), GatewayError> {
        self.bounded_catalog(async |c| resolve_table_on(c, schema, table).await)
            .await
    }

    /// Columns, keys, indexes and comments of one table.
    pub async fn describe_table(
        &self,
        schema: Option<&str>,
        table: &str,
    ) -> Result<TableDescription, GatewayError> {
        self.bounded_catalog(async |c| self.describe_on(c, schema, table).await)
            .await
    }

    async fn describe_on(
        &self,
        conn: &mut MySqlConnection,
        schema: Option<&str>,
        table: &str,
    ) -> Result<TableDescription, GatewayError> {
        let (schema, name, comment) = resolve_table_on(conn, schema, table).await?;
        let err = |e| classify(e, &[]);
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
            json_checked_columns(conn, &schema, &name).await?
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

/// Resolves a table name against the catalog on `conn`: `(database, name, comment)` of the
/// one match. The name is a bound parameter, never spliced.
async fn resolve_table_on(
    conn: &mut MySqlConnection,
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
    .fetch_optional(&mut *conn)
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
pub(super) async fn mariadb_json_columns(
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

/// The catalog tools beyond list/describe. Every value is read as text (`CAST(.. AS CHAR)`)
/// because information_schema column types differ between MySQL and MariaDB.
impl MyBackend {
    /// Tables and columns whose names match a LIKE pattern (escaped with `\`).
    pub async fn search(
        &self,
        pattern: &str,
        max: usize,
    ) -> Result<Vec<crate::tools::search_tables::SearchMatch>, GatewayError> {
        let q = sqlx::query(
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
        .bind(max as u64);
        let rows = self
            .bounded_catalog(async |c| q.fetch_all(&mut *c).await.map_err(|e| classify(e, &[])))
            .await?;
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

    /// Row estimate and sizes from information_schema, and the indexes.
    pub async fn table_stats(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<crate::tools::table_stats::TableStats, GatewayError> {
        use crate::tools::table_stats::{IndexStats, TableStats};
        let err = |e| classify(e, &[]);
        let (row, idx) = self
            .bounded_catalog(async |c| {
                let row = sqlx::query(
            "SELECT CAST(COALESCE(TABLE_ROWS, 0) AS CHAR), CAST(COALESCE(DATA_LENGTH, 0) AS CHAR), \
                    CAST(COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) AS CHAR) \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        )
        .bind(schema)
        .bind(table)
        .fetch_one(&mut *c)
        .await
        .map_err(err)?;
                let idx = sqlx::query(
                    "SELECT CAST(INDEX_NAME AS CHAR), \
                    CAST(GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ', ') AS CHAR), \
                    CAST(MIN(NON_UNIQUE) AS CHAR) \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             GROUP BY INDEX_NAME ORDER BY INDEX_NAME",
                )
                .bind(schema)
                .bind(table)
                .fetch_all(&mut *c)
                .await
                .map_err(err)?;
                Ok((row, idx))
            })
            .await?;
        let num = |i| text_at(&row, i).and_then(|s| s.parse::<i64>().ok());
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
        let mut conn = self.pool.acquire().await.map_err(|e| classify(e, &[]))?;
        posture_on(&mut conn).await
    }
}

/// [`MyBackend::posture`] on a given connection.
pub(crate) async fn posture_on(
    conn: &mut sqlx::MySqlConnection,
) -> Result<crate::tools::security_posture::RolePosture, GatewayError> {
    let err = |e| classify(e, &[]);
    let who = sqlx::query("SELECT CAST(CURRENT_USER() AS CHAR)")
        .fetch_one(&mut *conn)
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
        .fetch_all(&mut *conn)
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
        ..Default::default()
    })
}
