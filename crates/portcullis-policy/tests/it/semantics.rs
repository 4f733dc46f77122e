//! The operator table: every operator × source × present / missing / wrong-type value.

use portcullis_policy::{FailReason, Subject};
use serde_json::{Value, json};

use crate::support::{claims, policy, roles, set};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Holds,
    Fails(FailReason),
}

use Expect::{Fails, Holds};
const NOT: Expect = Fails(FailReason::NotSatisfied);
const MISSING: Expect = Fails(FailReason::Missing);
const MISMATCH: Expect = Fails(FailReason::TypeMismatch);

/// Evaluates one condition through the public API: a one-policy set, one decision.
fn evaluate(condition: &Value, user_roles: &[&str], token_claims: &Value) -> Expect {
    let set = set(
        &["s"],
        vec![(
            "p",
            policy("only", json!([condition]), json!(["s"]), "enforce"),
        )],
    );
    let roles = roles(user_roles);
    let claims = claims(token_claims.clone());
    let subject = Subject::new(&roles, &claims);
    let decision = set.decide(&subject, &["s"]);
    let verdict = decision.policies(&set).next().unwrap();
    assert_eq!(
        verdict.matched,
        decision.allowed(),
        "one policy: matched ⇔ allowed"
    );
    match verdict.failed_condition {
        None => Holds,
        Some(failure) => {
            assert_eq!(failure.index, 0);
            // The explanation must tell the same story.
            let explanation = set.explain(&subject, &["s"], &decision);
            let failed = explanation.policies[0].failed_condition.as_ref().unwrap();
            assert_eq!(failed.reason, failure.reason);
            Fails(failure.reason)
        }
    }
}

fn claim(path: &str, operator: &str, value: Value) -> Value {
    json!({"source": "jwtClaims", "claim": path, "operator": operator, "value": value})
}

fn role(operator: &str, value: Value) -> Value {
    json!({"source": "userRoles", "operator": operator, "value": value})
}

