//! Who is calling, and the audit entry of every call.
//!
//! Adapters (MCP, web) run each call inside [`with_context`] with the authenticated
//! principal and client name; the gateway reads it from a task-local, so no signature
//! carries it and no global state holds it. Every public tool method brackets its work with
//! [`Gateway::begin`] and [`Gateway::finish`]: `finish` writes the audit entry and, if it
//! cannot, withholds the result (fail closed).
//!
//! Invariant: an entry holds the connection's *name* and the query's SHA-256 — never a
//! password, token or connection string — and the query text only when configured.

use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::audit::Entry;
use crate::audit::chain::sha256_hex;
use crate::{Gateway, GatewayError};

/// The caller of a gateway call.
#[derive(Debug, Clone, Serialize)]
pub struct CallContext {
    /// The authenticated principal (token name, web user, or `local` for stdio).
    pub principal: String,
    /// The client's own name (MCP clientInfo, HTTP peer, browser session), if known.
    pub client: Option<String>,
}

impl CallContext {
    /// The context of an unauthenticated local caller (stdio, CLI, tests).
    pub fn local() -> CallContext {
        CallContext {
            principal: "local".into(),
            client: None,
        }
    }
}

tokio::task_local! {
    static CONTEXT: CallContext;
}

/// Runs `f` as a call by `ctx`.
pub async fn with_context<F: std::future::Future>(ctx: CallContext, f: F) -> F::Output {
    CONTEXT.scope(ctx, f).await
}

/// The caller of the current task (`local` outside any context).
pub fn current_context() -> CallContext {
    CONTEXT
        .try_with(Clone::clone)
        .unwrap_or_else(|_| CallContext::local())
}

/// What a call learned on its way, for its audit entry.
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// The SQL a tool built and ran (when the caller did not send SQL itself).
    pub(crate) query: Option<String>,
    pub(crate) statement_kind: Option<String>,
    pub(crate) verdict: Option<String>,
    pub(crate) rules: Vec<String>,
    pub(crate) rows: Option<u64>,
    pub(crate) bytes: Option<u64>,
}

/// One call in progress.
pub(crate) struct Call {
    tool: &'static str,
    /// The connection id, and its config name (read when the call began: a call may close
    /// the connection).
    pub(crate) id: Option<String>,
    pub(crate) connection: Option<String>,
    query: Option<String>,
    started: Instant,
    pub(crate) facts: Mutex<Facts>,
}

impl Call {
    pub(crate) fn note(&self, f: impl FnOnce(&mut Facts)) {
        let mut facts = self.facts.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut facts);
    }
}

/// Results that know how many rows they carry.
pub(crate) trait Counted {
    fn rows(&self) -> Option<u64> {
        None
    }
}

impl<T> Counted for Vec<T> {
    fn rows(&self) -> Option<u64> {
        Some(self.len() as u64)
    }
}
impl Counted for crate::backends::QueryResult {
    fn rows(&self) -> Option<u64> {
        Some(self.row_count as u64)
    }
}
impl Counted for () {}
impl Counted for crate::backends::TableDescription {}
impl Counted for crate::tools::table_stats::TableStats {}
impl Counted for crate::tools::explain_query::ExplainResult {}
impl Counted for crate::tools::security_posture::Posture {}
impl Counted for crate::ConnectionInfo {}

impl Gateway {
    pub(crate) fn begin(&self, tool: &'static str, id: Option<&str>, query: Option<&str>) -> Call {
        let connection = id.and_then(|id| self.connection_label(id));
        Call {
            tool,
            id: id.map(String::from),
            connection,
            query: query.map(String::from),
            started: Instant::now(),
            facts: Mutex::new(Facts::default()),
        }
    }

    /// The config name of a connection (or `(kind)` for unnamed ones): never its target.
    fn connection_label(&self, id: &str) -> Option<String> {
        let open = self.get(id).ok()?;
        Some(
            open.info
                .name
                .clone()
                .unwrap_or_else(|| format!("({})", open.info.kind.as_str())),
        )
    }

    /// Writes the call's audit entry; if that fails, the result is withheld.
    pub(crate) async fn finish<T: Counted>(
        &self,
        call: Call,
        result: Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        let Some(log) = &self.audit else {
            return result;
        };
        let ctx = current_context();
        let facts = call.facts.into_inner().unwrap_or_else(|p| p.into_inner());
        let connection = call
            .connection
            .or_else(|| call.id.as_deref().and_then(|id| self.connection_label(id)));
        let query = call.query.or(facts.query);
        let (outcome, rules) = match &result {
            Ok(_) => ("ok".to_string(), facts.rules),
            Err(e) => {
                let mut rules = facts.rules;
                if let Some(r) = e.rule()
                    && !rules.iter().any(|x| x == r)
                {
                    rules.push(r.to_string());
                }
                (e.code().to_string(), rules)
            }
        };
        let entry = Entry {
            kind: "call".into(),
            session: Some(format!(
                "{}/{}",
                ctx.principal,
                call.id.as_deref().unwrap_or("-")
            )),
            client: Some(match &ctx.client {
                Some(c) => format!("{} ({c})", ctx.principal),
                None => ctx.principal.clone(),
            }),
            tool: Some(call.tool.to_string()),
            connection,
            query_sha256: query.as_deref().map(sha256_hex),
            statement_kind: facts.statement_kind,
            verdict: facts.verdict,
            rules,
            rows: result.as_ref().ok().and_then(Counted::rows).or(facts.rows),
            bytes: facts.bytes,
            duration_ms: Some(call.started.elapsed().as_millis() as u64),
            outcome: Some(outcome),
            query,
            ..Entry::default()
        };
        match log.append(entry).await {
            Ok(_) => result,
            Err(e) => {
                tracing::error!(error = %e, "audit entry not written: result withheld");
                Err(GatewayError::AuditUnavailable(e.to_string()))
            }
        }
    }
}
