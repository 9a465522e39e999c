//! dbward's gateway: the one service every adapter (MCP server, web assistant, CLI) calls.
//! Connections (opaque ids, masked targets, secrets), backends, and the database tools.
//! Knows nothing of MCP or HTTP. `demo` builds the embedded SQLite demo database.
//!
//! The path of every query: input limits -> policy verdict -> (PostgreSQL) database check
//! of functions the policy does not know -> backend execution, read-only enforced by the
//! database, rows streamed under caps.
//!
//! Invariants:
//! - No query reaches a backend without an allowed verdict from the policy.
//! - Clients see connection ids and masked targets only; credentials never leave
//!   `ConnectSpec` (a secret) and the driver.
//! - The registry lock is held only to look up or insert an entry, never across I/O.

#![deny(clippy::print_stdout, clippy::print_stderr)]
// The module docs describe the design and link to private items: they resolve in
// `cargo doc --document-private-items`, the documentation a contributor reads.
#![allow(rustdoc::private_intra_doc_links)]

pub mod access;
pub mod audit;
pub mod backends;
pub mod calls;
pub mod config;
pub mod connection;
pub mod demo;
pub mod detector;
pub mod error;
pub mod metrics;
mod mysql_functions;
mod resolution;
pub mod tools;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dbward_policy::{Policy, Verdict};
use secrecy::SecretString;
use serde_json::Value;

use backends::mysql::MyBackend;
use backends::postgres::PgBackend;
use backends::sqlite::SqliteBackend;
use backends::{Caps, QueryResult, TableDescription, TableInfo};
pub use calls::HostEventKind;
pub use config::{DbKind, GatewayConfig, Limits};
pub use connection::{ConnectSpec, ConnectionId, ConnectionInfo, MaskedTarget};
pub use error::GatewayError;

/// How a client asks to connect.
#[derive(Debug)]
pub enum ConnectRequest {
    /// A named connection from config (always allowed).
    Named(String),
    /// A connection string (only if `allow_client_connections`).
    Url(SecretString),
    /// Parameters (only if `allow_client_connections`).
    Params(Box<ConnectSpec>),
}

pub(crate) enum Backend {
    Postgres(PgBackend),
    Mysql(MyBackend),
    Sqlite(SqliteBackend),
}

pub(crate) struct Open {
    pub(crate) info: ConnectionInfo,
    /// The principal that opened it (closed with it when that principal is blocked hard).
    pub(crate) owner: String,
    pub(crate) backend: Backend,
    last_used: Mutex<Instant>,
    /// Opened by the operator (`connect_trusted`): the server's own connection, which
    /// adapters use as their default, so idle expiry never closes it.
    pinned: bool,
    /// Where the server is (no credential), to name the cause of an outage.
    address: (String, u16),
}

/// The gateway service. Share it as `Arc<Gateway>`.
pub struct Gateway {
    config: GatewayConfig,
    /// Where every call is recorded, if auditing is on.
    audit: Option<audit::AuditLog>,
    /// Per-principal anomaly detection and response.
    detector: detector::Detector,
    /// For security webhooks.
    http: reqwest::Client,
    /// Prometheus metrics.
    metrics: metrics::Metrics,
    policy: Arc<Policy>,
    /// Who may use what (`[access]`), and the policy of each caller's roles.
    access: access::Access,
    registry: Mutex<HashMap<ConnectionId, Arc<Open>>>,
}

