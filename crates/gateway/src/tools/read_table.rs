//! `read_table`: rows of one table with structured filters. Identifiers are checked against
//! the catalog (`describe_table`) and quoted; values are bound as parameters, never spliced.
//! The SQL built here then goes through the policy like any query, so deny-lists apply.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{placeholder, quote};
use crate::backends::QueryResult;
use crate::{Gateway, GatewayError};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterOp {
    /// `=`
    #[serde(rename = "=")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `LIKE` (case-sensitive where the database is)
    #[serde(rename = "like")]
    Like,
    /// case-insensitive `LIKE`
    #[serde(rename = "ilike")]
    Ilike,
    /// `IN (...)`: the value is an array of 1 to 100 items
    #[serde(rename = "in")]
    In,
    /// `IS NULL` (no value)
    #[serde(rename = "is_null")]
    IsNull,
    /// `IS NOT NULL` (no value)
    #[serde(rename = "is_not_null")]
    IsNotNull,
}

/// One `{column, op, value}` filter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// A column of the table.
    pub column: String,
    /// The operator.
    pub op: FilterOp,
    /// The value (absent for `is_null` / `is_not_null`).
    #[serde(default)]
    pub value: Option<Value>,
}

/// One ORDER BY column.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderBy {
    /// A column of the table.
    pub column: String,
    /// Descending order.
    #[serde(default)]
    pub descending: bool,
}

/// What `read_table` reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadTableRequest {
    /// The table.
    pub table: String,
    /// Its schema (default: the search path / current database).
    #[serde(default)]
    pub schema: Option<String>,
    /// Columns to return (default all).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Filters, combined with AND.
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// Sort order.
    #[serde(default)]
    pub order_by: Vec<OrderBy>,
    /// Rows to return, 1 to `limits.read_table_max_rows` (default that maximum).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Rows to skip.
    #[serde(default)]
    pub offset: Option<u64>,
}

/// Most values an `in` filter takes.
const MAX_IN_VALUES: usize = 100;

