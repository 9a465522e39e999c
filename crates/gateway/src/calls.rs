//! Who is calling, and the audit entry of every call.
//!
//! Adapters (MCP, web) run each call inside [`with_context`] with the authenticated
//! principal and client name; the gateway reads it from a task-local, so no signature
//! carries it and no global state holds it. Every public tool method brackets its work with
//! [`Gateway::begin`] and [`Gateway::finish`]: `finish` writes the audit entry and, if it
//! cannot, withholds the result (fail closed).
//!
//! A call whose future is dropped before `finish` (the adapter's timeout, a
//! `notifications/cancelled`, the client gone, shutdown) is audited all the same: the
//! [`Call`] guard queues its entry from `Drop`, with the outcome the adapter recorded in the
//! context's [`Ending`] (`client_gone` when none did: only a caller that went away drops a
//! call without saying why).
//!
//! Invariants: every call that passed `begin` leaves exactly one `call` entry, whatever its
//! ending; an entry holds the connection's *name* and the query's SHA-256 — never a
//! password, token or connection string — and the query text only when configured.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::audit::chain::sha256_hex;
use crate::audit::{Entry, EventInfo};
use crate::detector::{Admission, Level, Observation, Response, SecurityEvent, injection_shape};
use crate::{Gateway, GatewayError};

/// The caller of a gateway call.
#[derive(Debug, Clone, Serialize)]
pub struct CallContext {
    /// The authenticated principal (token name, web user, or `local` for stdio).
    pub principal: String,
    /// The client's own name (MCP clientInfo, HTTP peer, browser session), if known.
    pub client: Option<String>,
    /// Why the adapter abandoned the call, if it did (read when a call is dropped).
    #[serde(skip)]
    pub ending: Ending,
    /// What the adapter verified of the caller: the keys `[access]` roles match, and an
    /// OAuth token's claims (for roles and session settings).
    #[serde(skip)]
    pub identity: Arc<crate::access::Identity>,
}

impl CallContext {
    /// The context of an unauthenticated local caller (stdio, CLI, tests).
    pub fn local() -> CallContext {
        CallContext::new("local", None)
    }

    /// A caller `principal`, calling through `client` if known.
    /// Its identity matches the `[access]` member equal to the principal (`local`,
    /// `stdio`); adapters that verified more say so with [`CallContext::with_identity`].
    pub fn new(principal: impl Into<String>, client: Option<String>) -> CallContext {
        let principal = principal.into();
        CallContext {
            identity: Arc::new(crate::access::Identity::keyed(principal.clone())),
            principal,
            client,
            ending: Ending::default(),
        }
    }

    /// The same caller with the identity its adapter verified.
    pub fn with_identity(mut self, identity: crate::access::Identity) -> CallContext {
        self.identity = Arc::new(identity);
        self
    }
}

/// Why an adapter abandoned a call before it answered: the audit outcome of its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandoned {
    /// The adapter's per-call deadline passed (`timeout`).
    Timeout,
    /// The client cancelled the request (`cancelled`).
    Cancelled,
    /// The client went away: its connection or request was dropped (`client_gone`).
    ClientGone,
    /// The server was shutting down and the drain deadline passed (`shutdown`).
    Shutdown,
}

impl Abandoned {
    /// The stable outcome code written in the audit entry.
    pub fn code(self) -> &'static str {
        match self {
            Abandoned::Timeout => "timeout",
            Abandoned::Cancelled => "cancelled",
            Abandoned::ClientGone => "client_gone",
            Abandoned::Shutdown => "shutdown",
        }
    }
}

/// Shared between an adapter and the calls it runs: the first reason recorded wins (the
/// HTTP layer seeing the client gone comes before the cancellation that follows from it).
#[derive(Debug, Clone, Default)]
pub struct Ending(Arc<Mutex<Option<Abandoned>>>);

