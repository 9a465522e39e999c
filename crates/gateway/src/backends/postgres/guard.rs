//! PostgreSQL: the proof that a kept resolution answer still holds, inside the call's own
//! transaction.
//!
//! An answer is kept with the [`fingerprint`] of what it was read from: by default the set
//! of committed transactions, or, where a superuser installed dbward's catalog version
//! ([`CATALOG_VERSION_SQL`], trusted only after [`VERSIONED_CHECK`]), the number its event
//! trigger raises with every DDL command; with the schemas on the path and the role. The
//! [`guard`] lets the query run only while the session's fingerprint is the kept one; the
//! [`recheck`], after a failed guard, only while the names still resolve to the same answer.
//! Both are sent on each side of the DECLARE (`execute::Head`), after the [`lock_statement`]
//! of the relations the answer names.
//!
//! Invariant: every statement here is our own text; a fingerprint, the names and an
//! answer's canonical text travel as protocol values of the prepared statements (or, in a
//! simple-protocol message, as [`literal`]s), never as SQL text of their own; a check that
//! fails raises [`STALE`], and the server runs nothing more of its batch (no row is read).

use sqlx::postgres::PipelinedStatement;

use super::quote_ident;
use super::resolve::{NamesHex, Resolution};

/// The server has `pg_current_snapshot()` (PostgreSQL 13 and later), which every
/// [`fingerprint`] needs (the versioned one falls back to it): without it no answer is kept.
pub(super) fn snapshots(conn: &sqlx::PgConnection) -> bool {
    conn.server_version_num().is_some_and(|v| v >= 130_000)
}

/// What a resolution depends on besides the names, as one text: the state of the catalog,
/// the schemas a name is looked up in (`current_schemas(true)`, with `$user` and a
/// session's temporary schema expanded), and the role the query runs as. Taken as its own
/// statement before the resolution, or in the guard's own statement, so that a change
/// committed between the two can only make a kept answer look stale, never fresh.
///
/// The state of the catalog is, by default, the set of committed transactions
/// (`pg_current_snapshot()`): every catalog change, by anyone, in any database of the
/// cluster, commits a transaction and so changes it; nothing else can make the catalog
/// read differently. But so does every write, so on a database in use a kept answer is
/// stale within milliseconds. With `versioned` (the database has dbward's catalog version,
/// [`CATALOG_VERSION_SQL`], checked when the session opened by [`VERSIONED_CHECK`]), it is
/// instead the number a superuser's event trigger raises, in the same transaction, with
/// every DDL command in this database: writes leave it alone. Should that trigger stop
/// firing (disabled or dropped, which only a superuser can do), the text falls back to the
/// snapshot's, which no kept versioned answer can match.
pub(super) fn fingerprint(versioned: bool) -> String {
    let state = if versioned {
        VERSIONED_STATE.replace("{SNAPSHOT}", SNAPSHOT_STATE)
    } else {
        SNAPSHOT_STATE.to_string()
    };
    format!(
        "{state} OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) \
         pg_catalog.current_schemas(true)::pg_catalog.text \
         OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) CURRENT_USER::pg_catalog.text"
    )
}

/// The catalog's state in a versioned [`fingerprint`]: `catalog version N` while dbward's
/// event trigger fires for every session's commands (enabled `ALWAYS`: in a session set
/// to `session_replication_role = replica` too), the snapshot otherwise. With the number go
/// the counter table's OID and the server's start time: a database dropped and created
/// again under the same name, with its own counter from 0, or DDL made while the server
/// ran in single-user mode (where event triggers do not fire), cannot pass for the state
/// a kept answer was read in. (`{SNAPSHOT}` stands for [`SNAPSHOT_STATE`].)
const VERSIONED_STATE: &str = "(CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_event_trigger t \
     WHERE t.evtname OPERATOR(pg_catalog.=) 'dbward_catalog_version' \
       AND t.evtenabled OPERATOR(pg_catalog.=) 'A'::pg_catalog.\"char\") \
   THEN 'catalog version ' OPERATOR(pg_catalog.||) \
     (SELECT v.version FROM dbward.catalog_version v)::pg_catalog.text \
     OPERATOR(pg_catalog.||) ' of ' OPERATOR(pg_catalog.||) \
     'dbward.catalog_version'::pg_catalog.regclass::pg_catalog.oid::pg_catalog.text \
     OPERATOR(pg_catalog.||) ' since ' OPERATOR(pg_catalog.||) \
     pg_catalog.pg_postmaster_start_time()::pg_catalog.text \
   ELSE {SNAPSHOT} END)";

