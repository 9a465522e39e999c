//! PostgreSQL: what a query will run and read, as the database resolves it.
//!
//! The policy knows names; PostgreSQL resolves them by its own rules (`search_path`,
//! overloads, same-named functions in other schemas, operators, casts, views, partitions,
//! row-level-security policies). Before a client query runs, inside the call's own
//! read-only transaction (so the session's `search_path` and role are the ones the query
//! will run under), one catalog statement reports:
//! - every candidate function a called name can resolve to (all overloads in every schema
//!   on the path, or in the named schema), builtin or not;
//! - every user-defined operator an operator name in the query can resolve to;
//! - every relation reached: named, through user views (recursively), the ancestors of
//!   partitions and inheritance children, and the partitions and children of the tables
//!   read (a parent's rows include theirs);
//! - the columns user views read (views record a dependency on every column they use),
//!   and the columns the generated columns of the tables read are computed from;
//! - user code that runs with no call in the text: functions and operators in user views,
//!   row-level-security policies; domain checks and type I/O of the types the query casts
//!   to and of every type those are made of (a domain's base domain, a composite's
//!   attributes, an array's element, a range's subtype), and a range type's subtype
//!   difference and canonical functions (the planner calls the first to estimate a
//!   condition on a range from its statistics; input calls the second); user casts (to those types,
//!   implicit/assignment casts anywhere, and casts to `json`/`jsonb` when the query calls
//!   a JSON function, which applies them to values of any user type, or reads a user view,
//!   whose body may); the types a view's body or a table's attached code casts to, and
//!   the user types of the columns of every table read (a literal meeting such a column
//!   is converted to its type: `COALESCE(arr, '{5}')` checks an array's domain), count as
//!   cast to by the query; and functions and
//!   operators in the index expressions and predicates, check constraints, extended
//!   statistics, virtual generated columns and partition keys of every table read (the
//!   planner evaluates immutable ones while it plans, whatever the query says).
//!
//! The gateway judges the answer ([`crate::resolution`]). An answer is kept
//! ([`Cache`](super::kept::Cache)) with the fingerprint of what it was read from, and reused
//! only while the database proves inside the call's own transaction, in the same flush as
//! the query and just before it, that nothing it depends on can have changed
//! ([`fingerprint`], [`guard`](super::guard::guard), in `guard.rs`): an answer is never used
//! after the owner creates or redefines a function. By default that proof is that no
//! transaction has committed since (any write makes it fail); where a superuser has
//! installed dbward's catalog version ([`CATALOG_VERSION_SQL`]), that no DDL command has.
//! When it fails, the call goes once more behind a [`recheck`](super::guard::recheck), which
//! reads the answer afresh in its own statement and runs the query only if it is the same
//! (`kept.rs`).
//!
//! Invariant: this statement is our own constant text; the names travel hex-encoded (see
//! [`statement`]), and every operator, function and type in it is `pg_catalog`'s.

use sqlx::Row;

use super::guard::{GUARD_PREPARED, RECHECK_PREPARED, fingerprint, snapshots};
use crate::error::GatewayError;

// Kept at this path, which the binary (`setup-role --catalog-version`) and the tests use;
// defined with the fingerprint they serve (`guard.rs`).
pub use super::guard::{BUMP_BODY, CATALOG_VERSION_SQL};

/// The names a query uses, as the policy read them: `(schema, name)`.
#[derive(Debug, Default, Clone)]
pub struct Names {
    /// Functions called.
    pub functions: Vec<(Option<String>, String)>,
    /// Operators named, and those the grammar implies (`BETWEEN`, `CASE x WHEN`, `USING`).
    /// ORDER BY, GROUP BY, DISTINCT and set operations compare with operator classes,
    /// which only a superuser can create.
    pub operators: Vec<(Option<String>, String)>,
    /// Relations named, CTE names included.
    pub relations: Vec<(Option<String>, String)>,
    /// Types cast to.
    pub types: Vec<(Option<String>, String)>,
}

/// How a relation was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Named in the query.
    Direct,
    /// Read by a user view the query reads.
    View,
    /// A parent of a partition or inheritance child the query reads.
    Ancestor,
    /// A partition or inheritance child of a table the query reads (its rows are read
    /// with the parent's, unless the query says `ONLY`).
    Descendant,
}

