//! Properties over generated policy sets and subjects, checked against a naive reference
//! evaluator written straight from the semantics table.

use std::collections::BTreeSet;

use portcullis_policy::{
    AllowedScopes, ClaimPath, Condition, Decision, Limits, Mode, Outcome, PolicyDocument,
    PolicySet, Predicate, Scalar, Scopes, Subject,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::subsequence;
use serde_json::{Map, Number, Value};

const SCOPES: [&str; 6] = ["s0", "s1", "s2", "s3", "s4", "s5"];
/// Requested scopes may include one the app does not offer.
const REQUESTABLE: [&str; 7] = ["s0", "s1", "s2", "s3", "s4", "s5", "unlisted"];
const ROLES: [&str; 5] = ["r0", "r1", "r2", "r3", "r4"];
const CLAIMS: [&str; 6] = ["dept", "org.tier", "level", "flag", "groups", r"x\.y"];

fn offered() -> Vec<String> {
    SCOPES.iter().map(|s| (*s).to_owned()).collect()
}

// ---------- generators ----------

fn arb_scalar() -> impl Strategy<Value = Scalar> + Clone {
    prop_oneof![
        prop::sample::select(vec!["d0", "d1", "d2", "1"]).prop_map(Scalar::from),
        prop::sample::select(vec![0_i64, 1, 2]).prop_map(Scalar::from),
        Just(Scalar::Number(Number::from_f64(1.0).unwrap())),
        Just(Scalar::Number(Number::from_f64(2.5).unwrap())),
        any::<bool>().prop_map(Scalar::from),
    ]
}

fn arb_predicate<S: Strategy<Value = Scalar> + Clone>(
    scalar: S,
) -> impl Strategy<Value = Predicate> {
    prop_oneof![
        scalar.clone().prop_map(Predicate::Equals),
        scalar.clone().prop_map(Predicate::NotEquals),
        scalar.clone().prop_map(Predicate::Contains),
        vec(scalar.clone(), 1..4).prop_map(Predicate::In),
        vec(scalar, 1..4).prop_map(Predicate::NotIn),
    ]
}

fn arb_condition() -> impl Strategy<Value = Condition> {
    let role = prop::sample::select(ROLES.to_vec()).prop_map(Scalar::from);
    prop_oneof![
        arb_predicate(role).prop_map(Condition::UserRoles),
        (
            prop::sample::select(CLAIMS.to_vec()),
            arb_predicate(arb_scalar())
        )
            .prop_map(|(claim, predicate)| {
                Condition::JwtClaims {
                    claim: ClaimPath::parse(claim).unwrap(),
                    predicate,
                }
            }),
    ]
}

fn arb_scopes() -> impl Strategy<Value = Scopes> {
    prop_oneof![
        1 => Just(Scopes::All),
        6 => subsequence(SCOPES.to_vec(), 1..4)
            .prop_map(|list| Scopes::List(list.into_iter().map(str::to_owned).collect())),
    ]
}

fn arb_mode() -> impl Strategy<Value = Mode> {
    prop_oneof![4 => Just(Mode::Enforce), 1 => Just(Mode::Shadow)]
}

/// A policy; its name is set by [`arb_policies`].
fn arb_policy() -> impl Strategy<Value = PolicyDocument> {
    (vec(arb_condition(), 0..4), arb_scopes(), arb_mode()).prop_map(|(conditions, scopes, mode)| {
        PolicyDocument {
            name: String::new(),
            description: None,
            conditions,
            scopes,
            mode,
        }
    })
}

fn named(policies: Vec<PolicyDocument>) -> Vec<(String, PolicyDocument)> {
    policies
        .into_iter()
        .enumerate()
        .map(|(i, mut doc)| {
            doc.name = format!("policy {i}");
            (format!("p{i:02}"), doc)
        })
        .collect()
}

fn arb_policies() -> impl Strategy<Value = Vec<(String, PolicyDocument)>> {
    vec(arb_policy(), 0..8).prop_map(named)
}

fn arb_claim_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        prop::sample::select(vec!["d0", "d1", "d2", "1", "r0"]).prop_map(Value::from),
        prop::sample::select(vec![0_i64, 1, 2, 3]).prop_map(Value::from),
        prop::sample::select(vec![1.0_f64, 2.5, 0.5]).prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(prop::sample::select(vec!["tier", "y", "a"]), inner, 0..3).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

#[derive(Debug, Clone)]
struct Who {
    roles: Vec<String>,
    claims: Map<String, Value>,
}

impl Who {
    fn subject(&self) -> Subject<'_> {
        Subject::new(&self.roles, &self.claims)
    }
}

