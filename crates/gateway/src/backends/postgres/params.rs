//! PostgreSQL: query parameters take the types the database infers for them.
//!
//! A tool call's parameters are JSON. Booleans, numbers, arrays and objects carry their
//! own type (`bool`, `int8`/`float8`, `jsonb`). A string does not: psql, and every driver's
//! untyped binding, sends it as text of an unspecified type and lets PostgreSQL infer the
//! type from the query (`created_at >= $1` makes `$1` a `timestamptz`). sqlx always sends
//! parameters in binary form, which needs a declared type, so a string bound as `text`
//! fails where psql succeeds ("operator does not exist: timestamp with time zone >= text").
//!
//! So, when a call has string (or null) parameters, inside the call's read-only transaction
//! and before the query is declared:
//! 1. the query's own statement is parsed and described with those parameters' types left
//!    unspecified (OID 0), which is what the server infers them to be (nothing runs: a
//!    Parse/Describe neither plans nor executes);
//! 2. each string whose inferred type is a builtin (OID below 16384) other than the text
//!    types is converted by the server, all in one statement of our own text
//!    (`SELECT $1::text::pg_catalog.format_type-name, ...`), and its binary form bound with
//!    that type's OID; a null is bound as a null of the inferred type.
//!
//! A string whose inferred type is an enum is bound as that enum (its binary form is the
//! label, checked by the builtin `enum_recv`). One whose inferred type is another
//! user-defined type (a domain, a composite, a base type) stays `text`, as before:
//! converting it would run the type's input function or a domain's check, which may be
//! owner code. If the server cannot infer a type (`SELECT $1`, `$1 IS NULL`), the
//! transaction returns to the savepoint [`SAVEPOINT`] that the call's `BEGIN` message set
//! (see [`describes`]) and every parameter is bound as before, so no query that ran
//! without this step fails because of it.
//!
//! Invariants: the client's text reaches the server only over the extended protocol, as
//! the one statement of its Parse message; the statements here are our own text (type
//! names come from the server's `format_type` of builtin OIDs); the Describe is of the
//! unnamed statement (which the DECLARE's Parse then replaces), and so is the conversion;
//! a named statement the driver prepares for its own catalog lookup of a type it did not
//! know is dropped at the end of the call by `DEALLOCATE ALL` (see `session::end`).

use serde_json::Value;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgTypeInfo, PgTypeKind, Postgres};
use sqlx::{AssertSqlSafe, Row, ValueRef};

use super::classify;
use crate::error::GatewayError;

/// Type names by OID, as `format_type(oid, NULL)` gives them (`PgBackend::type_names`).
pub(super) type TypeNames = std::sync::Mutex<std::collections::HashMap<u32, String>>;

/// The names of the types `oids` (`format_type(oid, NULL)`), in order (`None`: no such
/// type), asked of the catalog only for those `cache` does not hold yet, which it then
/// holds. The one lookup of type names: the conversion of string parameters and the
/// columns the driver names `?` both use it.
pub(super) async fn names_of(
    conn: &mut sqlx::PgConnection,
    cache: &TypeNames,
    oids: &[u32],
) -> Result<Vec<Option<String>>, GatewayError> {
    let missing: Vec<i64> = {
        let known = cache.lock().unwrap_or_else(|p| p.into_inner());
        oids.iter()
            .filter(|oid| !known.contains_key(oid))
            .map(|&oid| i64::from(oid))
            .collect()
    };
    if !missing.is_empty() {
        let named: Vec<(i64, String)> = sqlx::query_as(
            "SELECT oid::int8, pg_catalog.format_type(oid, NULL) FROM pg_catalog.pg_type \
             WHERE oid = ANY($1::int8[]::oid[])",
        )
        .persistent(false)
        .bind(&missing)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| classify(e, &[]))?;
        let mut known = cache.lock().unwrap_or_else(|p| p.into_inner());
        for (oid, name) in named {
            known.insert(oid as u32, name);
        }
    }
    let known = cache.lock().unwrap_or_else(|p| p.into_inner());
    Ok(oids.iter().map(|oid| known.get(oid).cloned()).collect())
}

/// Appended to the call's `BEGIN` message when [`describes`] holds: the point a failed
/// Describe returns to.
pub(super) const SAVEPOINT: &str = "SAVEPOINT dbward_params";

