//! The Portcullis policy engine: pure and synchronous. Policy documents and a subject in, a
//! [`Decision`] out; no IO, no clock, no async.
//!
//! ```
//! use portcullis_policy::{Limits, PolicyDocument, PolicySet, Subject};
//! use serde_json::json;
//!
//! let doc = PolicyDocument::from_json(&json!({
//!     "name": "Project managers",
//!     "conditions": [
//!         {"source": "userRoles", "operator": "contains", "value": "Project Manager"},
//!         {"source": "jwtClaims", "claim": "org.department", "operator": "in", "value": ["eng", "ops"]}
//!     ],
//!     "scopes": ["calendar.readonly"]
//! }))?;
//! let offered = vec!["calendar.readonly".to_owned(), "calendar".to_owned()];
//! let set = PolicySet::compile(&offered, vec![("pol_1".to_owned(), doc)], &Limits::default())?;
//!
//! let roles = vec!["Project Manager".to_owned()];
//! let claims = json!({"org": {"department": "eng"}});
//! let subject = Subject::new(&roles, claims.as_object().unwrap());
//! let decision = set.decide(&subject, &["calendar.readonly"]);
//! assert!(decision.allowed());
//! assert!(!set.decide(&subject, &["calendar"]).allowed());
//! # Ok::<(), portcullis_policy::ValidationErrors>(())
//! ```
//!
//! # Semantics
//!
//! A policy *matches* when all its conditions hold (AND; no condition: it matches everyone).
//! Conditions are evaluated in order and evaluation stops at the first that fails: that one is
//! reported.
//!
//! ## `userRoles`: the user's roles, a set
//!
//! | operator    | value       | holds when |
//! |-------------|-------------|------------|
//! | `equals`    | string      | the user has that role ("userRoles equals Viewer" reads "has the role Viewer") |
//! | `notEquals` | string      | the user does not have that role |
//! | `contains`  | string      | the user has that role (same as `equals`) |
//! | `in`        | \[strings\] | the user has at least one of the roles |
//! | `notIn`     | \[strings\] | the user has none of the roles |
//!
//! Role names compare exactly (case-sensitive). Values must be strings.
//!
//! ## `jwtClaims`: the claim at the path, fail closed
//!
//! | operator    | value       | holds when |
//! |-------------|-------------|------------|
//! | `equals`    | scalar      | the claim is a scalar of the same type, and equal |
//! | `notEquals` | scalar      | the claim is a scalar of the same type, and different |
//! | `in`        | \[scalars\] | the claim is a scalar equal to one of the values |
//! | `notIn`     | \[scalars\] | the claim is a scalar of a type present in the list, and equal to none |
//! | `contains`  | scalar      | the claim is an array with an element equal to the value |
//!
//! | the claim is ... | every operator, negative ones included | reason |
//! |---|---|---|
//! | missing, or JSON `null` (also: an intermediate segment of a dotted path is missing or not an object) | fails | `missing` |
//! | an object; an array where a scalar is needed; a scalar where `contains` needs an array; a scalar of a type the value (or no value of the list) has | fails | `typeMismatch` |
//!
//! So a token that lacks `department` does **not** pass `department notEquals "contractors"`,
//! and `department notIn ["contractors"]` fails for `"department": 7`.
//!
//! Strings compare exactly (case-sensitive). Numbers compare by numeric value: `1` equals `1.0`,
//! and integers compare exactly (`9007199254740993` does not equal `9007199254740992.0`).
//! Booleans compare by value. Inside a `contains` array, elements of another type never match.
//!
//! A claim path is a claim name or a dotted path into nested objects (`org.department`); `\.` is
//! a literal dot (`https://example\.com/roles` names the top-level claim
//! `https://example.com/roles`) and `\\` a literal backslash. See [`ClaimPath`].
//!
//! ## Decisions
//!
//! | the app has ... | outcome | allowed scopes | reason |
//! |---|---|---|---|
//! | no enforcing policy | allow | every scope | `open` |
//! | enforcing policies, none matches | deny | none | `noPolicyMatched` |
//! | matching enforcing policies granting every requested scope | allow | the union of their scopes | `matched` |
//! | matching enforcing policies not granting some requested scope | deny | the union of their scopes | `scopesNotAllowed` |
//!
//! `all` grants every scope, including ones outside the app's list. An empty request is allowed
//! when at least one enforcing policy matches: that is how API-key apps decide whether to issue
//! the key. A requested scope the app does not offer is granted only by `all`.
//!
//! Shadow policies are evaluated and reported, never deciding; the decision also carries the
//! *shadow outcome*, the decision that would result with the shadow policies enforcing too.
//!
//! Nothing depends on the order policies are given in: the union is commutative, and a set keeps
//! its policies ordered by id.

#![warn(missing_docs)]

mod claim_path;
mod decision;
mod document;
mod error;
mod explain;
mod limits;
mod set;
mod subject;

pub use claim_path::{ClaimPath, ClaimPathError, MAX_CLAIM_PATH_LEN, MAX_CLAIM_PATH_SEGMENTS};
pub use decision::{
    AllowedScopes, ConditionFailure, Decision, FailReason, Outcome, PolicyVerdict, Reason,
    ShadowOutcome,
};
pub use document::{Condition, Mode, Operator, PolicyDocument, Predicate, Scalar, Scopes, Source};
pub use error::{ErrorCode, ValidationError, ValidationErrors};
pub use explain::{Explanation, FailedCondition, PolicyExplanation, ShadowExplanation};
pub use limits::{Limits, MAX_OFFERED_SCOPES};
pub use set::{PolicySet, validate_policy};
pub use subject::Subject;