/// One routine the query may run.
#[derive(Debug, Clone)]
pub struct Routine {
    /// What the query names or runs: `function`, `operator` or `implicit`.
    pub kind: RoutineKind,
    /// The resolved signature (`util.kick(text)`, `public.=(text,integer)`).
    pub signature: String,
    /// Schema of the function that runs (for an operator, its function's).
    pub schema: String,
    /// Name of the function that runs.
    pub name: String,
    /// Created after initdb (not a builtin).
    pub user_defined: bool,
    /// A member of an installed extension.
    pub extension: bool,
    /// `provolatile = 'v'`.
    pub volatile: bool,
    /// For implicit code: where it runs from (`view public.v`, `row-level security ...`).
    pub via: Option<String>,
}

/// How a routine comes to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutineKind {
    /// Called by name in the query.
    Function,
    /// An operator the query names (or a comparison it implies).
    Operator,
    /// Run with no call in the text: a view's body, a policy, a domain check, a cast.
    Implicit,
}

/// What the database says a query will run and read.
#[derive(Debug, Default, Clone)]
pub struct Resolution {
    /// Routines the query may run.
    pub routines: Vec<Routine>,
    /// `(schema, name, how reached)`.
    pub relations: Vec<(String, String, Reach)>,
    /// Columns read by user views the query reads: `(schema, table, column)`.
    pub view_columns: Vec<(String, String, String)>,
    /// Generated columns of the tables read, with each column their expression reads:
    /// `(schema, table, generated column, column read)`.
    pub generated_columns: Vec<(String, String, String, String)>,
    /// The relations named in the query that `LOCK TABLE` takes (tables, partitioned
    /// tables, views) and the role may read: `(schema, name)`. See
    /// [`lock_statement`](super::guard::lock_statement).
    pub lockable: Vec<(String, String)>,
}

/// The resolution statement; `{ARGS}` stands for the names, a `jsonb` document
/// `{"f": [{"s": schema|null, "n": name}, ...], "o": [...], "r": [...], "t": [...]}`.
///
/// Every operator, function and type here is qualified with `pg_catalog`: the statement
/// runs under the session's `search_path`, which the database's owner may set to put their
/// own schema before `pg_catalog` (an unqualified `=` or `text` would then be theirs).
const RESOLVE: &str = r#"
WITH RECURSIVE
path AS (SELECT n.oid FROM pg_catalog.pg_namespace n
         WHERE n.nspname OPERATOR(pg_catalog.=) ANY (pg_catalog.current_schemas(true))
            OR n.nspname OPERATOR(pg_catalog.=) ANY
                 (pg_catalog.current_setting('dbward.schemas', true)::pg_catalog.name[])),
args AS (SELECT {ARGS} AS j),
fq AS (SELECT q.s, q.n FROM args, pg_catalog.jsonb_to_recordset(args.j OPERATOR(pg_catalog.->) 'f')
       AS q(s pg_catalog.text, n pg_catalog.text)),
oq AS (SELECT q.s, q.n FROM args, pg_catalog.jsonb_to_recordset(args.j OPERATOR(pg_catalog.->) 'o')
       AS q(s pg_catalog.text, n pg_catalog.text)),
rq AS (SELECT q.s, q.n FROM args, pg_catalog.jsonb_to_recordset(args.j OPERATOR(pg_catalog.->) 'r')
       AS q(s pg_catalog.text, n pg_catalog.text)),
tq AS (SELECT q.s, q.n FROM args, pg_catalog.jsonb_to_recordset(args.j OPERATOR(pg_catalog.->) 't')
       AS q(s pg_catalog.text, n pg_catalog.text)),
