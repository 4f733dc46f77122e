//! Policy sets: every policy of one app, compiled once, decided many times.

pub(crate) mod bits;
mod compiled;
mod table;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use bits::{Grant, Requested, ScopeBits, set_bit};
use compiled::{Check, ClaimCheck, CompiledPolicy, Context, Key, KeySet, RoleCheck, Slot};
use table::NameTable;

use crate::decision::{AllowedScopes, Decision, Eval, Evals, Outcome, Reason, ShadowOutcome};
use crate::document::{
    Condition, Mode, PolicyDocument, Predicate, Scalar, Scopes, check_document, name_key,
};
use crate::error::{Collector, ErrorCode, ValidationErrors};
use crate::explain::{self, Explanation};
use crate::limits::Limits;
use crate::subject::Subject;

/// Role bitsets up to this many words (256 role names) live on the stack during a decision.
const INLINE_ROLE_WORDS: usize = 4;
/// Claim paths up to this many are memoised on the stack during a decision.
const INLINE_PATHS: usize = 8;

/// The compiled, immutable policies of one app. `Send + Sync`: share it behind an `Arc`.
///
/// Policies are kept in the order of their ids, so that nothing a decision reports depends on the
/// order they were given in.
#[derive(Debug)]
pub struct PolicySet {
    /// The app's scopes, deduplicated; a scope's index is its bit.
    offered: Vec<String>,
    /// `offered`, for lookups.
    scope_table: NameTable,
    /// Ids and documents, by id: cold data, for names and explanations.
    pub(crate) docs: Vec<(String, PolicyDocument)>,
    /// The same policies, hot data only, in the same order.
    policies: Vec<CompiledPolicy>,
    /// Every policy's checks, one after the other.
    checks: Vec<Check>,
    /// Every role name a condition mentions; a role's index is its bit.
    role_table: NameTable,
    /// Every distinct claim path a condition mentions, split into segments.
    paths: Vec<Box<[Box<str>]>>,
    has_enforcing: bool,
    has_shadow: bool,
}

/// Checks one policy document against an app's offered scopes and `limits`, before it is stored.
///
/// Uniqueness of names is a property of the app's whole set: compile the set the document would
/// join with [`PolicySet::compile`] to check it (and the number of policies).
///
/// # Errors
/// Every problem in the document, each with its JSON path.
pub fn validate_policy(
    doc: &PolicyDocument,
    offered_scopes: &[String],
    limits: &Limits,
) -> Result<(), ValidationErrors> {
    let mut errors = Collector::new();
    let offered = offered_set(offered_scopes, limits, &mut errors);
    check_document(doc, Some(&offered), limits, &mut errors);
    errors.finish()
}

/// The app's scopes as a set, with a problem recorded when there are too many.
fn offered_set<'a>(
    offered_scopes: &'a [String],
    limits: &Limits,
    errors: &mut Collector,
) -> HashSet<&'a str> {
    let offered: HashSet<&str> = offered_scopes.iter().map(String::as_str).collect();
    if offered.len() > limits.scopes() {
        errors.push(
            "",
            ErrorCode::LimitExceeded,
            format!("an app can offer at most {} scopes", limits.scopes()),
        );
    }
    offered
}

impl PolicySet {
    /// Validates and compiles the policies of one app, given as `(policy id, document)`.
    ///
    /// `offered_scopes` is the app's list of scopes (duplicates are ignored); a policy naming a
    /// scope outside it is rejected. Policy ids must be unique, and names unique ignoring case
    /// and surrounding whitespace.
    ///
    /// # Errors
    /// Every problem found, each tagged with its policy's id and its path in that document.
    pub fn compile(
        offered_scopes: &[String],
        policies: Vec<(String, PolicyDocument)>,
        limits: &Limits,
    ) -> Result<Self, ValidationErrors> {
        // App-level problems first: past them, the documents are not worth reading.
        let mut app_errors = Collector::new();
        let offered_names = offered_set(offered_scopes, limits, &mut app_errors);
        if policies.len() > limits.max_policies {
            app_errors.push(
                "",
                ErrorCode::LimitExceeded,
                format!("an app can have at most {} policies", limits.max_policies),
            );
        }
        app_errors.finish()?;

        let mut policies = policies;
        policies.sort_by(|a, b| a.0.cmp(&b.0));
        let mut errors = Collector::new();
        let mut names: HashMap<String, &str> = HashMap::with_capacity(policies.len());
        for (index, (id, doc)) in policies.iter().enumerate() {
            errors.set_policy(Some(id));
            if index > 0
                && policies
                    .get(index - 1)
                    .is_some_and(|(previous, _)| previous == id)
            {
                errors.push(
                    "",
                    ErrorCode::DuplicateName,
                    format!("the policy id {} is used twice", quoted(id)),
                );
            }
            if !doc.name.trim().is_empty() {
                match names.entry(name_key(&doc.name)) {
                    Entry::Vacant(entry) => {
                        entry.insert(id);
                    }
                    Entry::Occupied(entry) => errors.push(
                        "name",
                        ErrorCode::DuplicateName,
                        format!(
                            "the policy {} already has the name {} on this app",
                            quoted(entry.get()),
                            quoted(&doc.name)
                        ),
                    ),
                }
            }
            check_document(doc, Some(&offered_names), limits, &mut errors);
        }
        errors.finish()?;

        Ok(Self::build(offered_scopes, policies))
    }

