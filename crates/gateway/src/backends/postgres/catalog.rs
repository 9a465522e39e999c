//! Catalog reads for the tools (tables, descriptions, search, statistics, posture), each
//! on a checkout that runs under timeouts and is cancelled when its call is abandoned.

use sqlx::Row;

use super::catalog_conn::CatalogConn;
use super::{PgBackend, classify};
use crate::backends::{ColumnInfo, ForeignKey, TableDescription, TableInfo};
use crate::error::GatewayError;

impl PgBackend {
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

    /// What the serving role (the reader role if configured) can read of the denied data,
    /// and how much owner code it can run.
    pub async fn exposure(
        &self,
        denied: &[super::grants::DenyLookup],
    ) -> Result<super::grants::Exposure, GatewayError> {
        super::grants::exposure(&self.pool, self.reader_role.as_deref(), denied).await
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
        let mut conn = self.pool.acquire().await.map_err(|e| classify(e, &[]))?;
        posture_on(&mut conn, self.reader_role.as_deref()).await
    }
}

/// [`PgBackend::posture`] on a given connection, for `reader_role` (or the login role).
pub(crate) async fn posture_on(
    conn: &mut sqlx::PgConnection,
    reader_role: Option<&str>,
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
            .bind(reader_role)
            .fetch_one(conn)
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
