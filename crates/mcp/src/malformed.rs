//! Answers for messages that cannot be read, checked before rmcp sees them: rmcp drops a
//! line it cannot decode without a word (the client then waits forever), and over HTTP
//! answers malformed JSON with 415 and malformed `tools/call` params as an unknown method.
//!
//! - not UTF-8, or not JSON: -32700 (parse error), HTTP 400;
//! - JSON that is not an object or a batch: -32600 (invalid request);
//! - `tools/call` whose params are not an object with a string `name` and, if present, an
//!   object `arguments`: -32602 (invalid params).
//!
//! The answer carries the request's `id` when it can be recovered (from the text with
//! invalid bytes replaced), `null` otherwise.
//!
//! Invariant: a message this module passes is left byte for byte as it came.

use serde_json::{Value, json};

/// Why a message was refused: the JSON-RPC error line to send back.
#[derive(Debug)]
pub(crate) struct Malformed(pub(crate) Value);

fn error(id: Value, code: i64, message: &str) -> Malformed {
    Malformed(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
}

/// The id of a request, if `v` has one that JSON-RPC allows (a string or a number).
fn id_of(v: &Value) -> Value {
    match v.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        _ => Value::Null,
    }
}

/// Checks one message (a stdio line or an HTTP body).
pub(crate) fn check(bytes: &[u8]) -> Result<(), Malformed> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        let lossy = String::from_utf8_lossy(bytes);
        let id = serde_json::from_str::<Value>(&lossy)
            .map(|v| id_of(&v))
            .unwrap_or(Value::Null);
        return Err(error(
            id,
            -32700,
            "parse error: the message is not valid UTF-8",
        ));
    };
    let v: Value = serde_json::from_str(text)
        .map_err(|e| error(Value::Null, -32700, &format!("parse error: not JSON ({e})")))?;
    let messages: Vec<&Value> = match &v {
        Value::Object(_) => vec![&v],
        Value::Array(items) if !items.is_empty() => items.iter().collect(),
        _ => {
            return Err(error(
                Value::Null,
                -32600,
                "invalid request: expected a JSON-RPC object",
            ));
        }
    };
    for m in messages {
        if m.get("method").and_then(Value::as_str) != Some("tools/call") {
            continue;
        }
        let params = m.get("params");
        let ok = params
            .and_then(|p| p.get("name"))
            .is_some_and(Value::is_string)
            && params
                .and_then(|p| p.get("arguments"))
                .is_none_or(|a| a.is_object() || a.is_null());
        if !ok {
            return Err(error(
                id_of(m),
                -32602,
                "invalid params: tools/call needs params {\"name\": string, \"arguments\": object}",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_malformed_message_gets_its_error_and_id() {
        let code = |b: &[u8]| {
            check(b)
                .err()
                .map(|m| (m.0["error"]["code"].clone(), m.0["id"].clone()))
        };
        assert_eq!(code(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#), None);
        assert_eq!(
            code(b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"x\xff\"}"),
            Some((json!(-32700), json!(7)))
        );
        assert_eq!(code(b"\xff\xfe"), Some((json!(-32700), Value::Null)));
        assert_eq!(code(b"{not json"), Some((json!(-32700), Value::Null)));
        assert_eq!(code(b"42"), Some((json!(-32600), Value::Null)));
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":"x"}"#),
            Some((json!(-32602), json!("a")))
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"t","arguments":[1]}}"#),
            Some((json!(-32602), json!(3)))
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"t"}}"#),
            None
        );
    }
}