#[test]
fn jwt_claims_operator_table() {
    let dept = |op: &str, v: Value| claim("department", op, v);
    let level = |op: &str, v: Value| claim("level", op, v);
    let flag = |op: &str, v: Value| claim("email_verified", op, v);
    #[rustfmt::skip]
    let rows: Vec<(&str, Value, Value, Expect)> = vec![
        // equals, strings
        ("eq str", dept("equals", json!("eng")), json!({"department": "eng"}), Holds),
        ("eq str is case-sensitive", dept("equals", json!("eng")), json!({"department": "Eng"}), NOT),
        ("eq str other", dept("equals", json!("eng")), json!({"department": "sales"}), NOT),
        ("eq str missing", dept("equals", json!("eng")), json!({}), MISSING),
        ("eq str null", dept("equals", json!("eng")), json!({"department": null}), MISSING),
        ("eq str vs number", dept("equals", json!("eng")), json!({"department": 7}), MISMATCH),
        ("eq str vs bool", dept("equals", json!("true")), json!({"department": true}), MISMATCH),
        ("eq str vs array", dept("equals", json!("eng")), json!({"department": ["eng"]}), MISMATCH),
        ("eq str vs object", dept("equals", json!("eng")), json!({"department": {"eng": 1}}), MISMATCH),
        // notEquals: fail closed
        ("ne str", dept("notEquals", json!("contractors")), json!({"department": "eng"}), Holds),
        ("ne str equal", dept("notEquals", json!("contractors")), json!({"department": "contractors"}), NOT),
        ("ne str case", dept("notEquals", json!("contractors")), json!({"department": "Contractors"}), Holds),
        ("ne str missing fails closed", dept("notEquals", json!("contractors")), json!({}), MISSING),
        ("ne str null fails closed", dept("notEquals", json!("contractors")), json!({"department": null}), MISSING),
        ("ne str vs number", dept("notEquals", json!("contractors")), json!({"department": 7}), MISMATCH),
        ("ne str vs array", dept("notEquals", json!("contractors")), json!({"department": ["eng"]}), MISMATCH),
        ("ne str vs object", dept("notEquals", json!("contractors")), json!({"department": {}}), MISMATCH),
        // in
        ("in str", dept("in", json!(["eng", "ops"])), json!({"department": "ops"}), Holds),
        ("in str other", dept("in", json!(["eng", "ops"])), json!({"department": "sales"}), NOT),
        ("in str missing", dept("in", json!(["eng", "ops"])), json!({}), MISSING),
        ("in str null", dept("in", json!(["eng", "ops"])), json!({"department": null}), MISSING),
        ("in str vs number", dept("in", json!(["eng", "ops"])), json!({"department": 7}), MISMATCH),
        ("in str vs array", dept("in", json!(["eng", "ops"])), json!({"department": ["eng"]}), MISMATCH),
        ("in str vs object", dept("in", json!(["eng"])), json!({"department": {"a": "eng"}}), MISMATCH),
        // notIn: fail closed
        ("notIn str", dept("notIn", json!(["contractors"])), json!({"department": "eng"}), Holds),
        ("notIn str listed", dept("notIn", json!(["contractors", "x"])), json!({"department": "x"}), NOT),
        ("notIn str missing fails closed", dept("notIn", json!(["contractors"])), json!({}), MISSING),
        ("notIn str null fails closed", dept("notIn", json!(["contractors"])), json!({"department": null}), MISSING),
        ("notIn str vs number", dept("notIn", json!(["contractors"])), json!({"department": 7}), MISMATCH),
        ("notIn str vs bool", dept("notIn", json!(["contractors"])), json!({"department": false}), MISMATCH),
        ("notIn str vs array", dept("notIn", json!(["contractors"])), json!({"department": ["eng"]}), MISMATCH),
        // contains
        ("contains", claim("groups", "contains", json!("admin")), json!({"groups": ["x", "admin"]}), Holds),
        ("contains absent element", claim("groups", "contains", json!("admin")), json!({"groups": ["x"]}), NOT),
        ("contains empty array", claim("groups", "contains", json!("admin")), json!({"groups": []}), NOT),
        ("contains is case-sensitive", claim("groups", "contains", json!("admin")), json!({"groups": ["Admin"]}), NOT),
        ("contains mixed array", claim("groups", "contains", json!("admin")), json!({"groups": [1, null, {"a": 1}, "admin"]}), Holds),
        ("contains other-typed elements", claim("groups", "contains", json!("1")), json!({"groups": [1, true]}), NOT),
        ("contains on a string", claim("groups", "contains", json!("admin")), json!({"groups": "admin"}), MISMATCH),
        ("contains on a substring", claim("groups", "contains", json!("adm")), json!({"groups": "admin"}), MISMATCH),
        ("contains on an object", claim("groups", "contains", json!("admin")), json!({"groups": {"admin": true}}), MISMATCH),
        ("contains missing", claim("groups", "contains", json!("admin")), json!({}), MISSING),
        ("contains null", claim("groups", "contains", json!("admin")), json!({"groups": null}), MISSING),
        // numbers
        ("eq int", level("equals", json!(1)), json!({"level": 1}), Holds),
        ("eq int vs float 1.0", level("equals", json!(1)), json!({"level": 1.0}), Holds),
        ("eq float 1.0 vs int", level("equals", json!(1.0)), json!({"level": 1}), Holds),
        ("eq frac", level("equals", json!(1.5)), json!({"level": 1.5}), Holds),
        ("eq frac vs int", level("equals", json!(1.5)), json!({"level": 1}), NOT),
        ("eq int other", level("equals", json!(1)), json!({"level": 2}), NOT),
        ("eq negative", level("equals", json!(-3)), json!({"level": -3.0}), Holds),
        ("eq big ints exact", level("equals", json!(9_007_199_254_740_993_u64)), json!({"level": 9_007_199_254_740_992_u64}), NOT),
        ("eq big int vs nearby float", level("equals", json!(9_007_199_254_740_993_u64)), json!({"level": 9_007_199_254_740_992.0}), NOT),
        ("eq u64 max", level("equals", json!(u64::MAX)), json!({"level": u64::MAX}), Holds),
        ("eq int vs string", level("equals", json!(1)), json!({"level": "1"}), MISMATCH),
        ("eq int vs bool", level("equals", json!(1)), json!({"level": true}), MISMATCH),
        ("ne int", level("notEquals", json!(1)), json!({"level": 2}), Holds),
        ("ne int vs 1.0", level("notEquals", json!(1)), json!({"level": 1.0}), NOT),
        ("ne int vs string", level("notEquals", json!(1)), json!({"level": "2"}), MISMATCH),
        ("ne int missing", level("notEquals", json!(1)), json!({}), MISSING),
        ("in nums", level("in", json!([1, 2.5])), json!({"level": 2.5}), Holds),
        ("in nums 1.0", level("in", json!([1, 2.5])), json!({"level": 1.0}), Holds),
        ("in nums other", level("in", json!([1, 2.5])), json!({"level": 3}), NOT),
        ("in nums vs string", level("in", json!([1, 2])), json!({"level": "1"}), MISMATCH),
        ("notIn nums", level("notIn", json!([1, 2])), json!({"level": 3}), Holds),
        ("notIn nums listed", level("notIn", json!([1, 2])), json!({"level": 2.0}), NOT),
        ("notIn nums vs string", level("notIn", json!([1, 2])), json!({"level": "3"}), MISMATCH),
        ("contains num", claim("levels", "contains", json!(1)), json!({"levels": [0, 1.0]}), Holds),
        ("contains num vs strings", claim("levels", "contains", json!(1)), json!({"levels": ["1"]}), NOT),
        // mixed-type lists
        ("in mixed string", level("in", json!(["1", 1])), json!({"level": "1"}), Holds),
        ("in mixed number", level("in", json!(["1", 1])), json!({"level": 1}), Holds),
        ("in mixed bool absent type", level("in", json!(["1", 1])), json!({"level": true}), MISMATCH),
        ("notIn mixed other number", level("notIn", json!(["a", 1])), json!({"level": 2}), Holds),
        ("notIn mixed other string", level("notIn", json!(["a", 1])), json!({"level": "b"}), Holds),
        ("notIn mixed bool absent type", level("notIn", json!(["a", 1])), json!({"level": false}), MISMATCH),
        // booleans
        ("eq true", flag("equals", json!(true)), json!({"email_verified": true}), Holds),
        ("eq true vs false", flag("equals", json!(true)), json!({"email_verified": false}), NOT),
        ("eq true vs string", flag("equals", json!(true)), json!({"email_verified": "true"}), MISMATCH),
        ("eq true vs 1", flag("equals", json!(true)), json!({"email_verified": 1}), MISMATCH),
        ("ne false", flag("notEquals", json!(false)), json!({"email_verified": true}), Holds),
        ("ne false vs false", flag("notEquals", json!(false)), json!({"email_verified": false}), NOT),
        ("ne false missing", flag("notEquals", json!(false)), json!({}), MISSING),
        ("in [true]", flag("in", json!([true])), json!({"email_verified": false}), NOT),
        ("in [true] ok", flag("in", json!([true])), json!({"email_verified": true}), Holds),
        ("notIn [false]", flag("notIn", json!([false])), json!({"email_verified": true}), Holds),
        ("notIn [false] listed", flag("notIn", json!([false])), json!({"email_verified": false}), NOT),
        ("contains true", claim("flags", "contains", json!(true)), json!({"flags": [false, true]}), Holds),
        ("contains true absent", claim("flags", "contains", json!(true)), json!({"flags": [false, "true"]}), NOT),
        // nested paths
        ("nested", claim("org.department", "equals", json!("eng")), json!({"org": {"department": "eng"}}), Holds),
        ("nested deep", claim("a.b.c", "in", json!(["x"])), json!({"a": {"b": {"c": "x"}}}), Holds),
        ("nested missing leaf", claim("org.department", "equals", json!("eng")), json!({"org": {}}), MISSING),
        ("nested missing parent", claim("org.department", "equals", json!("eng")), json!({}), MISSING),
        ("nested parent not an object", claim("org.department", "equals", json!("eng")), json!({"org": "eng"}), MISSING),
        ("nested parent is an array", claim("org.department", "equals", json!("eng")), json!({"org": [{"department": "eng"}]}), MISSING),
        ("nested null leaf", claim("org.department", "notEquals", json!("x")), json!({"org": {"department": null}}), MISSING),
        ("dotted path is not a literal key", claim("org.department", "equals", json!("eng")), json!({"org.department": "eng"}), MISSING),
        ("nested wrong type", claim("org.department", "equals", json!("eng")), json!({"org": {"department": ["eng"]}}), MISMATCH),
        // escapes
        ("escaped dot", claim(r"https://example\.com/roles", "contains", json!("admin")), json!({"https://example.com/roles": ["admin"]}), Holds),
        ("escaped dot is not a separator", claim(r"https://example\.com/roles", "contains", json!("admin")), json!({"https://example": {"com/roles": ["admin"]}}), MISSING),
        ("unescaped dot separates", claim("https://example.com/roles", "contains", json!("admin")), json!({"https://example": {"com/roles": ["admin"]}}), Holds),
        ("escaped backslash", claim(r"a\\b", "equals", json!("x")), json!({r"a\b": "x"}), Holds),
        ("escaped dot then nesting", claim(r"x\.y.z", "equals", json!(1)), json!({"x.y": {"z": 1}}), Holds),
    ];
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|(label, condition, token, expected)| {
            let got = evaluate(condition, &[], token);
            (got != *expected).then(|| format!("{label}: expected {expected:?}, got {got:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn user_roles_operator_table() {
    let user = ["Viewer", "Editor"];
    #[rustfmt::skip]
    let rows: Vec<(&str, Value, &[&str], Expect)> = vec![
        ("equals has", role("equals", json!("Viewer")), &user, Holds),
        ("equals is case-sensitive", role("equals", json!("viewer")), &user, NOT),
        ("equals lacks", role("equals", json!("Admin")), &user, NOT),
        ("equals no roles", role("equals", json!("Viewer")), &[], NOT),
        ("notEquals lacks", role("notEquals", json!("Admin")), &user, Holds),
        ("notEquals has", role("notEquals", json!("Viewer")), &user, NOT),
        ("notEquals no roles", role("notEquals", json!("Admin")), &[], Holds),
        ("contains has", role("contains", json!("Editor")), &user, Holds),
        ("contains lacks", role("contains", json!("Admin")), &user, NOT),
        ("contains no roles", role("contains", json!("Admin")), &[], NOT),
        ("in one of", role("in", json!(["Admin", "Editor"])), &user, Holds),
        ("in none of", role("in", json!(["Admin", "Owner"])), &user, NOT),
        ("in no roles", role("in", json!(["Admin"])), &[], NOT),
        ("notIn none of", role("notIn", json!(["Admin", "Owner"])), &user, Holds),
        ("notIn one of", role("notIn", json!(["Admin", "Viewer"])), &user, NOT),
        ("notIn no roles", role("notIn", json!(["Admin"])), &[], Holds),
        ("duplicate roles are a set", role("in", json!(["Viewer"])), &["Viewer", "Viewer"], Holds),
    ];
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|(label, condition, user_roles, expected)| {
            let got = evaluate(condition, user_roles, &json!({}));
            (got != *expected).then(|| format!("{label}: expected {expected:?}, got {got:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn user_roles_never_read_token_claims() {
    let got = evaluate(
        &role("equals", json!("Admin")),
        &[],
        &json!({"roles": ["Admin"], "userRoles": ["Admin"]}),
    );
    assert_eq!(got, NOT);
}

#[test]
fn conditions_combine_with_and_and_report_the_first_failure() {
    let set = set(
        &["s"],
        vec![(
            "p",
            policy(
                "both",
                json!([
                    {"source": "userRoles", "operator": "equals", "value": "Viewer"},
                    {"source": "jwtClaims", "claim": "department", "operator": "equals", "value": "eng"},
                    {"source": "jwtClaims", "claim": "tier", "operator": "equals", "value": "gold"}
                ]),
                json!(["s"]),
                "enforce",
            ),
        )],
    );
    let viewer = roles(&["Viewer"]);
    let cases = [
        (&viewer, json!({"department": "eng", "tier": "gold"}), None),
        (
            &viewer,
            json!({"department": "eng"}),
            Some((2, FailReason::Missing)),
        ),
        (
            &viewer,
            json!({"department": "ops"}),
            Some((1, FailReason::NotSatisfied)),
        ),
        (
            &viewer,
            json!({"tier": "gold"}),
            Some((1, FailReason::Missing)),
        ),
    ];
    for (user_roles, token, expected) in cases {
        let claims = claims(token);
        let decision = set.decide(&Subject::new(user_roles, &claims), &["s"]);
        let got = decision
            .policies(&set)
            .next()
            .unwrap()
            .failed_condition
            .map(|f| (f.index, f.reason));
        assert_eq!(got, expected, "{claims:?}");
        assert_eq!(decision.allowed(), expected.is_none());
    }
    let nobody = roles(&[]);
    let claims = claims(json!({"department": "eng", "tier": "gold"}));
    let decision = set.decide(&Subject::new(&nobody, &claims), &["s"]);
    let failure = decision
        .policies(&set)
        .next()
        .unwrap()
        .failed_condition
        .unwrap();
    assert_eq!(
        (failure.index, failure.reason),
        (0, FailReason::NotSatisfied)
    );
}