impl Ending {
    /// Records why the call is being abandoned, unless a reason is already recorded.
    pub fn set(&self, why: Abandoned) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(why);
    }

    /// The reason recorded, if any.
    pub fn get(&self) -> Option<Abandoned> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
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
    /// The query with placeholders for its literals (see `dbward_policy::normalize`).
    pub(crate) query_normalized: Option<String>,
    pub(crate) verdict: Option<String>,
    pub(crate) rules: Vec<String>,
    pub(crate) rows: Option<u64>,
    pub(crate) bytes: Option<u64>,
    /// The query read a system catalog.
    pub(crate) catalog: bool,
}

/// One call in progress. Dropped without [`Gateway::finish`], it audits itself.
pub(crate) struct Call {
    /// Where the entry of an abandoned call goes (`None`: auditing is off, or finished).
    audit: Option<crate::audit::AuditLog>,
    /// Calls by tool and outcome, counted for an abandoned call too.
    calls_metric: prometheus_client::metrics::family::Family<
        crate::metrics::CallLabels,
        prometheus_client::metrics::counter::Counter,
    >,
    /// Sees the call if it is dropped before it answered (a flood of slow calls dropped is
    /// answered like one of refusals); `None` once the call was observed or refused early.
    detector: Option<crate::detector::Detector>,
    /// The caller, read when the call began.
    ctx: CallContext,
    tool: &'static str,
    /// The connection id, and its config name (read when the call began: a call may close
    /// the connection).
    pub(crate) id: Option<String>,
    pub(crate) connection: Option<String>,
    query: Option<String>,
    started: Instant,
    pub(crate) facts: Mutex<Facts>,
    /// What the caller may do (its roles' sum; everything without `[access]`).
    pub(crate) grants: Arc<crate::access::Grants>,
}

impl Call {
    /// The caller, as it was when the call began.
    pub(crate) fn caller(&self) -> &CallContext {
        &self.ctx
    }

    pub(crate) fn note(&self, f: impl FnOnce(&mut Facts)) {
        let mut facts = self.facts.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut facts);
    }
}

/// Results that know how many rows they carry, and whether a cap cut them.
pub(crate) trait Counted {
    fn rows(&self) -> Option<u64> {
        None
    }
    fn truncated(&self) -> bool {
        false
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
    fn truncated(&self) -> bool {
        self.truncated
    }
}
impl Counted for () {}
impl Counted for crate::backends::TableDescription {}
impl Counted for crate::tools::table_stats::TableStats {}
impl Counted for crate::tools::explain_query::ExplainResult {}
impl Counted for crate::tools::security_posture::Posture {}
impl Counted for crate::ConnectionInfo {}

impl Gateway {
    /// Starts a call: a blocked or rate-limited caller is refused here, before any work,
    /// and the refused attempt is audited like any other.
    pub(crate) async fn begin(
        &self,
        tool: &'static str,
        id: Option<&str>,
        query: Option<&str>,
    ) -> Result<Call, GatewayError> {
        let connection = id.and_then(|id| self.connection_label(id));
        let ctx = current_context();
        let principal = ctx.principal.clone();
        let grants = self.access.grants(&ctx.identity);
        let call = Call {
            grants,
            audit: self.audit.clone(),
            calls_metric: self.metrics.calls.clone(),
            detector: Some(self.detector.clone()),
            ctx,
            tool,
            id: id.map(String::from),
            connection,
            query: query.map(String::from),
            started: Instant::now(),
            facts: Mutex::new(Facts::default()),
        };
        let refusal = match self.detector.admit(&principal) {
            Admission::Allowed => match self.authorize(&call, tool, id) {
                Ok(()) => return Ok(call),
                Err(e) => e,
            },
            Admission::RateLimited => GatewayError::RateLimited,
            Admission::Blocked(until) => {
                GatewayError::Blocked(humantime::format_rfc3339_seconds(until).to_string())
            }
        };
        let mut call = call;
        call.detector = None;
        match self
            .write_entry(&mut call, &Err::<(), _>(refusal.clone_refusal()))
            .await
        {
            Ok(()) => Err(refusal),
            Err(e) => Err(e),
        }
    }