    /// Compiles validated policies, sorted by id.
    fn build(offered_scopes: &[String], docs: Vec<(String, PolicyDocument)>) -> Self {
        let mut offered: Vec<String> = Vec::with_capacity(offered_scopes.len());
        let mut scope_index: HashMap<&str, usize> = HashMap::with_capacity(offered_scopes.len());
        for scope in offered_scopes {
            if !scope_index.contains_key(scope.as_str()) {
                scope_index.insert(scope, offered.len());
                offered.push(scope.clone());
            }
        }
        let mut roles: Vec<Box<str>> = Vec::new();
        let mut role_index: HashMap<String, usize> = HashMap::new();
        let mut intern_role = |name: &str| -> usize {
            *role_index.entry(name.to_owned()).or_insert_with(|| {
                roles.push(name.into());
                roles.len() - 1
            })
        };
        let mut paths: Vec<Box<[Box<str>]>> = Vec::new();
        let mut path_index: HashMap<Vec<String>, usize> = HashMap::new();
        let mut checks = Vec::new();
        let mut policies = Vec::with_capacity(docs.len());
        for (_, doc) in &docs {
            let grant = match &doc.scopes {
                Scopes::All => Grant::ALL,
                Scopes::List(names) => {
                    let mut bits = ScopeBits::default();
                    // INVARIANT: validation checked that every name is offered.
                    for index in names
                        .iter()
                        .filter_map(|name| scope_index.get(name.as_str()))
                    {
                        bits.insert(*index);
                    }
                    Grant { all: false, bits }
                }
            };
            let start = checks.len();
            for condition in &doc.conditions {
                checks.push(match condition {
                    Condition::UserRoles(predicate) => {
                        Check::Role(role_check(predicate, &mut intern_role))
                    }
                    Condition::JwtClaims { claim, predicate } => {
                        let path =
                            *path_index
                                .entry(claim.segments().to_vec())
                                .or_insert_with(|| {
                                    paths.push(
                                        claim
                                            .segments()
                                            .iter()
                                            .map(|s| s.as_str().into())
                                            .collect(),
                                    );
                                    paths.len() - 1
                                });
                        Check::Claim {
                            path,
                            test: claim_check(predicate),
                        }
                    }
                });
            }
            policies.push(CompiledPolicy {
                checks: start..checks.len(),
                enforce: doc.mode == Mode::Enforce,
                grant,
            });
        }
        Self {
            has_enforcing: policies.iter().any(|p| p.enforce),
            has_shadow: policies.iter().any(|p| !p.enforce),
            scope_table: NameTable::new(offered.iter().map(|s| s.as_str().into()).collect()),
            offered,
            docs,
            policies,
            checks,
            role_table: NameTable::new(roles),
            paths,
        }
    }

    /// Decides a request for `requested` scopes by `subject`. The hot path: no string is built,
    /// each claim path is resolved at most once, and nothing is allocated for sets of up to 16
    /// policies (larger sets allocate the per-policy results once).
    #[must_use]
    pub fn decide(&self, subject: &Subject<'_>, requested: &[&str]) -> Decision {
        if self.policies.is_empty() {
            return Decision::open();
        }
        let requested = self.lookup_requested(requested);

        let words = self.role_table.len().div_ceil(64);
        let mut inline_roles = [0u64; INLINE_ROLE_WORDS];
        let mut heap_roles;
        let roles: &mut [u64] = match inline_roles.get_mut(..words) {
            Some(roles) => roles,
            None => {
                heap_roles = vec![0u64; words];
                &mut heap_roles
            }
        };
        if words > 0 {
            for role in subject.roles {
                if let Some(index) = self.role_table.get(role) {
                    set_bit(roles, index);
                }
            }
        }

        let mut inline_memo = [Slot::Unresolved; INLINE_PATHS];
        let mut heap_memo;
        let memo: &mut [Slot<'_>] = match inline_memo.get_mut(..self.paths.len()) {
            Some(memo) => memo,
            None => {
                heap_memo = vec![Slot::Unresolved; self.paths.len()];
                &mut heap_memo
            }
        };
        let mut cx = Context {
            roles,
            claims: subject.claims,
            paths: &self.paths,
            memo,
        };

        let mut evals = Evals::with_capacity(self.policies.len());
        let (mut enforced, mut enforced_hit) = (Grant::NONE, false);
        let (mut shadowed, mut shadowed_hit) = (Grant::NONE, false);
        for policy in &self.policies {
            let checks = self.checks.get(policy.checks.clone()).unwrap_or_default();
            let eval = compiled::eval_policy(checks, &mut cx);
            if eval == Eval::Matched {
                if policy.enforce {
                    enforced.union_with(&policy.grant);
                    enforced_hit = true;
                } else {
                    shadowed.union_with(&policy.grant);
                    shadowed_hit = true;
                }
            }
            evals.push(eval);
        }

        let (outcome, reason, allowed) = if !self.has_enforcing {
            (Outcome::Allow, Reason::Open, Grant::ALL)
        } else if !enforced_hit {
            (Outcome::Deny, Reason::NoPolicyMatched, enforced)
        } else if enforced.covers(&requested) {
            (Outcome::Allow, Reason::Matched, enforced)
        } else {
            (Outcome::Deny, Reason::ScopesNotAllowed, enforced)
        };
        let shadow = self.has_shadow.then(|| {
            let mut allowed = enforced;
            allowed.union_with(&shadowed);
            let allow = (enforced_hit || shadowed_hit) && allowed.covers(&requested);
            ShadowOutcome {
                outcome: if allow { Outcome::Allow } else { Outcome::Deny },
                allowed,
            }
        });
        Decision {
            outcome,
            reason,
            allowed,
            evals,
            shadow,
        }
    }

