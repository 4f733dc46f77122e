//! The hand-written parser from `serde_json::Value`: structure first, then the same semantic
//! checks as [`super::check`] on every part that parsed, so one pass reports every problem.

use serde_json::{Map, Value};

use super::check::{check_description, check_name, check_predicate, check_scope_list};
use super::{Condition, Mode, PolicyDocument, Predicate, Scalar, Scopes, Source};
use crate::claim_path::ClaimPath;
use crate::error::{Collector, ErrorCode, field_path, index_path};
use crate::limits::Limits;

const DOCUMENT_FIELDS: [&str; 5] = ["name", "description", "conditions", "scopes", "mode"];
const CONDITION_FIELDS: [&str; 4] = ["source", "claim", "operator", "value"];

/// Parses a whole document; `None` when any part failed to parse (the problems are in `errors`).
pub(super) fn parse_document(
    value: &Value,
    limits: &Limits,
    errors: &mut Collector,
) -> Option<PolicyDocument> {
    let Some(object) = value.as_object() else {
        errors.push("", ErrorCode::InvalidType, "a policy must be a JSON object");
        return None;
    };
    report_unknown_fields(object, "", &DOCUMENT_FIELDS, errors);

    let name = match object.get("name") {
        None => {
            missing(errors, "", "name");
            None
        }
        Some(Value::String(name)) => {
            check_name(name, limits, errors);
            Some(name.clone())
        }
        Some(_) => {
            errors.push("name", ErrorCode::InvalidType, "the name must be a string");
            None
        }
    };

    let description = match object.get("description") {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(text)) => {
            check_description(text, limits, errors);
            Some(Some(text.clone()))
        }
        Some(_) => {
            errors.push(
                "description",
                ErrorCode::InvalidType,
                "the description must be a string",
            );
            None
        }
    };

    let conditions = match object.get("conditions") {
        None => {
            missing(errors, "", "conditions");
            None
        }
        Some(Value::Array(items)) => parse_conditions(items, limits, errors),
        Some(_) => {
            errors.push(
                "conditions",
                ErrorCode::InvalidType,
                "conditions must be an array (an empty one matches every user)",
            );
            None
        }
    };

    let scopes = match object.get("scopes") {
        None => {
            missing(errors, "", "scopes");
            None
        }
        Some(value) => parse_scopes(value, limits, errors),
    };

    let mode = match object.get("mode") {
        None => Some(Mode::Enforce),
        Some(Value::String(mode)) if mode == "enforce" => Some(Mode::Enforce),
        Some(Value::String(mode)) if mode == "shadow" => Some(Mode::Shadow),
        Some(_) => {
            errors.push(
                "mode",
                ErrorCode::InvalidType,
                "the mode must be \"enforce\" or \"shadow\"",
            );
            None
        }
    };

    Some(PolicyDocument {
        name: name?,
        description: description?,
        conditions: conditions?,
        scopes: scopes?,
        mode: mode?,
    })
}

fn parse_conditions(
    items: &[Value],
    limits: &Limits,
    errors: &mut Collector,
) -> Option<Vec<Condition>> {
    let max = limits.conditions();
    if items.len() > max {
        errors.push(
            "conditions",
            ErrorCode::LimitExceeded,
            format!("a policy can have at most {max} conditions"),
        );
    }
    // Past the limit nothing is read: the work stays bounded whatever the input.
    let mut conditions = Vec::with_capacity(items.len().min(max));
    let mut complete = true;
    for (index, item) in items.iter().take(max).enumerate() {
        let path = index_path("conditions", index);
        match parse_condition(item, &path, limits, errors) {
            Some(condition) => conditions.push(condition),
            None => complete = false,
        }
    }
    (complete && items.len() <= max).then_some(conditions)
}