rel AS (
  SELECT c.oid FROM rq
  JOIN pg_catalog.pg_class c ON c.relname OPERATOR(pg_catalog.=) rq.n
  JOIN pg_catalog.pg_namespace ns ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace
  WHERE CASE WHEN rq.s IS NULL THEN c.relnamespace OPERATOR(pg_catalog.=) ANY (SELECT oid FROM path)
        ELSE ns.nspname OPERATOR(pg_catalog.=) rq.s END
),
edges(parent, child, how) AS (
  SELECT w.ev_class, d.refobjid, 'view'::pg_catalog.text FROM pg_catalog.pg_rewrite w
  JOIN pg_catalog.pg_depend d
    ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
   AND d.objid OPERATOR(pg_catalog.=) w.oid
  WHERE w.ev_class OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
    AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
    AND d.refobjid OPERATOR(pg_catalog.<>) w.ev_class
  UNION ALL
  SELECT i.inhrelid, i.inhparent, 'ancestor'::pg_catalog.text FROM pg_catalog.pg_inherits i
  UNION ALL
  SELECT i.inhparent, i.inhrelid, 'descendant'::pg_catalog.text FROM pg_catalog.pg_inherits i
),
reach(oid, how, dir) AS (
  SELECT oid, 'direct'::pg_catalog.text, 'none'::pg_catalog.text FROM rel
  UNION
  SELECT e.child, CASE WHEN r.how OPERATOR(pg_catalog.=) 'view'::pg_catalog.text
                         OR e.how OPERATOR(pg_catalog.=) 'view'::pg_catalog.text
                       THEN 'view'::pg_catalog.text ELSE e.how END,
         CASE WHEN e.how OPERATOR(pg_catalog.=) 'view'::pg_catalog.text
              THEN 'none'::pg_catalog.text ELSE e.how END
  FROM reach r JOIN edges e ON e.parent OPERATOR(pg_catalog.=) r.oid
  WHERE NOT (r.dir OPERATOR(pg_catalog.=) 'ancestor'::pg_catalog.text
             AND e.how OPERATOR(pg_catalog.=) 'descendant'::pg_catalog.text)
    AND NOT (r.dir OPERATOR(pg_catalog.=) 'descendant'::pg_catalog.text
             AND e.how OPERATOR(pg_catalog.=) 'ancestor'::pg_catalog.text)
),
scanned AS (SELECT DISTINCT oid FROM reach
            WHERE dir OPERATOR(pg_catalog.<>) 'ancestor'::pg_catalog.text),
attached(classid, objid, via) AS (
  SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, i.indexrelid,
         'an index on '::pg_catalog.text OPERATOR(pg_catalog.||)
         r.oid::pg_catalog.regclass::pg_catalog.text
  FROM scanned r JOIN pg_catalog.pg_index i ON i.indrelid OPERATOR(pg_catalog.=) r.oid
  UNION ALL
  SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, con.oid,
         'a check constraint on '::pg_catalog.text OPERATOR(pg_catalog.||)
         r.oid::pg_catalog.regclass::pg_catalog.text
  FROM scanned r JOIN pg_catalog.pg_constraint con ON con.conrelid OPERATOR(pg_catalog.=) r.oid
  WHERE con.contype OPERATOR(pg_catalog.=) 'c'::pg_catalog."char"
  UNION ALL
  SELECT 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass, x.oid,
         'extended statistics on '::pg_catalog.text OPERATOR(pg_catalog.||)
         r.oid::pg_catalog.regclass::pg_catalog.text
  FROM scanned r JOIN pg_catalog.pg_statistic_ext x ON x.stxrelid OPERATOR(pg_catalog.=) r.oid
  UNION ALL
  SELECT 'pg_catalog.pg_attrdef'::pg_catalog.regclass, ad.oid,
         'a generated column of '::pg_catalog.text OPERATOR(pg_catalog.||)
         r.oid::pg_catalog.regclass::pg_catalog.text
  FROM scanned r JOIN pg_catalog.pg_attrdef ad ON ad.adrelid OPERATOR(pg_catalog.=) r.oid
  JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) ad.adrelid
   AND a.attnum OPERATOR(pg_catalog.=) ad.adnum
  WHERE a.attgenerated OPERATOR(pg_catalog.<>) ''::pg_catalog."char"
    AND a.attgenerated OPERATOR(pg_catalog.<>) 's'::pg_catalog."char"
  UNION ALL
  SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, r.oid,
         'the partition key of '::pg_catalog.text OPERATOR(pg_catalog.||)
         r.oid::pg_catalog.regclass::pg_catalog.text
  FROM scanned r
),
uview AS (SELECT DISTINCT r.oid, w.oid AS rule FROM reach r
          JOIN pg_catalog.pg_rewrite w ON w.ev_class OPERATOR(pg_catalog.=) r.oid
          WHERE r.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid),