/// The OID of `bit`.
const BIT: u32 = 1560;

/// The first OID PostgreSQL assigns to objects created after initdb.
const FIRST_NORMAL_OBJECT_ID: u32 = 16384;

/// Inferred types a string is bound as `text` for: `text`, `varchar` and `name` compare
/// with `text` as themselves, `bpchar` through its implicit cast to `text`, and `unknown`
/// is what an unconstrained parameter resolves to.
const TEXT_LIKE: [u32; 5] = [25, 1043, 1042, 19, 705];

/// One parameter as it will be bound.
pub(super) enum Bound<'a> {
    /// As JSON gives it: `bool`, `int8`/`float8`, `jsonb`, and `text` for a string or null.
    Json(&'a Value),
    /// The binary form of a value of a given type (a converted string, or a typed null).
    Typed(Typed),
}

impl<'a> Bound<'a> {
    /// Adds this parameter to a query.
    pub(super) fn bind(
        &'a self,
        q: sqlx::query::Query<'a, Postgres, PgArguments>,
    ) -> sqlx::query::Query<'a, Postgres, PgArguments> {
        match self {
            Bound::Json(v) => bind_json(q, v),
            Bound::Typed(t) => q.bind(t),
        }
    }
}

/// A value already in the binary form of the type `oid` (`None`: a null of that type).
pub(super) struct Typed {
    oid: u32,
    bytes: Option<Vec<u8>>,
}

impl sqlx::Type<Postgres> for &Typed {
    // Overridden per value by `produces`.
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(0))
    }
}

impl sqlx::Encode<'_, Postgres> for &Typed {
    fn produces(&self) -> Option<PgTypeInfo> {
        Some(PgTypeInfo::with_oid(Oid(self.oid)))
    }

    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        match &self.bytes {
            None => Ok(IsNull::Yes),
            Some(b) => {
                buf.extend_from_slice(b);
                Ok(IsNull::No)
            }
        }
    }
}

/// Binds a JSON value by its JSON type.
fn bind_json<'q>(
    q: sqlx::query::Query<'q, Postgres, PgArguments>,
    v: &'q Value,
) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    match v {
        Value::Null => q.bind(None::<String>),
        Value::Bool(b) => q.bind(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => q.bind(i),
            None => q.bind(n.as_f64()),
        },
        Value::String(s) => q.bind(s.as_str()),
        other => q.bind(sqlx::types::Json(other)),
    }
}

/// The type [`bind_json`] declares for a value; `None` for those whose type the server
/// is asked to infer.
fn declared(v: &Value) -> Option<PgTypeInfo> {
    use sqlx::Type;
    match v {
        Value::Null | Value::String(_) => None,
        Value::Bool(_) => Some(<bool as Type<Postgres>>::type_info()),
        Value::Number(n) if n.as_i64().is_some() => Some(<i64 as Type<Postgres>>::type_info()),
        Value::Number(_) => Some(<f64 as Type<Postgres>>::type_info()),
        _ => Some(<sqlx::types::Json<&Value> as Type<Postgres>>::type_info()),
    }
}

/// Whether a call's parameters need the Describe (and so the [`SAVEPOINT`]).
pub(super) fn describes(params: &[Value]) -> bool {
    params.iter().any(|p| declared(p).is_none())
}

