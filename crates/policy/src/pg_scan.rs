//! A serde `Serializer` that writes nothing: it only *walks*. pg_query's protobuf types
//! derive `Serialize`, and a derived `Serialize` visits every field of every node, so
//! serialising the tree into this scanner reaches every node by construction — including
//! calls inside FILTER, OVER, WINDOW, ROLLUP, `(f()).x` and `xmlelement`, which pg_query's
//! own `nodes()` iterator skips — without building a JSON copy of the whole tree.
//!
//! Only the few nodes the policy judges (function calls, relations, column references,
//! CTEs, DML, SELECT INTO and locking clauses) are copied out, as small JSON values, and
//! handed to [`Visit::visit`].
//!
//! Invariant: every node of the tree passes through `serialize_newtype_variant` (that is how
//! a `NodeEnum` serialises), and every struct field through `serialize_field`.

use serde::ser::{self, Serialize};
use std::fmt;

/// Receives the nodes of interest as JSON bodies, keyed by node or field name.
pub(crate) trait Visit {
    /// Whether a node or field of this name is wanted (copying it out costs an allocation).
    fn wants(&self, key: &str) -> bool;
    /// Called with `("FuncCall", body)`, `("into_clause", value)` and the like.
    fn visit(&mut self, key: &str, body: &serde_json::Value);
    /// Called once when the tree is deeper than the limit; the subtree is not walked.
    fn too_deep(&mut self);
}

/// Node kinds copied out for [`Visit::visit`].
const NODES: &[&str] = &[
    "FuncCall",
    "RangeVar",
    "ColumnRef",
    "InsertStmt",
    "UpdateStmt",
    "DeleteStmt",
    "MergeStmt",
    "JoinExpr",
    "CaseExpr",
    // SQL/JSON syntax that a server older than the parser reads as a plain function call.
    "JsonScalarExpr",
    "JsonSerializeExpr",
    "JsonParseExpr",
    "JsonFuncExpr",
    "JsonTable",
    "JsonObjectConstructor",
    "JsonArrayConstructor",
    "JsonArrayQueryConstructor",
    "JsonObjectAgg",
    "JsonArrayAgg",
];
/// Struct fields copied out for [`Visit::visit`].
/// (`ctename` is the name a `CommonTableExpr` defines: copied alone, not the CTE's query;
/// `name` is an operator's name in an `A_Expr`, `oper_name` a sublink's operator, `use_op`
/// an `ORDER BY ... USING` operator, `names` a type's name in a `TypeName`,
/// `indirection` the field selections of `(x).f`.)
const FIELDS: &[&str] = &[
    "into_clause",
    "locking_clause",
    "ctename",
    "name",
    "oper_name",
    "use_op",
    "names",
    "indirection",
];

pub(crate) struct Scan<'v, V: Visit> {
    pub(crate) visitor: &'v mut V,
    pub(crate) depth: usize,
    pub(crate) max_depth: usize,
    pub(crate) stopped: bool,
}

#[derive(Debug)]
pub(crate) struct ScanError(String);

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ScanError {}
impl ser::Error for ScanError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ScanError(msg.to_string())
    }
}

impl<V: Visit> Scan<'_, V> {
    fn copy_out<T: ?Sized + Serialize>(&mut self, key: &str, value: &T) -> Result<(), ScanError> {
        let body = serde_json::to_value(value).map_err(|e| ScanError(e.to_string()))?;
        self.visitor.visit(key, &body);
        Ok(())
    }

    fn descend<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), ScanError> {
        if self.depth >= self.max_depth {
            if !self.stopped {
                self.stopped = true;
                self.visitor.too_deep();
            }
            return Ok(());
        }
        self.depth += 1;
        let r = value.serialize(&mut *self);
        self.depth -= 1;
        r
    }
}

macro_rules! ignore {
    ($($name:ident: $t:ty),* $(,)?) => {
        $(fn $name(self, _v: $t) -> Result<(), ScanError> { Ok(()) })*
    };
}

impl<V: Visit> ser::Serializer for &mut Scan<'_, V> {
    type Ok = ();
    type Error = ScanError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    ignore!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_f32: f32, serialize_f64: f64, serialize_char: char,
        serialize_str: &str, serialize_bytes: &[u8],
        serialize_unit_struct: &'static str,
    );

    fn serialize_none(self) -> Result<(), ScanError> {
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), ScanError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), ScanError> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), ScanError> {
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), ScanError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), ScanError> {
        if NODES.contains(&variant) && self.visitor.wants(variant) {
            self.copy_out(variant, value)?;
        }
        self.descend(value)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, ScanError> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, ScanError> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, ScanError> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, ScanError> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, ScanError> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, ScanError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, ScanError> {
        Ok(self)
    }
}

impl<V: Visit> ser::SerializeSeq for &mut Scan<'_, V> {
    type Ok = ();
    type Error = ScanError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), ScanError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), ScanError> {
        Ok(())
    }
}
impl<V: Visit> ser::SerializeTuple for &mut Scan<'_, V> {
    type Ok = ();
    type Error = ScanError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), ScanError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), ScanError> {
        Ok(())
    }
}
impl<V: Visit> ser::SerializeTupleStruct for &mut Scan<'_, V> {
    type Ok = ();
    type Error = ScanError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), ScanError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), ScanError> {
        Ok(())
    }
}
impl<V: Visit> ser::SerializeTupleVariant for &mut Scan<'_, V> {
    type Ok = ();
    type Error = ScanError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), ScanError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), ScanError> {
        Ok(())
    }
}
impl<V: Visit> ser::SerializeMap for &mut Scan<'_, V> {
    type Ok = ();
    type Error = ScanError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), ScanError> {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), ScanError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), ScanError> {
        Ok(())
    }
}
impl<V: Visit> ser::SerializeStruct for &mut Scan<'_, V> {
    type Ok = ();
    type Error = ScanError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ScanError> {
        if FIELDS.contains(&key) {
            self.copy_out(key, value)?;
        }
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), ScanError> {
        Ok(())
    }
}
impl<V: Visit> ser::SerializeStructVariant for &mut Scan<'_, V> {
    type Ok = ();
    type Error = ScanError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ScanError> {
        if FIELDS.contains(&key) {
            self.copy_out(key, value)?;
        }
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), ScanError> {
        Ok(())
    }
}
