//! MySQL/MariaDB syntax `sqlparser` does not read, rewritten for the policy's eyes only
//! (the server runs the original text): `a MOD b`, compound interval units
//! (`YEAR_MONTH`, `HOUR_MINUTE`, ...), `CHAR(... USING charset)` and the
//! `CAST(x AS CHAR CHARSET cs)` the server writes into a view's stored definition.
//!
//! Invariants:
//! - Only what names no table, column or function changes: an operator spelled as a word,
//!   a unit keyword, a character set name. Everything else is byte-for-byte the original.
//! - Every replacement has the length of what it replaces and keeps its newlines, so
//!   positions in messages still point into the original text.
//! - Tokens come from the same MySQL lexical rules the lexical check uses, so a word inside
//!   a string, a quoted identifier or a comment is never rewritten.

use sqlparser::dialect::MySqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Compound units (reserved words in MySQL and MariaDB, so never an unquoted identifier)
/// and the simple unit the parser is shown instead.
const COMPOUND_UNITS: &[(&str, &str)] = &[
    ("year_month", "MONTH"),
    ("day_hour", "DAY"),
    ("day_minute", "DAY"),
    ("day_second", "DAY"),
    ("day_microsecond", "DAY"),
    ("hour_minute", "HOUR"),
    ("hour_second", "HOUR"),
    ("hour_microsecond", "HOUR"),
    ("minute_second", "MINUTE"),
    ("minute_microsecond", "MINUTE"),
    ("second_microsecond", "SECOND"),
];

/// The text the parser reads; `Cow::Borrowed` when nothing needed rewriting.
pub(crate) fn normalize(sql: &str) -> std::borrow::Cow<'_, str> {
    let Ok(tokens) = Tokenizer::new(&MySqlDialect {}, sql).tokenize_with_location() else {
        return sql.into();
    };
    let offsets = CharOffsets::new(sql);
    // Byte ranges to replace, and the replacement's first characters.
    let mut edits: Vec<(usize, usize, &str)> = Vec::new();
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();
    // Open parentheses: whether each belongs to a CHAR( call.
    let mut parens: Vec<bool> = Vec::new();
    for (k, &i) in significant.iter().enumerate() {
        let t = &tokens[i];
        let prev = k.checked_sub(1).map(|p| &tokens[significant[p]].token);
        let next = significant.get(k + 1).map(|&n| &tokens[n].token);
        let range = || {
            let start = offsets.byte(t.span.start.line, t.span.start.column);
            let end = offsets.byte(t.span.end.line, t.span.end.column);
            (start, end)
        };
        match &t.token {
            Token::LParen => {
                let is_char = matches!(prev, Some(Token::Word(w))
                    if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("char"));
                parens.push(is_char);
            }
            Token::RParen => {
                parens.pop();
            }
            Token::Word(w) if w.quote_style.is_none() => {
                let lower = w.value.to_ascii_lowercase();
                if lower == "mod" && is_binary_mod(prev, next) {
                    let (s, e) = range();
                    edits.push((s, e, "%"));
                } else if let Some((_, simple)) = COMPOUND_UNITS.iter().find(|(u, _)| *u == lower) {
                    let (s, e) = range();
                    edits.push((s, e, simple));
                } else if lower == "charset" && follows_char_type(&tokens, &significant, k) {
                    // `CHAR[(n)] CHARSET cs` in a cast: how the server spells CAST(x AS CHAR)
                    // in a view's stored definition. Only the character set name goes.
                    if let Some(&n) = significant.get(k + 1)
                        && matches!(
                            &tokens[n].token,
                            Token::Word(_) | Token::SingleQuotedString(_)
                        )
                    {
                        let (s, _) = range();
                        let end = &tokens[n].span.end;
                        edits.push((s, offsets.byte(end.line, end.column), ""));
                    }
                } else if w.keyword == Keyword::USING && parens.last() == Some(&true) {
                    // `USING charset` up to the closing parenthesis of CHAR(...).
                    if let Some(&n) = significant.get(k + 1)
                        && matches!(
                            &tokens[n].token,
                            Token::Word(_) | Token::SingleQuotedString(_)
                        )
                        && matches!(
                            significant.get(k + 2).map(|&c| &tokens[c].token),
                            Some(Token::RParen)
                        )
                    {
                        let (s, _) = range();
                        let end = &tokens[n].span.end;
                        edits.push((s, offsets.byte(end.line, end.column), ""));
                    }
                }
            }
            _ => {}
        }
    }
    if edits.is_empty() {
        return sql.into();
    }
    let mut out = String::with_capacity(sql.len());
    let mut at = 0;
    for (start, end, with) in edits {
        if start < at || end > sql.len() || start > end {
            // Overlapping or out-of-range edits: show the parser the original.
            return sql.into();
        }
        out.push_str(&sql[at..start]);
        let replaced = &sql[start..end];
        let mut fill = with.chars();
        for c in replaced.chars() {
            // Keep newlines (positions are line-based) and the replaced width.
            out.push(if c == '\n' {
                '\n'
            } else {
                fill.next().unwrap_or(' ')
            });
        }
        at = end;
    }
    out.push_str(&sql[at..]);
    out.into()
}