/// The catalog's state in a [`fingerprint`] by default: the set of committed transactions.
const SNAPSHOT_STATE: &str = "pg_catalog.pg_current_snapshot()::pg_catalog.text";

/// `SELECT` [`fingerprint`]: run before the resolution statement, its one row kept with the
/// answer.
pub(super) fn fingerprint_sql(versioned: bool) -> String {
    format!("SELECT {}", fingerprint(versioned))
}

/// The body of dbward's event trigger function (checked word for word by
/// [`VERSIONED_CHECK`]): at the start of every DDL command, before it changes anything,
/// the exclusive side of [`DDL_LOCK`] (held until the DDL's transaction ends), then the
/// number raised.
pub const BUMP_BODY: &str = " BEGIN PERFORM pg_advisory_xact_lock(1684174692, 1); \
UPDATE dbward.catalog_version SET version = version + 1; END ";

/// The shared side of the advisory lock ([`BUMP_BODY`] takes the exclusive side) that
/// keeps the catalog still during a call, where a superuser installed the catalog
/// version: the first thing a call's transaction does (`execute.rs`), in a statement
/// before any that reads the fingerprint, so that a check made after it sees every DDL
/// that committed before. A DDL command then waits, at its start, for the calls in flight
/// (they hold it until their rollback); a call waits (up to `lock_timeout`) for a DDL
/// transaction that has begun to end. So nothing can be created, replaced or altered
/// between the check that proves a call's answer current and the parse and plan of its
/// query, not even what no relation lock can hold: a CHECK added to a domain, which a
/// literal of a composite or array type runs while the query is parsed. (Without the
/// catalog version a CHECK added in that window runs; see the README.) The key (`dbwd`,
/// 1) is a two-`int4` key, per database.
pub(super) const DDL_LOCK: &str = "pg_catalog.pg_advisory_xact_lock_shared(1684174692, 1)";

/// The SQL that gives a PostgreSQL database dbward's catalog version, for a superuser to
/// review and run in each database dbward reads (`dbward setup-role --catalog-version`):
/// a one-row table in a schema of its own and an event trigger that, at the start of every
/// DDL command in the database, waits for the calls in flight ([`DDL_LOCK`]) and raises the
/// number, in the DDL command's own transaction. dbward then keeps resolution answers
/// across writes (see [`fingerprint`]), and no DDL commits during a call. Everything is the
/// superuser's: the database's owner can neither drop, disable nor write any of it. The
/// trigger is enabled `ALWAYS`, so it fires in sessions replicating changes too. Running
/// it again brings an earlier install up to date (what exists is kept if it is right, and
/// the session check, [`VERSIONED_CHECK`], trusts nothing else).
pub const CATALOG_VERSION_SQL: &str = "\
CREATE SCHEMA IF NOT EXISTS dbward;
GRANT USAGE ON SCHEMA dbward TO PUBLIC;
CREATE TABLE IF NOT EXISTS dbward.catalog_version (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  version bigint NOT NULL
);
INSERT INTO dbward.catalog_version (version) VALUES (0) ON CONFLICT DO NOTHING;
GRANT SELECT ON dbward.catalog_version TO PUBLIC;
CREATE OR REPLACE FUNCTION dbward.bump_catalog_version() RETURNS event_trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog
  AS $$ BEGIN PERFORM pg_advisory_xact_lock(1684174692, 1); \
UPDATE dbward.catalog_version SET version = version + 1; END $$;
REVOKE ALL ON FUNCTION dbward.bump_catalog_version() FROM PUBLIC;
DROP EVENT TRIGGER IF EXISTS dbward_catalog_version;
CREATE EVENT TRIGGER dbward_catalog_version ON ddl_command_start
  EXECUTE FUNCTION dbward.bump_catalog_version();