named_typ AS (
  SELECT t.oid FROM tq
  JOIN pg_catalog.pg_type t ON t.typname OPERATOR(pg_catalog.=) tq.n
  JOIN pg_catalog.pg_namespace ns ON ns.oid OPERATOR(pg_catalog.=) t.typnamespace
  WHERE CASE WHEN tq.s IS NULL THEN t.typnamespace OPERATOR(pg_catalog.=) ANY (SELECT oid FROM path)
        ELSE ns.nspname OPERATOR(pg_catalog.=) tq.s END
  UNION ALL
  SELECT d.refobjid FROM uview v
  JOIN pg_catalog.pg_depend d
    ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
   AND d.objid OPERATOR(pg_catalog.=) v.rule
  WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
    AND d.refobjid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
  UNION ALL
  SELECT d.refobjid FROM attached a
  JOIN pg_catalog.pg_depend d
    ON d.classid OPERATOR(pg_catalog.=) a.classid AND d.objid OPERATOR(pg_catalog.=) a.objid
  WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
    AND d.objsubid OPERATOR(pg_catalog.=) 0
    AND d.refobjid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
  UNION ALL
  SELECT a.atttypid FROM scanned r
  JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) r.oid
  WHERE a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
    AND a.atttypid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
),
tedges(parent, child) AS (
  SELECT d.objid, d.refobjid FROM pg_catalog.pg_depend d
  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
    AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
  UNION ALL
  SELECT t.oid, d.refobjid FROM pg_catalog.pg_type t
  JOIN pg_catalog.pg_depend d
    ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
   AND d.objid OPERATOR(pg_catalog.=) t.typrelid
  WHERE t.typrelid OPERATOR(pg_catalog.<>) 0::pg_catalog.oid
    AND d.objsubid OPERATOR(pg_catalog.>) 0
    AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
),
typ(oid) AS (
  SELECT oid FROM named_typ
  UNION
  SELECT e.child FROM typ JOIN tedges e ON e.parent OPERATOR(pg_catalog.=) typ.oid
),
implicit(fn, via) AS (
  SELECT d.refobjid, 'view '::pg_catalog.text OPERATOR(pg_catalog.||)
         v.oid::pg_catalog.regclass::pg_catalog.text FROM uview v
  JOIN pg_catalog.pg_depend d
    ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
   AND d.objid OPERATOR(pg_catalog.=) v.rule
  WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
    AND d.refobjid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
  UNION ALL
  SELECT o.oprcode, 'view '::pg_catalog.text OPERATOR(pg_catalog.||)
         v.oid::pg_catalog.regclass::pg_catalog.text FROM uview v
  JOIN pg_catalog.pg_depend d
    ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
   AND d.objid OPERATOR(pg_catalog.=) v.rule
  JOIN pg_catalog.pg_operator o ON o.oid OPERATOR(pg_catalog.=) d.refobjid
  WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_operator'::pg_catalog.regclass
    AND d.refobjid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
  UNION ALL
  SELECT d.refobjid, 'row-level security policy '::pg_catalog.text OPERATOR(pg_catalog.||)
         pol.polname::pg_catalog.text OPERATOR(pg_catalog.||) ' on '::pg_catalog.text
         OPERATOR(pg_catalog.||) r.oid::pg_catalog.regclass::pg_catalog.text
  FROM reach r JOIN pg_catalog.pg_policy pol ON pol.polrelid OPERATOR(pg_catalog.=) r.oid
  JOIN pg_catalog.pg_depend d
    ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_policy'::pg_catalog.regclass
   AND d.objid OPERATOR(pg_catalog.=) pol.oid
  WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
    AND d.refobjid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
  UNION ALL
  SELECT d.refobjid, 'a check of domain '::pg_catalog.text OPERATOR(pg_catalog.||)
         t.oid::pg_catalog.regtype::pg_catalog.text FROM typ t
  JOIN pg_catalog.pg_constraint con ON con.contypid OPERATOR(pg_catalog.=) t.oid
  JOIN pg_catalog.pg_depend d
    ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass
   AND d.objid OPERATOR(pg_catalog.=) con.oid
  WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
    AND d.refobjid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
  UNION ALL
  SELECT f.fn, 'the input/output of type '::pg_catalog.text OPERATOR(pg_catalog.||)
         t.oid::pg_catalog.regtype::pg_catalog.text FROM typ t
  JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) t.oid,
  LATERAL (VALUES (ty.typinput::pg_catalog.oid), (ty.typoutput::pg_catalog.oid)) AS f(fn)
  WHERE f.fn OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
  UNION ALL
  SELECT f.fn, f.what OPERATOR(pg_catalog.||) t.oid::pg_catalog.regtype::pg_catalog.text
  FROM typ t
  JOIN pg_catalog.pg_range rg ON rg.rngtypid OPERATOR(pg_catalog.=) t.oid
                             OR rg.rngmultitypid OPERATOR(pg_catalog.=) t.oid,
  LATERAL (VALUES (rg.rngsubdiff::pg_catalog.oid, 'the subtype difference of range type '::pg_catalog.text),
                  (rg.rngcanonical::pg_catalog.oid, 'the canonical form of range type '::pg_catalog.text)) AS f(fn, what)
  WHERE f.fn OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
  UNION ALL
  SELECT c.castfunc, 'a cast to '::pg_catalog.text OPERATOR(pg_catalog.||)
         c.casttarget::pg_catalog.regtype::pg_catalog.text
  FROM pg_catalog.pg_cast c
  WHERE c.castfunc OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
    AND (c.casttarget OPERATOR(pg_catalog.=) ANY (SELECT oid FROM typ)
         OR c.castcontext OPERATOR(pg_catalog.=) 'i'::pg_catalog."char"
         OR c.castcontext OPERATOR(pg_catalog.=) 'a'::pg_catalog."char"
         OR (c.casttarget OPERATOR(pg_catalog.=) ANY
               (ARRAY['pg_catalog.json'::pg_catalog.regtype, 'pg_catalog.jsonb'::pg_catalog.regtype]::pg_catalog.oid[])
             AND (EXISTS (SELECT FROM fq WHERE pg_catalog.strpos(pg_catalog.lower(fq.n), 'json')
                                                OPERATOR(pg_catalog.>) 0)
                  OR EXISTS (SELECT FROM uview))))
  UNION ALL
  SELECT d.refobjid, a.via FROM attached a
  JOIN pg_catalog.pg_depend d
    ON d.classid OPERATOR(pg_catalog.=) a.classid AND d.objid OPERATOR(pg_catalog.=) a.objid
  WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
    AND d.refobjid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
  UNION ALL
  SELECT o.oprcode, a.via FROM attached a
  JOIN pg_catalog.pg_depend d
    ON d.classid OPERATOR(pg_catalog.=) a.classid AND d.objid OPERATOR(pg_catalog.=) a.objid
  JOIN pg_catalog.pg_operator o ON o.oid OPERATOR(pg_catalog.=) d.refobjid
  WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_operator'::pg_catalog.regclass
    AND d.refobjid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
),
fn AS (
  SELECT DISTINCT p.oid FROM fq
  JOIN pg_catalog.pg_proc p ON p.proname OPERATOR(pg_catalog.=) fq.n
  JOIN pg_catalog.pg_namespace ns ON ns.oid OPERATOR(pg_catalog.=) p.pronamespace
  WHERE CASE WHEN fq.s IS NULL THEN p.pronamespace OPERATOR(pg_catalog.=) ANY (SELECT oid FROM path)
        ELSE ns.nspname OPERATOR(pg_catalog.=) fq.s END
),
op AS (
  SELECT DISTINCT o.oid, o.oprcode FROM oq
  JOIN pg_catalog.pg_operator o ON o.oprname OPERATOR(pg_catalog.=) oq.n
  JOIN pg_catalog.pg_namespace ns ON ns.oid OPERATOR(pg_catalog.=) o.oprnamespace
  WHERE o.oid OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid
    AND CASE WHEN oq.s IS NULL THEN o.oprnamespace OPERATOR(pg_catalog.=) ANY (SELECT oid FROM path)
        ELSE ns.nspname OPERATOR(pg_catalog.=) oq.s END
),
routine(kind, sig, fn, via, ext_class, ext_obj) AS (
  SELECT 'function'::pg_catalog.text, f.oid::pg_catalog.regprocedure::pg_catalog.text, f.oid,
         NULL::pg_catalog.text, 'pg_catalog.pg_proc'::pg_catalog.regclass, f.oid FROM fn f
  UNION ALL
  SELECT 'operator'::pg_catalog.text, o.oid::pg_catalog.regoperator::pg_catalog.text, o.oprcode,
         NULL::pg_catalog.text, 'pg_catalog.pg_operator'::pg_catalog.regclass, o.oid FROM op o
  UNION ALL
  SELECT DISTINCT 'implicit'::pg_catalog.text, i.fn::pg_catalog.regprocedure::pg_catalog.text,
         i.fn, i.via, 'pg_catalog.pg_proc'::pg_catalog.regclass, i.fn FROM implicit i
)
SELECT r.kind, r.sig, ns.nspname::pg_catalog.text, p.proname::pg_catalog.text,
       r.fn OPERATOR(pg_catalog.>=) 16384::pg_catalog.oid,
       EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
               WHERE e.classid OPERATOR(pg_catalog.=) r.ext_class
                 AND e.objid OPERATOR(pg_catalog.=) r.ext_obj
                 AND e.deptype OPERATOR(pg_catalog.=) 'e'::pg_catalog."char"),
       p.provolatile OPERATOR(pg_catalog.=) 'v'::pg_catalog."char", r.via
