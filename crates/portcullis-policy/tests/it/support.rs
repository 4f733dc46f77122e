//! Helpers shared by the test modules.

use portcullis_policy::{Limits, PolicyDocument, PolicySet};
use serde_json::{Map, Value, json};

/// Parses a policy document, panicking with the problems if it is invalid.
pub fn doc(value: Value) -> PolicyDocument {
    match PolicyDocument::from_json(&value) {
        Ok(doc) => doc,
        Err(errors) => panic!("invalid test policy {value}: {errors:?}"),
    }
}

/// A policy with these conditions, granting `scopes`, in `mode`.
pub fn policy(name: &str, conditions: Value, scopes: Value, mode: &str) -> PolicyDocument {
    doc(json!({"name": name, "conditions": conditions, "scopes": scopes, "mode": mode}))
}

/// Compiles policies given as (id, document) over the offered scopes.
pub fn set(offered: &[&str], policies: Vec<(&str, PolicyDocument)>) -> PolicySet {
    let offered: Vec<String> = offered.iter().map(|s| (*s).to_owned()).collect();
    let policies = policies
        .into_iter()
        .map(|(id, d)| (id.to_owned(), d))
        .collect();
    PolicySet::compile(&offered, policies, &Limits::default()).unwrap()
}

/// A JSON object as a claims map.
pub fn claims(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("claims must be an object, got {other}"),
    }
}

/// Owned role names.
pub fn roles(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}
