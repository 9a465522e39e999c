//! Values and column types: the binary protocol's raw form converted to JSON by the
//! column's type (no float rounding of DECIMAL), and type names corrected where the
//! protocol's type code misleads.

use base64::Engine;
use serde_json::Value;
use sqlx::mysql::{MySql, MySqlColumn, MySqlRow, MySqlTypeInfo, MySqlValueRef};
use sqlx::{Column as _, Decode, Row, Type, TypeInfo, ValueRef};

use crate::backends::Column;

/// Result columns with lower-case type names, corrected where the protocol's type code
/// misleads: text with a binary collation (`utf8mb4_bin`) carries the BINARY flag and sqlx
/// names it like a blob; MariaDB's JSON arrives as LONGTEXT.
pub(super) fn describe_columns(cols: &[MySqlColumn], json: &[bool]) -> Vec<Column> {
    cols.iter()
        .enumerate()
        .map(|(i, c)| {
            let ti = c.type_info();
            let type_name = if json.get(i).copied().unwrap_or(false) {
                "json".to_string()
            } else if is_binary_name(ti.name()) && !is_binary(ti) {
                text_name(ti.name()).to_string()
            } else {
                ti.name().to_ascii_lowercase()
            };
            Column {
                name: c.name().to_string(),
                type_name,
            }
        })
        .collect()
}

fn is_binary_name(name: &str) -> bool {
    matches!(
        name,
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB"
    )
}

/// The text type a blob-named type code stands for when its collation is not `binary`.
fn text_name(name: &str) -> &'static str {
    match name {
        "BINARY" => "char",
        "VARBINARY" => "varchar",
        "TINYBLOB" => "tinytext",
        "MEDIUMBLOB" => "mediumtext",
        "LONGBLOB" => "longtext",
        _ => "text",
    }
}

/// True when the value's collation is `binary` (raw bytes), for string-family types.
fn is_binary(ti: &MySqlTypeInfo) -> bool {
    // sqlx's own test: string data is anything of a string type whose collation is not
    // `binary`.
    !<str as Type<MySql>>::compatible(ti)
}

/// A text column of a row (catalog queries), whatever the exact string type.
pub(super) fn text_at(row: &MySqlRow, i: usize) -> Option<String> {
    let raw = row.try_get_raw(i).ok()?;
    let bytes = <&[u8] as Decode<MySql>>::decode(raw).ok()?;
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// One value of a binary-protocol row as JSON, and the bytes it took on the wire.
pub(super) fn value_to_json(raw: MySqlValueRef<'_>, json: bool) -> (Value, usize) {
    let ti = raw.type_info().into_owned();
    // `is_null` also reports zero dates as NULL; read the bytes first so that a zero date
    // stays `0000-00-00` rather than becoming null.
    let Ok(bytes) = <&[u8] as Decode<MySql>>::decode(raw) else {
        return (Value::Null, 0);
    };
    let kind = Kind {
        unsigned: <u64 as Type<MySql>>::compatible(&ti),
        binary: is_binary(&ti),
        json,
    };
    (binary_to_json(ti.name(), kind, bytes), bytes.len())
}

/// What the type name alone does not say about a value.
#[derive(Debug, Clone, Copy, Default)]
struct Kind {
    /// An integer column with the UNSIGNED flag.
    unsigned: bool,
    /// A string-family column with the `binary` collation.
    binary: bool,
    /// A MariaDB JSON column (LONGTEXT with a json_valid check).
    json: bool,
}

/// Converts one value in the binary protocol's form to JSON, by sqlx's type name.
/// Integers (signed and unsigned) and floats become numbers; DECIMAL stays a string (it is
/// sent as text; no float rounding); dates and times become `YYYY-MM-DD HH:MM:SS[.ffffff]`;
/// binary strings become base64; JSON is parsed; BIT becomes a number; everything else is
/// its text.
fn binary_to_json(type_name: &str, kind: Kind, b: &[u8]) -> Value {
    let text = || Value::String(String::from_utf8_lossy(b).into_owned());
    let converted = match type_name {
        "TINYINT" | "TINYINT UNSIGNED" | "BOOLEAN" => int(b, 1, kind.unsigned),
        "SMALLINT" | "SMALLINT UNSIGNED" => int(b, 2, kind.unsigned),
        "YEAR" => int(b, 2, true),
        "MEDIUMINT" | "MEDIUMINT UNSIGNED" | "INT" | "INT UNSIGNED" => int(b, 4, kind.unsigned),
        "BIGINT" | "BIGINT UNSIGNED" => int(b, 8, kind.unsigned),
        "FLOAT" => <[u8; 4]>::try_from(b).ok().and_then(|a| {
            // Through f32's shortest decimal form, so FLOAT 1.1 is 1.1, not 1.100000023841858.
            let f = f32::from_le_bytes(a);
            f.to_string()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
        }),
        "DOUBLE" => <[u8; 8]>::try_from(b)
            .ok()
            .and_then(|a| serde_json::Number::from_f64(f64::from_le_bytes(a)))
            .map(Value::Number),
        "DATE" => date_time(b, false).map(Value::String),
        "DATETIME" | "TIMESTAMP" => date_time(b, true).map(Value::String),
        "TIME" => time(b).map(Value::String),
        "BIT" if b.len() <= 8 => Some(Value::from(
            b.iter()
                .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte)),
        )),
        "JSON" => serde_json::from_slice(b).ok(),
        "NULL" => Some(Value::Null),
        "GEOMETRY" => Some(base64_value(b)),
        n if is_binary_name(n) && kind.binary => Some(base64_value(b)),
        _ if kind.json => serde_json::from_slice(b).ok(),
        _ => None,
    };
    converted.unwrap_or_else(text)
}

