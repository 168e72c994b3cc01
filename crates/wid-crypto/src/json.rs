//! Strict JSON for untrusted input: like `serde_json::from_slice::<Value>`, but a duplicate
//! member name anywhere in the document is an error.
//!
//! serde_json silently keeps the last of duplicate members. Two parsers disagreeing on
//! which `sub` or `aud` counts is a classic token-confusion bug, so we refuse instead.
//! Nesting depth stays bounded by serde_json's own recursion limit (128).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::sanitize_for_message;

/// A `serde_json::Value` that was parsed with duplicate-member detection.
pub(crate) struct StrictValue(pub(crate) Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // serde_json never yields non-finite floats from text, but stay total anyway.
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(d).map(|v| v.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate member name \"{}\"",
                    sanitize_for_message(&key, 40)
                )));
            }
            let StrictValue(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Parse `bytes` as a JSON document that must be an object, refusing duplicate member
/// names at any depth. The error string is a user-facing reason.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    match parse_value(bytes)? {
        Value::Object(map) => Ok(map),
        _ => Err("not a JSON object".to_owned()),
    }
}

/// Parse `bytes` as any JSON value, refusing duplicate member names at any depth.
pub(crate) fn parse_value(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice::<StrictValue>(bytes).map(|v| v.0).map_err(|e| format!("invalid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_objects() {
        let m = parse_object(br#"{"a":1,"b":[1,2.5,"x",null,true,{"c":-3}],"d":{}}"#).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m["b"][5]["c"], Value::from(-3));
    }

    #[test]
    fn rejects_duplicates_at_any_depth() {
        assert!(parse_object(br#"{"sub":"a","sub":"b"}"#).is_err());
        assert!(parse_object(br#"{"x":{"k":1,"k":2}}"#).is_err());
        assert!(parse_object(br#"{"x":[{"k":1,"k":2}]}"#).is_err());
        // Same name at different levels is fine.
        assert!(parse_object(br#"{"k":{"k":1}}"#).is_ok());
        // Escapes are decoded before comparison: "s\u0075b" is "sub".
        assert!(parse_object(br#"{"sub":"a","s\u0075b":"b"}"#).is_err());
    }

    #[test]
    fn rejects_non_objects_and_garbage() {
        assert!(parse_object(b"[]").is_err());
        assert!(parse_object(b"\"x\"").is_err());
        assert!(parse_object(b"").is_err());
        assert!(parse_object(b"{} {}").is_err());
        assert!(parse_object(b"{\"a\":1,}").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(parse_value(deep.as_bytes()).is_err());
        let deep_obj = "{\"a\":".repeat(100_000);
        assert!(parse_value(deep_obj.as_bytes()).is_err());
    }
}
