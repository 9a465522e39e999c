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
//! - every relation reached: named, through user views (recursively), and the ancestors of
//!   partitions and inheritance children;
//! - the columns user views read (views record a dependency on every column they use);
//! - user code that runs with no call in the text: functions and operators in user views,
//!   row-level-security policies, domain checks and type I/O of the types the query casts
//!   to, and user casts (to those types, or implicit/assignment casts anywhere).
//!
//! The gateway judges the answer ([`crate::resolution`]). Nothing is cached: an answer is
//! never stale after the owner creates or redefines a function.
//!
//! Invariant: this statement is our own constant text; the names travel as bound arrays.

use sqlx::Row;

use crate::error::GatewayError;

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
}

const RESOLVE: &str = r#"
WITH RECURSIVE
path AS (SELECT n.oid FROM pg_catalog.pg_namespace n
         WHERE n.nspname = ANY (pg_catalog.current_schemas(true))),
fq AS (SELECT * FROM unnest($1::text[], $2::text[]) AS q(s, n)),
oq AS (SELECT * FROM unnest($3::text[], $4::text[]) AS q(s, n)),
rq AS (SELECT * FROM unnest($5::text[], $6::text[]) AS q(s, n)),
tq AS (SELECT * FROM unnest($7::text[], $8::text[]) AS q(s, n)),
rel AS (
  SELECT c.oid FROM rq
  JOIN pg_catalog.pg_class c ON c.relname = rq.n
  JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
  WHERE CASE WHEN rq.s IS NULL THEN c.relnamespace IN (SELECT oid FROM path) ELSE ns.nspname = rq.s END
),
edges(parent, child, how) AS (
  SELECT w.ev_class, d.refobjid, 'view'::text FROM pg_catalog.pg_rewrite w
  JOIN pg_catalog.pg_depend d
    ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = w.oid
  WHERE w.ev_class >= 16384 AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
    AND d.refobjid <> w.ev_class
  UNION ALL
  SELECT i.inhrelid, i.inhparent, 'ancestor'::text FROM pg_catalog.pg_inherits i
),
reach(oid, how) AS (
  SELECT oid, 'direct'::text FROM rel
  UNION
  SELECT e.child, CASE WHEN r.how = 'view' OR e.how = 'view' THEN 'view' ELSE e.how END
  FROM reach r JOIN edges e ON e.parent = r.oid
),
uview AS (SELECT DISTINCT r.oid, w.oid AS rule FROM reach r
          JOIN pg_catalog.pg_rewrite w ON w.ev_class = r.oid WHERE r.oid >= 16384),
typ AS (
  SELECT t.oid FROM tq
  JOIN pg_catalog.pg_type t ON t.typname = tq.n
  JOIN pg_catalog.pg_namespace ns ON ns.oid = t.typnamespace
  WHERE CASE WHEN tq.s IS NULL THEN t.typnamespace IN (SELECT oid FROM path) ELSE ns.nspname = tq.s END
),
implicit(fn, via) AS (
  SELECT d.refobjid, 'view ' || v.oid::pg_catalog.regclass::text FROM uview v
  JOIN pg_catalog.pg_depend d
    ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = v.rule
  WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.refobjid >= 16384
  UNION ALL
  SELECT o.oprcode, 'view ' || v.oid::pg_catalog.regclass::text FROM uview v
  JOIN pg_catalog.pg_depend d
    ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = v.rule
  JOIN pg_catalog.pg_operator o ON o.oid = d.refobjid
  WHERE d.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass AND d.refobjid >= 16384
  UNION ALL
  SELECT d.refobjid, 'row-level security policy ' || pol.polname || ' on '
         || r.oid::pg_catalog.regclass::text
  FROM reach r JOIN pg_catalog.pg_policy pol ON pol.polrelid = r.oid
  JOIN pg_catalog.pg_depend d
    ON d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid = pol.oid
  WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.refobjid >= 16384
  UNION ALL
  SELECT d.refobjid, 'a check of domain ' || t.oid::pg_catalog.regtype::text FROM typ t
  JOIN pg_catalog.pg_constraint con ON con.contypid = t.oid
  JOIN pg_catalog.pg_depend d
    ON d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND d.objid = con.oid
  WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.refobjid >= 16384
  UNION ALL
  SELECT f.fn, 'the input/output of type ' || t.oid::pg_catalog.regtype::text FROM typ t
  JOIN pg_catalog.pg_type ty ON ty.oid = t.oid,
  LATERAL (VALUES (ty.typinput::oid), (ty.typoutput::oid)) AS f(fn)
  WHERE f.fn >= 16384
  UNION ALL
  SELECT c.castfunc, 'a cast to ' || c.casttarget::pg_catalog.regtype::text
  FROM pg_catalog.pg_cast c
  WHERE c.castfunc >= 16384 AND (c.casttarget IN (SELECT oid FROM typ) OR c.castcontext IN ('i', 'a'))
),
fn AS (
  SELECT DISTINCT p.oid FROM fq
  JOIN pg_catalog.pg_proc p ON p.proname = fq.n
  JOIN pg_catalog.pg_namespace ns ON ns.oid = p.pronamespace
  WHERE CASE WHEN fq.s IS NULL THEN p.pronamespace IN (SELECT oid FROM path) ELSE ns.nspname = fq.s END
),
op AS (
  SELECT DISTINCT o.oid, o.oprcode FROM oq
  JOIN pg_catalog.pg_operator o ON o.oprname = oq.n
  JOIN pg_catalog.pg_namespace ns ON ns.oid = o.oprnamespace
  WHERE o.oid >= 16384
    AND CASE WHEN oq.s IS NULL THEN o.oprnamespace IN (SELECT oid FROM path) ELSE ns.nspname = oq.s END
),
routine(kind, sig, fn, via, ext_class, ext_obj) AS (
  SELECT 'function'::text, f.oid::pg_catalog.regprocedure::text, f.oid, NULL::text,
         'pg_catalog.pg_proc'::pg_catalog.regclass, f.oid FROM fn f
  UNION ALL
  SELECT 'operator', o.oid::pg_catalog.regoperator::text, o.oprcode, NULL,
         'pg_catalog.pg_operator'::pg_catalog.regclass, o.oid FROM op o
  UNION ALL
  SELECT DISTINCT 'implicit', i.fn::pg_catalog.regprocedure::text, i.fn, i.via,
         'pg_catalog.pg_proc'::pg_catalog.regclass, i.fn FROM implicit i
)
SELECT r.kind, r.sig, ns.nspname::text, p.proname::text, r.fn >= 16384,
       EXISTS (SELECT 1 FROM pg_catalog.pg_depend e
               WHERE e.classid = r.ext_class AND e.objid = r.ext_obj AND e.deptype = 'e'),
       p.provolatile = 'v', r.via