fn base64_value(b: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(b))
}

/// A little-endian fixed-size integer; a value of any other length is not this type's binary
/// form and falls back to text.
fn int(b: &[u8], size: usize, unsigned: bool) -> Option<Value> {
    if b.len() != size {
        return None;
    }
    let mut buf = [0u8; 8];
    buf[..size].copy_from_slice(b);
    if unsigned {
        return Some(Value::from(u64::from_le_bytes(buf)));
    }
    // Sign-extend from the value's own width.
    let shift = 64 - 8 * size as u32;
    Some(Value::from((i64::from_le_bytes(buf) << shift) >> shift))
}

/// DATE, DATETIME, TIMESTAMP: `len, year(2), month, day[, hour, minute, second[, micros(4)]]`.
/// Length 0 is the zero date.
fn date_time(b: &[u8], with_time: bool) -> Option<String> {
    let (&len, rest) = b.split_first()?;
    let len = usize::from(len);
    if rest.len() < len || !matches!(len, 0 | 4 | 7 | 11) {
        return None;
    }
    let (year, month, day) = if len == 0 {
        (0, 0, 0)
    } else {
        (u16::from_le_bytes([rest[0], rest[1]]), rest[2], rest[3])
    };
    let date = format!("{year:04}-{month:02}-{day:02}");
    if !with_time {
        return Some(date);
    }
    let (h, m, s) = if len >= 7 {
        (rest[4], rest[5], rest[6])
    } else {
        (0, 0, 0)
    };
    let micros = if len == 11 {
        u32::from_le_bytes([rest[7], rest[8], rest[9], rest[10]])
    } else {
        0
    };
    Some(format!("{date} {h:02}:{m:02}:{s:02}{}", fraction(micros)))
}

/// TIME: `len, negative, days(4), hour, minute, second[, micros(4)]`; hours may exceed 24.
fn time(b: &[u8]) -> Option<String> {
    let (&len, rest) = b.split_first()?;
    let len = usize::from(len);
    if len == 0 {
        return Some("00:00:00".into());
    }
    if rest.len() < len || !matches!(len, 8 | 12) {
        return None;
    }
    let sign = if rest[0] == 1 { "-" } else { "" };
    let days = u64::from(u32::from_le_bytes([rest[1], rest[2], rest[3], rest[4]]));
    let hours = days * 24 + u64::from(rest[5]);
    let micros = if len == 12 {
        u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]])
    } else {
        0
    };
    Some(format!(
        "{sign}{hours:02}:{:02}:{:02}{}",
        rest[6],
        rest[7],
        fraction(micros)
    ))
}

