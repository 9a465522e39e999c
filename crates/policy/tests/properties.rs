//! Property tests: the verdict does not change when an allowed query is wrapped in comments,
//! whitespace or different casing; and no input of any kind makes the engine panic.

use dbward_policy::{Dialect, Policy};
use proptest::prelude::*;

/// Allowed queries of every dialect: (dialect, sql).
const ALLOWED: &[(Dialect, &str)] = &[
    (
        Dialect::Postgres,
        "SELECT id, name FROM servers WHERE id = 1",
    ),
    (
        Dialect::Postgres,
        "WITH r AS (SELECT server_id, count(*) n FROM incidents GROUP BY server_id) SELECT s.hostname, r.n FROM servers s JOIN r ON r.server_id = s.id ORDER BY r.n DESC LIMIT 10",
    ),
    (
        Dialect::Postgres,
        "SELECT department_id, avg(cpu) OVER (PARTITION BY department_id) FROM servers",
    ),
    (
        Dialect::Postgres,
        "SELECT data->>'k' FROM docs WHERE data @> '{\"a\": 1}'",
    ),
    (Dialect::Postgres, "SELECT 'drop table x; delete from y'"),
    (
        Dialect::Mysql,
        "SELECT `name`, COUNT(*) FROM servers GROUP BY `name` HAVING COUNT(*) > 1",
    ),
    (
        Dialect::Mysql,
        "SELECT JSON_EXTRACT(doc, '$.a') FROM docs LIMIT 5",
    ),
    (
        Dialect::Sqlite,
        "SELECT name, strftime('%Y', created_at) FROM servers WHERE status = 'active'",
    ),
    (
        Dialect::Sqlite,
        "SELECT s.name, j.value FROM servers s, json_each(s.tags) j",
    ),
];

/// Refused queries: (dialect, sql, rule).
const REFUSED: &[(Dialect, &str, &str)] = &[
    (Dialect::Postgres, "SELECT pg_sleep(10)", "function.sleep"),
    (
        Dialect::Postgres,
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "statement.data_modifying",
    ),
    (
        Dialect::Postgres,
        "SELECT * FROM t FOR UPDATE",
        "statement.locking",
    ),
    (Dialect::Mysql, "SELECT SLEEP(5)", "function.sleep"),
    (
        Dialect::Sqlite,
        "SELECT load_extension('x')",
        "function.extension",
    ),
];

fn comment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_string()),
        Just("\n\t ".to_string()),
        "[a-zA-Z ]{0,20}".prop_map(|t| format!("/* {t} */")),
        "[a-zA-Z ]{0,20}".prop_map(|t| format!("-- {t}\n")),
    ]
}

/// Changes the case of letters outside quotes (keywords and unquoted identifiers are
/// case-insensitive in every dialect here; quoted text must stay as it is).
fn recase(sql: &str, mask: &[bool]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    for (i, c) in sql.chars().enumerate() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' || c == '`' => quote = Some(c),
            None => {}
        }
        let flip = quote.is_none() && c != '\'' && c != '"' && c != '`' && mask[i % mask.len()];
        if flip {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn wrapping_does_not_change_the_verdict(
        i in 0..ALLOWED.len(),
        before in comment(),
        after in comment(),
        mask in prop::collection::vec(any::<bool>(), 1..16),
        semicolon in any::<bool>(),
    ) {
        let policy = Policy::default();
        let (dialect, sql) = ALLOWED[i];
        prop_assert!(policy.check(dialect, sql).is_allowed());
        let wrapped = format!("{before}{}{}{after}", recase(sql, &mask), if semicolon { ";" } else { "" });
        let v = policy.check(dialect, &wrapped);
        prop_assert!(v.is_allowed(), "{wrapped:?} was refused: {:?}", v.reasons);
    }

    #[test]
    fn wrapping_does_not_rescue_a_refusal(
        i in 0..REFUSED.len(),
        before in comment(),
        after in comment(),
        mask in prop::collection::vec(any::<bool>(), 1..16),
    ) {
        let policy = Policy::default();
        let (dialect, sql, rule) = REFUSED[i];
        let wrapped = format!("{before}{}{after}", recase(sql, &mask));
        let v = policy.check(dialect, &wrapped);
        prop_assert!(!v.is_allowed(), "{wrapped:?} was allowed");
        prop_assert!(v.reasons.iter().any(|r| r.rule.id() == rule), "{wrapped:?}: {:?}", v.reasons);
    }

    #[test]
    fn never_panics_on_arbitrary_text(s in "\\PC{0,400}") {
        let policy = Policy::default();
        for d in [Dialect::Postgres, Dialect::Mysql, Dialect::Sqlite] {
            let _ = policy.check(d, &s);
        }
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let policy = Policy::default();
        let s = String::from_utf8_lossy(&bytes);
        for d in [Dialect::Postgres, Dialect::Mysql, Dialect::Sqlite] {
            let _ = policy.check(d, &s);
        }
    }

    #[test]
    fn never_panics_on_sql_shaped_noise(
        parts in prop::collection::vec(prop_oneof![
            Just("SELECT"), Just("("), Just(")"), Just(","), Just("'"), Just("\""), Just("$$"),
            Just("/*"), Just("*/"), Just("--"), Just("#"), Just(";"), Just("WITH"), Just("AS"),
            Just("DELETE"), Just("FROM"), Just("t"), Just("f("), Just("1"), Just("/*!"),
            Just("\\"), Just("E'"), Just("U&'"), Just("::"), Just("FOR UPDATE"), Just("\n"),
        ], 0..60)
    ) {
        let policy = Policy::default();
        let s = parts.join(" ");
        for d in [Dialect::Postgres, Dialect::Mysql, Dialect::Sqlite] {
            let _ = policy.check(d, &s);
        }
    }
}

#[test]
fn deep_nesting_is_refused_not_a_crash() {
    let policy = Policy::default();
    for (depth, allowed) in [(30usize, true), (500, false), (1_600, false)] {
        let sql = format!("SELECT {}1{}", "abs(".repeat(depth), ")".repeat(depth));
        for d in [Dialect::Postgres, Dialect::Mysql, Dialect::Sqlite] {
            let v = policy.check(d, &sql);
            assert_eq!(
                v.is_allowed(),
                allowed,
                "{d} depth {depth}: {:?}",
                v.reasons
            );
            if !allowed {
                assert!(
                    v.reasons.iter().any(|r| r.rule.id() == "parse.too_deep"),
                    "{d} depth {depth}: {:?}",
                    v.reasons
                );
            }
        }
    }
    // Parentheses alone do not deepen PostgreSQL's tree; they must still not crash anything.
    let parens = format!("SELECT {}1{}", "(".repeat(4_000), ")".repeat(4_000));
    for d in [Dialect::Postgres, Dialect::Mysql, Dialect::Sqlite] {
        let _ = policy.check(d, &parens);
    }
}
