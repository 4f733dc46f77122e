//! Fuzz target of the policy document parser (stable toolchain, proptest-driven): arbitrary JSON,
//! and valid documents with parts replaced by arbitrary JSON, never panic the parser; whatever
//! parses round-trips. `PROPTEST_CASES` sets the number of cases.

use portcullis_policy::{Limits, PolicyDocument, validate_policy};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};

/// Words the parser knows, so that generated JSON reaches deep into it.
const WORDS: [&str; 22] = [
    "name",
    "description",
    "conditions",
    "scopes",
    "mode",
    "source",
    "claim",
    "operator",
    "value",
    "userRoles",
    "jwtClaims",
    "equals",
    "notEquals",
    "in",
    "notIn",
    "contains",
    "all",
    "enforce",
    "shadow",
    "a.b",
    r"a\.b",
    "",
];

/// The number of cases of each target: `PROPTEST_CASES`, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(WORDS.to_vec()).prop_map(str::to_owned),
        "[a-z.\\\\ ]{0,6}",
        any::<String>(),
    ]
}

pub fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        arb_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(arb_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

pub fn arb_json_object() -> impl Strategy<Value = Map<String, Value>> {
    btree_map(arb_string(), arb_json(), 0..6).prop_map(|m| m.into_iter().collect())
}

fn template() -> Value {
    json!({
        "name": "n",
        "conditions": [
            {"source": "userRoles", "operator": "in", "value": ["a", "b"]},
            {"source": "jwtClaims", "claim": "org.tier", "operator": "equals", "value": "gold"}
        ],
        "scopes": ["s1", "s2"],
        "mode": "enforce"
    })
}

/// JSON pointers into the template, each replaced in turn by arbitrary JSON.
const POINTERS: [&str; 14] = [
    "/name",
    "/description",
    "/conditions",
    "/conditions/0",
    "/conditions/0/source",
    "/conditions/0/operator",
    "/conditions/0/value",
    "/conditions/0/value/1",
    "/conditions/1/claim",
    "/conditions/1/value",
    "/conditions/1/operator",
    "/scopes",
    "/scopes/0",
    "/mode",
];

fn check(value: &Value) -> Result<(), TestCaseError> {
    match PolicyDocument::from_json(value) {
        Ok(doc) => {
            let again = PolicyDocument::from_json(&doc.to_json());
            prop_assert_eq!(again.as_ref(), Ok(&doc), "round trip of {}", value);
            let _ = validate_policy(&doc, &["s1".into()], &Limits::default());
        }
        Err(errors) => {
            prop_assert!(!errors.is_empty());
            for error in &errors {
                prop_assert!(!error.message.is_empty());
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1024)))]

    #[test]
    fn arbitrary_json_never_panics_the_parser(value in arb_json()) {
        check(&value)?;
    }

    #[test]
    fn arbitrary_objects_never_panic_the_parser(object in arb_json_object()) {
        check(&Value::Object(object))?;
    }

    #[test]
    fn near_valid_documents_never_panic_the_parser(
        pointer in prop::sample::select(POINTERS.to_vec()),
        replacement in arb_json(),
        also in prop::option::of((prop::sample::select(POINTERS.to_vec()), arb_json())),
    ) {
        let mut doc = template();
        for (at, with) in std::iter::once((pointer, replacement)).chain(also) {
            if let Some(slot) = doc.pointer_mut(at) {
                *slot = with;
            } else if let Some((parent, key)) = at.rsplit_once('/')
                && let Some(Value::Object(map)) = doc.pointer_mut(parent)
            {
                map.insert(key.to_owned(), with);
            }
        }
        check(&doc)?;
    }
}

#[test]
fn the_template_is_valid() {
    assert!(PolicyDocument::from_json(&template()).is_ok());
}