ALTER EVENT TRIGGER dbward_catalog_version ENABLE ALWAYS;
";

/// Whether this database's catalog version can be trusted, run when a session opens (`$1`:
/// the role queries run as, or null for the login role): the event trigger fires at the
/// start of every DDL command (enabled `ALWAYS`, no tag filter), it and its function are a superuser's and the
/// function is [`BUMP_BODY`] word for word, in PL/pgSQL, `SECURITY DEFINER` and run with
/// `search_path = pg_catalog` (with the caller's path, the DDL's author could put their own
/// `+` before the builtin and hold the number still, running it as the superuser); the table and its schema are a superuser's and
/// no one else may change the table; the role queries run as can read it. One `bool`.
pub(super) const VERSIONED_CHECK: &str = "\
SELECT EXISTS (
  SELECT FROM pg_catalog.pg_event_trigger t
  JOIN pg_catalog.pg_roles tr ON tr.oid OPERATOR(pg_catalog.=) t.evtowner
  JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) t.evtfoid
  JOIN pg_catalog.pg_namespace pn ON pn.oid OPERATOR(pg_catalog.=) p.pronamespace
  JOIN pg_catalog.pg_roles pr ON pr.oid OPERATOR(pg_catalog.=) p.proowner
  WHERE t.evtname OPERATOR(pg_catalog.=) 'dbward_catalog_version'
    AND t.evtevent OPERATOR(pg_catalog.=) 'ddl_command_start'
    AND t.evttags IS NULL
    AND t.evtenabled OPERATOR(pg_catalog.=) 'A'::pg_catalog.\"char\"
    AND tr.rolsuper AND pr.rolsuper
    AND pn.nspname OPERATOR(pg_catalog.=) 'dbward'
    AND p.proname OPERATOR(pg_catalog.=) 'bump_catalog_version'
    AND p.prosrc OPERATOR(pg_catalog.=) $2
    AND p.prolang OPERATOR(pg_catalog.=) (SELECT l.oid FROM pg_catalog.pg_language l
                                          WHERE l.lanname OPERATOR(pg_catalog.=) 'plpgsql')
    AND p.prosecdef
    AND p.proconfig OPERATOR(pg_catalog.=) '{search_path=pg_catalog}'::pg_catalog.text[]
) AND EXISTS (
  SELECT FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
  JOIN pg_catalog.pg_roles cr ON cr.oid OPERATOR(pg_catalog.=) c.relowner
  JOIN pg_catalog.pg_roles nr ON nr.oid OPERATOR(pg_catalog.=) n.nspowner
  JOIN pg_catalog.pg_roles q ON q.rolname OPERATOR(pg_catalog.=) COALESCE($1, CURRENT_USER::pg_catalog.text)
  WHERE n.nspname OPERATOR(pg_catalog.=) 'dbward'
    AND c.relname OPERATOR(pg_catalog.=) 'catalog_version'
    AND c.relkind OPERATOR(pg_catalog.=) 'r'::pg_catalog.\"char\"
    AND cr.rolsuper AND nr.rolsuper
    AND NOT EXISTS (SELECT FROM pg_catalog.aclexplode(c.relacl) a
                    WHERE a.privilege_type OPERATOR(pg_catalog.<>) 'SELECT'
                      AND a.grantee OPERATOR(pg_catalog.<>) c.relowner)
    AND pg_catalog.has_schema_privilege(q.oid, n.oid, 'USAGE')
    AND pg_catalog.has_table_privilege(q.oid, c.oid, 'SELECT')
)";

/// The SQLSTATE of a failed [`guard`] (`division_by_zero`).
pub(super) const STALE: &str = "22012";

/// The guard ([`guard`]), prepared once per session like the resolution: its parse and
/// plan are most of its cost.
pub(super) const GUARD_PREPARED: &str = "dbward_guard";

