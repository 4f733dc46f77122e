//! Semantic checks on typed policy parts, shared by the parser and by validation of documents
//! built by hand, so both report the same problems with the same paths.

use std::collections::HashSet;

use super::parse::quote;
use super::{Condition, PolicyDocument, Predicate, Scalar, Scopes};
use crate::error::{Collector, ErrorCode, field_path, index_path};
use crate::limits::Limits;

/// Checks a whole document; `offered` is the app's scopes, when known.
pub(crate) fn check_document(
    doc: &PolicyDocument,
    offered: Option<&HashSet<&str>>,
    limits: &Limits,
    errors: &mut Collector,
) {
    check_name(&doc.name, limits, errors);
    if let Some(description) = &doc.description {
        check_description(description, limits, errors);
    }
    let max = limits.conditions();
    if doc.conditions.len() > max {
        errors.push(
            "conditions",
            ErrorCode::LimitExceeded,
            format!("a policy can have at most {max} conditions"),
        );
    }
    for (index, condition) in doc.conditions.iter().enumerate() {
        check_condition(condition, &index_path("conditions", index), limits, errors);
    }
    if let Scopes::List(names) = &doc.scopes {
        let max = limits.scopes();
        if names.len() > max {
            errors.push(
                "scopes",
                ErrorCode::LimitExceeded,
                format!("a policy can list at most {max} scopes"),
            );
        }
        let indexed: Vec<(usize, &str)> = names.iter().map(String::as_str).enumerate().collect();
        check_scope_list(&indexed, names.len(), offered, limits, errors);
    }
}

/// The key under which names must be unique on an app: trimmed, lowercased.
pub(crate) fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

pub(super) fn check_name(name: &str, limits: &Limits, errors: &mut Collector) {
    if name.trim().is_empty() {
        errors.push(
            "name",
            ErrorCode::EmptyName,
            "a policy needs a non-blank name",
        );
    } else if name.chars().count() > limits.max_name_len {
        errors.push(
            "name",
            ErrorCode::LimitExceeded,
            format!(
                "a policy name can be at most {} characters long",
                limits.max_name_len
            ),
        );
    }
}

pub(super) fn check_description(description: &str, limits: &Limits, errors: &mut Collector) {
    if description.chars().count() > limits.max_description_len {
        errors.push(
            "description",
            ErrorCode::LimitExceeded,
            format!(
                "a description can be at most {} characters long",
                limits.max_description_len
            ),
        );
    }
}

/// Checks what the types leave open: `userRoles` values are strings, lists are non-empty and
/// within limits, strings within limits.
fn check_condition(condition: &Condition, path: &str, limits: &Limits, errors: &mut Collector) {
    let roles = matches!(condition, Condition::UserRoles(_));
    check_predicate(condition.predicate(), roles, path, limits, errors);
}

/// Checks a predicate of the condition at `path`; `roles` when its source is `userRoles`.
pub(super) fn check_predicate(
    predicate: &Predicate,
    roles: bool,
    path: &str,
    limits: &Limits,
    errors: &mut Collector,
) {
    let value_path = field_path(path, "value");
    let op = predicate.operator().as_str();
    let is_list = matches!(predicate, Predicate::In(_) | Predicate::NotIn(_));
    let scalars = predicate.scalars();
    if is_list && scalars.is_empty() {
        errors.push(
            value_path.as_str(),
            ErrorCode::InvalidValueType,
            format!("operator \"{op}\" needs a non-empty array of values"),
        );
    }
    if is_list && scalars.len() > limits.max_values {
        errors.push(
            value_path.as_str(),
            ErrorCode::LimitExceeded,
            format!(
                "operator \"{op}\" accepts at most {} values",
                limits.max_values
            ),
        );
    }
    for (index, scalar) in scalars.iter().enumerate() {
        let at = || {
            if is_list {
                index_path(&value_path, index)
            } else {
                value_path.clone()
            }
        };
        match scalar {
            Scalar::String(s) if s.chars().count() > limits.max_string_len => errors.push(
                at(),
                ErrorCode::LimitExceeded,
                format!(
                    "a value can be at most {} bytes long",
                    limits.max_string_len
                ),
            ),
            Scalar::String(_) => {}
            Scalar::Number(_) | Scalar::Bool(_) if roles => errors.push(
                at(),
                ErrorCode::InvalidValueType,
                "\"userRoles\" values must be strings, since roles are names",
            ),
            Scalar::Number(_) | Scalar::Bool(_) => {}
        }
    }
}

/// Checks a list of scope names, given with their index in the document; `total` is the list's
/// length in the document.
pub(super) fn check_scope_list(
    names: &[(usize, &str)],
    total: usize,
    offered: Option<&HashSet<&str>>,
    limits: &Limits,
    errors: &mut Collector,
) {
    if total == 0 {
        errors.push(
            "scopes",
            ErrorCode::EmptyScopes,
            "a policy must grant at least one scope, or \"all\"",
        );
    }
    let mut seen = HashSet::with_capacity(names.len());
    for &(index, name) in names {
        let path = index_path("scopes", index);
        if name.is_empty() {
            errors.push(path, ErrorCode::EmptyScopes, "a scope name cannot be empty");
            continue;
        }
        if name.chars().count() > limits.max_scope_len {
            errors.push(
                path,
                ErrorCode::LimitExceeded,
                format!(
                    "a scope name can be at most {} characters long",
                    limits.max_scope_len
                ),
            );
            continue;
        }
        if !seen.insert(name) {
            errors.push(
                path,
                ErrorCode::DuplicateScope,
                format!("the scope {} is listed twice", quote(name)),
            );
            continue;
        }
        if let Some(offered) = offered
            && !offered.contains(name)
        {
            errors.push(
                path,
                ErrorCode::UnknownScope,
                format!("this app does not offer the scope {}", quote(name)),
            );
        }
    }
}