    /// Explains `decision`, which this set made for `subject` and `requested`: every policy,
    /// the first failed condition of each with the value seen, allowed and denied scopes.
    #[must_use]
    pub fn explain(
        &self,
        subject: &Subject<'_>,
        requested: &[&str],
        decision: &Decision,
    ) -> Explanation {
        explain::build(self, subject, requested, decision)
    }

    /// Whether the app has no enforcing policy, and so allows every request.
    #[must_use]
    pub fn is_open(&self) -> bool {
        !self.has_enforcing
    }

    /// Whether the app has shadow policies (so decisions carry a shadow outcome).
    #[must_use]
    pub fn has_shadow(&self) -> bool {
        self.has_shadow
    }

    /// The number of policies, enforcing and shadow.
    #[must_use]
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether there is no policy at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The app's scopes, deduplicated, in the order given.
    #[must_use]
    pub fn offered_scopes(&self) -> &[String] {
        &self.offered
    }

    /// The policies, as `(id, document)`, in the set's order (by id).
    pub fn policies(&self) -> impl ExactSizeIterator<Item = (&str, &PolicyDocument)> {
        self.docs.iter().map(|(id, doc)| (id.as_str(), doc))
    }

    /// The index of `scope` in the app's universe.
    pub(crate) fn scope_index(&self, scope: &str) -> Option<usize> {
        self.scope_table.get(scope)
    }

    fn lookup_requested(&self, requested: &[&str]) -> Requested {
        let mut result = Requested::default();
        for scope in requested {
            match self.scope_index(scope) {
                Some(index) => result.bits.insert(index),
                None => result.unknown = true,
            }
        }
        result
    }

    /// Names the scopes of a grant.
    pub(crate) fn scopes_of(&self, grant: &Grant) -> AllowedScopes<'_> {
        if grant.all {
            AllowedScopes::All
        } else {
            AllowedScopes::List(
                self.offered
                    .iter()
                    .enumerate()
                    .filter(|(index, _)| grant.bits.contains(*index))
                    .map(|(_, name)| name.as_str())
                    .collect(),
            )
        }
    }
}

fn role_check(predicate: &Predicate, intern_role: &mut impl FnMut(&str) -> usize) -> RoleCheck {
    // INVARIANT: validation checked that `userRoles` values are strings; others are skipped
    // (they could never equal a role name).
    let mut indices = |scalars: &[Scalar]| -> Vec<usize> {
        scalars
            .iter()
            .filter_map(|scalar| match scalar {
                Scalar::String(name) => Some(intern_role(name)),
                Scalar::Number(_) | Scalar::Bool(_) => None,
            })
            .collect()
    };
    match predicate {
        Predicate::Equals(s) | Predicate::Contains(s) => {
            RoleCheck::new(&indices(std::slice::from_ref(s)), false)
        }
        Predicate::In(values) => RoleCheck::new(&indices(values), false),
        Predicate::NotEquals(s) => RoleCheck::new(&indices(std::slice::from_ref(s)), true),
        Predicate::NotIn(values) => RoleCheck::new(&indices(values), true),
    }
}

fn claim_check(predicate: &Predicate) -> ClaimCheck {
    match predicate {
        Predicate::Equals(s) => ClaimCheck::Equals(Key::of(s)),
        Predicate::NotEquals(s) => ClaimCheck::NotEquals(Key::of(s)),
        Predicate::Contains(s) => ClaimCheck::Contains(Key::of(s)),
        Predicate::In(values) => ClaimCheck::In(Box::new(KeySet::of(values))),
        Predicate::NotIn(values) => ClaimCheck::NotIn(Box::new(KeySet::of(values))),
    }
}

fn quoted(s: &str) -> String {
    crate::document::quote(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_set_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PolicySet>();
        assert_send_sync::<Decision>();
    }
}
