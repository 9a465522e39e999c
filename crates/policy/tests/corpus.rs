//! The policy corpus: every case in `tests/corpus/*.toml` through one `check` helper.
//! A new case is one `[[case]]` entry: the SQL, the expected verdict, and for refusals the
//! rule that must fire.

use dbward_policy::{Dialect, Policy, PolicyConfig};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    /// The policy configuration the cases run under (default: the default policy).
    config: Option<PolicyConfig>,
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    sql: String,
    /// `allowed` or `refused`.
    verdict: String,
    /// For refusals: a rule id that must be among the reasons.
    rule: Option<String>,
    /// Functions the engine must report as unknown (for the database to judge).
    unknown: Option<Vec<String>>,
    /// Why the case is here.
    #[allow(dead_code)]
    note: Option<String>,
    /// Dialects the case runs in, for a file that holds several (default: the file's).
    dialects: Option<Vec<String>>,
}

/// Runs one corpus file; returns (cases, allowed cases).
fn check(dialect: Dialect, file: &str) -> (usize, usize) {
    let path = format!("{}/tests/corpus/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let corpus: Corpus = toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let policy = Policy::new(corpus.config.unwrap_or_default());
    let mut failures = Vec::new();
    let mut allowed = 0;
    let name = match dialect {
        Dialect::Postgres => "postgres",
        Dialect::Mysql => "mysql",
        Dialect::Sqlite => "sqlite",
    };
    let mut ran = 0;
    for (i, case) in corpus.cases.iter().enumerate() {
        if case
            .dialects
            .as_ref()
            .is_some_and(|d| !d.iter().any(|d| d == name))
        {
            continue;
        }
        ran += 1;
        let v = policy.check(dialect, &case.sql);
        let got = if v.is_allowed() { "allowed" } else { "refused" };
        let problem = if got != case.verdict {
            Some(format!(
                "expected {}, got {got}: {:?}",
                case.verdict, v.reasons
            ))
        } else if let Some(rule) = &case.rule {
            (!v.reasons.iter().any(|r| r.rule.id() == rule)).then(|| {
                let fired: Vec<_> = v.reasons.iter().map(|r| r.rule.id()).collect();
                format!("expected rule {rule}, fired {fired:?}")
            })
        } else {
            None
        };
        let problem = problem.or_else(|| {
            let want = case.unknown.as_ref()?;
            let got: Vec<String> = v
                .unknown_functions
                .iter()
                .map(ToString::to_string)
                .collect();
            (want != &got).then(|| format!("expected unknown functions {want:?}, got {got:?}"))
        });
        if case.verdict == "refused" && case.rule.is_none() {
            failures.push(format!("case {i}: a refusal must name its rule"));
        }
        if case.verdict == "allowed" {
            allowed += 1;
        }
        if let Some(p) = problem {
            failures.push(format!("case {i} `{}`: {p}", case.sql.replace('\n', " ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{file} ({name}): {} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    (ran, allowed)
}

/// Scope by allowlist, in every dialect.
#[test]
fn allowlist_corpus() {
    for d in [Dialect::Postgres, Dialect::Mysql, Dialect::Sqlite] {
        let (n, _) = check(d, "allowlist.toml");
        assert!(n >= 7, "allowlist corpus has {n} cases for {d:?}");
    }
}

/// Denied data reached through scopes, aliases, joins and catalog views: one file, run in
/// every dialect a case names, under a configuration with denied tables and columns.
#[test]
fn scopes_corpus() {
    for d in [Dialect::Postgres, Dialect::Mysql, Dialect::Sqlite] {
        let (n, _) = check(d, "scopes.toml");
        assert!(n >= 10, "scopes corpus has {n} cases for {d:?}");
    }
}

#[test]
fn postgres_corpus() {
    let (n, allowed) = check(Dialect::Postgres, "postgres.toml");
    assert!(n >= 150, "postgres corpus has {n} cases, want at least 150");
    assert!(
        allowed * 100 >= n * 45,
        "at least 45% must be legitimate queries: {allowed} of {n}"
    );
}

#[test]
fn mysql_corpus() {
    let (n, allowed) = check(Dialect::Mysql, "mysql.toml");
    assert!(n >= 60, "mysql corpus has {n} cases, want at least 60");
    assert!(
        allowed * 100 >= n * 45,
        "at least 45% must be legitimate queries: {allowed} of {n}"
    );
}

#[test]
fn sqlite_corpus() {
    let (n, allowed) = check(Dialect::Sqlite, "sqlite.toml");
    assert!(n >= 60, "sqlite corpus has {n} cases, want at least 60");
    assert!(
        allowed * 100 >= n * 45,
        "at least 45% must be legitimate queries: {allowed} of {n}"
    );
}