    /// With `[access]`: the caller's roles grant `tool`, and the connection `id` (a named
    /// one, the start-up one, or one it opened itself with its own parameters).
    fn authorize(&self, call: &Call, tool: &str, id: Option<&str>) -> Result<(), GatewayError> {
        if !self.access.enabled() {
            return Ok(());
        }
        let g = &call.grants;
        let who = &call.ctx.principal;
        if !g.any() {
            return Err(GatewayError::Forbidden(format!(
                "`{who}` holds no role; [access] grants nothing to callers no role names"
            )));
        }
        if !g.tool(tool) {
            return Err(GatewayError::Forbidden(format!(
                "no role of `{who}` ({}) grants the tool `{tool}`",
                g.roles.join(", ")
            )));
        }
        let Some(id) = id else {
            return Ok(());
        };
        let Ok(open) = self.get(id) else {
            // Unknown ids answer `unknown_connection` from the tool itself.
            return Ok(());
        };
        if self.may_use(g, who, &open) {
            return Ok(());
        }
        Err(GatewayError::Forbidden(format!(
            "no role of `{who}` ({}) grants the connection `{}`",
            g.roles.join(", "),
            open.info
                .name
                .as_deref()
                .unwrap_or("(opened by another caller)")
        )))
    }

    /// Whether a caller with `grants` may use `open`.
    pub(crate) fn may_use(
        &self,
        grants: &crate::access::Grants,
        principal: &str,
        open: &crate::Open,
    ) -> bool {
        if !self.access.enabled() {
            return true;
        }
        if open.pinned || open.info.name.is_some() {
            return grants.connection(open.info.name.as_deref(), open.pinned);
        }
        // Opened with a caller's own parameters: that caller's only.
        grants.client_connections && open.owner == principal
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

    /// Ends a call: the detectors see it, its audit entry is written (and any security
    /// event it raised); if the entry cannot be written, the result is withheld.
    pub(crate) async fn finish<T: Counted>(
        &self,
        mut call: Call,
        result: Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        let ctx = call.ctx.clone();
        call.detector = None;
        let observation = {
            let facts = call.facts.lock().unwrap_or_else(|p| p.into_inner());
            let high = facts
                .rules
                .iter()
                .chain(
                    result
                        .as_ref()
                        .err()
                        .and_then(|e| e.rule())
                        .map(String::from)
                        .iter(),
                )
                .any(|r| {
                    dbward_policy::Rule::from_id(r)
                        .is_some_and(|r| r.severity() == dbward_policy::Severity::High)
                });
            Observation {
                refused: result
                    .as_ref()
                    .err()
                    .is_some_and(|e| e.code() == "policy_refused"),
                high_severity: high,
                capped: result.as_ref().is_ok_and(Counted::truncated),
                catalog: facts.catalog,
                injection: call
                    .query
                    .as_deref()
                    .or(facts.query.as_deref())
                    .filter(|_| call.tool == "execute_query" || call.tool == "explain_query")
                    .and_then(injection_shape),
                abandoned: matches!(result, Err(GatewayError::Timeout(_))),
            }
        };
        let mut events = self.detector.observe(&ctx.principal, &observation);
        // A database login refused is a failed authentication too.
        if let Err(GatewayError::ConnectionUnavailable(m)) = &result
            && m.starts_with("login refused")
            && let Some(e) = self.detector.auth_failure(&ctx.principal)
        {
            events.push(e);
        }
        let outcome_code = match &result {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        self.metrics
            .calls
            .get_or_create(&crate::metrics::CallLabels {
                tool: call.tool.to_string(),
                outcome: outcome_code.to_string(),
            })
            .inc();
        self.metrics
            .latency
            .get_or_create(&crate::metrics::ToolLabel {
                tool: call.tool.to_string(),
            })
            .observe(call.started.elapsed().as_secs_f64());
        if let Err(e) = &result
            && let Some(rule) = e.rule()
        {
            self.metrics
                .refusals
                .get_or_create(&crate::metrics::RuleLabel {
                    rule: rule.to_string(),
                })
                .inc();
        }
        let result = match self.write_entry(&mut call, &result).await {
            Ok(()) => result,
            Err(e) => Err(e),
        };
        for event in events {
            self.raise(event).await;
        }
        result
    }

    /// Records a failed authentication (HTTP token, web login, LLM API key) by `who`.
    pub async fn record_auth_failure(&self, who: &str, what: &str) {
        tracing::warn!(who, what, "authentication failed");
        if let Some(event) = self.detector.auth_failure(who) {
            self.raise(event).await;
        }
    }

    /// Records one refused authentication (`what`: the mechanism) and why, as an audited
    /// `auth_refused` event. `reason` must never hold the credential; it is clipped all the
    /// same. Not logged one by one: the adapter throttles failures per address (so these
    /// entries stay bounded) and logs and reports the flood itself
    /// ([`Gateway::record_auth_flood`]).
    pub async fn record_auth_refusal(&self, who: &str, what: &str, reason: &str) {
        let event = SecurityEvent {
            principal: who.to_string(),
            level: Level::Low,
            detector: "auth_refused".into(),
            message: format!("{what} refused: {}", clip(reason, 200)),
            response: Response::Log,
        };
        tracing::debug!(who, what, reason = %event.message, "authentication refused");
        self.audit_event(&event).await;
    }

    /// Writes a security event's audit entry (no-op without an audit log).
    async fn audit_event(&self, event: &SecurityEvent) {
        if let Some(log) = &self.audit
            && let Err(e) = log.append(event_entry(event)).await
        {
            tracing::error!(error = %e, "security event not audited");
        }
    }

    /// Records a flood of failed authentications by `who` as one audited security event
    /// with its count (the adapter throttles and counts; see `dbward-mcp`'s HTTP layer).
    pub async fn record_auth_flood(&self, who: &str, what: &str, failures: u64, window_s: u64) {
        let event = self.detector.report(
            who,
            Level::High,
            "auth_flood",
            format!("{failures} failed authentications ({what}) in {window_s}s"),
        );
        self.raise(event).await;
    }

    /// Records a security event a stdio host (the web UI) saw itself, for `principal`.
    pub async fn record_host_event(&self, principal: &str, kind: HostEventKind) {
        match kind {
            HostEventKind::LoginFailed { peer } => {
                let peer = clip(&peer, 64);
                self.record_auth_failure(&format!("web-login:{peer}"), "web UI login")
                    .await;
            }
            HostEventKind::SignInRefused { peer, reason } => {
                let who = format!("web-login:{}", clip(&peer, 64));
                self.record_auth_refusal(&who, "web UI sign-in", &reason)
                    .await;
                self.record_auth_failure(&who, "web UI sign-in").await;
            }
            HostEventKind::LlmAuthFailed => {
                self.record_auth_failure("llm-api", "LLM API key").await;
            }
            HostEventKind::RefusedToolCall {
                tool,
                reason,
                serious,
            } => {
                let level = if serious {
                    crate::detector::Level::Medium
                } else {
                    crate::detector::Level::Low
                };
                let event = self.detector.report(
                    principal,
                    level,
                    "assistant_refusal",
                    format!(
                        "the model proposed a call the assistant refused: {}: {}",
                        clip(&tool, 64),
                        clip(&reason, 200)
                    ),
                );
                self.raise(event).await;
            }
            HostEventKind::InjectionShapedQuestion { flags } => {
                let flags: Vec<String> = flags.iter().take(8).map(|f| clip(f, 80)).collect();
                let event = self.detector.report(
                    principal,
                    crate::detector::Level::Low,
                    "injection_question",
                    format!("injection-shaped question: {}", flags.join("; ")),
                );
                self.raise(event).await;
            }
        }
    }

    /// Logs, audits and answers one security event.
    async fn raise(&self, event: SecurityEvent) {
        self.metrics
            .events
            .get_or_create(&crate::metrics::LevelLabel {
                level: event.level.as_str().to_string(),
            })
            .inc();
        tracing::warn!(
            principal = %event.principal,
            level = event.level.as_str(),
            detector = %event.detector,
            response = ?event.response,
            "security event: {}",
            event.message
        );
        if event.response == Response::BlockAndClose {
            let owned: Vec<String> = {
                let reg = crate::lock(&self.registry);
                reg.iter()
                    .filter(|(_, o)| o.owner == event.principal)
                    .map(|(id, _)| id.to_string())
                    .collect()
            };
            for id in owned {
                let _ = self.close_quietly(&id).await;
            }
        }
        self.audit_event(&event).await;
        if matches!(event.level, Level::High | Level::Critical)
            && let Some(url) = self.config.detector.webhook_url.clone()
        {
            let client = self.http.clone();
            tokio::spawn(async move {
                let sent = client
                    .post(&url)
                    .timeout(std::time::Duration::from_secs(10))
                    .json(&event)
                    .send()
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e.without_url(), "security webhook failed");
                }
            });
        }
    }