FROM routine r
JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) r.fn
JOIN pg_catalog.pg_namespace ns ON ns.oid OPERATOR(pg_catalog.=) p.pronamespace
UNION ALL
SELECT 'relation'::pg_catalog.text, r.how, ns.nspname::pg_catalog.text, c.relname::pg_catalog.text,
       c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v}'::pg_catalog."char"[])
         AND COALESCE(pg_catalog.has_table_privilege(c.oid, 'SELECT'), false), false, false,
       NULL::pg_catalog.text
FROM (SELECT DISTINCT oid, how FROM reach) r
JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.oid
JOIN pg_catalog.pg_namespace ns ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace
UNION ALL
SELECT DISTINCT 'view_column'::pg_catalog.text, NULL::pg_catalog.text, ns.nspname::pg_catalog.text,
       c.relname::pg_catalog.text, false, false, false, a.attname::pg_catalog.text
FROM uview v
JOIN pg_catalog.pg_depend d
  ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
 AND d.objid OPERATOR(pg_catalog.=) v.rule
JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.refobjid
JOIN pg_catalog.pg_namespace ns ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) d.refobjid
 AND a.attnum OPERATOR(pg_catalog.=) d.refobjsubid
WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
  AND d.refobjsubid OPERATOR(pg_catalog.>) 0
  AND d.refobjid OPERATOR(pg_catalog.<>) v.oid
