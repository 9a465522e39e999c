//! MySQL/MariaDB: the decision on every function a query runs, made on what the server
//! resolves each name to (see `backends::mysql::routines`), not on the name alone, and on
//! what the views the query reads run and read (see `backends::mysql::views`).
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
//! - Every view the query reaches, through other views too, is judged on the server's own
//!   definition of it, parsed by the policy as if it were the query: a call in it is
//!   resolved as above (an unqualified name in the view's database) and refused as
//!   `function.user_defined`; anything else the policy refuses in it (a denied column, a
//!   sleeping or locking function, a server secret) refuses the query under that rule; a
//!   table it reads that configuration denies is `table.denied`. What a view reads is not
//!   held to `allowed_tables`/`allowed_schemas` (as on PostgreSQL: the view is the
//!   allowed object). A view whose definition this login is not shown is refused: dbward
//!   cannot tell what it runs.
//! - A generated column of a table with denied columns is denied like them, in the query
//!   and in every view it reaches: its expression may read a denied column, and dbward
//!   does not re-implement the server's reading of it (fail closed: a harmless generated
//!   column of such a table is refused too). `*` on such a table is refused already.
//! - Nothing is cached, and nothing is asked on another connection: every name is
//!   resolved on the query's own connection, inside its transaction, after the relations
//!   the query names are locked until it ends (`backends::mysql::resolve`). A view
//!   redefined or a table altered after the judgement waits for the rollback.

use std::collections::HashSet;

use dbward_policy::{Dialect, Policy, Rule, TableRef, Verdict};

use crate::backends::mysql::InTxn;
use crate::error::GatewayError;

/// Distinct views judged for one query at most; a deeper or wider web is refused.
const MAX_VIEWS: usize = 64;

/// One function call to judge.
struct Site {
    /// Where the server looks for a stored routine of this name: the call's qualifier, or
    /// for an unqualified call in a view, the view's database (`None`: the current one).
    scope: Option<String>,
    /// The name, lower-cased.
    name: String,
    /// Whether the call is written with a qualifier (only unqualified names can be UDFs).
    qualified: bool,
    /// The policy has no rule for this name.
    unknown: bool,
    /// The view (`db.view`) whose definition makes the call; `None` for the query's own.
    view: Option<String>,
}

impl Site {
    fn shown(&self) -> String {
        match (&self.scope, self.qualified) {
            (Some(s), true) => format!("{s}.{}", self.name),
            _ => self.name.clone(),
        }
    }
}

/// A view the query reaches, and the policy's verdict on its definition.
struct ViewRead {
    /// `db.view`, for messages.
    shown: String,
    /// The view's database.
    schema: String,
    /// The view's name.
    name: String,
    /// The server's definition, judged again if generated columns are denied.
    definition: String,
    verdict: Verdict,
}

/// Judges what the query `sql` (whose verdict is `verdict`) reaches, on the query's own
/// connection: locks the relations it names, then judges the views, the generated columns
/// and the calls.
pub(crate) async fn check(
    txn: &mut InTxn<'_>,
    policy: &Policy,
    sql: &str,
    verdict: &Verdict,
) -> Result<(), GatewayError> {
    let mut names: Vec<(Option<String>, String)> = verdict
        .relation_names
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    txn.lock_relations(&names).await?;
    let views = views_read(txn, policy, verdict).await?;
    if let Some(v) = views.iter().find(|v| {
        txn.unlocked.iter().any(|(s, n)| {
            n.eq_ignore_ascii_case(&v.name) && s.as_deref().is_none_or(|s| s == v.schema)
        })
    }) {
        return Err(GatewayError::ResolvedRefusal {
            rule: "function.user_defined",
            message: format!(
                "the view `{}` could not be locked for the query (the server would not open it), so dbward cannot hold its definition while the query runs",
                v.shown
            ),
        });
    }
    generated_columns(txn, policy, sql, verdict, &views).await?;
    let mut sites: Vec<Site> = verdict
        .functions
        .iter()
        .map(|f| Site {
            scope: f.schema.clone(),
            name: f.name.to_ascii_lowercase(),
            qualified: f.schema.is_some(),
            unknown: verdict
                .unknown_functions
                .iter()
                .any(|u| u.schema == f.schema && u.name.eq_ignore_ascii_case(&f.name)),
            view: None,
        })
        .collect();
    for v in &views {
        sites.extend(v.verdict.functions.iter().map(|f| {
            Site {
                scope: Some(f.schema.clone().unwrap_or_else(|| v.schema.clone())),
                name: f.name.to_ascii_lowercase(),
                qualified: f.schema.is_some(),
                unknown: v
                    .verdict
                    .unknown_functions
                    .iter()
                    .any(|u| u.schema == f.schema && u.name.eq_ignore_ascii_case(&f.name)),
                view: Some(v.shown.clone()),
            }
        }));
    }
    judge_calls(txn, policy, &sites).await
}

