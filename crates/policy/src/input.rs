//! Input limits, checked before any parser sees the query: empty, over-long, NUL bytes.
//!
//! Invariant: nothing here looks at what the query *means*; it only refuses input no parser
//! should be asked to read.

use crate::verdict::{Reason, Rule};

/// Returns the reason to refuse `sql` before parsing, if any.
pub(crate) fn check(sql: &str, max_chars: usize) -> Option<Reason> {
    if let Some(at) = sql.find('\0') {
        return Some(Reason {
            rule: Rule::InputNulByte,
            message: "the query contains a NUL byte".to_string(),
            position: Some(crate::char_position(sql, at)),
        });
    }
    // Count characters only as far as needed: a huge input costs no more than the limit.
    if sql.len() > max_chars && sql.chars().nth(max_chars).is_some() {
        return Some(Reason {
            rule: Rule::InputTooLong,
            message: format!("the query is longer than {max_chars} characters"),
            position: None,
        });
    }
    if sql.trim().is_empty() {
        return Some(Reason {
            rule: Rule::InputEmpty,
            message: "the query is empty".to_string(),
            position: None,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_in_characters_not_bytes() {
        let ten_e_acute = "é".repeat(10);
        assert!(check(&ten_e_acute, 10).is_none());
        assert_eq!(
            check(&"é".repeat(11), 10).map(|r| r.rule),
            Some(Rule::InputTooLong)
        );
    }

    #[test]
    fn nul_and_empty_are_refused() {
        assert_eq!(
            check("SELECT 1\0", 100).map(|r| r.rule),
            Some(Rule::InputNulByte)
        );
        assert_eq!(check(" \n\t", 100).map(|r| r.rule), Some(Rule::InputEmpty));
    }
}
