//! Decisions: the compact result of [`crate::PolicySet::decide`].

use serde::Serialize;

use crate::document::Mode;
use crate::set::PolicySet;
use crate::set::bits::Grant;

/// Whether the request is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Hand the token out.
    Allow,
    /// Do not.
    Deny,
}

/// Why the outcome is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reason {
    /// Allowed: the app has no enforcing policy.
    Open,
    /// Allowed: enforcing policies matched and grant every requested scope.
    Matched,
    /// Denied: no enforcing policy matched.
    NoPolicyMatched,
    /// Denied: enforcing policies matched, but some requested scope is not granted by any of them.
    ScopesNotAllowed,
}

/// Why a condition failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FailReason {
    /// The value was there, of the right type, and the predicate is false.
    NotSatisfied,
    /// The claim is absent (or JSON `null`).
    Missing,
    /// The claim has a type the predicate cannot compare (object, array, string against a number).
    TypeMismatch,
}

/// How one policy evaluated, compactly: one per policy of the set, in the set's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Eval {
    /// Every condition holds.
    Matched,
    /// Condition `index` is the first that does not hold.
    Failed {
        /// Its index in the policy's conditions.
        index: u16,
        /// Why.
        reason: FailReason,
    },
}

/// Per-policy results up to this many are stored inline in a [`Decision`], without allocating.
const INLINE_EVALS: usize = 16;

/// The per-policy results of a decision, in the set's order: inline for small sets.
#[derive(Debug, Clone)]
pub(crate) enum Evals {
    Inline {
        len: u8,
        items: [Eval; INLINE_EVALS],
    },
    Heap(Vec<Eval>),
}

impl Evals {
    /// Room for `n` results.
    pub(crate) fn with_capacity(n: usize) -> Self {
        if n <= INLINE_EVALS {
            Self::Inline {
                len: 0,
                items: [Eval::Matched; INLINE_EVALS],
            }
        } else {
            Self::Heap(Vec::with_capacity(n))
        }
    }

    /// Appends a result. INVARIANT: callers push at most the capacity they asked for.
    #[inline]
    pub(crate) fn push(&mut self, eval: Eval) {
        match self {
            Self::Inline { len, items } => {
                if let Some(slot) = items.get_mut(usize::from(*len)) {
                    *slot = eval;
                    *len += 1;
                }
            }
            Self::Heap(list) => list.push(eval),
        }
    }

    pub(crate) fn as_slice(&self) -> &[Eval] {
        match self {
            Self::Inline { len, items } => items.get(..usize::from(*len)).unwrap_or_default(),
            Self::Heap(list) => list,
        }
    }
}

impl PartialEq for Evals {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Evals {}

/// The first condition of a policy that did not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConditionFailure {
    /// Its index in the policy's `conditions`.
    pub index: usize,
    /// Why it did not hold.
    pub reason: FailReason,
}

/// The decision on one request: compact (indices and bitsets), cheap to build; names are looked
/// up through the [`PolicySet`] that made it, and [`PolicySet::explain`] builds the full story.
///
/// Every method taking a set must be given the set that made the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub(crate) outcome: Outcome,
    pub(crate) reason: Reason,
    pub(crate) allowed: Grant,
    pub(crate) evals: Evals,
    pub(crate) shadow: Option<ShadowOutcome>,
}

/// What the decision would have been if the shadow policies were enforcing too; reported only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShadowOutcome {
    pub(crate) outcome: Outcome,
    pub(crate) allowed: Grant,
}

impl ShadowOutcome {
    /// The outcome with shadow policies enforcing.
    #[must_use]
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether the request would be allowed with shadow policies enforcing.
    #[must_use]
    pub fn allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }

    /// The scopes that would be allowed with shadow policies enforcing.
    #[must_use]
    pub fn allowed_scopes<'s>(&self, set: &'s PolicySet) -> AllowedScopes<'s> {
        set.scopes_of(&self.allowed)
    }
}

/// Allowed scopes, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedScopes<'s> {
    /// Every scope, including ones the app does not list.
    All,
    /// These scopes of the app, in the app's order.
    List(Vec<&'s str>),
}

impl AllowedScopes<'_> {
    /// Whether `scope` is allowed.
    #[must_use]
    pub fn contains(&self, scope: &str) -> bool {
        match self {
            Self::All => true,
            Self::List(list) => list.contains(&scope),
        }
    }
}

/// How one policy of the set evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyVerdict<'s> {
    /// The policy's id.
    pub id: &'s str,
    /// The policy's name.
    pub name: &'s str,
    /// Whether it enforces or is in shadow mode.
    pub mode: Mode,
    /// Whether all its conditions held.
    pub matched: bool,
    /// The first condition that did not hold, when it did not match.
    pub failed_condition: Option<ConditionFailure>,
}

impl Decision {
    /// The decision for an app with no policy at all.
    pub(crate) fn open() -> Self {
        Self {
            outcome: Outcome::Allow,
            reason: Reason::Open,
            allowed: Grant::ALL,
            evals: Evals::with_capacity(0),
            shadow: None,
        }
    }

    /// Whether the request is allowed.
    #[must_use]
    pub fn allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }

    /// Allow or deny.
    #[must_use]
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Why.
    #[must_use]
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The scopes this subject may have on this app (`All` for an open app). On a denial for
    /// [`Reason::ScopesNotAllowed`] this is what a re-consent could ask for.
    #[must_use]
    pub fn allowed_scopes<'s>(&self, set: &'s PolicySet) -> AllowedScopes<'s> {
        set.scopes_of(&self.allowed)
    }

    /// The shadow outcome, when the app has shadow policies.
    #[must_use]
    pub fn shadow(&self) -> Option<&ShadowOutcome> {
        self.shadow.as_ref()
    }

    /// How every policy of the set evaluated, in the set's order (by id).
    pub fn policies<'s>(
        &'s self,
        set: &'s PolicySet,
    ) -> impl Iterator<Item = PolicyVerdict<'s>> + 's {
        set.docs
            .iter()
            .zip(self.evals.as_slice())
            .map(|((id, doc), eval)| PolicyVerdict {
                id,
                name: &doc.name,
                mode: doc.mode,
                matched: *eval == Eval::Matched,
                failed_condition: match *eval {
                    Eval::Matched => None,
                    Eval::Failed { index, reason } => Some(ConditionFailure {
                        index: usize::from(index),
                        reason,
                    }),
                },
            })
    }

    /// The ids of the enforcing policies that matched: the ones whose scopes were granted.
    pub fn deciding_policies<'s>(
        &'s self,
        set: &'s PolicySet,
    ) -> impl Iterator<Item = &'s str> + 's {
        self.policies(set)
            .filter(|verdict| verdict.matched && verdict.mode == Mode::Enforce)
            .map(|verdict| verdict.id)
    }
}