fn arb_who() -> impl Strategy<Value = Who> {
    let keys = prop::sample::select(vec!["dept", "org", "level", "flag", "groups", "x.y", "x"]);
    (
        subsequence(ROLES.to_vec(), 0..4),
        btree_map(keys, arb_claim_value(), 0..6),
    )
        .prop_map(|(roles, claims)| Who {
            roles: roles.into_iter().map(str::to_owned).collect(),
            claims: claims.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        })
}

fn arb_requested() -> impl Strategy<Value = Vec<&'static str>> {
    subsequence(REQUESTABLE.to_vec(), 0..3)
}

fn compile(policies: Vec<(String, PolicyDocument)>) -> PolicySet {
    PolicySet::compile(&offered(), policies, &Limits::default()).unwrap()
}

// ---------- the reference evaluator ----------

fn number_eq(a: &Number, b: &Number) -> bool {
    fn exact(n: &Number) -> Option<i128> {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i128))
    }
    match (exact(a), exact(b)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a.as_f64() == b.as_f64(),
        _ => false,
    }
}

/// `Some(equal)` for same-typed scalars, `None` otherwise.
fn scalar_eq(s: &Scalar, v: &Value) -> Option<bool> {
    match (s, v) {
        (Scalar::String(a), Value::String(b)) => Some(a == b),
        (Scalar::Number(a), Value::Number(b)) => Some(number_eq(a, b)),
        (Scalar::Bool(a), Value::Bool(b)) => Some(a == b),
        _ => None,
    }
}

fn reference_condition(condition: &Condition, who: &Who) -> bool {
    match condition {
        Condition::UserRoles(predicate) => {
            let has = |s: &Scalar| matches!(s, Scalar::String(r) if who.roles.contains(r));
            match predicate {
                Predicate::Equals(s) | Predicate::Contains(s) => has(s),
                Predicate::NotEquals(s) => !has(s),
                Predicate::In(list) => list.iter().any(has),
                Predicate::NotIn(list) => !list.iter().any(has),
            }
        }
        Condition::JwtClaims { claim, predicate } => {
            let mut value = None;
            for (i, segment) in claim.segments().iter().enumerate() {
                value = if i == 0 {
                    who.claims.get(segment)
                } else {
                    value.and_then(|v: &Value| v.get(segment))
                };
            }
            let Some(value) = value.filter(|v| !v.is_null()) else {
                return false;
            };
            match predicate {
                Predicate::Equals(s) => scalar_eq(s, value) == Some(true),
                Predicate::NotEquals(s) => scalar_eq(s, value) == Some(false),
                Predicate::In(list) => list.iter().any(|s| scalar_eq(s, value) == Some(true)),
                Predicate::NotIn(list) => {
                    list.iter().any(|s| scalar_eq(s, value).is_some())
                        && list.iter().all(|s| scalar_eq(s, value) != Some(true))
                }
                Predicate::Contains(s) => value
                    .as_array()
                    .is_some_and(|items| items.iter().any(|item| scalar_eq(s, item) == Some(true))),
            }
        }
    }
}

/// Allowed scopes as a set of names; `None` is every scope.
type Granted = Option<BTreeSet<String>>;

