//! The gateway's errors, and the one table of stable codes outsiders see.
//!
//! Invariant: no variant carries a password, token or full connection string. Messages from
//! drivers pass through [`scrub`] before they are stored in a variant, and connection
//! targets appear only in masked form.

use dbward_policy::Verdict;

/// Everything a gateway call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The input is malformed: too long, NUL bytes, bad identifier, bad argument.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The policy refused the query; the verdict holds every reason.
    #[error("refused by policy rule {rule}: {message}")]
    Refused {
        /// The first rule that fired.
        rule: String,
        /// The first reason's message.
        message: String,
        /// The whole verdict.
        verdict: Box<Verdict>,
    },
    /// A function the policy did not know was judged unsafe by the database.
    #[error("refused by policy rule function.volatile: {0}")]
    VolatileFunction(String),
    /// What the database resolved the query's names to is refused (user-defined code, a
    /// denied table behind a view or partition...).
    #[error("refused by policy rule {rule}: {message}")]
    ResolvedRefusal {
        /// The rule id (`function.user_defined`, `table.denied`, `column.denied`).
        rule: &'static str,
        /// What was refused, naming the resolved object.
        message: String,
    },
    /// No open connection has this id.
    #[error("unknown connection id")]
    UnknownConnection,
    /// No named connection has this name.
    #[error("unknown connection name `{0}`")]
    UnknownConnectionName(String),
    /// Connecting with client-supplied parameters is disabled.
    #[error(
        "connecting with client-supplied parameters or URLs is disabled; use a named connection (set allow_client_connections = true to enable)"
    )]
    ClientConnectionsDisabled,
    /// The maximum number of open connections is reached.
    #[error("too many open connections (maximum {0}); close one first")]
    TooManyConnections(usize),
    /// The caller already holds its quota of open connections.
    #[error("you already hold {0} open connections, the most one caller may; close one first")]
    ConnectionQuota(usize),
    /// The database could not be reached or refused the login.
    #[error("connection unavailable: {0}")]
    ConnectionUnavailable(String),
    /// The query ran out of time and was cancelled.
    #[error("the query timed out after {0} ms and was cancelled")]
    Timeout(u64),
    /// The database refused the query for lack of privilege.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The database could not parse the query (its message).
    #[error("{}", said_once("syntax error", .0))]
    Syntax(String),
    /// The table does not exist (or is not visible): its name, or the database's message
    /// naming it (`relation "x" does not exist`, `no such table: x`).
    #[error("{}", unknown_table(.0))]
    UnknownTable(String),
    /// The database refused a write (the read-only layer held).
    #[error("the database refused a write: {0}")]
    ReadOnlyViolation(String),
    /// Any other database error, scrubbed.
    #[error("database error: {0}")]
    Database(String),
    /// The configuration is invalid.
    #[error("configuration error: {0}")]
    Config(String),
    /// The caller is blocked after a security event.
    #[error(
        "this client is blocked until {0} after a security event; calls are refused until then"
    )]
    Blocked(String),
    /// The caller is rate-limited after a security event.
    #[error("this client is rate-limited after a security event; slow down and retry later")]
    RateLimited,
    /// The caller's roles do not grant what it asked for (`[access]`), or its identity
    /// lacks what a session setting needs.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The audit log cannot be written: the call's result is withheld (fail closed).
    #[error("audit log unavailable, call refused: {0}")]
    AuditUnavailable(String),
    /// A bug: an internal invariant did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

/// `what: message`, unless the message already says `what` (the database's own
/// "syntax error at or near ..." is not prefixed a second time).
fn said_once(what: &str, message: &str) -> String {
    if message.to_ascii_lowercase().contains(what) {
        message.to_string()
    } else {
        format!("{what}: {message}")
    }
}

/// A table name as "unknown table `x`"; a database's message that already says the table
/// is missing, as it is.
fn unknown_table(name_or_message: &str) -> String {
    const SAID: [&str; 4] = [
        "no such table",
        "does not exist",
        "doesn't exist",
        "unknown table",
    ];
    let lower = name_or_message.to_ascii_lowercase();
    if SAID.iter().any(|s| lower.contains(s)) {
        name_or_message.to_string()
    } else {
        format!("unknown table `{name_or_message}`")
    }
}

