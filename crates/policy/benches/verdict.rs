//! Verdict time per dialect for a short point query, a 3-way join with a CTE, and a
//! ~10 KB query. `cargo bench -p dbward-policy`.

#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use dbward_policy::{Dialect, Policy};
use sqlparser::dialect::{MySqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use std::hint::black_box;

const POINT: &str = "SELECT id, name, status FROM servers WHERE id = 42";

const JOIN_CTE: &str = "WITH recent AS (
    SELECT server_id, count(*) AS n, max(opened_at) AS last_opened
    FROM incidents WHERE opened_at > '2025-01-01' GROUP BY server_id
)
SELECT d.name AS department, s.hostname, r.n, r.last_opened
FROM departments d
JOIN servers s ON s.department_id = d.id
JOIN recent r ON r.server_id = s.id
WHERE s.status = 'active' AND r.n > 3
ORDER BY r.n DESC, d.name
LIMIT 50";

/// A ~10 KB analytical query: many predicates and select-list expressions.
fn big_query() -> String {
    let mut cols = Vec::new();
    let mut preds = Vec::new();
    let mut i = 0;
    loop {
        cols.push(format!(
            "coalesce(s.c{i}, 0) + abs(s.d{i}) AS e{i}, upper(s.name) AS u{i}"
        ));
        preds.push(format!("(s.c{i} > {i} OR s.d{i} IN (1, 2, 3))"));
        let q = format!(
            "SELECT {} FROM servers s JOIN departments d ON d.id = s.department_id WHERE {}",
            cols.join(", "),
            preds.join(" AND ")
        );
        if q.len() >= 9_800 {
            return q;
        }
        i += 1;
    }
}

fn bench(c: &mut Criterion) {
    let policy = Policy::default();
    let big = big_query();
    for dialect in [Dialect::Postgres, Dialect::Mysql, Dialect::Sqlite] {
        let mut g = c.benchmark_group(format!("verdict/{dialect}"));
        for (name, sql) in [
            ("point", POINT),
            ("join3_cte", JOIN_CTE),
            ("10kb", big.as_str()),
        ] {
            assert!(
                policy.check(dialect, sql).is_allowed(),
                "{dialect} {name} must be allowed"
            );
            g.bench_function(name, |b| b.iter(|| policy.check(dialect, black_box(sql))));
            // Baseline in the same run: the bare parser, so the engine's cost is a ratio.
            g.bench_function(format!("{name}/parse_only"), |b| match dialect {
                Dialect::Postgres => {
                    b.iter(|| pg_query::parse(black_box(sql), 0).map(|r| r.protobuf.stmts.len()))
                }
                Dialect::Mysql => {
                    b.iter(|| Parser::parse_sql(&MySqlDialect {}, black_box(sql)).map(|s| s.len()))
                }
                Dialect::Sqlite => {
                    b.iter(|| Parser::parse_sql(&SQLiteDialect {}, black_box(sql)).map(|s| s.len()))
                }
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
