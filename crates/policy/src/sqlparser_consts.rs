//! Reading constants out of `sqlparser`'s tree, shared by the MySQL and SQLite checks: a
//! call's argument expressions, and string constants.
//!
//! Invariant: a value is constant only when the text alone fixes it; anything that depends
//! on data, parameters or session state is `None`, and callers refuse or bound what they
//! cannot size.

use sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, Value};

/// The expression of one call argument, positional or named (`None` for `*` and `t.*`).
pub(crate) fn arg_expr(a: &FunctionArg) -> Option<&Expr> {
    match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
        | FunctionArg::Named {
            arg: FunctionArgExpr::Expr(e),
            ..
        }
        | FunctionArg::ExprNamed {
            arg: FunctionArgExpr::Expr(e),
            ..
        } => Some(e),
        _ => None,
    }
}

/// A string literal, through parentheses and casts (a cast of a literal to a string type is
/// the same text; to another type it is not a format or a pattern the checks rely on).
pub(crate) fn str_const(e: &Expr) -> Option<&str> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s),
            _ => None,
        },
        Expr::Nested(e) | Expr::Cast { expr: e, .. } => str_const(e),
        _ => None,
    }
}
