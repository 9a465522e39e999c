//! PostgreSQL text values as JSON.

use base64::Engine;
use serde_json::Value;

/// Converts one value in PostgreSQL's text form to JSON, by type name. Integers become
/// numbers; numerics stay strings (no float rounding); `bytea` becomes base64; JSON is
/// parsed; arrays of simple types become JSON arrays; everything else is its text form.
pub fn text_to_json(type_name: &str, text: &str) -> Value {
    match type_name {
        "int2" | "int4" | "int8" | "oid" => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.into())),
        "float4" | "float8" => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Value::from(f),
            _ => Value::String(text.into()), // NaN, Infinity
        },
        "bool" => Value::Bool(text == "t"),
        "json" | "jsonb" => {
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()))
        }
        "bytea" => match text.strip_prefix("\\x").and_then(|h| hex::decode(h).ok()) {
            Some(bytes) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
            None => Value::String(text.into()),
        },
        // sqlx names array types `int4[]`; the catalog names them `_int4`.
        t if t.ends_with("[]") || t.starts_with('_') => {
            let elem = t
                .strip_suffix("[]")
                .or_else(|| t.strip_prefix('_'))
                .unwrap_or(t);
            parse_array(elem, text).unwrap_or_else(|| Value::String(text.into()))
        }
        _ => Value::String(text.into()),
    }
}

/// Parses a PostgreSQL array literal (`{1,2,NULL}`, `{"a b","c\"d"}`, nested) into JSON,
/// converting elements by the element type. `None` if the text is not a plain array literal
/// (e.g. one with explicit bounds).
fn parse_array(elem_type: &str, text: &str) -> Option<Value> {
    fn parse(
        elem_type: &str,
        chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    ) -> Option<Value> {
        if chars.next()? != '{' {
            return None;
        }
        let mut items = Vec::new();
        loop {
            match chars.peek()? {
                '}' => {
                    chars.next();
                    return Some(Value::Array(items));
                }
                '{' => items.push(parse(elem_type, chars)?),
                '"' => {
                    chars.next();
                    let mut s = String::new();
                    loop {
                        match chars.next()? {
                            '\\' => s.push(chars.next()?),
                            '"' => break,
                            c => s.push(c),
                        }
                    }
                    items.push(text_to_json(elem_type, &s));
                }
                _ => {
                    let mut s = String::new();
                    while let Some(&c) = chars.peek() {
                        if c == ',' || c == '}' {
                            break;
                        }
                        s.push(c);
                        chars.next();
                    }
                    items.push(if s == "NULL" {
                        Value::Null
                    } else {
                        text_to_json(elem_type, &s)
                    });
                }
            }
            match chars.peek()? {
                ',' => {
                    chars.next();
                }
                '}' => {}
                _ => return None,
            }
        }
    }
    let mut chars = text.chars().peekable();
    let v = parse(elem_type, &mut chars)?;
    chars.next().is_none().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_forms_become_faithful_json() {
        assert_eq!(
            text_to_json("int8", "9007199254740993"),
            json!(9007199254740993i64)
        );
        assert_eq!(text_to_json("numeric", "1.10"), json!("1.10"));
        assert_eq!(text_to_json("bool", "t"), json!(true));
        assert_eq!(text_to_json("bytea", "\\x0001ff"), json!("AAH/"));
        assert_eq!(text_to_json("jsonb", "{\"a\": [1]}"), json!({"a": [1]}));
        assert_eq!(text_to_json("_int4", "{1,NULL,3}"), json!([1, null, 3]));
        assert_eq!(
            text_to_json("_text", "{\"a b\",\"c\\\"d\",e}"),
            json!(["a b", "c\"d", "e"])
        );
        assert_eq!(
            text_to_json("_int4", "{{1,2},{3,4}}"),
            json!([[1, 2], [3, 4]])
        );
        assert_eq!(text_to_json("float8", "NaN"), json!("NaN"));
    }
}