UNION ALL
SELECT DISTINCT 'generated_column'::pg_catalog.text, a.attname::pg_catalog.text,
       ns.nspname::pg_catalog.text, c.relname::pg_catalog.text, false, false, false,
       src.attname::pg_catalog.text
FROM scanned r
JOIN pg_catalog.pg_attrdef ad ON ad.adrelid OPERATOR(pg_catalog.=) r.oid
JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) ad.adrelid
 AND a.attnum OPERATOR(pg_catalog.=) ad.adnum
JOIN pg_catalog.pg_depend d
  ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_attrdef'::pg_catalog.regclass
 AND d.objid OPERATOR(pg_catalog.=) ad.oid
JOIN pg_catalog.pg_attribute src ON src.attrelid OPERATOR(pg_catalog.=) d.refobjid
 AND src.attnum OPERATOR(pg_catalog.=) d.refobjsubid
JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.oid
JOIN pg_catalog.pg_namespace ns ON ns.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE a.attgenerated OPERATOR(pg_catalog.<>) ''::pg_catalog."char"
  AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
  AND d.refobjid OPERATOR(pg_catalog.=) ad.adrelid
  AND d.refobjsubid OPERATOR(pg_catalog.>) 0
"#;

/// `[{"s": schema, "n": name}, ...]`.
fn pairs(v: &[(Option<String>, String)]) -> serde_json::Value {
    serde_json::Value::Array(
        v.iter()
            .map(|(s, n)| serde_json::json!({"s": s, "n": n}))
            .collect(),
    )
}

