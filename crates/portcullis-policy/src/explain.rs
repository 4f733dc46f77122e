//! Explanations: the whole story of a decision, for denials, the simulator and the audit log.

use serde::Serialize;
use serde_json::Value;

use crate::decision::{AllowedScopes, Decision, Eval, FailReason, Outcome, Reason};
use crate::document::{Condition, Mode, Operator, Scopes, Source};
use crate::set::PolicySet;
use crate::set::bits::Grant;
use crate::subject::Subject;

/// Why a decision came out as it did. Serialized in camelCase; `shadow` only when the app has
/// shadow policies.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// Allow or deny.
    pub outcome: Outcome,
    /// Why.
    pub reason: Reason,
    /// The scopes asked for, as given.
    pub requested_scopes: Vec<String>,
    /// The scopes the subject may have: `"all"` or a list in the app's order.
    pub allowed_scopes: Scopes,
    /// The requested scopes that are not allowed (every one, when no policy matched).
    pub denied_scopes: Vec<String>,
    /// The enforcing policies that matched.
    pub deciding_policies: Vec<String>,
    /// Every policy of the app, in the set's order.
    pub policies: Vec<PolicyExplanation>,
    /// What the decision would be with the shadow policies enforcing too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowExplanation>,
}

/// How one policy evaluated.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyExplanation {
    /// The policy's id.
    pub id: String,
    /// The policy's name.
    pub name: String,
    /// `enforce` or `shadow`.
    pub mode: Mode,
    /// Whether every condition held.
    pub matched: bool,
    /// The scopes the policy grants when it matches.
    pub scopes: Scopes,
    /// The first condition that did not hold (evaluation stops there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_condition: Option<FailedCondition>,
}

/// The first condition of a policy that did not hold, with what was seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedCondition {
    /// Its index in the policy's `conditions`.
    pub index: usize,
    /// What it reads.
    pub source: Source,
    /// The claim path, for `jwtClaims`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// The operator.
    pub operator: Operator,
    /// The condition's value.
    pub value: Value,
    /// What was seen: the claim's value (`null` when missing), or the user's roles.
    pub seen: Value,
    /// Why it did not hold.
    pub reason: FailReason,
}

/// The shadow outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShadowExplanation {
    /// Allow or deny, with shadow policies enforcing.
    pub outcome: Outcome,
    /// The scopes allowed, with shadow policies enforcing.
    pub allowed_scopes: Scopes,
}

pub(crate) fn build(
    set: &PolicySet,
    subject: &Subject<'_>,
    requested: &[&str],
    decision: &Decision,
) -> Explanation {
    let denied_scopes = denied(set, requested, &decision.allowed);
    let policies = set
        .docs
        .iter()
        .zip(decision.evals.as_slice())
        .map(|((id, doc), eval)| PolicyExplanation {
            id: id.clone(),
            name: doc.name.clone(),
            mode: doc.mode,
            matched: *eval == Eval::Matched,
            scopes: doc.scopes.clone(),
            failed_condition: match *eval {
                Eval::Matched => None,
                Eval::Failed { index, reason } => {
                    let index = usize::from(index);
                    doc.conditions
                        .get(index)
                        .map(|condition| failed(condition, index, reason, subject))
                }
            },
        })
        .collect();
    Explanation {
        outcome: decision.outcome,
        reason: decision.reason,
        requested_scopes: requested.iter().map(|s| (*s).to_owned()).collect(),
        allowed_scopes: named(set.scopes_of(&decision.allowed)),
        denied_scopes,
        deciding_policies: decision.deciding_policies(set).map(str::to_owned).collect(),
        policies,
        shadow: decision.shadow().map(|shadow| ShadowExplanation {
            outcome: shadow.outcome(),
            allowed_scopes: named(shadow.allowed_scopes(set)),
        }),
    }
}

fn failed(
    condition: &Condition,
    index: usize,
    reason: FailReason,
    subject: &Subject<'_>,
) -> FailedCondition {
    let seen = match condition {
        Condition::UserRoles(_) => {
            Value::Array(subject.roles.iter().cloned().map(Value::String).collect())
        }
        Condition::JwtClaims { claim, .. } => claim
            .resolve(subject.claims)
            .cloned()
            .unwrap_or(Value::Null),
    };
    let predicate = condition.predicate();
    FailedCondition {
        index,
        source: condition.source(),
        claim: condition.claim().map(|claim| claim.as_str().to_owned()),
        operator: predicate.operator(),
        value: predicate.value_json(),
        seen,
        reason,
    }
}

fn denied(set: &PolicySet, requested: &[&str], allowed: &Grant) -> Vec<String> {
    let mut denied: Vec<String> = Vec::new();
    for scope in requested {
        if !allowed.allows(set.scope_index(scope)) && !denied.iter().any(|d| d == scope) {
            denied.push((*scope).to_owned());
        }
    }
    denied
}

fn named(scopes: AllowedScopes<'_>) -> Scopes {
    match scopes {
        AllowedScopes::All => Scopes::All,
        AllowedScopes::List(list) => Scopes::List(list.into_iter().map(str::to_owned).collect()),
    }
}
