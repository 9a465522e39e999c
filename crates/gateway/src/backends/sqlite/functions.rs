//! Linear-time versions of the SQLite builtins whose own implementation is quadratic in
//! its arguments: `instr`, `replace`, `trim`, `ltrim`, `rtrim`. One call of a builtin is one
//! VDBE step, which neither the progress handler nor `sqlite3_interrupt` can stop: with
//! 32 KiB arguments SQLite's `trim(x, y)` ran 6.6 s, and with 1 MiB values (the length
//! limit) `instr` or `replace` would run for seconds and `trim` for many minutes. These
//! replace the builtins on dbward's connections only.
//!
//! Invariant: each returns exactly what the builtin returns (same NULL handling, same text
//! conversion of numbers — a REAL is rendered by SQLite itself —, same character counting,
//! blob and text rules), and runs in time linear in its input, except `trim` with a
//! character set that is not valid UTF-8, which follows SQLite's own algorithm under a work
//! budget and fails past it.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, Error, Result};

/// Byte comparisons `trim` may spend on a character set that is not valid UTF-8.
const TRIM_BUDGET: u64 = 50_000_000;

/// A converter for REAL arguments: SQLite's own text rendering, from a private in-memory
/// connection (opened on first use).
type Converter = Arc<Mutex<Option<Connection>>>;

/// Replaces the quadratic builtins on `c`. `length` is the connection's length limit.
pub(super) fn install(c: &Connection, length: i32) -> Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8
        | FunctionFlags::SQLITE_DETERMINISTIC
        | FunctionFlags::SQLITE_INNOCUOUS;
    let conv: Converter = Arc::new(Mutex::new(None));
    let max = usize::try_from(length).unwrap_or(0);
    {
        let conv = conv.clone();
        c.create_scalar_function("instr", 2, flags, move |ctx| instr(ctx, &conv))?;
    }
    {
        let conv = conv.clone();
        c.create_scalar_function("replace", 3, flags, move |ctx| replace(ctx, &conv, max))?;
    }
    for (name, sides) in [("trim", 3u8), ("ltrim", 1), ("rtrim", 2)] {
        for n_arg in [1, 2] {
            let conv = conv.clone();
            c.create_scalar_function(name, n_arg, flags, move |ctx| trim(ctx, &conv, sides))?;
        }
    }
    Ok(())
}

/// An argument as SQLite's `sqlite3_value_text` (or `_blob`) would give it.
struct Arg<'a> {
    bytes: Cow<'a, [u8]>,
    blob: bool,
}

fn arg<'a>(ctx: &'a Context<'_>, i: usize, conv: &Converter) -> Result<Option<Arg<'a>>> {
    let (bytes, blob) = match ctx.get_raw(i) {
        ValueRef::Null => return Ok(None),
        ValueRef::Integer(n) => (Cow::Owned(n.to_string().into_bytes()), false),
        ValueRef::Real(f) => (Cow::Owned(real_text(f, conv)?.into_bytes()), false),
        ValueRef::Text(t) => (Cow::Borrowed(t), false),
        ValueRef::Blob(b) => (Cow::Borrowed(b), true),
    };
    Ok(Some(Arg { bytes, blob }))
}

fn real_text(f: f64, conv: &Converter) -> Result<String> {
    let mut guard = conv.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        *guard = Some(Connection::open_in_memory()?);
    }
    let c = guard.as_ref().ok_or(Error::InvalidQuery)?;
    c.query_row("SELECT CAST(?1 AS TEXT)", [f], |r| r.get(0))
}

/// Text bytes as a result (the builtins return TEXT even from blob input).
struct Text(Vec<u8>);

impl ToSql for Text {
    fn to_sql(&self) -> Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(&self.0)))
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

fn instr(ctx: &Context<'_>, conv: &Converter) -> Result<Option<i64>> {
    let (Some(hay), Some(needle)) = (arg(ctx, 0, conv)?, arg(ctx, 1, conv)?) else {
        return Ok(None);
    };
    if needle.bytes.is_empty() {
        return Ok(Some(1));
    }
    let text = !(hay.blob && needle.blob);
    let (h, n) = (&hay.bytes[..], &needle.bytes[..]);
    // SQLite looks for a match only where a character starts (text) or at every byte.
    let found =
        memchr::memmem::find_iter(h, n).find(|&p| !text || p == 0 || !is_continuation(h[p]));
    Ok(Some(match found {
        None => 0,
        Some(p) if text => 1 + h[1..=p].iter().filter(|b| !is_continuation(**b)).count() as i64,
        Some(p) => 1 + p as i64,
    }))
}

fn too_big() -> Error {
    Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_TOOBIG),
        Some("string or blob too big".into()),
    )
}

fn replace(ctx: &Context<'_>, conv: &Converter, max: usize) -> Result<Option<Text>> {
    let Some(s) = arg(ctx, 0, conv)? else {
        return Ok(None);
    };
    let Some(pattern) = arg(ctx, 1, conv)? else {
        return Ok(None);
    };
    if pattern.bytes.first().is_none_or(|b| *b == 0) {
        return Ok(Some(Text(s.bytes.into_owned())));
    }
    let Some(rep) = arg(ctx, 2, conv)? else {
        return Ok(None);
    };
    let (s, p, r) = (&s.bytes[..], &pattern.bytes[..], &rep.bytes[..]);
    let finder = memchr::memmem::Finder::new(p);
    let matches = finder.find_iter(s).count();
    let len = (s.len() - matches * p.len()).saturating_add(matches.saturating_mul(r.len()));
    if len > max {
        return Err(too_big());
    }
    let mut out = Vec::with_capacity(len);
    let mut last = 0;
    for m in finder.find_iter(s) {
        out.extend_from_slice(&s[last..m]);
        out.extend_from_slice(r);
        last = m + p.len();
    }
    out.extend_from_slice(&s[last..]);
    Ok(Some(Text(out)))
}