/// Whether the significant token `k` follows the type `CHAR` or `CHAR(n)`.
fn follows_char_type(
    tokens: &[sqlparser::tokenizer::TokenWithSpan],
    significant: &[usize],
    k: usize,
) -> bool {
    let at = |back: usize| {
        k.checked_sub(back)
            .and_then(|i| significant.get(i))
            .map(|&i| &tokens[i].token)
    };
    let is_char = |t: Option<&Token>| {
        matches!(t, Some(Token::Word(w))
            if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("char"))
    };
    is_char(at(1))
        || (matches!(at(1), Some(Token::RParen))
            && matches!(at(2), Some(Token::Number(..)))
            && matches!(at(3), Some(Token::LParen))
            && is_char(at(4)))
}

/// `MOD` is the operator when it is not a call (`MOD(a, b)`), i.e. it follows an operand.
fn is_binary_mod(prev: Option<&Token>, next: Option<&Token>) -> bool {
    let operand_before = match prev {
        Some(Token::Word(w)) => w.quote_style.is_some() || w.keyword == Keyword::NoKeyword,
        Some(
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::RParen
            | Token::Placeholder(_),
        ) => true,
        _ => false,
    };
    operand_before || !matches!(next, Some(Token::LParen))
}

/// Byte offsets of (line, column) locations, columns counted in characters from 1.
struct CharOffsets(Vec<Vec<usize>>);

impl CharOffsets {
    fn new(sql: &str) -> CharOffsets {
        let mut lines = vec![Vec::new()];
        for (b, c) in sql.char_indices() {
            lines.last_mut().expect("one line").push(b);
            if c == '\n' {
                lines.push(Vec::new());
            }
        }
        CharOffsets(lines).with_end(sql.len())
    }

    fn with_end(mut self, len: usize) -> CharOffsets {
        self.0.last_mut().expect("one line").push(len);
        self
    }

    fn byte(&self, line: u64, column: u64) -> usize {
        let Some(l) = self.0.get(line.saturating_sub(1) as usize) else {
            return usize::MAX;
        };
        l.get(column.saturating_sub(1) as usize)
            .copied()
            .unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_keep_length_and_touch_nothing_quoted() {
        assert_eq!(
            normalize("SELECT id MOD 4 FROM t"),
            "SELECT id %   4 FROM t"
        );
        assert_eq!(
            normalize("SELECT MOD(id, 4) FROM t"),
            "SELECT MOD(id, 4) FROM t"
        );
        assert_eq!(
            normalize("SELECT EXTRACT(YEAR_MONTH FROM d)"),
            "SELECT EXTRACT(MONTH      FROM d)"
        );
        assert_eq!(
            normalize("SELECT CHAR(72, 105 USING utf8mb4)"),
            "SELECT CHAR(72, 105              )"
        );
        assert_eq!(
            normalize("SELECT 'a MOD b', `mod`"),
            "SELECT 'a MOD b', `mod`"
        );
        assert_eq!(
            normalize("select cast(`t`.`a` as char charset utf8mb3) AS `c`"),
            "select cast(`t`.`a` as char                ) AS `c`"
        );
        assert_eq!(
            normalize("select cast(a as char(10) charset binary), charset from t"),
            "select cast(a as char(10)               ), charset from t"
        );
        let s = "SELECT d + INTERVAL '1:30' HOUR_MINUTE\nFROM t";
        assert_eq!(normalize(s).len(), s.len());
    }
}