fn parse_condition(
    value: &Value,
    path: &str,
    limits: &Limits,
    errors: &mut Collector,
) -> Option<Condition> {
    let Some(object) = value.as_object() else {
        errors.push(
            path,
            ErrorCode::InvalidType,
            "a condition must be a JSON object",
        );
        return None;
    };
    report_unknown_fields(object, path, &CONDITION_FIELDS, errors);

    // `None`: absent or unreadable (already reported).
    let source = match object.get("source") {
        None => {
            missing(errors, path, "source");
            None
        }
        Some(Value::String(s)) if s == "userRoles" => Some(Source::UserRoles),
        Some(Value::String(s)) if s == "jwtClaims" => Some(Source::JwtClaims),
        Some(Value::String(other)) => {
            errors.push(
                field_path(path, "source"),
                ErrorCode::UnknownSource,
                format!(
                    "unknown source {}; expected \"userRoles\" or \"jwtClaims\"",
                    quote(other)
                ),
            );
            None
        }
        Some(_) => {
            errors.push(
                field_path(path, "source"),
                ErrorCode::InvalidType,
                "the source must be a string",
            );
            None
        }
    };

    let claim_path = field_path(path, "claim");
    let claim = match (object.get("claim"), source) {
        (Some(_), Some(Source::UserRoles)) => {
            errors.push(
                claim_path,
                ErrorCode::UnexpectedClaim,
                "a \"userRoles\" condition takes no claim",
            );
            None
        }
        (None, Some(Source::JwtClaims)) => {
            errors.push(
                claim_path,
                ErrorCode::MissingClaim,
                "a \"jwtClaims\" condition needs a claim",
            );
            None
        }
        (None, _) => None,
        (Some(Value::String(raw)), _) => match ClaimPath::parse(raw) {
            Ok(claim) => Some(claim),
            Err(error) => {
                errors.push(claim_path, error.code(), error.to_string());
                None
            }
        },
        (Some(_), _) => {
            errors.push(
                claim_path,
                ErrorCode::InvalidType,
                "the claim must be a string",
            );
            None
        }
    };

    let operator = match object.get("operator") {
        None => {
            missing(errors, path, "operator");
            None
        }
        Some(Value::String(name)) => {
            let found = super::Operator::ALL
                .into_iter()
                .find(|op| op.as_str() == name);
            if found.is_none() {
                errors.push(
                    field_path(path, "operator"),
                    ErrorCode::UnknownOperator,
                    format!(
                        "unknown operator {}; expected \"equals\", \"notEquals\", \"in\", \"notIn\" or \"contains\"",
                        quote(name)
                    ),
                );
            }
            found
        }
        Some(_) => {
            errors.push(
                field_path(path, "operator"),
                ErrorCode::InvalidType,
                "the operator must be a string",
            );
            None
        }
    };

    let value_path = field_path(path, "value");
    let predicate = match (object.get("value"), operator) {
        (None, _) => {
            missing(errors, path, "value");
            None
        }
        (Some(value), Some(operator)) => {
            parse_predicate(operator, value, &value_path, limits, errors)
        }
        (Some(_), None) => None,
    };

    // The value is checked even when another part of the condition is wrong, so that one pass
    // reports everything.
    if let Some(predicate) = &predicate {
        check_predicate(
            predicate,
            source == Some(Source::UserRoles),
            path,
            limits,
            errors,
        );
    }
    Some(match (source?, predicate?) {
        (Source::UserRoles, predicate) => Condition::UserRoles(predicate),
        (Source::JwtClaims, predicate) => Condition::JwtClaims {
            claim: claim?,
            predicate,
        },
    })
}