/// SQLite's characters of a trim set: a lead byte and the continuation bytes after it.
fn set_chars(set: &[u8]) -> Vec<&[u8]> {
    let mut chars = Vec::new();
    let mut i = 0;
    while i < set.len() {
        let start = i;
        i += 1;
        if set[start] >= 0xC0 {
            while i < set.len() && is_continuation(set[i]) {
                i += 1;
            }
        }
        chars.push(&set[start..i]);
    }
    chars
}

fn trim(ctx: &Context<'_>, conv: &Converter, sides: u8) -> Result<Option<Text>> {
    let Some(input) = arg(ctx, 0, conv)? else {
        return Ok(None);
    };
    let set = if ctx.len() == 2 {
        match arg(ctx, 1, conv)? {
            None => return Ok(None),
            Some(a) => a.bytes.into_owned(),
        }
    } else {
        b" ".to_vec()
    };
    let x = &input.bytes[..];
    let chars = set_chars(&set);
    let (mut start, mut end) = (0usize, x.len());
    let valid = std::str::from_utf8(x).is_ok() && std::str::from_utf8(&set).is_ok();
    if chars.is_empty() {
        // An empty set trims nothing.
    } else if valid {
        // Valid UTF-8 is prefix-free: a set character matches exactly when it is the
        // character at that end.
        let set: std::collections::HashSet<char> = String::from_utf8_lossy(&set).chars().collect();
        let s = String::from_utf8_lossy(x);
        if sides & 1 != 0 {
            start = s.len() - s.trim_start_matches(|c| set.contains(&c)).len();
        }
        if sides & 2 != 0 {
            end = start + s[start..].trim_end_matches(|c| set.contains(&c)).len();
        }
    } else {
        // SQLite's own loop (first set character that matches wins), under a budget.
        let mut work = 0u64;
        let mut step = |at_end: bool, start: usize, end: usize| -> Result<Option<usize>> {
            for c in &chars {
                work += c.len() as u64 + 1;
                if work > TRIM_BUDGET {
                    return Err(Error::UserFunctionError(
                        "trim: this character set is too costly to apply to this value".into(),
                    ));
                }
                let n = end - start;
                let hit = c.len() <= n
                    && if at_end {
                        &x[end - c.len()..end] == *c
                    } else {
                        &x[start..start + c.len()] == *c
                    };
                if hit {
                    return Ok(Some(c.len()));
                }
            }
            Ok(None)
        };
        if sides & 1 != 0 {
            while start < end {
                match step(false, start, end)? {
                    Some(len) => start += len,
                    None => break,
                }
            }
        }
        if sides & 2 != 0 {
            while start < end {
                match step(true, start, end)? {
                    Some(len) => end -= len,
                    None => break,
                }
            }
        }
    }
    Ok(Some(Text(x[start..end].to_vec())))
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    /// Every case gives the same result from the builtin and from the replacement.
    #[test]
    fn replacements_match_the_builtins() {
        let builtin = Connection::open_in_memory().expect("open");
        let ours = Connection::open_in_memory().expect("open");
        super::install(&ours, 1 << 20).expect("install");
        let cases = [
            "instr('hello', 'l')",
            "instr('héllo wörld', 'wö')",
            "instr('héllo', '')",
            "instr('', '')",
            "instr('', 'a')",
            "instr(NULL, 'a')",
            "instr('a', NULL)",
            "instr(12345, 34)",
            "instr(3.25, '.')",
            "instr(x'00ff01ff', x'ff')",
            "instr(x'68656c6c6f', 'll')",
            "instr('aaab', 'aab')",
            "instr('日本語テキスト', 'テ')",
            "replace('hello', 'l', 'L')",
            "replace('hello', '', 'x')",
            "replace('hello', NULL, 'x')",
            "replace(NULL, 'a', 'x')",
            "replace('hello', 'l', NULL)",
            "replace('aaaa', 'aa', 'b')",
            "replace(1.5, '.', ',')",
            "replace(100, 0, 9)",
            "replace(x'616263', 'b', 'X')",
            "replace('abc', x'00', 'X')",
            "replace('héllo', 'é', 'e')",
            "trim('  a  ')",
            "ltrim('  a  ')",
            "rtrim('  a  ')",
            "trim('xxaxx', 'x')",
            "trim('xyaxy', 'yx')",
            "trim('éaé', 'é')",
            "trim('abc', '')",
            "trim(NULL, 'a')",
            "trim('abc', NULL)",
            "ltrim(1200, 1)",
            "rtrim(1200, 0)",
            "trim(2.50, '0')",
            "trim(x'c3a9' || 'a', x'c3')",
            "rtrim('a' || x'a9a9', x'a9')",
            "ltrim(x'80808041', x'80')",
            "typeof(trim(x'41'))",
            "typeof(replace(x'41', 'a', 'b'))",
        ];
        for expr in cases {
            let sql = format!("SELECT typeof({expr}) || ':' || hex({expr})");
            let a: String = builtin.query_row(&sql, [], |r| r.get(0)).expect(expr);
            let b: String = ours.query_row(&sql, [], |r| r.get(0)).expect(expr);
            assert_eq!(a, b, "{expr}");
        }
    }
}
