//! Strict parsing of a JSON object: duplicate members are reported rather than silently resolved
//! (RFC 7515 section 5.2 allows rejecting them, and two parsers that resolve a duplicate `alg` or
//! `exp` differently are a known source of bypasses).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// What a byte string turned out to be.
#[derive(Debug, PartialEq)]
pub(crate) enum Parsed {
    /// A JSON object with unique member names.
    Object(Map<String, Value>),
    /// Valid JSON, but not an object.
    NotObject,
    /// A JSON object with a member name repeated.
    DuplicateMember,
    /// Not valid JSON (or nested too deeply).
    NotJson,
}

/// Parses `bytes` as a JSON object, strictly.
pub(crate) fn parse_object(bytes: &[u8]) -> Parsed {
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(parsed)) => parsed,
        Err(_) => Parsed::NotJson,
    }
}

struct Strict(Parsed);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            if out.insert(key, value).is_some() {
                // Consume the rest so the parser can still check that the document is complete.
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                return Ok(Strict(Parsed::DuplicateMember));
            }
        }
        Ok(Strict(Parsed::Object(out)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Strict(Parsed::NotObject))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict(Parsed::NotObject))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict(Parsed::NotObject))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict(Parsed::NotObject))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict(Parsed::NotObject))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict(Parsed::NotObject))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(Parsed::NotObject))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        let Parsed::Object(map) = parse_object(br#"{"a":1,"b":{"a":2,"a":3}}"#) else {
            panic!("expected an object");
        };
        assert_eq!(
            map.len(),
            2,
            "duplicates below the top level are left to serde_json"
        );
        assert_eq!(parse_object(br#"{"a":1,"a":2}"#), Parsed::DuplicateMember);
        assert_eq!(
            parse_object(br#"{"a":1,"a":2,"c":[1]}"#),
            Parsed::DuplicateMember
        );
        assert_eq!(parse_object(br#"{"a":1,"a":2} x"#), Parsed::NotJson);
        for not_object in [
            &b"[1,2]"[..],
            b"1",
            b"-1",
            b"1.5",
            b"\"s\"",
            b"true",
            b"null",
            b"[]",
        ] {
            assert_eq!(parse_object(not_object), Parsed::NotObject);
        }
        for not_json in [&b""[..], b"{", b"{\"a\"}", b"{} {}", b"\xff", b"{'a':1}"] {
            assert_eq!(parse_object(not_json), Parsed::NotJson);
        }
        // Deep nesting never overflows the stack: skipped values are walked without recursion,
        // and kept values hit serde_json's recursion limit.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse_object(deep.as_bytes()), Parsed::NotObject);
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse_object(deep.as_bytes()), Parsed::NotJson);
        let deep = format!(
            r#"{{"a":1,"a":2,"b":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(parse_object(deep.as_bytes()), Parsed::DuplicateMember);
    }
}