/// Refuses the query if it, or a view it reaches, names a generated column of a table
/// with denied columns: the query and each view definition are judged again with those
/// columns denied too.
async fn generated_columns(
    txn: &mut InTxn<'_>,
    policy: &Policy,
    sql: &str,
    verdict: &Verdict,
    views: &[ViewRead],
) -> Result<(), GatewayError> {
    // Every table read, qualified as the server resolves it: the query's in the current
    // database (`None`), a view's in the view's database.
    let mut tables: Vec<(Option<String>, String)> = verdict
        .tables
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .chain(views.iter().flat_map(|v| {
            v.verdict.tables.iter().map(|t| {
                (
                    Some(t.schema.clone().unwrap_or_else(|| v.schema.clone())),
                    t.name.clone(),
                )
            })
        }))
        .filter(|(schema, name)| {
            let t = TableRef {
                schema: schema.clone(),
                name: name.clone(),
            };
            !policy.denied_columns_of(Dialect::Mysql, &t).is_empty()
        })
        .collect();
    tables.sort();
    tables.dedup();
    if tables.is_empty() {
        return Ok(());
    }
    let generated = txn.generated_columns(&tables).await?;
    // information_schema over-matches names case-insensitively: keep only the columns of
    // tables with denied columns.
    let denied: Vec<String> = generated
        .into_iter()
        .filter(|(db, table, _)| {
            let t = TableRef {
                schema: Some(db.clone()),
                name: table.clone(),
            };
            !policy.denied_columns_of(Dialect::Mysql, &t).is_empty()
        })
        .map(|(db, table, column)| format!("{db}.{table}.{column}"))
        .collect();
    if denied.is_empty() {
        return Ok(());
    }
    let mut config = policy.config().clone();
    config.denied_columns.extend(denied.iter().cloned());
    let stricter = Policy::new(config);
    let why = |what: &str, message: &str| GatewayError::ResolvedRefusal {
        rule: "column.denied",
        message: format!(
            "{what}{message}; generated columns of a table with denied columns are denied too (their expression may read a denied column): {}",
            denied.join(", ")
        ),
    };
    let v = stricter.check(Dialect::Mysql, sql);
    if let Some(r) = v.reasons.iter().find(|r| r.rule == Rule::ColumnDenied) {
        return Err(why("", &r.message));
    }
    for view in views {
        let v = stricter.check_definition(Dialect::Mysql, &view.definition);
        if let Some(r) = v.reasons.iter().find(|r| r.rule == Rule::ColumnDenied) {
            return Err(why(
                &format!("the view `{}` the query reads: ", view.shown),
                &r.message,
            ));
        }
    }
    Ok(())
}

/// Asks the server about every call at once and refuses the first that may run code dbward
/// cannot judge.
async fn judge_calls(
    txn: &mut InTxn<'_>,
    policy: &Policy,
    sites: &[Site],
) -> Result<(), GatewayError> {
    let mut calls: Vec<(Option<String>, String)> = sites
        .iter()
        .map(|s| (s.scope.clone(), s.name.clone()))
        .collect();
    calls.sort();
    calls.dedup();
    if calls.is_empty() {
        return Ok(());
    }
    let resolved = txn.resolve_functions(&calls).await?;
    let allowed = &policy.config().allowed_functions;
    let qualified_allowed = |db: &str, name: &str| {
        allowed.iter().any(|a| {
            a.trim()
                .rsplit_once('.')
                .is_some_and(|(s, n)| s == db && n.eq_ignore_ascii_case(name))
        })
    };
    let bare_allowed = |name: &str| allowed.iter().any(|a| a.trim().eq_ignore_ascii_case(name));
    for site in sites {
        let name = &site.name;
        let shown = site.shown();
        let i = calls
            .binary_search(&(site.scope.clone(), name.clone()))
            .unwrap_or(usize::MAX);
        let problem = if let Some(db) = resolved.stored.get(i).cloned().flatten() {
            if qualified_allowed(&db, name) {
                continue;
            }
            format!(
                "`{shown}` may run the stored routine `{db}.{name}` (MySQL does not enforce a routine's declared characteristics, so any stored function may write or end other sessions); an operator can allowlist `{db}.{name}` in policy.allowed_functions"
            )
        } else {
            match &resolved.loadable {
                Some(udfs)
                    if !site.qualified
                        && udfs.iter().any(|u| u.eq_ignore_ascii_case(name))
                        && !bare_allowed(name) =>
                {
                    format!(
                        "`{shown}` is a loadable function (UDF): native code dbward cannot judge; an operator can allowlist `{name}` in policy.allowed_functions"
                    )
                }
                None if site.unknown && !site.qualified => format!(
                    "`{shown}` is not a MySQL builtin dbward knows, and this login cannot read mysql.func to rule out a loadable function (UDF); an operator can allowlist `{name}` in policy.allowed_functions"
                ),
                _ => continue,
            }
        };
        return Err(match &site.view {
            None => GatewayError::VolatileFunction(format!("function {problem}")),
            Some(view) => GatewayError::ResolvedRefusal {
                rule: "function.user_defined",
                message: format!("the view `{view}` the query reads calls {problem}"),
            },
        });
    }
    Ok(())
}