/// Longest identifier accepted: PostgreSQL truncates at 63 bytes, MySQL allows 64.
fn max_identifier_bytes(kind: DbKind) -> usize {
    match kind {
        DbKind::Postgresql => 63,
        _ => 64,
    }
}
/// Most bound parameters per query.
const MAX_PARAMS: usize = 100;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the maps inconsistent (each update is
    // one insert or remove), so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Gateway {
    /// Builds the gateway from its configuration.
    pub fn new(config: GatewayConfig) -> Gateway {
        let policy = Arc::new(Policy::new(config.policy.clone()));
        Gateway {
            access: access::Access::new(&config, policy.clone()),
            detector: detector::Detector::new(config.detector.clone()),
            http: reqwest::Client::new(),
            metrics: metrics::Metrics::default(),
            config,
            audit: None,
            policy,
            registry: Mutex::new(HashMap::new()),
        }
    }

    /// Records every call in this audit log (and withholds results it cannot record).
    pub fn with_audit(mut self, log: audit::AuditLog) -> Gateway {
        self.audit = Some(log);
        self
    }

    /// Waits, for at most `limit`, until the statements of abandoned calls (cancelled,
    /// timed out, cut off by a shutdown's drain deadline) have been ended on their servers:
    /// cancelled, or their sessions terminated when a cancel was not enough. Every gateway
    /// of the process is waited for. Call it before the process exits: an ending still
    /// pending when the runtime stops is never sent, and a statement waiting on a lock
    /// would wait on without a client. `false` if some were still pending at `limit`.
    pub async fn end_abandoned_statements(&self, limit: std::time::Duration) -> bool {
        let pending = backends::ending::pending();
        if pending == 0 {
            return true;
        }
        tracing::info!(
            pending,
            "ending the statements of abandoned calls on their servers"
        );
        let done = backends::ending::wait(limit).await;
        if !done {
            tracing::warn!(
                pending = backends::ending::pending(),
                "statements of abandoned calls were still being ended at exit"
            );
        }
        done
    }

    /// The audit log, if auditing is on.
    pub fn audit_log(&self) -> Option<&audit::AuditLog> {
        self.audit.as_ref()
    }

    /// The Prometheus text exposition of the gateway's metrics, gauges read now.
    pub fn metrics_text(&self) -> String {
        let (mut in_use, mut idle) = (0i64, 0i64);
        let mut resolutions = [0u64; 4];
        let opens: Vec<Arc<Open>> = lock(&self.registry).values().cloned().collect();
        for o in &opens {
            if let Backend::Postgres(b) = &o.backend {
                for (sum, n) in resolutions.iter_mut().zip(b.resolution_counts()) {
                    *sum += n;
                }
            }
            let (size, idle_now) = match &o.backend {
                Backend::Postgres(b) => b.pool_stats(),
                Backend::Mysql(b) => b.pool_stats(),
                Backend::Sqlite(b) => b.pool_stats(),
            };
            in_use += i64::from(size) - idle_now as i64;
            idle += idle_now as i64;
        }
        let m = &self.metrics;
        m.open_connections.set(opens.len() as i64);
        for (answer, n) in ["kept", "stale", "asked", "rechecked"]
            .into_iter()
            .zip(resolutions)
        {
            m.pg_resolutions
                .get_or_create(&metrics::AnswerLabel {
                    answer: answer.into(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        m.pool_in_use.set(in_use);
        m.pool_idle.set(idle);
        m.principals.set(self.detector.principals() as i64);
        m.audit_queue.set(
            self.audit
                .as_ref()
                .map(|a| a.queue_depth() as i64)
                .unwrap_or(0),
        );
        m.encode()
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The configuration in force.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Opens a connection and registers it under a fresh opaque id.
    pub async fn connect(&self, request: ConnectRequest) -> Result<ConnectionInfo, GatewayError> {
        let mut call = self.begin("connect", None, None).await?;
        let result = async {
            let grants = &call.grants;
            let own_parameters = |call: &calls::Call| {
                if !self.config.allow_client_connections {
                    return Err(GatewayError::ClientConnectionsDisabled);
                }
                if self.access.enabled() && !grants.client_connections {
                    return Err(GatewayError::Forbidden(format!(
                        "no role of `{}` grants connecting with its own parameters (client_connections)",
                        call.caller().principal
                    )));
                }
                Ok(())
            };
            let spec = match request {
                ConnectRequest::Named(name) => {
                    let named = self
                        .config
                        .connections
                        .get(&name)
                        .ok_or_else(|| GatewayError::UnknownConnectionName(name.clone()))?;
                    if !grants.connection(Some(&name), false) {
                        return Err(GatewayError::Forbidden(format!(
                            "no role of `{}` grants the connection `{name}`",
                            call.caller().principal
                        )));
                    }
                    ConnectSpec::from_named(&name, named)?
                }
                ConnectRequest::Url(url) => {
                    own_parameters(&call)?;
                    ConnectSpec::from_url(&url)?
                }
                ConnectRequest::Params(spec) => {
                    own_parameters(&call)?;
                    *spec
                }
            };
            self.open_logged(spec, false).await
        }
        .await;
        if let Ok(info) = &result {
            call.id = Some(info.id.to_string());
        }
        self.finish(call, result).await
    }

    /// Opens a connection from a spec the operator provided (command line, environment):
    /// not subject to `allow_client_connections`, and never closed for being idle.
    pub async fn connect_trusted(&self, spec: ConnectSpec) -> Result<ConnectionInfo, GatewayError> {
        self.open_logged(spec, true).await
    }

    /// Opens and logs the outcome: the masked target only, never the credentials.
    async fn open_logged(
        &self,
        spec: ConnectSpec,
        pinned: bool,
    ) -> Result<ConnectionInfo, GatewayError> {
        let target = spec.masked();
        let name = spec.name.clone();
        match self.open(spec, pinned).await {
            Ok(info) => {
                tracing::info!(%target, name = ?name, id = %info.id, "connection opened");
                Ok(info)
            }
            Err(e) => {
                tracing::warn!(%target, name = ?name, code = e.code(), error = %e, "connection failed");
                Err(e)
            }
        }
    }

    async fn open(&self, spec: ConnectSpec, pinned: bool) -> Result<ConnectionInfo, GatewayError> {
        self.expire_idle().await;
        let max = self.config.limits.max_open_connections;
        let owner = calls::current_context().principal;
        self.check_connection_caps(&owner, pinned)?;
        // Name the cause of an unreachable server before the driver's pool hides it.
        backends::reachability::probe(spec.kind, &spec.host, spec.port).await?;
        let (backend, version) = match spec.kind {
            DbKind::Postgresql => {
                let b = PgBackend::connect(&spec, &self.config.limits).await?;
                let v = b.server_version.clone();
                (Backend::Postgres(b), v)
            }
            DbKind::Sqlite => {
                let path = spec.path.clone().ok_or_else(|| {
                    GatewayError::InvalidInput("a sqlite connection needs a file path".into())
                })?;
                let b = SqliteBackend::connect(&path, &self.config.limits, &self.policy).await?;
                let v = b.server_version.clone();
                (Backend::Sqlite(b), v)
            }
            DbKind::Mysql => {
                let b = MyBackend::connect(&spec, &self.config.limits).await?;
                let v = b.server_version.clone();
                (Backend::Mysql(b), v)
            }
        };
        // What the role could do if every other layer failed, read once at connect time.
        let posture = match &backend {
            Backend::Postgres(b) => match b.connect_posture() {
                Some(p) => p,
                None => b.posture().await?,
            },
            Backend::Mysql(b) => match b.connect_posture() {
                Some(p) => p,
                None => b.posture().await?,
            },
            Backend::Sqlite(_) => tools::security_posture::RolePosture {
                role: "(file opened read-only)".into(),
                ..Default::default()
            },
        };
        if posture.can_write {
            tracing::warn!(
                target = %spec.masked(),
                role = %posture.role,
                "the connection's role can write: only dbward's layers stand in the way (see `dbward setup-role`)"
            );
        }
        let info = ConnectionInfo {
            role: posture.role,
            role_can_write: posture.can_write,
            id: ConnectionId::random(),
            name: spec.name.clone(),
            kind: spec.kind,
            target: spec.masked(),
            server_version: version,
            opened_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let address = (spec.host.clone(), spec.port);
        drop(spec); // the password goes with it
        let open = Arc::new(Open {
            owner: owner.clone(),
            info: info.clone(),
            backend,
            last_used: Mutex::new(Instant::now()),
            pinned,
            address,
        });
        // Checked again now that the connection is open: others may have connected since.
        self.check_connection_caps(&owner, pinned)?;
        let mut reg = lock(&self.registry);
        if reg.len() >= max {
            return Err(GatewayError::TooManyConnections(max));
        }
        reg.insert(info.id.clone(), open);
        Ok(info)
    }

    /// The server-wide cap, and the per-principal quota (not for the operator's pinned
    /// connections): one principal cannot take every connection id.
    fn check_connection_caps(&self, owner: &str, pinned: bool) -> Result<(), GatewayError> {
        let limits = &self.config.limits;
        let reg = lock(&self.registry);
        if reg.len() >= limits.max_open_connections {
            return Err(GatewayError::TooManyConnections(
                limits.max_open_connections,
            ));
        }
        let quota = limits.max_connections_per_principal.max(1);
        if !pinned
            && reg
                .values()
                .filter(|o| !o.pinned && o.owner == owner)
                .count()
                >= quota
        {
            return Err(GatewayError::ConnectionQuota(quota));
        }
        Ok(())
    }

    /// Open connections the current caller may use (every one without `[access]`).
    pub fn list_connections(&self) -> Vec<ConnectionInfo> {
        let ctx = calls::current_context();
        let grants = self.access.grants(&ctx.identity);
        let mut v: Vec<ConnectionInfo> = lock(&self.registry)
            .values()
            .filter(|o| self.may_use(&grants, &ctx.principal, o))
            .map(|o| o.info.clone())
            .collect();
        v.sort_by_key(|i| i.opened_at);
        v
    }

    /// Closes a connection and its pool.
    pub async fn close_connection(&self, id: &str) -> Result<(), GatewayError> {
        let call = self.begin("close_connection", Some(id), None).await?;
        let result = self.close_quietly(id).await;
        self.finish(call, result).await
    }

    /// Closes a connection without auditing the call (the caller audits).
    pub(crate) async fn close_quietly(&self, id: &str) -> Result<(), GatewayError> {
        let id = ConnectionId::parse(id)?;
        let open = lock(&self.registry)
            .remove(&id)
            .ok_or(GatewayError::UnknownConnection)?;
        match &open.backend {
            Backend::Postgres(b) => b.close().await,
            Backend::Mysql(b) => b.close().await,
            Backend::Sqlite(_) => {}
        }
        Ok(())
    }

    async fn expire_idle(&self) {
        let ttl = std::time::Duration::from_secs(self.config.limits.connection_idle_expiry_s);
        let expired: Vec<Arc<Open>> = {
            let mut reg = lock(&self.registry);
            let ids: Vec<ConnectionId> = reg
                .iter()
                .filter(|(_, o)| !o.pinned && lock(&o.last_used).elapsed() > ttl)
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| reg.remove(id)).collect()
        };
        for o in expired {
            match &o.backend {
                Backend::Postgres(b) => b.close().await,
                Backend::Mysql(b) => b.close().await,
                Backend::Sqlite(_) => {}
            }
        }
    }

    pub(crate) fn get(&self, id: &str) -> Result<Arc<Open>, GatewayError> {
        let id = ConnectionId::parse(id)?;
        let open = lock(&self.registry)
            .get(&id)
            .cloned()
            .ok_or(GatewayError::UnknownConnection)?;
        *lock(&open.last_used) = Instant::now();
        Ok(open)
    }

    /// The policy verdict for a query on a connection, without running it (by the
    /// current caller's policy).
    pub fn check(&self, id: &str, sql: &str) -> Result<Verdict, GatewayError> {
        let open = self.get(id)?;
        let grants = self.access.grants(&calls::current_context().identity);
        Ok(grants.policy.check(open.info.kind.dialect(), sql))
    }

    /// What the current caller may do: its roles' sum (everything without `[access]`).
    pub fn grants(&self) -> Arc<access::Grants> {
        self.access.grants(&calls::current_context().identity)
    }

    /// Who may use what (`[access]`).
    pub fn access(&self) -> &access::Access {
        &self.access
    }

    /// `execute_query`: runs one read-only query with bound parameters, capped at `limit`
    /// rows (default `limits.max_rows`, at most `limits.hard_max_rows`).
    pub async fn execute_query(
        &self,
        id: &str,
        sql: &str,
        params: &[Value],
        limit: Option<usize>,
    ) -> Result<QueryResult, GatewayError> {
        let call = self.begin("execute_query", Some(id), Some(sql)).await?;
        let result = async {
            let open = self.get(id)?;
            if params.len() > MAX_PARAMS {
                return Err(GatewayError::InvalidInput(format!(
                    "at most {MAX_PARAMS} parameters are allowed"
                )));
            }
            let limits = &call.grants.limits;
            let max_rows = limit.unwrap_or(limits.max_rows);
            if max_rows == 0 || max_rows > limits.hard_max_rows {
                return Err(GatewayError::InvalidInput(format!(
                    "limit must be between 1 and {}",
                    limits.hard_max_rows
                )));
            }
            self.run_checked(&open, sql, params, max_rows, &call).await
        }
        .await;
        self.finish(call, result).await
    }

    /// The one path of every query, whoever builds it: policy verdict, then the backend
    /// under the caps, which has what the query's names refer to judged in the query's own
    /// transaction (PostgreSQL: `resolution`; MySQL/MariaDB: `mysql_functions`).
    pub(crate) async fn run_checked(
        &self,
        open: &Open,
        sql: &str,
        params: &[Value],
        max_rows: usize,
        call: &calls::Call,
    ) -> Result<QueryResult, GatewayError> {
        let limits = &self.config.limits;
        let policy = &call.grants.policy;
        // The verdict and normalized text of a text judged lately are kept by the policy
        // (a pure function of its configuration and the text): an agent's point query sent
        // again with other parameters is not parsed again.
        let judged = policy.judge(open.info.kind.dialect(), sql);
        let verdict = &judged.verdict;
        call.note(|f| {
            f.query.get_or_insert_with(|| sql.to_string());
            f.catalog |= verdict.tables.iter().any(|t| {
                let schema = t.schema.as_deref().unwrap_or("").to_ascii_lowercase();
                [
                    "pg_catalog",
                    "information_schema",
                    "mysql",
                    "performance_schema",
                    "sys",
                ]
                .contains(&schema.as_str())
                    || t.name.starts_with("pg_")
                    || t.name.starts_with("sqlite_")
            });
            f.statement_kind = verdict.kind.as_ref().map(ToString::to_string);
            f.query_normalized = judged.normalized.clone();
            f.verdict = Some(
                if verdict.is_allowed() {
                    "allowed"
                } else {
                    "refused"
                }
                .into(),
            );
            f.rules = verdict
                .reasons
                .iter()
                .map(|r| r.rule.id().to_string())
                .collect();
        });
        if !verdict.is_allowed() {
            return Err(GatewayError::refused(verdict.clone()));
        }
        searched_params_are_short(verdict, params)?;
        let settings = self.session_settings(open, call)?;
        let caps = Caps::new(limits, max_rows);
        let utility = !matches!(
            verdict.kind,
            Some(dbward_policy::StatementKind::Select | dbward_policy::StatementKind::Values)
        );
        let result = match &open.backend {
            Backend::Postgres(b) => {
                let judge = |r: &backends::postgres::resolve::Resolution| {
                    resolution::judge_pg(policy, verdict, r)
                };
                let resolver = backends::postgres::resolve::Resolver {
                    names: resolution::names_of(verdict),
                    judge: &judge,
                };
                let params = if utility { &[][..] } else { params };
                b.execute_resolved(sql, params, caps, utility, &resolver, &settings)
                    .await
            }
            // What the names refer to is judged in the query's own transaction.
            Backend::Mysql(b) => {
                b.execute_judged(sql, params, caps, async |txn| {
                    mysql_functions::check(txn, policy, sql, verdict).await
                })
                .await
            }
            Backend::Sqlite(b) => {
                let restricted = call.grants.restricted.then(|| policy.clone());
                b.execute_as(sql, params, caps, restricted).await
            }
        };
        let result = self.explain_outage(open, result).await;
        if let Err(e) = &result {
            // Driver messages were scrubbed when the error was built.
            tracing::warn!(connection = %open.info.target, code = e.code(), error = %e, "query failed");
        }
        result
    }

    /// The session settings of a call: the connection's and the caller's roles', each
    /// rendered from the caller's verified identity. A value the identity cannot give
    /// refuses the call (never run with an empty setting); so does a database that cannot
    /// carry them.
    fn session_settings(
        &self,
        open: &Open,
        call: &calls::Call,
    ) -> Result<Vec<(String, String)>, GatewayError> {
        let grants = &call.grants;
        if let Some(e) = &grants.settings_error {
            return Err(GatewayError::Config(e.clone()));
        }
        let own = self.access.connection_settings(open.info.name.as_deref())?;
        let templates: Vec<&(String, access::Template)> =
            own.iter().chain(grants.settings.iter()).collect();
        if templates.is_empty() {
            return Ok(Vec::new());
        }
        if open.info.kind != DbKind::Postgresql {
            return Err(GatewayError::Forbidden(format!(
                "your roles set session settings ({}), which only PostgreSQL connections carry; refused rather than run without them",
                templates
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let ctx = call.caller();
        templates
            .iter()
            .map(|(name, t)| {
                t.render(&ctx.principal, &ctx.identity)
                    .map(|v| (name.clone(), v))
                    .map_err(|why| {
                        GatewayError::Forbidden(format!(
                            "the session setting `{name}` cannot be set for `{}`: {why}",
                            ctx.principal
                        ))
                    })
            })
            .collect()
    }

    /// A pool that timed out during an outage says only that no connection became free:
    /// probe the server, and if it is the cause, say so instead.
    async fn explain_outage<T>(
        &self,
        open: &Open,
        result: Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        match result {
            Err(GatewayError::ConnectionUnavailable(m))
                if m.starts_with("no pooled connection") =>
            {
                let (host, port) = &open.address;
                match backends::reachability::probe(open.info.kind, host, *port).await {
                    Err(cause) => Err(cause),
                    Ok(()) => Err(GatewayError::ConnectionUnavailable(m)),
                }
            }
            other => other,
        }
    }

    /// `list_tables`: tables and views, optionally in one schema, at most 200.
    pub async fn list_tables(
        &self,
        id: &str,
        schema: Option<&str>,
    ) -> Result<Vec<TableInfo>, GatewayError> {
        let call = self.begin("list_tables", Some(id), None).await?;
        let result = async {
            let open = self.get(id)?;
            if let Some(s) = schema {
                validate_identifier(open.info.kind, s)?;
            }
            match &open.backend {
                Backend::Postgres(b) => b.list_tables(schema, 200).await,
                Backend::Mysql(b) => b.list_tables(schema, 200).await,
                Backend::Sqlite(b) => b.list_tables(200).await,
            }
        }
        .await;
        self.finish(call, result).await
    }

    /// `describe_table`: columns, keys, indexes and comments. The name is checked against
    /// the catalog, never spliced.
    pub async fn describe_table(
        &self,
        id: &str,
        schema: Option<&str>,
        table: &str,
    ) -> Result<TableDescription, GatewayError> {
        let call = self.begin("describe_table", Some(id), None).await?;
        let result = self.describe(id, schema, table).await;
        self.finish(call, result).await
    }

    /// The unaudited body of `describe_table`, for tools that build on it.
    pub(crate) async fn describe(
        &self,
        id: &str,
        schema: Option<&str>,
        table: &str,
    ) -> Result<TableDescription, GatewayError> {
        let open = self.get(id)?;
        validate_identifier(open.info.kind, table)?;
        if let Some(s) = schema {
            validate_identifier(open.info.kind, s)?;
        }
        match &open.backend {
            Backend::Postgres(b) => b.describe_table(schema, table).await,
            Backend::Mysql(b) => b.describe_table(schema, table).await,
            Backend::Sqlite(b) => b.describe_table(table).await,
        }
    }
}

/// Identifiers are looked up in the catalog, not matched by a regex: this only refuses what
/// no catalog holds (empty, over-long, NUL).
fn validate_identifier(kind: DbKind, s: &str) -> Result<(), GatewayError> {
    let max = max_identifier_bytes(kind);
    if s.is_empty() || s.len() > max || s.contains('\0') {
        return Err(GatewayError::InvalidInput(format!(
            "identifiers must be 1 to {max} bytes without NUL"
        )));
    }
    Ok(())
}

/// When a parameter is what a search the server cannot stop looks for in a text of unknown
/// size (the policy says so), every string parameter must be short: the policy bounds such
/// searches to short constants, and a parameter is a constant known only at the call.
fn searched_params_are_short(
    verdict: &dbward_policy::Verdict,
    params: &[Value],
) -> Result<(), GatewayError> {
    let max = dbward_policy::SEARCH_NEEDLE_MAX;
    if !verdict.params_searched {
        return Ok(());
    }
    match params
        .iter()
        .position(|p| p.as_str().is_some_and(|s| s.len() > max))
    {
        Some(i) => Err(GatewayError::ResolvedRefusal {
            rule: "resource.bomb",
            message: format!(
                "parameter {} is {} bytes long, and the query searches a text of unknown size for a parameter: the database cannot stop such a search once it runs, so a searched-for value may be at most {max} bytes",
                i + 1,
                params[i].as_str().map_or(0, str::len)
            ),
        }),
        None => Ok(()),
    }
}