    /// Writes a call's audit entry (no-op without an audit log). The call counts as
    /// finished from the moment its entry is written: dropped before that, it audits itself.
    async fn write_entry<T: Counted>(
        &self,
        call: &mut Call,
        result: &Result<T, GatewayError>,
    ) -> Result<(), GatewayError> {
        let Some(log) = call.audit.clone() else {
            return Ok(());
        };
        let unwritten = |e: crate::audit::AuditError| {
            tracing::error!(error = %e, "audit entry not written: result withheld");
            GatewayError::AuditUnavailable(e.to_string())
        };
        // No await point between taking the call's facts and writing its entry.
        let (outcome, rule) = match result {
            Ok(_) => ("ok".to_string(), None),
            Err(e) => (e.code().to_string(), e.rule()),
        };
        let rows = result.as_ref().ok().and_then(Counted::rows);
        let entry = call.take_entry(self, outcome, rule, rows);
        log.append_now(entry).await.map(|_| ()).map_err(unwritten)
    }
}

impl Call {
    /// Builds the call's entry and marks it finished (its `Drop` then writes nothing).
    fn take_entry(
        &mut self,
        gateway: &Gateway,
        outcome: String,
        rule: Option<&str>,
        rows: Option<u64>,
    ) -> Entry {
        self.audit = None;
        let facts = std::mem::take(&mut *self.facts.lock().unwrap_or_else(|p| p.into_inner()));
        let connection = self.connection.take().or_else(|| {
            self.id
                .as_deref()
                .and_then(|id| gateway.connection_label(id))
        });
        self.entry_of(facts, connection, outcome, rule, rows)
    }