impl Gateway {
    /// Reads rows of one table.
    pub async fn read_table(
        &self,
        id: &str,
        req: &ReadTableRequest,
    ) -> Result<QueryResult, GatewayError> {
        let call = self.begin("read_table", Some(id), None).await?;
        let result = async {
            let max = call.grants.limits.read_table_max_rows;
            let limit = req.limit.unwrap_or(max);
            if limit == 0 || limit > max {
                return Err(GatewayError::InvalidInput(format!(
                    "limit must be between 1 and {max}"
                )));
            }
            if req.filters.len() > 20 || req.order_by.len() > 10 {
                return Err(GatewayError::InvalidInput(
                    "at most 20 filters and 10 sort columns".into(),
                ));
            }
            let desc = self.describe(id, req.schema.as_deref(), &req.table).await?;
            let open = self.get(id)?;
            let kind = open.info.kind;
            let known = |c: &str| -> Result<String, GatewayError> {
                if desc.columns.iter().any(|col| col.name == c) {
                    Ok(quote(kind, c))
                } else {
                    Err(GatewayError::InvalidInput(format!(
                        "table `{}` has no column `{c}`",
                        desc.name
                    )))
                }
            };
            let select = match &req.columns {
                Some(cols) if !cols.is_empty() => cols
                    .iter()
                    .map(|c| known(c))
                    .collect::<Result<Vec<_>, _>>()?
                    .join(", "),
                _ => "*".to_string(),
            };
            let table = if kind == crate::DbKind::Sqlite {
                quote(kind, &desc.name)
            } else {
                format!("{}.{}", quote(kind, &desc.schema), quote(kind, &desc.name))
            };
            let mut params: Vec<Value> = Vec::new();
            // PostgreSQL types its parameters strictly: cast each to the column's own type (the
            // catalog's `format_type`, not client text) so `'2025-01-01'` compares with a date.
            let col_type = |c: &str| {
                desc.columns
                    .iter()
                    .find(|col| col.name == c)
                    .map(|col| col.type_name.clone())
                    .unwrap_or_default()
            };
            let next = |v: Value, column: &str, params: &mut Vec<Value>| {
                params.push(v);
                let ph = placeholder(kind, params.len());
                if kind == crate::DbKind::Postgresql {
                    format!("CAST({ph} AS {})", col_type(column))
                } else {
                    ph
                }
            };
            let mut wheres = Vec::new();
            for f in &req.filters {
                let col = known(&f.column)?;
                let value = || {
                    f.value.clone().filter(|v| !v.is_null()).ok_or_else(|| {
                        GatewayError::InvalidInput(format!(
                            "filter on `{}` needs a value",
                            f.column
                        ))
                    })
                };
                let clause = match f.op {
                    FilterOp::IsNull => format!("{col} IS NULL"),
                    FilterOp::IsNotNull => format!("{col} IS NOT NULL"),
                    FilterOp::In => {
                        let items = match value()? {
                            Value::Array(items)
                                if !items.is_empty() && items.len() <= MAX_IN_VALUES =>
                            {
                                items
                            }
                            _ => {
                                return Err(GatewayError::InvalidInput(format!(
                                    "`in` takes an array of 1 to {MAX_IN_VALUES} values"
                                )));
                            }
                        };
                        let ph: Vec<String> = items
                            .into_iter()
                            .map(|v| next(v, &f.column, &mut params))
                            .collect();
                        format!("{col} IN ({})", ph.join(", "))
                    }
                    FilterOp::Ilike | FilterOp::Like => {
                        let v = value()?;
                        if !v.is_string() {
                            return Err(GatewayError::InvalidInput(format!(
                                "`like`/`ilike` on `{}` take a string pattern",
                                f.column
                            )));
                        }
                        params.push(v);
                        let ph = placeholder(kind, params.len());
                        match (f.op, kind) {
                            (FilterOp::Like, crate::DbKind::Postgresql) => {
                                format!("{col}::text LIKE {ph}")
                            }
                            (FilterOp::Like, _) => format!("{col} LIKE {ph}"),
                            (_, crate::DbKind::Postgresql) => format!("{col}::text ILIKE {ph}"),
                            _ => format!("LOWER({col}) LIKE LOWER({ph})"),
                        }
                    }
                    op => {
                        let sym = match op {
                            FilterOp::Eq => "=",
                            FilterOp::Ne => "<>",
                            FilterOp::Lt => "<",
                            FilterOp::Le => "<=",
                            FilterOp::Gt => ">",
                            _ => ">=",
                        };
                        let v = value()?;
                        if matches!(v, Value::Array(_) | Value::Object(_)) {
                            return Err(GatewayError::InvalidInput(format!(
                                "filter on `{}` takes a scalar value",
                                f.column
                            )));
                        }
                        format!("{col} {sym} {}", next(v, &f.column, &mut params))
                    }
                };
                wheres.push(clause);
            }
            let mut sql = format!("SELECT {select} FROM {table}");
            if !wheres.is_empty() {
                sql.push_str(" WHERE ");
                sql.push_str(&wheres.join(" AND "));
            }
            if !req.order_by.is_empty() {
                let parts = req
                    .order_by
                    .iter()
                    .map(|o| {
                        Ok(format!(
                            "{} {}",
                            known(&o.column)?,
                            if o.descending { "DESC" } else { "ASC" }
                        ))
                    })
                    .collect::<Result<Vec<String>, GatewayError>>()?;
                sql.push_str(" ORDER BY ");
                sql.push_str(&parts.join(", "));
            }
            // Numbers validated above, not client text. One row more than asked for, so the
            // cap (at `limit`) can say whether the table had more: `truncated`.
            sql.push_str(&format!(" LIMIT {}", limit + 1));
            if let Some(off) = req.offset.filter(|o| *o > 0) {
                sql.push_str(&format!(" OFFSET {off}"));
            }
            self.run_checked(&open, &sql, &params, limit, &call).await
        }
        .await;
        self.finish(call, result).await
    }
}