/// Every view the query reaches, through views recursively, each judged on its definition.
async fn views_read(
    txn: &mut InTxn<'_>,
    policy: &Policy,
    verdict: &Verdict,
) -> Result<Vec<ViewRead>, GatewayError> {
    // Every relation name, CTE names included: a CTE named like a view in one scope does
    // not hide the view read in another, and judging a view that is not read only refuses
    // more.
    let mut frontier: Vec<(Option<String>, String)> = verdict
        .relation_names
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    let mut seen = HashSet::new();
    let mut out: Vec<ViewRead> = Vec::new();
    while !frontier.is_empty() {
        frontier.sort();
        frontier.dedup();
        let defs = txn.views_among(&frontier).await?;
        frontier.clear();
        for d in defs {
            if !seen.insert((d.schema.to_lowercase(), d.name.to_lowercase())) {
                continue;
            }
            let shown = format!("{}.{}", d.schema, d.name);
            if out.len() == MAX_VIEWS {
                return Err(GatewayError::ResolvedRefusal {
                    rule: "parse.too_deep",
                    message: format!(
                        "the query reaches more than {MAX_VIEWS} views (at `{shown}`); dbward judges what each runs and stops there"
                    ),
                });
            }
            let Some(definition) = d.definition else {
                return Err(GatewayError::ResolvedRefusal {
                    rule: "function.user_defined",
                    message: format!(
                        "the server does not show this login the definition of the view `{shown}` (it needs the SHOW VIEW privilege), so dbward cannot rule out a stored routine or denied data in it; `dbward setup-role` grants SHOW VIEW on views"
                    ),
                });
            };
            let v = policy.check_definition(Dialect::Mysql, &definition);
            judge_view(policy, &shown, &d.schema, &v)?;
            frontier.extend(v.relation_names.iter().map(|t| {
                (
                    Some(t.schema.clone().unwrap_or_else(|| d.schema.clone())),
                    t.name.clone(),
                )
            }));
            out.push(ViewRead {
                shown,
                schema: d.schema,
                name: d.name,
                definition,
                verdict: v,
            });
        }
    }
    Ok(out)
}

/// Refuses a view whose definition the policy refuses, or that reads a denied table.
fn judge_view(policy: &Policy, shown: &str, schema: &str, v: &Verdict) -> Result<(), GatewayError> {
    // `table.denied` reasons may come from the allowlist, which does not apply to what a
    // view reads: denied tables are judged below without it.
    if let Some(r) = v.reasons.iter().find(|r| r.rule != Rule::TableDenied) {
        return Err(GatewayError::ResolvedRefusal {
            rule: r.rule.id(),
            message: format!("the view `{shown}` the query reads: {}", r.message),
        });
    }
    for t in &v.tables {
        let t = TableRef {
            schema: Some(t.schema.clone().unwrap_or_else(|| schema.to_string())),
            name: t.name.clone(),
        };
        if policy.denies_table(Dialect::Mysql, &t) {
            return Err(GatewayError::ResolvedRefusal {
                rule: "table.denied",
                message: format!(
                    "table `{t}` is denied by configuration (read through the view `{shown}`)"
                ),
            });
        }
    }
    Ok(())
}
