//! MySQL/MariaDB: refuse what the server would read differently from the parser, before
//! parsing. The server runs the body of an executable comment (`/*! ... */`,
//! `/*!50000 ... */`, MariaDB's `/*M! ... */`) as SQL, so a parser that skips comments would
//! approve SQL it never saw; `--` not followed by whitespace is not a comment to MySQL.
//!
//! The scan uses `sqlparser`'s tokenizer with MySQL's lexical rules (backslash escapes in
//! strings, backtick identifiers, `#` comments, no nested comments), so a `/*!` inside a
//! string literal is text and never a reason to refuse.
//!
//! Invariant: any executable comment, any `--` comment not followed by whitespace, and
//! `INTO OUTFILE` / `INTO DUMPFILE` outside literals refuse the query.

use sqlparser::dialect::{Dialect, MySqlDialect};
use sqlparser::tokenizer::{Location, Token, Tokenizer, Whitespace};

use crate::verdict::{Reason, Rule};

/// MySQL's lexical rules, but with comments left as comments so they can be inspected:
/// executable comments are *not* expanded, and every `--` is tokenized as a comment.
#[derive(Debug)]
struct MysqlLexer(MySqlDialect);

impl Dialect for MysqlLexer {
    fn is_identifier_start(&self, ch: char) -> bool {
        self.0.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        self.0.is_identifier_part(ch)
    }
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.0.is_delimited_identifier_start(ch)
    }
    fn supports_string_literal_backslash_escape(&self) -> bool {
        true
    }
    fn supports_numeric_prefix(&self) -> bool {
        true
    }
    fn supports_hash_comment(&self) -> bool {
        true
    }
    fn requires_single_line_comment_whitespace(&self) -> bool {
        false
    }
    fn supports_multiline_comment_hints(&self) -> bool {
        false
    }
    fn supports_nested_comments(&self) -> bool {
        false
    }
}

/// Returns reasons to refuse, or `None` when the lexical form is unambiguous. Input that
/// does not tokenize is left to the parser, which refuses it with its own message.
pub(crate) fn check(sql: &str) -> Option<Vec<Reason>> {
    let lexer = MysqlLexer(MySqlDialect {});
    let tokens = Tokenizer::new(&lexer, sql).tokenize_with_location().ok()?;
    let mut reasons = Vec::new();
    let mut last_word_was_into = false;
    for t in &tokens {
        let start = t.span.start;
        let position = || Some(position_of(sql, start));
        match &t.token {
            Token::Whitespace(Whitespace::MultiLineComment(body))
                if body.starts_with('!') || body.starts_with("M!") =>
            {
                reasons.push(Reason {
                    rule: Rule::MysqlExecutableComment,
                    message: "executable comments (/*! ... */, /*M! ... */) run as SQL on the server; they are not allowed".into(),
                    position: position(),
                });
            }
            Token::Whitespace(Whitespace::SingleLineComment { comment, prefix })
                if prefix == "--" && !comment.starts_with(|c: char| c.is_whitespace()) =>
            {
                reasons.push(Reason {
                    rule: Rule::MysqlCommentSyntax,
                    message: "`--` must be followed by a space to be a comment in MySQL; write `-- ` or use parentheses for double negation".into(),
                    position: position(),
                });
            }
            Token::Whitespace(_) => continue,
            Token::Word(w) if w.quote_style.is_none() => {
                let v = w.value.to_ascii_uppercase();
                if last_word_was_into && (v == "OUTFILE" || v == "DUMPFILE") {
                    reasons.push(Reason {
                        rule: Rule::MysqlIntoOutfile,
                        message: format!("INTO {v} writes a file on the database server"),
                        position: position(),
                    });
                }
                last_word_was_into = v == "INTO";
                continue;
            }
            _ => {}
        }
        last_word_was_into = false;
    }
    (!reasons.is_empty()).then_some(reasons)
}

/// Character offsets of line starts, built once per query so positions cost O(1).
pub(crate) struct LineIndex(Vec<usize>);

impl LineIndex {
    pub(crate) fn new(sql: &str) -> LineIndex {
        let mut starts = vec![0];
        let mut chars = 0;
        for c in sql.chars() {
            chars += 1;
            if c == '\n' {
                starts.push(chars);
            }
        }
        LineIndex(starts)
    }

    /// 1-based character position of a tokenizer location (line and column are 1-based).
    pub(crate) fn position(&self, loc: Location) -> usize {
        let line = (loc.line.max(1) - 1) as usize;
        let start = self.0.get(line).or(self.0.last()).copied().unwrap_or(0);
        start + loc.column.max(1) as usize
    }
}

/// 1-based character position of a tokenizer location (line and column are 1-based).
pub(crate) fn position_of(sql: &str, loc: Location) -> usize {
    let mut pos = 0usize;
    for (i, line) in sql.split('\n').enumerate() {
        if (i as u64) + 1 == loc.line {
            return pos + loc.column.max(1) as usize;
        }
        pos += line.chars().count() + 1;
    }
    pos.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(sql: &str) -> Vec<Rule> {
        check(sql)
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.rule)
            .collect()
    }

    #[test]
    fn executable_comments_are_refused_but_not_inside_strings() {
        assert_eq!(
            rules("SELECT 1 /*!50000 , SLEEP(1) */"),
            [Rule::MysqlExecutableComment]
        );
        assert_eq!(
            rules("SELECT 1 /*M! , 2 */"),
            [Rule::MysqlExecutableComment]
        );
        assert!(rules("SELECT '/*! DROP TABLE x */'").is_empty());
        assert!(rules("SELECT 'it\\'s /*!' AS a").is_empty());
        assert!(rules("SELECT 1 /* plain */").is_empty());
    }

    #[test]
    fn dash_dash_needs_a_space() {
        assert_eq!(rules("SELECT 1 --x"), [Rule::MysqlCommentSyntax]);
        assert!(rules("SELECT 1 -- fine\n").is_empty());
        assert!(rules("SELECT 1 # fine").is_empty());
    }

    #[test]
    fn positions_are_one_based_characters() {
        let r = check("SELECT 1,\n 2 /*! x */").expect("refused");
        assert_eq!(r[0].position, Some(14));
    }
}
