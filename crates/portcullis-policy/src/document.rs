//! Policy documents: the JSON an administrator writes, parsed into types that cannot express an
//! operator with the wrong arity.

mod check;
mod parse;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use crate::claim_path::ClaimPath;
use crate::error::{Collector, ValidationErrors};
use crate::limits::Limits;

pub(crate) use check::{check_document, name_key};
pub(crate) use parse::quote;

/// One access control policy, as stored and as written in JSON (camelCase).
///
/// Build one with [`PolicyDocument::from_json`], which reports every problem with its path.
/// A document built by hand is checked by [`crate::validate_policy`] and [`crate::PolicySet::compile`].
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    /// A name, unique on its app (case-insensitive), non-empty after trimming.
    pub name: String,
    /// An optional description for humans.
    pub description: Option<String>,
    /// Conditions that must all hold for the policy to match; none matches every subject.
    pub conditions: Vec<Condition>,
    /// The scopes the policy grants when it matches.
    pub scopes: Scopes,
    /// Whether the policy decides (`enforce`) or is only evaluated and reported (`shadow`).
    pub mode: Mode,
}

/// One condition: a source, and a predicate on it.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// A predicate on the user's roles, a set of strings.
    UserRoles(Predicate),
    /// A predicate on the claim of the inbound token at `claim`.
    JwtClaims {
        /// Where the claim is.
        claim: ClaimPath,
        /// What must hold of it.
        predicate: Predicate,
    },
}

impl Condition {
    /// The source this condition reads.
    #[must_use]
    pub fn source(&self) -> Source {
        match self {
            Self::UserRoles(_) => Source::UserRoles,
            Self::JwtClaims { .. } => Source::JwtClaims,
        }
    }

    /// The claim path, for a `jwtClaims` condition.
    #[must_use]
    pub fn claim(&self) -> Option<&ClaimPath> {
        match self {
            Self::UserRoles(_) => None,
            Self::JwtClaims { claim, .. } => Some(claim),
        }
    }

    /// The operator and its value.
    #[must_use]
    pub fn predicate(&self) -> &Predicate {
        match self {
            Self::UserRoles(predicate) | Self::JwtClaims { predicate, .. } => predicate,
        }
    }
}

/// What a condition reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// The roles assigned to the user.
    UserRoles,
    /// The claims of the inbound token.
    JwtClaims,
}

impl Source {
    /// The name used in JSON.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRoles => "userRoles",
            Self::JwtClaims => "jwtClaims",
        }
    }
}

/// An operator with its value; the variants fix the value's arity.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicate {
    /// `equals`: one scalar.
    Equals(Scalar),
    /// `notEquals`: one scalar.
    NotEquals(Scalar),
    /// `in`: a non-empty list of scalars.
    In(Vec<Scalar>),
    /// `notIn`: a non-empty list of scalars.
    NotIn(Vec<Scalar>),
    /// `contains`: one scalar.
    Contains(Scalar),
}

impl Predicate {
    /// The operator.
    #[must_use]
    pub fn operator(&self) -> Operator {
        match self {
            Self::Equals(_) => Operator::Equals,
            Self::NotEquals(_) => Operator::NotEquals,
            Self::In(_) => Operator::In,
            Self::NotIn(_) => Operator::NotIn,
            Self::Contains(_) => Operator::Contains,
        }
    }

    /// The value as JSON: a scalar, or an array of scalars.
    #[must_use]
    pub fn value_json(&self) -> Value {
        match self {
            Self::Equals(s) | Self::NotEquals(s) | Self::Contains(s) => s.to_json(),
            Self::In(list) | Self::NotIn(list) => {
                Value::Array(list.iter().map(Scalar::to_json).collect())
            }
        }
    }

    /// The scalars of the value, one or many.
    pub(crate) fn scalars(&self) -> &[Scalar] {
        match self {
            Self::Equals(s) | Self::NotEquals(s) | Self::Contains(s) => std::slice::from_ref(s),
            Self::In(list) | Self::NotIn(list) => list,
        }
    }
}

/// The five operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Operator {
    /// `equals`
    Equals,
    /// `notEquals`
    NotEquals,
    /// `in`
    In,
    /// `notIn`
    NotIn,
    /// `contains`
    Contains,
}

impl Operator {
    /// Every operator, in documentation order.
    pub const ALL: [Self; 5] = [
        Self::Equals,
        Self::NotEquals,
        Self::In,
        Self::NotIn,
        Self::Contains,
    ];

