//! `explain_query`: the plan of an allowed query, as JSON where the database offers it.
//! ANALYZE runs the query, so it is offered only for a query the policy allows, and still
//! inside the rolled-back read-only transaction (the EXPLAIN statement itself goes through
//! the policy too).

use serde::Serialize;
use serde_json::Value;

use crate::{Backend, Gateway, GatewayError};

/// A query plan.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainResult {
    /// The plan: PostgreSQL's `FORMAT JSON` document, or SQLite's query-plan rows.
    pub plan: Value,
    /// Whether the query was run (EXPLAIN ANALYZE).
    pub analyzed: bool,
}

impl Gateway {
    /// Explains a query; `analyze` runs it (PostgreSQL only).
    pub async fn explain_query(
        &self,
        id: &str,
        query: &str,
        analyze: bool,
    ) -> Result<ExplainResult, GatewayError> {
        let call = self.begin("explain_query", Some(id), Some(query)).await?;
        let result = async {
            let open = self.get(id)?;
            // The inner query must be one the policy allows by itself.
            let verdict = call.grants.policy.check(open.info.kind.dialect(), query);
            if !verdict.is_allowed() {
                return Err(GatewayError::refused(verdict));
            }
            if !matches!(
                verdict.kind,
                Some(dbward_policy::StatementKind::Select | dbward_policy::StatementKind::Values)
            ) {
                return Err(GatewayError::InvalidInput(
                    "explain_query takes a SELECT (or VALUES) query".into(),
                ));
            }
            let query = query.trim().trim_end_matches(';');
            match &open.backend {
                Backend::Postgres(_) => {
                    let sql = if analyze {
                        format!("EXPLAIN (FORMAT JSON, ANALYZE, BUFFERS) {query}")
                    } else {
                        format!("EXPLAIN (FORMAT JSON) {query}")
                    };
                    let r = self.run_checked(&open, &sql, &[], 10, &call).await?;
                    let plan = r
                        .rows
                        .first()
                        .and_then(|row| row.first())
                        .cloned()
                        .unwrap_or(Value::Null);
                    Ok(ExplainResult {
                        plan,
                        analyzed: analyze,
                    })
                }
                Backend::Mysql(_) => {
                    if analyze {
                        return Err(GatewayError::InvalidInput(
                            "EXPLAIN ANALYZE is offered on PostgreSQL only; ask without analyze"
                                .into(),
                        ));
                    }
                    let sql = format!("EXPLAIN FORMAT=JSON {query}");
                    let r = self.run_checked(&open, &sql, &[], 10, &call).await?;
                    let text = r
                        .rows
                        .first()
                        .and_then(|row| row.first())
                        .cloned()
                        .unwrap_or(Value::Null);
                    // The plan arrives as a JSON document in a text column.
                    let plan = match &text {
                        Value::String(s) => serde_json::from_str(s).unwrap_or(text),
                        _ => text,
                    };
                    Ok(ExplainResult {
                        plan,
                        analyzed: false,
                    })
                }
                Backend::Sqlite(_) => {
                    if analyze {
                        return Err(GatewayError::InvalidInput(
                            "SQLite has no EXPLAIN ANALYZE; ask without analyze".into(),
                        ));
                    }
                    let sql = format!("EXPLAIN QUERY PLAN {query}");
                    let r = self.run_checked(&open, &sql, &[], 1_000, &call).await?;
                    let steps: Vec<Value> = r
                        .rows
                        .iter()
                        .map(|row| {
                            serde_json::json!({
                                "id": row.first(), "parent": row.get(1), "detail": row.get(3)
                            })
                        })
                        .collect();
                    Ok(ExplainResult {
                        plan: Value::Array(steps),
                        analyzed: false,
                    })
                }
            }
        }
        .await;
        self.finish(call, result).await
    }
}
