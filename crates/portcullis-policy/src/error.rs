//! Validation errors: every problem found in a policy document, each with the JSON path where it is.

use std::fmt;

use serde::Serialize;

/// The most problems one validation reports; past it, one final `limit_exceeded` says so.
///
/// This bounds the work and the size of the answer for a hostile document (say, an object with a
/// million unknown fields), while a real document is always reported in full.
pub(crate) const MAX_REPORTED: usize = 100;

/// What is wrong, as a stable machine-readable code (serialized in `snake_case`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A field the format does not define.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type (a number for `name`, an unknown `mode`, ...).
    InvalidType,
    /// `source` is neither `userRoles` nor `jwtClaims`.
    UnknownSource,
    /// `operator` is not one of the five operators.
    UnknownOperator,
    /// A condition's `value` does not fit its operator or source.
    InvalidValueType,
    /// `scopes` is an empty array, or names an empty scope.
    EmptyScopes,
    /// A scope is listed twice.
    DuplicateScope,
    /// A scope the app does not offer.
    UnknownScope,
    /// Two policies of one app share a name (case-insensitive), or an id.
    DuplicateName,
    /// A claim path that does not parse.
    InvalidClaimPath,
    /// A `jwtClaims` condition without a `claim`.
    MissingClaim,
    /// A `userRoles` condition with a `claim`.
    UnexpectedClaim,
    /// A size limit is exceeded.
    LimitExceeded,
    /// `name` is empty or only whitespace.
    EmptyName,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownField => "unknown_field",
            Self::MissingField => "missing_field",
            Self::InvalidType => "invalid_type",
            Self::UnknownSource => "unknown_source",
            Self::UnknownOperator => "unknown_operator",
            Self::InvalidValueType => "invalid_value_type",
            Self::EmptyScopes => "empty_scopes",
            Self::DuplicateScope => "duplicate_scope",
            Self::UnknownScope => "unknown_scope",
            Self::DuplicateName => "duplicate_name",
            Self::InvalidClaimPath => "invalid_claim_path",
            Self::MissingClaim => "missing_claim",
            Self::UnexpectedClaim => "unexpected_claim",
            Self::LimitExceeded => "limit_exceeded",
            Self::EmptyName => "empty_name",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in a policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidationError {
    /// The JSON path of the offending part, relative to the policy document: `conditions[1].value`;
    /// empty for the document as a whole (or, from [`crate::PolicySet::compile`], for the app).
    pub path: String,
    /// What is wrong, machine-readable.
    pub code: ErrorCode,
    /// What is wrong, as a lowercase sentence for a human.
    pub message: String,
    /// The policy the problem is in, when several policies are checked together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(id) = &self.policy_id {
            write!(f, "policy \"{id}\": ")?;
        }
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ValidationError {}

/// Every problem found in a policy document (or a policy set), never empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    /// The problems, in the order they were found.
    #[must_use]
    pub fn as_slice(&self) -> &[ValidationError] {
        &self.0
    }

    /// The number of problems.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no problem (never true for a returned error).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates over the problems.
    pub fn iter(&self) -> std::slice::Iter<'_, ValidationError> {
        self.0.iter()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("the policy is invalid"),
            [one] => write!(f, "the policy is invalid: {one}"),
            [first, rest @ ..] => write!(
                f,
                "the policy is invalid: {first} (and {} more problems)",
                rest.len()
            ),
        }
    }
}

impl<'a> IntoIterator for &'a ValidationErrors {
    type Item = &'a ValidationError;
    type IntoIter = std::slice::Iter<'a, ValidationError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for ValidationErrors {
    type Item = ValidationError;
    type IntoIter = std::vec::IntoIter<ValidationError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Collects problems while a document is walked, up to [`MAX_REPORTED`].
#[derive(Debug, Default)]
pub(crate) struct Collector {
    errors: Vec<ValidationError>,
    dropped: bool,
    policy_id: Option<String>,
}

impl Collector {
    /// A collector whose problems are not tied to a policy id.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Tags the problems recorded from now on with `policy_id` (or with none).
    pub(crate) fn set_policy(&mut self, policy_id: Option<&str>) {
        self.policy_id = policy_id.map(str::to_owned);
    }

    /// Records one problem.
    pub(crate) fn push(
        &mut self,
        path: impl Into<String>,
        code: ErrorCode,
        message: impl Into<String>,
    ) {
        if self.errors.len() >= MAX_REPORTED {
            self.dropped = true;
            return;
        }
        self.errors.push(ValidationError {
            path: path.into(),
            code,
            message: message.into(),
            policy_id: self.policy_id.clone(),
        });
    }

    /// `Ok` when nothing was recorded, else every problem.
    pub(crate) fn finish(mut self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            return Ok(());
        }
        if self.dropped {
            self.errors.push(ValidationError {
                path: String::new(),
                code: ErrorCode::LimitExceeded,
                message: format!("too many problems; only the first {MAX_REPORTED} are reported"),
                policy_id: None,
            });
        }
        Err(ValidationErrors(self.errors))
    }
}

/// Appends `.key` to a JSON path (or `["key"]` when the key is not a plain identifier).
pub(crate) fn field_path(parent: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    match (parent.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{parent}.{key}"),
        (_, false) => {
            let quoted = serde_json::Value::from(key).to_string();
            format!("{parent}[{quoted}]")
        }
    }
}

/// Appends `[index]` to a JSON path.
pub(crate) fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_readable() {
        assert_eq!(field_path("", "name"), "name");
        assert_eq!(field_path("conditions[0]", "value"), "conditions[0].value");
        assert_eq!(field_path("", "a b"), "[\"a b\"]");
        assert_eq!(field_path("x", "q\""), "x[\"q\\\"\"]");
        assert_eq!(index_path("scopes", 3), "scopes[3]");
    }

    #[test]
    fn codes_serialize_in_snake_case() {
        let json = serde_json::to_string(&ErrorCode::InvalidValueType).unwrap();
        assert_eq!(json, "\"invalid_value_type\"");
        assert_eq!(ErrorCode::DuplicateScope.as_str(), "duplicate_scope");
        assert_eq!(
            serde_json::to_value(ErrorCode::EmptyName).unwrap(),
            ErrorCode::EmptyName.as_str()
        );
    }

    #[test]
    fn collector_caps_the_report() {
        let mut c = Collector::new();
        for i in 0..MAX_REPORTED + 10 {
            c.push(format!("f{i}"), ErrorCode::UnknownField, "unknown field");
        }
        let errs = c.finish().unwrap_err();
        assert_eq!(errs.len(), MAX_REPORTED + 1);
        assert_eq!(errs.0[MAX_REPORTED].code, ErrorCode::LimitExceeded);
    }

    #[test]
    fn display_is_one_sentence() {
        let e = ValidationErrors(vec![ValidationError {
            path: "name".into(),
            code: ErrorCode::EmptyName,
            message: "a policy needs a name".into(),
            policy_id: None,
        }]);
        assert_eq!(
            e.to_string(),
            "the policy is invalid: name: a policy needs a name"
        );
    }
}