impl GatewayError {
    /// The refusal for a verdict that did not allow the query.
    pub fn refused(verdict: Verdict) -> GatewayError {
        let first = verdict.reasons.first().cloned();
        GatewayError::Refused {
            rule: first
                .as_ref()
                .map(|r| r.rule.id().to_string())
                .unwrap_or_default(),
            message: first.map(|r| r.message).unwrap_or_default(),
            verdict: Box::new(verdict),
        }
    }

    /// A copy of a blocked/rate-limited refusal, for its audit entry.
    pub(crate) fn clone_refusal(&self) -> GatewayError {
        match self {
            GatewayError::Blocked(t) => GatewayError::Blocked(t.clone()),
            GatewayError::Forbidden(m) => GatewayError::Forbidden(m.clone()),
            GatewayError::RateLimited => GatewayError::RateLimited,
            other => GatewayError::Internal(other.to_string()),
        }
    }

    /// The stable code clients and the audit log key on.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::InvalidInput(_) => "invalid_input",
            GatewayError::Refused { .. }
            | GatewayError::VolatileFunction(_)
            | GatewayError::ResolvedRefusal { .. } => "policy_refused",
            GatewayError::UnknownConnection => "unknown_connection",
            GatewayError::UnknownConnectionName(_) => "unknown_connection_name",
            GatewayError::ClientConnectionsDisabled => "client_connections_disabled",
            GatewayError::TooManyConnections(_) | GatewayError::ConnectionQuota(_) => {
                "too_many_connections"
            }
            GatewayError::ConnectionUnavailable(_) => "connection_unavailable",
            GatewayError::Timeout(_) => "timeout",
            GatewayError::PermissionDenied(_) => "permission_denied",
            GatewayError::Syntax(_) => "syntax_error",
            GatewayError::UnknownTable(_) => "unknown_table",
            GatewayError::ReadOnlyViolation(_) => "read_only_violation",
            GatewayError::Database(_) => "database_error",
            GatewayError::Config(_) => "config_error",
            GatewayError::AuditUnavailable(_) => "audit_unavailable",
            GatewayError::Blocked(_) => "blocked",
            GatewayError::Forbidden(_) => "forbidden",
            GatewayError::RateLimited => "rate_limited",
            GatewayError::Internal(_) => "internal_error",
        }
    }

    /// The policy rule id, for refusals.
    pub fn rule(&self) -> Option<&str> {
        match self {
            GatewayError::Refused { rule, .. } => Some(rule),
            GatewayError::VolatileFunction(_) => Some("function.volatile"),
            GatewayError::ResolvedRefusal { rule, .. } => Some(rule),
            _ => None,
        }
    }
}

/// Removes every secret from a driver message: each given secret, and any
/// `scheme://user:password@` credential part of a URL.
pub fn scrub(message: &str, secrets: &[&str]) -> String {
    let mut out = message.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(s, "****");
    }
    // user:password@ inside URLs.
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        result.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let user = userinfo.split(':').next().unwrap_or("");
                result.push_str(user);
                if userinfo.contains(':') {
                    result.push_str(":****");
                }
                result.push_str(&authority[at..]);
            }
            None => result.push_str(authority),
        }
        rest = &tail[end..];
    }
    result.push_str(rest);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_passwords_and_url_credentials() {
        let m = scrub(
            "failed: postgresql://app:S3cr3t@db:5432/x and S3cr3t again",
            &["S3cr3t"],
        );
        assert!(!m.contains("S3cr3t"), "{m}");
        assert!(m.contains("postgresql://app:****@db:5432/x"), "{m}");
        let m = scrub("mysql://u:p%40ss@h/db", &[]);
        assert_eq!(m, "mysql://u:****@h/db");
    }

    #[test]
    fn database_messages_are_not_prefixed_twice() {
        let cases = [
            (
                GatewayError::UnknownTable("no such table: serverz".into()),
                "no such table: serverz",
            ),
            (
                GatewayError::UnknownTable("relation \"serverz\" does not exist".into()),
                "relation \"serverz\" does not exist",
            ),
            (
                GatewayError::UnknownTable("public.serverz".into()),
                "unknown table `public.serverz`",
            ),
            (
                GatewayError::Syntax("syntax error at or near \"SELEC\"".into()),
                "syntax error at or near \"SELEC\"",
            ),
            (
                GatewayError::Syntax("near \"SELEC\": syntax error".into()),
                "near \"SELEC\": syntax error",
            ),
            (
                GatewayError::Syntax("unexpected token".into()),
                "syntax error: unexpected token",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
