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
//! - A denied table reached through a user view, as the parent of a partition or
//!   inheritance child, or as a partition or child of a table the query reads (whose rows
//!   include its own), is refused; so is a denied column a user view reads, any partition
//!   or child of a table with denied columns (its columns are the parent's), and any parent
//!   of a partition or child with denied columns.
//! - A table read with a generated column computed from a denied column is refused until
//!   that column is denied too (it is a copy of the denied one under another name).

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
            Reach::Descendant => {
                " (a partition or child table of a table the query reads: its rows are read with the parent's)"
            }
        };
        // A view's reads and a parent's partitions are the view's and the parent's business
        // for an allowlist; a denial holds wherever the rows are reached from.
        if !matches!(how, Reach::View | Reach::Descendant)
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
        if *how == Reach::Descendant && !policy.denied_columns_of(D, &t).is_empty() {
            return Err(refuse(
                "column.denied",
                format!(
                    "`{schema}.{name}` has denied columns, and the query reads a table it is a partition or child of, whose rows include its own: query `{schema}.{name}` by its name with named columns instead"
                ),
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
    // A generated column holds (or computes) what its expression reads: one computed from a
    // denied column is a copy of it, readable by another name, unless it is denied too.
    for (schema, table, generated, source) in &r.generated_columns {
        let t = TableRef {
            schema: Some(schema.clone()),
            name: table.clone(),
        };
        let denied = policy.denied_columns_of(D, &t);
        if denied.contains(&source.as_str()) && !denied.contains(&generated.as_str()) {
            return Err(refuse(
                "column.denied",
                format!(
                    "column `{schema}.{table}.{generated}` is generated from the denied column `{source}`: an operator should deny `{table}.{generated}` too (policy.denied_columns), which makes the table's other columns readable again"
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