/// One statement of our own that fails with [`STALE`] unless the session's
/// [`fingerprint`] is `fingerprint`: the prepared `dbward_guard` (see
/// [`prepare_statements`](super::resolve::prepare_statements)) bound by name, the
/// fingerprint its one parameter (a protocol value: schema and role names in it may hold
/// quotes, and nothing of it is parsed as SQL). Sent in the call's one batch in place of
/// the resolution when a kept answer is used; the query follows it, and after a failed
/// statement the server runs nothing more of the batch.
pub(super) fn guard(fingerprint: &str) -> PipelinedStatement {
    PipelinedStatement::Prepared {
        name: GUARD_PREPARED.to_string(),
        params: vec![fingerprint.to_string()],
    }
}

/// [`guard`] as one statement of our own text, for a simple-protocol message.
pub(super) fn guard_sql(fingerprint: &str) -> String {
    format!("EXECUTE {GUARD_PREPARED}({})", literal(fingerprint))
}

/// The recheck ([`recheck`]), prepared once per session like the guard.
pub(super) const RECHECK_PREPARED: &str = "dbward_recheck";

/// The recheck of a kept answer whose [`guard`] failed: one statement of our own, the
/// prepared `dbward_recheck` bound by name, that fails with [`STALE`] unless the session's
/// [`fingerprint`] is still `fingerprint` or the `names` resolve now to rows whose
/// `resolve::CANONICAL` text is `canonical`: the same answer, read
/// afresh in the same statement. Its one row's second column is the fingerprint now, read
/// in the same statement as the answer. Its plan is made like the resolution's: send it
/// between [`BEFORE`](super::resolve::BEFORE) and [`AFTER`](super::resolve::AFTER). The
/// parameters are protocol values; nothing of them is parsed as SQL.
pub(super) fn recheck(fingerprint: &str, names: &NamesHex, canonical: &str) -> PipelinedStatement {
    PipelinedStatement::Prepared {
        name: RECHECK_PREPARED.to_string(),
        params: vec![
            fingerprint.to_string(),
            names.as_str().to_string(),
            canonical.to_string(),
        ],
    }
}

/// [`recheck`] as one statement of our own text, for a simple-protocol message (between
/// [`BEFORE`](super::resolve::BEFORE) and [`AFTER`](super::resolve::AFTER)).
pub(super) fn recheck_sql(fingerprint: &str, names: &NamesHex, canonical: &str) -> String {
    format!(
        "EXECUTE {RECHECK_PREPARED}({}, {}, {})",
        literal(fingerprint),
        literal(names.as_str()),
        literal(canonical)
    )
}

/// `s` as a string literal that reads the same whatever `standard_conforming_strings` says.
fn literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// `LOCK TABLE ... IN ACCESS SHARE MODE` of the relations an answer says the query names
/// and the role may read (a name the query defines as a CTE can match a table it may not;
/// one it reads without the privilege fails anyway) (`None`: none), sent before the check in front of the DECLARE (`execute::Head`): from
/// then until the rollback, no other session can redefine, drop or rename them, nor the
/// relations their views read and their partitions and inheritance children (the lock
/// recurses into both), so the definitions the check proves unchanged are the ones the
/// DECLARE plans. It conflicts only with `ACCESS EXCLUSIVE`: readers and writers go on; an
/// owner's DDL on them waits for the call, as it would for the query itself. Our own text:
/// every name is a quoted identifier from the catalog.
pub(super) fn lock_statement(resolution: &Resolution) -> Option<String> {
    if resolution.lockable.is_empty() {
        return None;
    }
    let names: Vec<String> = resolution
        .lockable
        .iter()
        .map(|(s, n)| format!("{}.{}", quote_ident(s), quote_ident(n)))
        .collect();
    Some(format!(
        "LOCK TABLE {} IN ACCESS SHARE MODE",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trigger's exclusive lock and the calls' shared one are the same lock.
    #[test]
    fn the_trigger_and_the_calls_take_the_same_lock() {
        let exclusive = DDL_LOCK
            .strip_prefix("pg_catalog.")
            .and_then(|s| s.strip_prefix("pg_advisory_xact_lock_shared"))
            .map(|args| format!("PERFORM pg_advisory_xact_lock{args};"))
            .expect("the shared side of an advisory transaction lock");
        assert!(BUMP_BODY.contains(&exclusive), "{BUMP_BODY}");
        assert!(CATALOG_VERSION_SQL.contains(&format!("$${BUMP_BODY}$$")));
    }
}
