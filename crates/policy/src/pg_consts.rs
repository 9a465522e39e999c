//! Constant folding on PostgreSQL syntax trees (in their serde form), for sizing what an
//! expression would build before the server builds it: integers through casts, `abs`,
//! negation and arithmetic; string sizes through `chr`, `||`, `concat`, case functions and
//! nested builders; dates and intervals for `generate_series`. `None` means "not a
//! constant": the caller decides whether that is refused.

use serde_json::Value;

use crate::bombs;
use crate::postgres::{inner, string_node};

/// An integer constant, through casts: `1000`, `'1000'::int`, `1e12`.
pub(crate) fn int_const(v: &Value) -> Option<i128> {
    let (kind, body) = inner(v)?;
    match kind {
        "AConst" => {
            let val = body.get("val")?;
            if let Some(i) = val.get("Ival") {
                return Some(i128::from(i.get("ival")?.as_i64().unwrap_or(0)));
            }
            let text = val
                .get("Fval")
                .and_then(|f| f.get("fval"))
                .or_else(|| val.get("Sval").and_then(|s| s.get("sval")))?
                .as_str()?;
            let f: f64 = text.trim().parse().ok()?;
            f.is_finite().then_some(f as i128)
        }
        "TypeCast" => int_const(body.get("arg")?),
        "FuncCall" => {
            let names: Vec<&str> = body
                .get("funcname")?
                .as_array()?
                .iter()
                .filter_map(string_node)
                .collect();
            let args: Vec<&Value> = body.get("args")?.as_array()?.iter().collect();
            let [arg] = args.as_slice() else {
                return None;
            };
            match names.as_slice() {
                [.., "abs"] => int_const(arg).map(i128::abs),
                [
                    ..,
                    "int2" | "int4" | "int8" | "numeric" | "round" | "trunc" | "floor" | "ceil"
                    | "ceiling",
                ] => int_const(arg),
                _ => None,
            }
        }
        "AExpr" => {
            let op = body.get("name")?.as_array()?.iter().find_map(string_node)?;
            let r = int_const(body.get("rexpr")?)?;
            match body.get("lexpr") {
                Some(l) if !l.is_null() => bombs::arith(op, int_const(l)?, r),
                _ if op == "-" => Some(-r),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A string constant, through casts: `'abc'`, `'2025-01-01'::date`.
pub(crate) fn str_const(v: &Value) -> Option<&str> {
    let (kind, body) = inner(v)?;
    match kind {
        "AConst" => body.get("val")?.get("Sval")?.get("sval")?.as_str(),
        "TypeCast" => str_const(body.get("arg")?),
        _ => None,
    }
}

/// Seconds since the epoch of a `YYYY-MM-DD[ HH:MM[:SS]]` constant (close enough to size
/// a series; anything else is not sized).
pub(crate) fn epoch_seconds(text: &str) -> Option<i128> {
    let t = text.trim();
    let (date, time) = t.split_once([' ', 'T']).unwrap_or((t, "00:00:00"));
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i128>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut h = time
        .split(':')
        .map(|p| p.get(..2).unwrap_or(p).parse::<i128>().ok());
    let hours = h.next().flatten().unwrap_or(0);
    let minutes = h.next().flatten().unwrap_or(0);
    let days = y * 365 + y / 4 + (m - 1) * 30 + day;
    Some(days * 86_400 + hours * 3_600 + minutes * 60)
}

/// Seconds in a simple interval constant: `1 second`, `15 minutes`, `2 hours`, `1 day`.
pub(crate) fn interval_seconds(text: &str) -> Option<f64> {
    let mut total = 0f64;
    let mut words = text.split_whitespace();
    while let Some(n) = words.next() {
        let n: f64 = n.parse().ok()?;
        let unit = words.next()?.to_ascii_lowercase();
        let secs = match unit.as_str() {
            "microsecond" | "microseconds" | "us" => 1e-6,
            "millisecond" | "milliseconds" | "ms" => 1e-3,
            "second" | "seconds" | "sec" | "secs" | "s" => 1.0,
            "minute" | "minutes" | "min" | "mins" | "m" => 60.0,
            "hour" | "hours" | "h" => 3_600.0,
            "day" | "days" | "d" => 86_400.0,
            "week" | "weeks" | "w" => 604_800.0,
            "month" | "months" | "mon" | "mons" => 2_592_000.0,
            "year" | "years" | "y" => 31_536_000.0,
            _ => return None,
        };
        total += n * secs;
    }
    (total > 0.0).then_some(total)
}

/// Upper bound of the string a constant expression builds, where it can be known.
pub(crate) fn str_size(v: &Value) -> Option<u128> {
    let (kind, body) = inner(v)?;
    match kind {
        "AConst" => {
            let val = body.get("val")?;
            let s = val.get("Sval").and_then(|s| s.get("sval"))?.as_str()?;
            Some(s.len() as u128)
        }
        "TypeCast" => str_size(body.get("arg")?),
        "FuncCall" => {
            let names: Vec<&str> = body
                .get("funcname")?
                .as_array()?
                .iter()
                .filter_map(string_node)
                .collect();
            let name = *names.last()?;
            let args: Vec<&Value> = body.get("args")?.as_array()?.iter().collect();
            match name {
                "chr" => Some(4),
                "lower" | "upper" | "btrim" | "ltrim" | "rtrim" | "reverse" | "initcap"
                | "text" => str_size(args.first()?),
                "md5" => Some(32),
                "concat" => args
                    .iter()
                    .try_fold(0u128, |acc, a| Some(acc + str_size(a)?)),
                _ => call_size(name, &args),
            }
        }
        "AExpr" => {
            let op = body.get("name")?.as_array()?.iter().find_map(string_node)?;
            (op == "||").then_some(())?;
            Some(str_size(body.get("lexpr")?)?.saturating_add(str_size(body.get("rexpr")?)?))
        }
        _ => None,
    }
}

/// The constant size a builder's size argument asks for: a count for `repeat`/`lpad`, the
/// product of the dimensions for `array_fill` (`ARRAY[1000, 1000]`). `None` if not constant.
pub(crate) fn size_arg(name: &str, v: &Value) -> Option<i128> {
    if name != "array_fill" {
        return int_const(v);
    }
    let (kind, body) = inner(v)?;
    let body = match kind {
        "TypeCast" => return size_arg(name, body.get("arg")?),
        "AArrayExpr" => body,
        _ => return None,
    };
    body.get("elements")?
        .as_array()?
        .iter()
        .try_fold(1i128, |acc, e| acc.checked_mul(int_const(e)?.max(0)))
}

pub(crate) fn call_size(name: &str, args: &[&Value]) -> Option<u128> {
    if bombs::is_repeat(name) {
        let n = int_const(args.get(1)?)?.max(0) as u128;
        Some(str_size(args.first()?)?.saturating_mul(n))
    } else if bombs::is_pad(name) {
        Some(int_const(args.get(1)?)?.max(0) as u128)
    } else {
        None
    }
}
