//! Recent verdicts, by dialect and query text. [`crate::Policy::check`] is a pure function
//! of the policy's configuration, the dialect and the text, so a text seen again (an agent's
//! point query sent with other parameters) is judged once: parsing it (libpg_query's parse,
//! protobuf round trip and tree walk; sqlparser's) is most of the CPU dbward itself spends
//! on such a call.
//!
//! Bounded: at most [`ENTRIES`] texts per dialect, each at most [`MAX_TEXT`] bytes (longer
//! ones are judged every time); when a dialect's map is full it starts again empty.
//!
//! Invariant: only what the policy decides from the text alone is kept, for the policy
//! (configuration) that decided it: each `Policy` has its own, shared only by its clones.
//! Nothing a database resolved is kept here (the PostgreSQL backend keeps its own answers,
//! each used only behind a guard the database checks: `backends/postgres/kept.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::verdict::{Dialect, Verdict};

/// Texts kept per dialect at most.
const ENTRIES: usize = 256;
/// Longest text kept, in bytes.
const MAX_TEXT: usize = 4096;

/// A query judged: the verdict and the query's normalized text (see [`crate::normalize()`]).
#[derive(Debug)]
pub struct Judged {
    /// The policy's verdict, as [`crate::Policy::check`] gives it.
    pub verdict: Verdict,
    /// [`crate::normalize()`] of the text: literals replaced by placeholders.
    pub normalized: Option<String>,
}

/// One map per dialect.
#[derive(Default)]
pub(crate) struct Recent {
    maps: [Mutex<HashMap<Box<str>, Arc<Judged>>>; 3],
}

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recent")
    }
}

fn index(dialect: Dialect) -> usize {
    match dialect {
        Dialect::Postgres => 0,
        Dialect::Mysql => 1,
        Dialect::Sqlite => 2,
    }
}

impl Recent {
    /// The judgement of `sql`, from `judge` unless a recent one is kept.
    pub(crate) fn get_or(
        &self,
        dialect: Dialect,
        sql: &str,
        judge: impl FnOnce() -> Judged,
    ) -> Arc<Judged> {
        if sql.len() > MAX_TEXT {
            return Arc::new(judge());
        }
        let map = &self.maps[index(dialect)];
        let lock = || map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = lock().get(sql) {
            return hit.clone();
        }
        // Judged outside the lock: two threads may judge the same text, to the same result.
        let judged = Arc::new(judge());
        let mut map = lock();
        if map.len() >= ENTRIES {
            map.clear();
        }
        map.insert(sql.into(), judged.clone());
        judged
    }
}

#[cfg(test)]
mod tests {
    use crate::{Dialect, Policy, PolicyConfig};

    #[test]
    fn a_text_judged_again_gets_the_same_verdict_without_a_new_judgement() {
        let policy = Policy::new(PolicyConfig::default());
        let cases = [
            (
                Dialect::Postgres,
                "SELECT hostname FROM servers WHERE id = $1",
            ),
            (Dialect::Postgres, "DELETE FROM servers"),
            (
                Dialect::Sqlite,
                "SELECT name FROM servers WHERE hostname = 'db-01'",
            ),
            (Dialect::Mysql, "SELECT SLEEP(10)"),
        ];
        for (dialect, sql) in cases {
            let first = policy.judge(dialect, sql);
            let again = policy.judge(dialect, sql);
            assert!(std::sync::Arc::ptr_eq(&first, &again), "{sql}");
            let fresh = policy.check(dialect, sql);
            assert_eq!(first.verdict.decision, fresh.decision, "{sql}");
            assert_eq!(first.verdict.reasons.len(), fresh.reasons.len(), "{sql}");
            assert_eq!(first.normalized, crate::normalize(dialect, sql), "{sql}");
        }
        // The same text in another dialect is judged in that dialect.
        let pg = policy.judge(Dialect::Postgres, "SELECT 1");
        let sqlite = policy.judge(Dialect::Sqlite, "SELECT 1");
        assert!(!std::sync::Arc::ptr_eq(&pg, &sqlite));
        assert_eq!(sqlite.verdict.dialect, Dialect::Sqlite);
    }

    #[test]
    fn the_kept_texts_stay_bounded() {
        let policy = Policy::new(PolicyConfig::default());
        for i in 0..(super::ENTRIES * 2 + 3) {
            policy.judge(Dialect::Sqlite, &format!("SELECT {i}"));
        }
        let kept = policy.recent.maps[super::index(Dialect::Sqlite)]
            .lock()
            .map(|m| m.len())
            .unwrap_or(0);
        assert!((1..=super::ENTRIES).contains(&kept), "{kept}");
        let long = format!("SELECT 1 -- {}", "x".repeat(super::MAX_TEXT));
        let a = policy.judge(Dialect::Sqlite, &long);
        let b = policy.judge(Dialect::Sqlite, &long);
        assert!(!std::sync::Arc::ptr_eq(&a, &b), "long texts are not kept");
    }
}