fn reference(
    policies: &[(String, PolicyDocument)],
    who: &Who,
    requested: &[&str],
    with_shadow: bool,
) -> (bool, Granted) {
    let deciding = |doc: &PolicyDocument| doc.mode == Mode::Enforce || with_shadow;
    if !policies.iter().any(|(_, d)| deciding(d)) {
        return (true, None);
    }
    let mut matched = false;
    let mut granted: Granted = Some(BTreeSet::new());
    for (_, doc) in policies.iter().filter(|(_, d)| deciding(d)) {
        if doc.conditions.iter().all(|c| reference_condition(c, who)) {
            matched = true;
            match (&doc.scopes, &mut granted) {
                (Scopes::All, _) => granted = None,
                (Scopes::List(list), Some(set)) => set.extend(list.iter().cloned()),
                (Scopes::List(_), None) => {}
            }
        }
    }
    let covers = match &granted {
        None => true,
        Some(set) => requested.iter().all(|r| set.contains(*r)),
    };
    (matched && covers, granted)
}

fn granted(scopes: &AllowedScopes<'_>) -> Granted {
    match scopes {
        AllowedScopes::All => None,
        AllowedScopes::List(list) => Some(list.iter().map(|s| (*s).to_owned()).collect()),
    }
}

/// `narrow ⊆ wide`.
fn is_subset(narrow: &Granted, wide: &Granted) -> bool {
    match (narrow, wide) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(n), Some(w)) => n.is_subset(w),
    }
}

