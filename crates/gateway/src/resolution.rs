//! Judging what the database resolved a query's names to (PostgreSQL; see
//! [`crate::backends::postgres::resolve`]). The policy decided on names; this decides on referents.
//!
//! Rules:
//! - A user-defined function, operator or implicitly run routine (created after initdb,
//!   not part of an extension) is refused unless the operator allowlisted it by name
//!   (`policy.allowed_functions`, `schema.name` recommended): owner code can write,
//!   signal backends or sleep, whatever volatility it declares.
//! - An extension's or builtin routine the policy has no rule for (or that runs with no
//!   call in the text) is refused when volatile, unless allowlisted.
//! - With an allowlist (`allowed_schemas`, `allowed_tables`), every relation the query
//!   names must resolve to an allowed one; what a user view reads is the view's business.
//! - A denied table reached through a user view, or as the parent of a partition or
//!   inheritance child, is refused; so is a denied column a user view reads, and any
//!   partition or child of a table with denied columns (its columns are the parent's).

use dbward_policy::{Dialect, FunctionRef, Policy, TableRef, Verdict};

use crate::backends::postgres::resolve::{Names, Reach, Resolution, RoutineKind};
use crate::error::GatewayError;

/// The names of a verdict, for the database to resolve.
pub(crate) fn names_of(verdict: &Verdict) -> Names {
    let f = |v: &[FunctionRef]| {
        v.iter()
            .map(|f| (f.schema.clone(), f.name.clone()))
            .collect()
    };
    let mut functions: Vec<(Option<String>, String)> = f(&verdict.functions);
    functions.extend(verdict.field_names.iter().map(|n| (None, n.clone())));
    Names {
        functions,
        operators: f(&verdict.operators),
        types: f(&verdict.types),
        relations: verdict
            .relation_names
            .iter()
            .map(|t| (t.schema.clone(), t.name.clone()))
            .collect(),
    }
}

/// Refuses what the resolution shows the policy could not see.
pub(crate) fn judge_pg(
    policy: &Policy,
    verdict: &Verdict,
    r: &Resolution,
) -> Result<(), GatewayError> {
    const D: Dialect = Dialect::Postgres;
    let refuse =
        |rule: &'static str, message: String| GatewayError::ResolvedRefusal { rule, message };
    for routine in &r.routines {
        let f = FunctionRef {
            schema: Some(routine.schema.clone()),
            name: routine.name.clone(),
        };
        if policy.is_function_allowlisted(D, &f) {
            continue;
        }
        let what = match (routine.kind, &routine.via) {
            (RoutineKind::Function, _) => format!("function `{}`", routine.signature),
            (RoutineKind::Operator, _) => format!("operator `{}`", routine.signature),
            (RoutineKind::Implicit, Some(via)) => {
                format!("function `{}` (run by {via})", routine.signature)
            }
            (RoutineKind::Implicit, None) => format!("function `{}`", routine.signature),
        };
        if routine.user_defined && !routine.extension {
            return Err(refuse(
                "function.user_defined",
                format!(
                    "{what} is user-defined code the query would run; it may write or affect other sessions whatever it declares. An operator can allowlist `{}.{}` in policy.allowed_functions",
                    routine.schema, routine.name
                ),
            ));
        }
        // A called name the policy vouches for (`random`, `gen_random_uuid`) is not asked
        // about again when an extension also defines it (pgcrypto's `gen_random_uuid`).
        let asked = routine.kind != RoutineKind::Function
            || verdict
                .unknown_functions
                .iter()
                .any(|u| u.name == routine.name);
        if routine.volatile && asked {
            return Err(GatewayError::VolatileFunction(format!(
                "{what} is volatile (it may have side effects) and is not allowlisted"
            )));
        }
    }
    for (schema, name, how) in &r.relations {
        let t = TableRef {
            schema: Some(schema.clone()),
            name: name.clone(),
        };
        let through = match how {
            Reach::Direct => "",
            Reach::View => " (read through a view)",
            Reach::Ancestor => " (the parent of a partition or child table the query reads)",
        };
        if *how != Reach::View
            && let Some(why) = policy.allowlist_refusal(D, &t, false)
        {
            return Err(refuse("table.denied", format!("{why}{through}")));
        }
        if policy.denies_table(D, &t) {
            return Err(refuse(
                "table.denied",
                format!("table `{schema}.{name}` is denied by configuration{through}"),
            ));
        }
        if *how == Reach::Ancestor && !policy.denied_columns_of(D, &t).is_empty() {
            return Err(refuse(
                "column.denied",
                format!(
                    "`{schema}.{name}` has denied columns, and the query reads one of its partitions or child tables directly: query `{schema}.{name}` with named columns instead"
                ),
            ));
        }
    }
    for (schema, table, column) in &r.view_columns {
        let t = TableRef {
            schema: Some(schema.clone()),
            name: table.clone(),
        };
        if policy.denied_columns_of(D, &t).contains(&column.as_str()) {
            return Err(refuse(
                "column.denied",
                format!(
                    "column `{schema}.{table}.{column}` is denied by configuration (a view the query reads uses it)"
                ),
            ));
        }
    }
    Ok(())
}