/// The name of the resolution statement, prepared once per pooled session
/// ([`prepare_statements`]) and kept across calls: it holds no client text (the names come as its
/// argument), and keeping it saves planning a large statement on every call.
pub(crate) const PREPARED: &str = "dbward_resolve";

/// `SELECT pg_advisory_unlock_all()`, the last statement of every call's end (see
/// `session::end`), prepared once per session: bound by name in the call's one batch, it is
/// neither parsed nor planned again.
pub(crate) const UNLOCK_PREPARED: &str = "dbward_unlock";

/// The statement [`UNLOCK_PREPARED`] names.
pub(crate) const UNLOCK: &str = "SELECT pg_catalog.pg_advisory_unlock_all()";

/// `PREPARE dbward_resolve(text) AS ...`, `PREPARE dbward_unlock AS SELECT
/// pg_advisory_unlock_all()` and, on PostgreSQL 13 and later (which have
/// `pg_current_snapshot`), `PREPARE dbward_guard(text) AS ...` and `PREPARE
/// dbward_recheck(text, text, text) AS ...` ([`recheck`](super::guard::recheck)) with the
/// session's [`fingerprint`] (`versioned`: the database has dbward's catalog version, see
/// [`CATALOG_VERSION_SQL`]).
/// The resolution's last row holds its [`CANONICAL`] text. Run when a session is opened,
/// and again after a call had to drop every prepared statement of the session. All are our own text; none holds anything
/// of a client's. One statement each.
pub(crate) fn prepare_statements(conn: &sqlx::PgConnection, versioned: bool) -> Vec<String> {
    let resolve = format!(
        "PREPARE {PREPARED}(pg_catalog.text) AS WITH res AS MATERIALIZED ({}) \
         SELECT * FROM res UNION ALL \
         SELECT '{CANONICAL_KIND}'::pg_catalog.text, (SELECT {CANONICAL} FROM res x), '', '', \
                false, false, false, NULL::pg_catalog.text",
        resolve_of("$1")
    );
    let mut out = vec![resolve, format!("PREPARE {UNLOCK_PREPARED} AS {UNLOCK}")];
    if snapshots(conn) {
        out.push(format!(
            "PREPARE {GUARD_PREPARED}(pg_catalog.text) AS \
             SELECT 1 OPERATOR(pg_catalog./) (CASE WHEN {} OPERATOR(pg_catalog.=) \
             $1 THEN 1 ELSE 0 END)",
            fingerprint(versioned)
        ));
        out.push(format!(
            "PREPARE {RECHECK_PREPARED}(pg_catalog.text, pg_catalog.text, pg_catalog.text) AS \
             SELECT 1 OPERATOR(pg_catalog./) (CASE WHEN {fp} OPERATOR(pg_catalog.=) $1 THEN 1 \
             WHEN (SELECT {CANONICAL} FROM ({}) x) OPERATOR(pg_catalog.=) $3 THEN 1 \
             ELSE 0 END), {fp}",
            resolve_of("$2"),
            fp = fingerprint(versioned),
        ));
    }
    out
}

/// [`RESOLVE`] with the names from the hex-encoded parameter `param`.
fn resolve_of(param: &str) -> String {
    RESOLVE.replace(
        "{ARGS}",
        &format!(
            "pg_catalog.convert_from(pg_catalog.decode({param}, 'hex'), 'UTF8')::pg_catalog.jsonb"
        ),
    )
}

/// The canonical text of a resolution's rows `x`: each row's text (`record_out`, which
/// quotes any field holding a separator, a quote or white space), sorted bytewise, joined by
/// newlines. Two answers with the same text are the same rows, so the same answer; the
/// resolution statement reports it as one more row ([`CANONICAL_KIND`]), and
/// [`RECHECK_PREPARED`] computes it afresh to compare.
const CANONICAL: &str = "COALESCE(pg_catalog.string_agg(x::pg_catalog.text, \
     E'\\n' ORDER BY x::pg_catalog.text COLLATE pg_catalog.\"C\"), '')";

/// The kind of the resolution statement's last row, which holds its [`CANONICAL`] text.
const CANONICAL_KIND: &str = "canonical";