fn summary(set: &PolicySet, decision: &Decision) -> (Outcome, Granted) {
    (decision.outcome(), granted(&decision.allowed_scopes(set)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decide_agrees_with_the_reference(policies in arb_policies(), who in arb_who(), requested in arb_requested()) {
        let set = compile(policies.clone());
        let decision = set.decide(&who.subject(), &requested);
        let (allowed, expected_scopes) = reference(&policies, &who, &requested, false);
        prop_assert_eq!(decision.allowed(), allowed);
        let enforcing = policies.iter().any(|(_, d)| d.mode == Mode::Enforce);
        if enforcing {
            prop_assert_eq!(granted(&decision.allowed_scopes(&set)), expected_scopes);
        } else {
            prop_assert!(set.is_open());
            prop_assert_eq!(decision.allowed_scopes(&set), AllowedScopes::All);
        }
        // Per-policy verdicts agree too.
        for verdict in decision.policies(&set) {
            let (_, doc) = policies.iter().find(|(id, _)| id == verdict.id).unwrap();
            let expected = doc.conditions.iter().all(|c| reference_condition(c, &who));
            prop_assert_eq!(verdict.matched, expected, "policy {}", verdict.id);
            if let Some(failure) = verdict.failed_condition {
                let first = doc.conditions.iter().position(|c| !reference_condition(c, &who));
                prop_assert_eq!(Some(failure.index), first);
            }
        }
        // The shadow outcome is the decision with shadow policies enforcing.
        let has_shadow = policies.iter().any(|(_, d)| d.mode == Mode::Shadow);
        prop_assert_eq!(decision.shadow().is_some(), has_shadow);
        if let Some(shadow) = decision.shadow() {
            let (allowed, scopes) = reference(&policies, &who, &requested, true);
            prop_assert_eq!(shadow.allowed(), allowed);
            prop_assert_eq!(granted(&shadow.allowed_scopes(&set)), scopes);
        }
        // The explanation restates the decision.
        let explanation = set.explain(&who.subject(), &requested, &decision);
        prop_assert_eq!(explanation.outcome, decision.outcome());
        prop_assert_eq!(explanation.policies.len(), policies.len());
        prop_assert_eq!(explanation.denied_scopes.is_empty(), decision.allowed() || requested.is_empty());
    }

    #[test]
    fn deny_by_default(policies in vec(arb_policy(), 1..8), who in arb_who(), requested in arb_requested()) {
        // Every enforcing policy gets a condition no generated subject satisfies.
        let never = Condition::UserRoles(Predicate::Equals(Scalar::from("never-assigned")));
        let mut policies = named(policies);
        policies[0].1.mode = Mode::Enforce;
        for (_, doc) in &mut policies {
            if doc.mode == Mode::Enforce {
                let at = doc.conditions.len() / 2;
                doc.conditions.insert(at, never.clone());
            }
        }
        let set = compile(policies);
        let decision = set.decide(&who.subject(), &requested);
        prop_assert!(!decision.allowed());
        prop_assert_eq!(decision.allowed_scopes(&set), AllowedScopes::List(vec![]));
        prop_assert_eq!(decision.deciding_policies(&set).count(), 0);
    }

    #[test]
    fn adding_a_condition_never_widens_access(
        policies in vec(arb_policy(), 1..8),
        which in any::<prop::sample::Index>(),
        extra in arb_condition(),
        who in arb_who(),
        requested in arb_requested(),
    ) {
        let before = named(policies);
        let mut after = before.clone();
        let index = which.index(after.len());
        after[index].1.conditions.push(extra);
        let (wide, narrow) = (compile(before), compile(after));
        let (wide_outcome, wide_scopes) = summary(&wide, &wide.decide(&who.subject(), &requested));
        let (narrow_outcome, narrow_scopes) = summary(&narrow, &narrow.decide(&who.subject(), &requested));
        prop_assert!(is_subset(&narrow_scopes, &wide_scopes));
        prop_assert!(!(wide_outcome == Outcome::Deny && narrow_outcome == Outcome::Allow));
    }

    #[test]
    fn adding_a_policy_never_narrows_access(
        policies in vec(arb_policy(), 1..8),
        extra in arb_policy(),
        who in arb_who(),
        requested in arb_requested(),
    ) {
        let mut before = named(policies);
        before[0].1.mode = Mode::Enforce;
        let mut after = before.clone();
        let mut extra = extra;
        extra.name = "the extra one".into();
        after.push(("zz-extra".into(), extra));
        let (narrow, wide) = (compile(before), compile(after));
        let (narrow_outcome, narrow_scopes) = summary(&narrow, &narrow.decide(&who.subject(), &requested));
        let (wide_outcome, wide_scopes) = summary(&wide, &wide.decide(&who.subject(), &requested));
        prop_assert!(is_subset(&narrow_scopes, &wide_scopes));
        prop_assert!(!(narrow_outcome == Outcome::Allow && wide_outcome == Outcome::Deny));
    }

    #[test]
    fn the_result_does_not_depend_on_policy_order(
        (policies, shuffled) in arb_policies().prop_flat_map(|p| (Just(p.clone()), Just(p).prop_shuffle())),
        who in arb_who(),
        requested in arb_requested(),
    ) {
        let (a, b) = (compile(policies), compile(shuffled));
        let (da, db) = (a.decide(&who.subject(), &requested), b.decide(&who.subject(), &requested));
        prop_assert_eq!(&da, &db);
        prop_assert_eq!(a.explain(&who.subject(), &requested, &da), b.explain(&who.subject(), &requested, &db));
    }

    #[test]
    fn shadow_policies_never_change_the_outcome(policies in arb_policies(), who in arb_who(), requested in arb_requested()) {
        let enforcing_only: Vec<_> = policies.iter().filter(|(_, d)| d.mode == Mode::Enforce).cloned().collect();
        let (with, without) = (compile(policies), compile(enforcing_only));
        let (dw, dwo) = (with.decide(&who.subject(), &requested), without.decide(&who.subject(), &requested));
        prop_assert_eq!(dw.outcome(), dwo.outcome());
        prop_assert_eq!(dw.reason(), dwo.reason());
        prop_assert_eq!(dw.allowed_scopes(&with), dwo.allowed_scopes(&without));
        prop_assert_eq!(
            dw.deciding_policies(&with).collect::<Vec<_>>(),
            dwo.deciding_policies(&without).collect::<Vec<_>>()
        );
    }

    #[test]
    fn decide_never_panics_on_arbitrary_claims(
        policies in arb_policies(),
        roles in vec("[a-z0-9]{0,4}", 0..4),
        claims in crate::fuzz::arb_json_object(),
        requested in vec("[a-z0-9.]{0,4}", 0..4),
    ) {
        let set = compile(policies);
        let subject = Subject::new(&roles, &claims);
        let requested: Vec<&str> = requested.iter().map(String::as_str).collect();
        let decision = set.decide(&subject, &requested);
        let explanation = set.explain(&subject, &requested, &decision);
        prop_assert!(serde_json::to_value(&explanation).is_ok());
    }
}
