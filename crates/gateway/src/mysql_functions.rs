//! MySQL/MariaDB: the decision on every function a query calls, made on what the server
//! resolves each name to (see `backends::mysql::routines`), not on the name alone.
//!
//! Invariants:
//! - A call that may run a stored routine (a qualified call, or an unqualified name with a
//!   routine of that name in the current database, even one a native builtin would win
//!   over) is refused unless `policy.allowed_functions` names that routine as `db.fn`.
//!   MySQL does not enforce a routine's declared characteristics: any stored function may
//!   write or KILL another session, and a READ ONLY transaction does not stop KILL.
//! - A loadable function (UDF) is refused unless allowlisted by its bare name.
//! - A name the policy does not know as a native builtin is refused when the server does
//!   not let this login read `mysql.func` (it could be a UDF), unless allowlisted.
//! - Nothing is cached: every call is resolved when it runs.

use dbward_policy::{Policy, Verdict};

use crate::backends::mysql::MyBackend;
use crate::error::GatewayError;

pub(crate) async fn check(
    backend: &MyBackend,
    policy: &Policy,
    verdict: &Verdict,
) -> Result<(), GatewayError> {
    let mut calls: Vec<(Option<String>, String)> = verdict
        .functions
        .iter()
        .map(|f| (f.schema.clone(), f.name.to_ascii_lowercase()))
        .collect();
    calls.sort();
    calls.dedup();
    if calls.is_empty() {
        return Ok(());
    }
    let resolved = backend.resolve_functions(&calls).await?;
    let allowed = &policy.config().allowed_functions;
    let qualified_allowed = |db: &str, name: &str| {
        allowed.iter().any(|a| {
            a.trim()
                .rsplit_once('.')
                .is_some_and(|(s, n)| s == db && n.eq_ignore_ascii_case(name))
        })
    };
    let bare_allowed = |name: &str| allowed.iter().any(|a| a.trim().eq_ignore_ascii_case(name));
    for (i, (schema, name)) in calls.iter().enumerate() {
        let shown = match schema {
            Some(s) => format!("{s}.{name}"),
            None => name.clone(),
        };
        if let Some(db) = resolved.stored.get(i).cloned().flatten() {
            if !qualified_allowed(&db, name) {
                return Err(GatewayError::VolatileFunction(format!(
                    "function `{shown}` may run the stored routine `{db}.{name}` (MySQL does not enforce a routine's declared characteristics, so any stored function may write or end other sessions); an operator can allowlist `{db}.{name}` in policy.allowed_functions"
                )));
            }
            continue;
        }
        let unknown = verdict
            .unknown_functions
            .iter()
            .any(|f| f.schema == *schema && f.name.eq_ignore_ascii_case(name));
        match &resolved.loadable {
            Some(udfs)
                if udfs.iter().any(|u| u.eq_ignore_ascii_case(name)) && !bare_allowed(name) =>
            {
                return Err(GatewayError::VolatileFunction(format!(
                    "function `{shown}` is a loadable function (UDF): native code dbward cannot judge; an operator can allowlist `{name}` in policy.allowed_functions"
                )));
            }
            None if unknown && schema.is_none() => {
                return Err(GatewayError::VolatileFunction(format!(
                    "function `{shown}` is not a MySQL builtin dbward knows, and this login cannot read mysql.func to rule out a loadable function (UDF); an operator can allowlist `{name}` in policy.allowed_functions"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}