/// `EXECUTE dbward_resolve('<hex>')` for the names: one statement of our own text. The names
/// (which come from the client's query) travel as a hex string of their JSON: the text is
/// constant but for the characters `0-9a-f`, so nothing of the client's can end or extend
/// the literal. That lets it go in the call's first simple-protocol message, with `BEGIN`,
/// in the same round trip. Run it between [`BEFORE`] and [`AFTER`]: its plan is then made
/// once per session.
pub(crate) fn statement(names: &NamesHex) -> String {
    format!("EXECUTE {PREPARED}('{}')", names.0)
}

/// The names as the resolution takes them: the hex of their JSON, only `0-9a-f` (made only
/// by [`names_hex`]).
pub(crate) struct NamesHex(String);

impl NamesHex {
    /// The hex text, for the statements that take the names as a parameter (`guard.rs`).
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The names as the resolution takes them (see [`statement`]).
pub(crate) fn names_hex(names: &Names) -> NamesHex {
    let doc = serde_json::json!({
        "f": pairs(&names.functions),
        "o": pairs(&names.operators),
        "r": pairs(&names.relations),
        "t": pairs(&names.types),
    })
    .to_string();
    NamesHex(hex(doc.as_bytes()))
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Around [`statement`]: its generic plan is used from the first call (its cost does not
/// depend on the names), made with nested loops over the catalogs' indexes (half the
/// execution time of the hash joins the planner picks for unknown arguments); the client's
/// query then plans as usual.
pub(crate) const BEFORE: [&str; 3] = [
    "SET LOCAL plan_cache_mode = force_generic_plan",
    "SET LOCAL enable_hashjoin = off",
    "SET LOCAL enable_mergejoin = off",
];
/// See [`BEFORE`].
pub(crate) const AFTER: [&str; 3] = [
    "SET LOCAL plan_cache_mode TO DEFAULT",
    "SET LOCAL enable_hashjoin TO DEFAULT",
    "SET LOCAL enable_mergejoin TO DEFAULT",
];

/// Reads the resolution statement's rows: the answer and its [`CANONICAL`] text.
pub(crate) fn read(rows: Vec<sqlx::postgres::PgRow>) -> Result<(Resolution, String), GatewayError> {
    let mut out = Resolution::default();
    let mut canonical = None;
    let bad = |e: sqlx::Error| GatewayError::Internal(format!("resolution row: {e}"));
    for row in rows {
        let kind: String = row.try_get(0).map_err(bad)?;
        let second: Option<String> = row.try_get(1).map_err(bad)?;
        let schema: String = row.try_get(2).map_err(bad)?;
        let name: String = row.try_get(3).map_err(bad)?;
        let via: Option<String> = row.try_get(7).map_err(bad)?;
        match kind.as_str() {
            CANONICAL_KIND => canonical = second,
            "relation" => {
                let how = match second.as_deref() {
                    Some("view") => Reach::View,
                    Some("ancestor") => Reach::Ancestor,
                    Some("descendant") => Reach::Descendant,
                    _ => Reach::Direct,
                };
                let lockable: bool = row.try_get(4).map_err(bad)?;
                if lockable && how == Reach::Direct {
                    out.lockable.push((schema.clone(), name.clone()));
                }
                out.relations.push((schema, name, how));
            }
            "view_column" => out
                .view_columns
                .push((schema, name, via.unwrap_or_default())),
            "generated_column" => out.generated_columns.push((
                schema,
                name,
                second.unwrap_or_default(),
                via.unwrap_or_default(),
            )),
            k => out.routines.push(Routine {
                kind: match k {
                    "operator" => RoutineKind::Operator,
                    "implicit" => RoutineKind::Implicit,
                    _ => RoutineKind::Function,
                },
                signature: second.unwrap_or_default(),
                schema,
                name,
                user_defined: row.try_get(4).map_err(bad)?,
                extension: row.try_get(5).map_err(bad)?,
                volatile: row.try_get(6).map_err(bad)?,
                via,
            }),
        }
    }
    let canonical = canonical
        .ok_or_else(|| GatewayError::Internal("resolution without its canonical row".into()))?;
    Ok((out, canonical))
}

/// A query's names and the judge of what they resolve to: run by the backend inside the
/// call's transaction, before the query.
pub struct Resolver<'a> {
    /// The names to resolve.
    pub names: Names,
    /// Refuses what must not run.
    pub judge: &'a (dyn Fn(&Resolution) -> Result<(), GatewayError> + Send + Sync),
}