FROM routine r
JOIN pg_catalog.pg_proc p ON p.oid = r.fn
JOIN pg_catalog.pg_namespace ns ON ns.oid = p.pronamespace
UNION ALL
SELECT 'relation', r.how, ns.nspname::text, c.relname::text, false, false, false, NULL
FROM (SELECT DISTINCT oid, how FROM reach) r
JOIN pg_catalog.pg_class c ON c.oid = r.oid
JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
UNION ALL
SELECT DISTINCT 'view_column', NULL, ns.nspname::text, c.relname::text, false, false, false,
       a.attname::text
FROM uview v
JOIN pg_catalog.pg_depend d
  ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = v.rule
JOIN pg_catalog.pg_class c ON c.oid = d.refobjid
JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjsubid > 0
  AND d.refobjid <> v.oid
"#;

fn split(v: &[(Option<String>, String)]) -> (Vec<Option<String>>, Vec<String>) {
    v.iter().cloned().unzip()
}

/// Runs the resolution statement on the call's connection, inside its transaction.
pub(crate) async fn resolve(
    conn: &mut sqlx::PgConnection,
    names: &Names,
) -> Result<Resolution, GatewayError> {
    let (fs, fnames) = split(&names.functions);
    let (os, onames) = split(&names.operators);
    let (rs, rnames) = split(&names.relations);
    let (ts, tnames) = split(&names.types);
    let rows = sqlx::query(RESOLVE)
        .persistent(false)
        .bind(fs)
        .bind(fnames)
        .bind(os)
        .bind(onames)
        .bind(rs)
        .bind(rnames)
        .bind(ts)
        .bind(tnames)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| super::classify(e, &[]))?;
    let mut out = Resolution::default();
    for row in rows {
        let kind: String = row.get(0);
        let second: Option<String> = row.get(1);
        let schema: String = row.get(2);
        let name: String = row.get(3);
        let via: Option<String> = row.get(7);
        match kind.as_str() {
            "relation" => {
                let how = match second.as_deref() {
                    Some("view") => Reach::View,
                    Some("ancestor") => Reach::Ancestor,
                    _ => Reach::Direct,
                };
                out.relations.push((schema, name, how));
            }
            "view_column" => out
                .view_columns
                .push((schema, name, via.unwrap_or_default())),
            k => out.routines.push(Routine {
                kind: match k {
                    "operator" => RoutineKind::Operator,
                    "implicit" => RoutineKind::Implicit,
                    _ => RoutineKind::Function,
                },
                signature: second.unwrap_or_default(),
                schema,
                name,
                user_defined: row.get(4),
                extension: row.get(5),
                volatile: row.get(6),
                via,
            }),
        }
    }
    Ok(out)
}

/// A query's names and the judge of what they resolve to: run by the backend inside the
/// call's transaction, before the query.
pub struct Resolver<'a> {
    /// The names to resolve.
    pub names: Names,
    /// Refuses what must not run.
    pub judge: &'a (dyn Fn(&Resolution) -> Result<(), GatewayError> + Send + Sync),
}