fn fraction(micros: u32) -> String {
    if micros == 0 {
        String::new()
    } else {
        format!(".{micros:06}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SIGNED: Kind = Kind {
        unsigned: false,
        binary: false,
        json: false,
    };
    const UNSIGNED: Kind = Kind {
        unsigned: true,
        binary: false,
        json: false,
    };
    const BINARY: Kind = Kind {
        unsigned: false,
        binary: true,
        json: false,
    };

    #[test]
    fn binary_forms_become_faithful_json() {
        assert_eq!(binary_to_json("TINYINT", SIGNED, &[0xff]), json!(-1));
        assert_eq!(
            binary_to_json("TINYINT UNSIGNED", UNSIGNED, &[0xff]),
            json!(255)
        );
        assert_eq!(
            binary_to_json("SMALLINT", SIGNED, &[0x00, 0x80]),
            json!(-32768)
        );
        assert_eq!(
            binary_to_json("INT", SIGNED, &(-5i32).to_le_bytes()),
            json!(-5)
        );
        assert_eq!(
            binary_to_json("BIGINT UNSIGNED", UNSIGNED, &u64::MAX.to_le_bytes()),
            json!(u64::MAX)
        );
        assert_eq!(
            binary_to_json("BIGINT", SIGNED, &i64::MIN.to_le_bytes()),
            json!(i64::MIN)
        );
        assert_eq!(
            binary_to_json("FLOAT", SIGNED, &1.1f32.to_le_bytes()),
            json!(1.1)
        );
        assert_eq!(
            binary_to_json("DOUBLE", SIGNED, &2.5f64.to_le_bytes()),
            json!(2.5)
        );
        assert_eq!(
            binary_to_json("DECIMAL", SIGNED, b"12345678901234567890.10"),
            json!("12345678901234567890.10")
        );
        assert_eq!(
            binary_to_json("DATE", SIGNED, &[4, 0xe9, 0x07, 1, 2]),
            json!("2025-01-02")
        );
        assert_eq!(
            binary_to_json("DATETIME", SIGNED, &[7, 0xe9, 0x07, 1, 2, 3, 4, 5]),
            json!("2025-01-02 03:04:05")
        );
        assert_eq!(
            binary_to_json(
                "TIMESTAMP",
                SIGNED,
                &[11, 0xe9, 0x07, 1, 2, 3, 4, 5, 0x40, 0xe2, 0x01, 0]
            ),
            json!("2025-01-02 03:04:05.123456")
        );
        assert_eq!(
            binary_to_json("DATETIME", SIGNED, &[0]),
            json!("0000-00-00 00:00:00")
        );
        assert_eq!(
            binary_to_json("TIME", SIGNED, &[8, 1, 1, 0, 0, 0, 2, 3, 4]),
            json!("-26:03:04")
        );
        assert_eq!(binary_to_json("TIME", SIGNED, &[0]), json!("00:00:00"));
        assert_eq!(binary_to_json("BIT", UNSIGNED, &[0x01, 0x02]), json!(258));
        assert_eq!(binary_to_json("BLOB", BINARY, &[0, 0xff]), json!("AP8="));
        assert_eq!(binary_to_json("BLOB", SIGNED, b"text"), json!("text"));
        assert_eq!(
            binary_to_json("JSON", SIGNED, br#"{"a": [1, 2]}"#),
            json!({"a": [1, 2]})
        );
        let json_kind = Kind {
            json: true,
            ..SIGNED
        };
        assert_eq!(
            binary_to_json("LONGBLOB", json_kind, br#"[1, "x"]"#),
            json!([1, "x"])
        );
        assert_eq!(binary_to_json("LONGTEXT", SIGNED, b"[1]"), json!("[1]"));
        assert_eq!(binary_to_json("ENUM", SIGNED, b"red"), json!("red"));
        assert_eq!(
            binary_to_json("VARCHAR", SIGNED, "héllo".as_bytes()),
            json!("héllo")
        );
    }
}
