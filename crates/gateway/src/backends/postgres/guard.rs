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
/// [`VERSIONED_CHECK`]).
pub const BUMP_BODY: &str = " BEGIN UPDATE dbward.catalog_version SET version = version + 1; END ";

/// The SQL that gives a PostgreSQL database dbward's catalog version, for a superuser to
/// review and run in each database dbward reads (`dbward setup-role --catalog-version`):
/// a one-row table in a schema of its own and an event trigger that raises the number, in
/// the DDL command's own transaction, at the end of every DDL command in the database.
/// dbward then keeps resolution answers across writes (see [`fingerprint`]). Everything is
/// the superuser's: the database's owner can neither drop, disable nor write any of it. The
/// trigger is enabled `ALWAYS`, so it fires in sessions replicating changes too.
pub const CATALOG_VERSION_SQL: &str = "\
CREATE SCHEMA dbward;
GRANT USAGE ON SCHEMA dbward TO PUBLIC;
CREATE TABLE dbward.catalog_version (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  version bigint NOT NULL
);
INSERT INTO dbward.catalog_version (version) VALUES (0);
GRANT SELECT ON dbward.catalog_version TO PUBLIC;
CREATE FUNCTION dbward.bump_catalog_version() RETURNS event_trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog
  AS $$ BEGIN UPDATE dbward.catalog_version SET version = version + 1; END $$;
REVOKE ALL ON FUNCTION dbward.bump_catalog_version() FROM PUBLIC;
CREATE EVENT TRIGGER dbward_catalog_version ON ddl_command_end
  EXECUTE FUNCTION dbward.bump_catalog_version();
ALTER EVENT TRIGGER dbward_catalog_version ENABLE ALWAYS;
";

/// Whether this database's catalog version can be trusted, run when a session opens (`$1`:
/// the role queries run as, or null for the login role): the event trigger fires for every
/// DDL command (enabled `ALWAYS`, no tag filter), it and its function are a superuser's and the
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
    AND t.evtevent OPERATOR(pg_catalog.=) 'ddl_command_end'
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