    fn entry_of(
        &mut self,
        facts: Facts,
        connection: Option<String>,
        outcome: String,
        rule: Option<&str>,
        rows: Option<u64>,
    ) -> Entry {
        let ctx = &self.ctx;
        let query = self.query.take().or(facts.query);
        let mut rules = facts.rules;
        if let Some(r) = rule
            && !rules.iter().any(|x| x == r)
        {
            rules.push(r.to_string());
        }
        Entry {
            kind: "call".into(),
            session: Some(format!(
                "{}/{}",
                ctx.principal,
                self.id.as_deref().unwrap_or("-")
            )),
            client: Some(match &ctx.client {
                Some(c) => format!("{} ({c})", ctx.principal),
                None => ctx.principal.clone(),
            }),
            tool: Some(self.tool.to_string()),
            connection,
            query_sha256: query.as_deref().map(sha256_hex),
            query_normalized: facts.query_normalized,
            statement_kind: facts.statement_kind,
            verdict: facts.verdict,
            rules,
            rows: rows.or(facts.rows),
            bytes: facts.bytes,
            duration_ms: Some(self.started.elapsed().as_millis() as u64),
            outcome: Some(outcome),
            query,
            ..Entry::default()
        }
    }
}

impl Drop for Call {
    /// A call dropped before `finish` (its future was abandoned): queue its entry with the
    /// reason the adapter recorded, without waiting (`Drop` cannot).
    fn drop(&mut self) {
        let detector = self.detector.take();
        let log = self.audit.take();
        if detector.is_none() && log.is_none() {
            return;
        }
        let why = self.ctx.ending.get().unwrap_or(Abandoned::ClientGone);
        self.calls_metric
            .get_or_create(&crate::metrics::CallLabels {
                tool: self.tool.to_string(),
                outcome: why.code().to_string(),
            })
            .inc();
        tracing::info!(
            principal = %self.ctx.principal,
            tool = self.tool,
            outcome = why.code(),
            "call abandoned before it answered"
        );
        let facts = std::mem::take(&mut *self.facts.lock().unwrap_or_else(|p| p.into_inner()));
        // The label read when the call began (the registry is not reachable from here).
        let connection = self.connection.take();
        let entry = self.entry_of(facts, connection, why.code().to_string(), None, None);
        if let Some(log) = &log {
            log.append_detached(entry);
        }
        // The detector sees it like a timed-out call; what it decides (rate limit, block)
        // applies at the principal's next call. Its events are logged and audited here
        // (the webhook and closing a blocked principal's connections need the gateway).
        let seen = Observation {
            abandoned: true,
            ..Observation::default()
        };
        let events = detector
            .map(|d| d.observe(&self.ctx.principal, &seen))
            .unwrap_or_default();
        for event in events {
            tracing::warn!(
                principal = %event.principal,
                level = event.level.as_str(),
                detector = %event.detector,
                response = ?event.response,
                "security event: {}",
                event.message
            );
            if let Some(log) = &log {
                log.append_detached(event_entry(&event));
            }
        }
    }
}

/// The audit entry of a security event.
fn event_entry(event: &SecurityEvent) -> Entry {
    Entry {
        kind: "event".into(),
        client: Some(event.principal.clone()),
        session: Some(format!("{}/-", event.principal)),
        event: Some(EventInfo {
            level: event.level.as_str().into(),
            detector: event.detector.clone(),
            message: event.message.clone(),
            response: Some(format!("{:?}", event.response).to_lowercase()),
        }),
        ..Entry::default()
    }
}

/// A security event a stdio host saw itself and reports to the gateway, which audits it and
/// feeds it to the detector like its own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HostEventKind {
    /// A failed web UI login from `peer` (an address).
    LoginFailed {
        /// The client address.
        peer: String,
    },
    /// A web UI sign-in through the identity provider from `peer` was refused (the
    /// provider's error, a wrong or replayed `state`, an ID token that does not verify):
    /// audited one by one with its reason, and counted as a failed authentication.
    SignInRefused {
        /// The client address.
        peer: String,
        /// Why (never a code, token or cookie).
        reason: String,
    },
    /// The LLM API refused the configured key (401/403).
    LlmAuthFailed,
    /// The model proposed a tool call the assistant refused to send (not in the allowlist,
    /// oversized, or not matching the tool's schema).
    RefusedToolCall {
        /// The tool the model named.
        tool: String,
        /// Why it was refused.
        reason: String,
        /// An unknown tool or oversized arguments (`medium`), rather than a schema mistake
        /// (`low`).
        serious: bool,
    },
    /// A question matched the assistant's injection shapes (logged; never relied on).
    InjectionShapedQuestion {
        /// Why it was flagged.
        flags: Vec<String>,
    },
}

/// At most `max` characters of host-supplied text.
fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
