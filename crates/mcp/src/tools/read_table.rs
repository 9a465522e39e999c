//! `read_table`: rows of one table with structured filters, sort and paging. The filters
//! are data (column, operator, value); the gateway checks every name against the catalog
//! and binds every value as a parameter, so no SQL text comes from the client here.

use dbward_gateway::tools::read_table::{Filter, FilterOp, OrderBy, ReadTableRequest};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::CONNECTION_ID_DOC;
use crate::render;
use crate::server::{DbwardServer, answer};

/// Arguments of `read_table`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadTableArgs {
    #[serde(default)]
    #[schemars(description = CONNECTION_ID_DOC, regex(pattern = r"^[0-9a-fA-F]{32}$"))]
    pub connection_id: Option<String>,
    /// The table or view name (without the schema).
    #[schemars(length(min = 1, max = 63))]
    pub table: String,
    /// Its schema. Default: the connection's search path / current database.
    #[serde(default)]
    #[schemars(length(min = 1, max = 63))]
    pub schema: Option<String>,
    /// Columns to return, in order. Default: all columns.
    #[serde(default)]
    #[schemars(length(min = 1, max = 100))]
    pub columns: Option<Vec<String>>,
    /// Conditions, all of which must hold (AND). At most 20.
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub filters: Vec<FilterArg>,
    /// Sort order, first entry first. At most 10.
    #[serde(default)]
    #[schemars(length(max = 10))]
    pub order_by: Vec<OrderByArg>,
    /// Rows to return. Default and maximum: the server's read_table cap (100 unless configured).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<usize>,
    /// Rows to skip first, for paging (use with order_by for a stable order).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub offset: Option<u64>,
}

/// One condition.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterArg {
    /// A column of the table.
    #[schemars(length(min = 1, max = 63))]
    pub column: String,
    /// The comparison: = != < <= > >= (compare with value); like / ilike (SQL pattern: % any run, _ one character; ilike ignores case); in (value is an array); is_null / is_not_null (no value).
    pub op: FilterOpArg,
    /// The value to compare with: a string, number or boolean; for `in`, an array of 1 to 100 of them; omit it for is_null and is_not_null.
    #[serde(default)]
    pub value: Option<Value>,
}

// No per-variant docs: with them schemars writes `oneOf` of consts; without, a plain
// `enum` list, which every client understands. The `op` field documents the operators.
/// A comparison operator.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
pub enum FilterOpArg {
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "like")]
    Like,
    #[serde(rename = "ilike")]
    Ilike,
    #[serde(rename = "in")]
    In,
    #[serde(rename = "is_null")]
    IsNull,
    #[serde(rename = "is_not_null")]
    IsNotNull,
}

/// One sort key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderByArg {
    /// A column of the table.
    #[schemars(length(min = 1, max = 63))]
    pub column: String,
    /// Sort descending (largest first). Default false.
    #[serde(default)]
    pub descending: bool,
}

impl From<FilterOpArg> for FilterOp {
    fn from(op: FilterOpArg) -> FilterOp {
        match op {
            FilterOpArg::Eq => FilterOp::Eq,
            FilterOpArg::Ne => FilterOp::Ne,
            FilterOpArg::Lt => FilterOp::Lt,
            FilterOpArg::Le => FilterOp::Le,
            FilterOpArg::Gt => FilterOp::Gt,
            FilterOpArg::Ge => FilterOp::Ge,
            FilterOpArg::Like => FilterOp::Like,
            FilterOpArg::Ilike => FilterOp::Ilike,
            FilterOpArg::In => FilterOp::In,
            FilterOpArg::IsNull => FilterOp::IsNull,
            FilterOpArg::IsNotNull => FilterOp::IsNotNull,
        }
    }
}

impl From<ReadTableArgs> for ReadTableRequest {
    fn from(a: ReadTableArgs) -> ReadTableRequest {
        ReadTableRequest {
            table: a.table,
            schema: a.schema,
            columns: a.columns,
            filters: a
                .filters
                .into_iter()
                .map(|f| Filter {
                    column: f.column,
                    op: f.op.into(),
                    value: f.value,
                })
                .collect(),
            order_by: a
                .order_by
                .into_iter()
                .map(|o| OrderBy {
                    column: o.column,
                    descending: o.descending,
                })
                .collect(),
            limit: a.limit,
            offset: a.offset,
        }
    }
}

const DESCRIPTION: &str = "Read rows of one table without writing SQL: choose columns, filter with {column, op, value} conditions (AND-ed; op is one of = != < <= > >= like ilike in is_null is_not_null), sort, and page with limit/offset. Returns at most the server's read_table cap (100 rows by default) and says when more rows exist (truncated). Values are bound as parameters, never spliced into SQL. Example: {\"table\": \"servers\", \"columns\": [\"hostname\", \"status\"], \"filters\": [{\"column\": \"status\", \"op\": \"=\", \"value\": \"retired\"}], \"order_by\": [{\"column\": \"hostname\"}], \"limit\": 20}";

#[tool_router(router = read_table_router, vis = "pub(crate)")]
impl DbwardServer {
    #[tool(
        name = "read_table",
        description = DESCRIPTION,
        output_schema = super::rows_output_schema(),
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn read_table(&self, Parameters(args): Parameters<ReadTableArgs>) -> CallToolResult {
        let id = self.connection(args.connection_id.as_deref()).to_string();
        let request = ReadTableRequest::from(args);
        answer(self.gateway.read_table(&id, &request).await, render::query)
    }
}