fn parse_predicate(
    operator: super::Operator,
    value: &Value,
    path: &str,
    limits: &Limits,
    errors: &mut Collector,
) -> Option<Predicate> {
    use super::Operator as Op;
    let op = operator.as_str();
    if operator.takes_list() {
        let Value::Array(items) = value else {
            errors.push(
                path,
                ErrorCode::InvalidValueType,
                format!("operator \"{op}\" needs a non-empty array of values"),
            );
            return None;
        };
        let max = limits.max_values;
        if items.len() > max {
            errors.push(
                path,
                ErrorCode::LimitExceeded,
                format!("operator \"{op}\" accepts at most {max} values"),
            );
        }
        // Past the limit nothing is read: the work stays bounded whatever the input.
        let mut scalars = Vec::with_capacity(items.len().min(max));
        let mut complete = true;
        for (index, item) in items.iter().take(max).enumerate() {
            match scalar(item) {
                Ok(s) => scalars.push(s),
                Err(message) => {
                    errors.push(
                        index_path(path, index),
                        ErrorCode::InvalidValueType,
                        message,
                    );
                    complete = false;
                }
            }
        }
        if !complete {
            return None;
        }
        Some(match operator {
            Op::In => Predicate::In(scalars),
            _ => Predicate::NotIn(scalars),
        })
    } else {
        let one = match value {
            Value::Array(_) => Err(format!(
                "operator \"{op}\" needs a single value, not an array"
            )),
            other => scalar(other).map_err(str::to_owned),
        };
        match one {
            Ok(s) => Some(match operator {
                Op::Equals => Predicate::Equals(s),
                Op::NotEquals => Predicate::NotEquals(s),
                _ => Predicate::Contains(s),
            }),
            Err(message) => {
                errors.push(path, ErrorCode::InvalidValueType, message);
                None
            }
        }
    }
}

fn scalar(value: &Value) -> Result<Scalar, &'static str> {
    match value {
        Value::String(s) => Ok(Scalar::String(s.clone())),
        Value::Number(n) => Ok(Scalar::Number(n.clone())),
        Value::Bool(b) => Ok(Scalar::Bool(*b)),
        Value::Null => Err("a value cannot be null; use a string, number or boolean"),
        Value::Array(_) => Err("a value cannot be an array here; use a string, number or boolean"),
        Value::Object(_) => Err("a value cannot be an object; use a string, number or boolean"),
    }
}

fn parse_scopes(value: &Value, limits: &Limits, errors: &mut Collector) -> Option<Scopes> {
    match value {
        Value::String(s) if s == "all" => Some(Scopes::All),
        Value::Array(items) => {
            let max = limits.scopes();
            if items.len() > max {
                errors.push(
                    "scopes",
                    ErrorCode::LimitExceeded,
                    format!("a policy can list at most {max} scopes"),
                );
            }
            let mut names = Vec::with_capacity(items.len().min(max));
            let mut complete = true;
            for (index, item) in items.iter().take(max).enumerate() {
                match item {
                    Value::String(name) => names.push((index, name.as_str())),
                    _ => {
                        errors.push(
                            index_path("scopes", index),
                            ErrorCode::InvalidType,
                            "a scope must be a string",
                        );
                        complete = false;
                    }
                }
            }
            check_scope_list(&names, items.len().min(max), None, limits, errors);
            complete.then(|| Scopes::List(names.into_iter().map(|(_, n)| n.to_owned()).collect()))
        }
        _ => {
            errors.push(
                "scopes",
                ErrorCode::InvalidType,
                "scopes must be \"all\" or an array of scope names",
            );
            None
        }
    }
}

fn report_unknown_fields(
    object: &Map<String, Value>,
    path: &str,
    known: &[&str],
    errors: &mut Collector,
) {
    for key in object.keys() {
        if !known.contains(&key.as_str()) {
            errors.push(
                field_path(path, key),
                ErrorCode::UnknownField,
                format!("unknown field {}", quote(key)),
            );
        }
    }
}

fn missing(errors: &mut Collector, parent: &str, field: &str) {
    errors.push(
        field_path(parent, field),
        ErrorCode::MissingField,
        format!("missing field \"{field}\""),
    );
}

/// A user-supplied string quoted for a message, cut short when long.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 64;
    if s.chars().count() <= MAX {
        Value::from(s).to_string()
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{}…", Value::from(cut))
    }
}