/// The parameters of `statement` (the exact text that will be declared), each bound as
/// the type the server infers for it where that differs from JSON's (see the module doc),
/// and whether the driver left a named statement of its own in the session meanwhile (see
/// `PgConnection::describe_parameters`: the call's end then drops it).
pub(super) async fn infer<'a>(
    conn: &mut sqlx::PgConnection,
    statement: &str,
    params: &'a [Value],
    type_names: &TypeNames,
) -> Result<(Vec<Bound<'a>>, bool), GatewayError> {
    let mut bound: Vec<Bound<'a>> = params.iter().map(Bound::Json).collect();
    if !describes(params) {
        return Ok((bound, false));
    }
    let types: Vec<PgTypeInfo> = params
        .iter()
        .map(|p| declared(p).unwrap_or_else(|| PgTypeInfo::with_oid(Oid(0))))
        .collect();
    // The unnamed statement: nothing of the client's text stays in the session.
    let described = conn.describe_parameters(statement, &types).await;
    // (OID, an enum) of each parameter.
    let (inferred, named): (Vec<(u32, bool)>, bool) = match described {
        Ok((p, named)) => (
            p.iter()
                .map(|t| {
                    let oid = t.oid().map_or(0, |o| o.0);
                    (oid, matches!(t.kind(), PgTypeKind::Enum(_)))
                })
                .collect(),
            named,
        ),
        // The server could not infer a type, or the query is wrong in a way the DECLARE
        // will report: bind as JSON says.
        Err(sqlx::Error::Database(_)) => {
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT dbward_params")
                .execute(&mut *conn)
                .await
                .map_err(|e| classify(e, &[]))?;
            return Ok((bound, false));
        }
        Err(e) => return Err(classify(e, &[])),
    };
    // (parameter index, inferred OID) of the strings the server converts.
    let mut convert: Vec<(usize, u32)> = Vec::new();
    for (i, (p, &(oid, is_enum))) in params.iter().zip(&inferred).enumerate() {
        let builtin = oid != 0 && oid < FIRST_NORMAL_OBJECT_ID && !TEXT_LIKE.contains(&oid);
        match p {
            Value::String(_) if builtin => convert.push((i, oid)),
            // An enum's binary form is its label: the server's builtin enum_recv checks it.
            Value::String(s) if is_enum => {
                bound[i] = Bound::Typed(Typed {
                    oid,
                    bytes: Some(s.as_bytes().to_vec()),
                })
            }
            // A null runs no input function: any inferred type will do.
            Value::Null if oid != 0 && oid != 705 => {
                bound[i] = Bound::Typed(Typed { oid, bytes: None })
            }
            _ => {}
        }
    }
    if convert.is_empty() {
        return Ok((bound, named));
    }
    let err = |e| classify(e, &[]);
    // format_type(oid, NULL) names a type as SQL spells it without a type modifier
    // (`"bit"`, `bpchar`), schema-qualified if the search path would not find it (with
    // `pg_catalog` first on every session's path, a builtin is found: the name does not
    // change, so it is asked once per backend and kept, with the result columns' names).
    let oids: Vec<u32> = convert.iter().map(|&(_, oid)| oid).collect();
    let mut names = Vec::with_capacity(oids.len());
    for (oid, name) in oids.iter().zip(names_of(conn, type_names, &oids).await?) {
        match name {
            Some(n) => names.push(n),
            None => {
                return Err(GatewayError::Internal(format!(
                    "no name for the builtin type {oid}"
                )));
            }
        }
    }
    // `bit` without a length is `bit(1)` in a cast (a string of three bits would be cut to
    // one): such a string is converted to `varbit`, whose binary form `bit` reads as is.
    let casts: Vec<String> = names
        .iter()
        .zip(&convert)
        .enumerate()
        .map(|(k, (name, &(_, oid)))| {
            let to = if oid == BIT {
                "pg_catalog.varbit"
            } else {
                name.as_str()
            };
            format!("${}::pg_catalog.text::{to}", k + 1)
        })
        .collect();
    let mut q =
        sqlx::query(AssertSqlSafe(format!("SELECT {}", casts.join(", ")))).persistent(false);
    for &(i, _) in &convert {
        q = bind_json(q, &params[i]);
    }
    let row = match q.fetch_one(&mut *conn).await {
        Ok(row) => row,
        // A data exception (22xxx): the value does not fit the type.
        Err(sqlx::Error::Database(db)) if db.code().is_some_and(|c| c.starts_with("22")) => {
            let read_as: Vec<String> = convert
                .iter()
                .zip(&names)
                .map(|(&(i, _), name)| format!("${} as {name}", i + 1))
                .collect();
            return Err(GatewayError::InvalidInput(format!(
                "a parameter is not a valid value of the type the query reads it as ({}): {}",
                read_as.join(", "),
                db.message()
            )));
        }
        Err(e) => return Err(err(e)),
    };
    for (k, &(i, oid)) in convert.iter().enumerate() {
        let raw = row.try_get_raw(k).map_err(err)?;
        let bytes = if raw.is_null() {
            None
        } else {
            Some(
                raw.as_bytes()
                    .map_err(|e| GatewayError::Database(e.to_string()))?
                    .to_vec(),
            )
        };
        bound[i] = Bound::Typed(Typed { oid, bytes });
    }
    Ok((bound, named))
}
