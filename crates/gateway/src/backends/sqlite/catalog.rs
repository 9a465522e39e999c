//! The catalog reads the tools need: tables, one table's structure, name search, and a
//! table's row count and indexes. They run on catalog checkouts (no authorizer: they read
//! `pragma_*` functions), with names bound as parameters, never spliced, except the row
//! count's table name, which the caller resolved in the catalog and which is quoted. Each
//! runs under the statement timeout and is interrupted when its call is abandoned
//! ([`SqliteBackend::catalog`]).

use super::pool::classify;
use super::{ColumnInfo, ForeignKey, SqliteBackend, TableDescription, TableInfo};
use crate::error::GatewayError;

impl SqliteBackend {
    /// Tables and views.
    pub async fn list_tables(&self, max: usize) -> Result<Vec<TableInfo>, GatewayError> {
        self.catalog(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT name, type FROM sqlite_schema WHERE type IN ('table','view') \
                     AND name NOT LIKE 'sqlite_%' ORDER BY name LIMIT ?1",
                )
                .map_err(classify)?;
            let rows = stmt
                .query_map([max as i64], |r| {
                    Ok(TableInfo {
                        schema: "main".into(),
                        name: r.get(0)?,
                        kind: r.get(1)?,
                    })
                })
                .map_err(classify)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(classify)
        })
        .await
    }

    /// Columns, keys and indexes of one table (names checked against the catalog).
    pub async fn describe_table(&self, table: &str) -> Result<TableDescription, GatewayError> {
        let table = table.to_string();
        self.catalog(move |conn| {
            let exists: Option<String> = conn
                .query_row(
                    "SELECT name FROM sqlite_schema WHERE type IN ('table','view') AND name = ?1",
                    [&table],
                    |r| r.get(0),
                )
                .ok();
            let Some(name) = exists else {
                return Err(GatewayError::UnknownTable(table));
            };
            let mut stmt = conn
                .prepare("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid")
                .map_err(classify)?;
            let mut pk: Vec<(i64, String)> = Vec::new();
            let mut columns = Vec::new();
            let rows = stmt
                .query_map([&name], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .map_err(classify)?;
            for row in rows {
                let (col, ty, notnull, default, pkpos) = row.map_err(classify)?;
                if pkpos > 0 {
                    pk.push((pkpos, col.clone()));
                }
                columns.push(ColumnInfo {
                    name: col,
                    type_name: ty,
                    nullable: notnull == 0,
                    default,
                    comment: None,
                });
            }
            pk.sort();
            let mut stmt = conn
                .prepare("SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list(?1)")
                .map_err(classify)?;
            let foreign_keys = stmt
                .query_map([&name], |r| {
                    Ok(ForeignKey {
                        column: r.get(0)?,
                        references_table: r.get(1)?,
                        references_column: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    })
                })
                .map_err(classify)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(classify)?;
            let mut stmt = conn
                .prepare("SELECT coalesce(sql, name) FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?1 ORDER BY name")
                .map_err(classify)?;
            let indexes = stmt
                .query_map([&name], |r| r.get(0))
                .map_err(classify)?
                .collect::<Result<Vec<String>, _>>()
                .map_err(classify)?;
            Ok(TableDescription {
                schema: "main".into(),
                name,
                columns,
                primary_key: pk.into_iter().map(|p| p.1).collect(),
                foreign_keys,
                indexes,
                comment: None,
            })
        })
        .await
    }

    /// Tables and columns whose names match a LIKE pattern (escaped with `\`).
    pub async fn search(
        &self,
        pattern: &str,
        max: usize,
    ) -> Result<Vec<crate::tools::search_tables::SearchMatch>, GatewayError> {
        let pattern = pattern.to_string();
        self.catalog(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT * FROM ( \
                       SELECT m.name AS t, NULL AS c, NULL AS ty FROM sqlite_schema m \
                       WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%' AND m.name LIKE ?1 ESCAPE '\\' \
                       UNION ALL \
                       SELECT m.name, p.name, p.type FROM sqlite_schema m JOIN pragma_table_info(m.name) p \
                       WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%' AND p.name LIKE ?1 ESCAPE '\\' \
                     ) ORDER BY t, c NULLS FIRST LIMIT ?2",
                )
                .map_err(classify)?;
            let rows = stmt
                .query_map(rusqlite::params![pattern, max as i64], |r| {
                    Ok(crate::tools::search_tables::SearchMatch {
                        schema: "main".into(),
                        table: r.get(0)?,
                        column: r.get(1)?,
                        column_type: r.get(2)?,
                    })
                })
                .map_err(classify)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(classify)
        })
        .await
    }

    /// An exact row count (SQLite keeps no estimate), under the timeout, and the indexes.
    pub async fn table_stats(
        &self,
        table: &str,
        timeout_ms: u64,
    ) -> Result<crate::tools::table_stats::TableStats, GatewayError> {
        use crate::tools::table_stats::{IndexStats, TableStats};
        let table = table.to_string();
        self.catalog_within(timeout_ms, move |conn| {
            // `table` was resolved in the catalog by the caller; quoted all the same.
            let count: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM \"{}\"", table.replace('"', "\"\"")),
                    [],
                    |r| r.get(0),
                )
                .map_err(classify)?;
            let mut stmt = conn
                .prepare("SELECT name, coalesce(sql, '') FROM sqlite_schema WHERE type = 'index' AND tbl_name = ?1 ORDER BY name")
                .map_err(classify)?;
            let indexes = stmt
                .query_map([&table], |r| {
                    Ok(IndexStats {
                        name: r.get(0)?,
                        size_bytes: None,
                        definition: r.get(1)?,
                    })
                })
                .map_err(classify)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(classify)?;
            Ok(TableStats {
                schema: "main".into(),
                table,
                row_estimate: count,
                exact: true,
                table_bytes: None,
                total_bytes: None,
                columns: Vec::new(),
                indexes,
            })
        })
        .await
    }
}