    /// The name used in JSON.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equals => "equals",
            Self::NotEquals => "notEquals",
            Self::In => "in",
            Self::NotIn => "notIn",
            Self::Contains => "contains",
        }
    }

    /// Whether the operator takes a list of values rather than one.
    #[must_use]
    pub fn takes_list(self) -> bool {
        matches!(self, Self::In | Self::NotIn)
    }
}

/// A scalar value of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A string, compared exactly.
    String(String),
    /// A number, compared by numeric value.
    Number(Number),
    /// A boolean.
    Bool(bool),
}

impl Scalar {
    /// The scalar as JSON.
    #[must_use]
    pub fn to_json(&self) -> Value {
        match self {
            Self::String(s) => Value::String(s.clone()),
            Self::Number(n) => Value::Number(n.clone()),
            Self::Bool(b) => Value::Bool(*b),
        }
    }
}

impl From<&str> for Scalar {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

impl From<String> for Scalar {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

impl From<bool> for Scalar {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<i64> for Scalar {
    fn from(n: i64) -> Self {
        Self::Number(n.into())
    }
}

impl Serialize for Scalar {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::String(s) => serializer.serialize_str(s),
            Self::Number(n) => n.serialize(serializer),
            Self::Bool(b) => serializer.serialize_bool(*b),
        }
    }
}

/// The scopes a policy grants: every scope, or a list. Also used for allowed scopes in
/// explanations. Serialized as the string `"all"` or an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scopes {
    /// Every scope, including ones the app does not list.
    All,
    /// These scopes.
    List(Vec<String>),
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::All => serializer.serialize_str("all"),
            Self::List(list) => list.serialize(serializer),
        }
    }
}

/// Whether a policy decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// The policy takes part in decisions (the default).
    #[default]
    Enforce,
    /// The policy is evaluated and reported, never deciding.
    Shadow,
}

impl Mode {
    /// The name used in JSON.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Shadow => "shadow",
        }
    }
}

impl PolicyDocument {
    /// Parses and validates a policy document, with the default [`Limits`].
    ///
    /// # Errors
    /// Every problem in the document, each with its JSON path.
    pub fn from_json(value: &Value) -> Result<Self, ValidationErrors> {
        Self::from_json_with_limits(value, &Limits::default())
    }

    /// Parses and validates a policy document against `limits`.
    ///
    /// Scopes are not checked against an app here: see [`crate::validate_policy`].
    ///
    /// # Errors
    /// Every problem in the document, each with its JSON path.
    pub fn from_json_with_limits(value: &Value, limits: &Limits) -> Result<Self, ValidationErrors> {
        let mut errors = Collector::new();
        let parsed = parse::parse_document(value, limits, &mut errors);
        match (parsed, errors.finish()) {
            (Some(doc), Ok(())) => Ok(doc),
            (_, Err(errors)) => Err(errors),
            (None, Ok(())) => Err(ValidationErrors(vec![crate::error::ValidationError {
                path: String::new(),
                code: crate::error::ErrorCode::InvalidType,
                message: "the policy could not be read".to_owned(),
                policy_id: None,
            }])),
        }
    }

    /// The document as JSON, the same shape [`PolicyDocument::from_json`] reads.
    #[must_use]
    pub fn to_json(&self) -> Value {
        // Serializing these types into a `Value` cannot fail: every map key is a string.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl Serialize for PolicyDocument {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("PolicyDocument", 5)?;
        s.serialize_field("name", &self.name)?;
        match &self.description {
            Some(description) => s.serialize_field("description", description)?,
            None => s.skip_field("description")?,
        }
        s.serialize_field("conditions", &self.conditions)?;
        s.serialize_field("scopes", &self.scopes)?;
        s.serialize_field("mode", &self.mode)?;
        s.end()
    }
}

impl Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let predicate = self.predicate();
        let mut m = serializer.serialize_map(None)?;
        m.serialize_entry("source", &self.source())?;
        if let Some(claim) = self.claim() {
            m.serialize_entry("claim", claim)?;
        }
        m.serialize_entry("operator", &predicate.operator())?;
        match predicate {
            Predicate::Equals(s) | Predicate::NotEquals(s) | Predicate::Contains(s) => {
                m.serialize_entry("value", s)?;
            }
            Predicate::In(list) | Predicate::NotIn(list) => m.serialize_entry("value", list)?,
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for PolicyDocument {
    /// Reads a stored document through [`PolicyDocument::from_json`], so a stored document is held
    /// to the same rules as a submitted one.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_json(&value).map_err(serde::de::Error::custom)
    }
}
