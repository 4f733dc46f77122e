//! Decision rules: open apps, deny by default, scope unions, `all`, empty requests, shadow mode,
//! and the explanation.

use portcullis_policy::{AllowedScopes, Mode, Outcome, PolicySet, Reason, Subject};
use serde_json::{Map, Value, json};

use crate::support::{claims, policy, roles, set};

const OFFERED: [&str; 4] = ["calendar.read", "calendar.write", "crm.read", "crm.write"];

fn viewer() -> Value {
    json!([{"source": "userRoles", "operator": "equals", "value": "Viewer"}])
}

fn engineer() -> Value {
    json!([{"source": "jwtClaims", "claim": "department", "operator": "equals", "value": "eng"}])
}

struct Who {
    roles: Vec<String>,
    claims: Map<String, Value>,
}

impl Who {
    fn new(user_roles: &[&str], token: Value) -> Self {
        Self {
            roles: roles(user_roles),
            claims: claims(token),
        }
    }

    fn subject(&self) -> Subject<'_> {
        Subject::new(&self.roles, &self.claims)
    }
}

fn list<'a>(scopes: &[&'a str]) -> AllowedScopes<'a> {
    AllowedScopes::List(scopes.to_vec())
}

#[test]
fn an_app_without_policies_is_open() {
    let set = set(&OFFERED, vec![]);
    assert!(set.is_open() && set.is_empty());
    let who = Who::new(&[], json!({}));
    let decision = set.decide(&who.subject(), &["calendar.read", "not.offered"]);
    assert!(decision.allowed());
    assert_eq!(decision.reason(), Reason::Open);
    assert_eq!(decision.allowed_scopes(&set), AllowedScopes::All);
    assert!(decision.shadow().is_none());
}

#[test]
fn an_app_with_only_shadow_policies_is_open_but_reports_the_shadow_outcome() {
    let set = set(
        &OFFERED,
        vec![(
            "p1",
            policy("Viewers", viewer(), json!(["calendar.read"]), "shadow"),
        )],
    );
    assert!(set.is_open());
    assert_eq!(set.len(), 1);
    let stranger = Who::new(&[], json!({}));
    let decision = set.decide(&stranger.subject(), &["calendar.read"]);
    assert!(decision.allowed());
    assert_eq!(decision.reason(), Reason::Open);
    let shadow = decision.shadow().unwrap();
    assert_eq!(
        shadow.outcome(),
        Outcome::Deny,
        "once enforced, deny by default"
    );

    let viewer = Who::new(&["Viewer"], json!({}));
    let decision = set.decide(&viewer.subject(), &["calendar.read"]);
    let shadow = decision.shadow().unwrap();
    assert!(shadow.allowed());
    assert_eq!(shadow.allowed_scopes(&set), list(&["calendar.read"]));
    assert_eq!(
        decision.deciding_policies(&set).count(),
        0,
        "shadow policies never decide"
    );
}

#[test]
fn one_enforcing_policy_makes_the_app_deny_by_default() {
    let set = set(
        &OFFERED,
        vec![(
            "p1",
            policy("Viewers", viewer(), json!(["calendar.read"]), "enforce"),
        )],
    );
    assert!(!set.is_open());
    let stranger = Who::new(&["Guest"], json!({"department": "eng"}));
    let decision = set.decide(&stranger.subject(), &["calendar.read"]);
    assert!(!decision.allowed());
    assert_eq!(decision.reason(), Reason::NoPolicyMatched);
    assert_eq!(decision.allowed_scopes(&set), list(&[]));
    // An empty request is denied too when nothing matched.
    assert!(!set.decide(&stranger.subject(), &[]).allowed());
}

#[test]
fn allowed_scopes_are_the_union_of_matching_enforcing_policies() {
    let set = set(
        &OFFERED,
        vec![
            (
                "p1",
                policy("Viewers", viewer(), json!(["calendar.read"]), "enforce"),
            ),
            (
                "p2",
                policy(
                    "Engineers",
                    engineer(),
                    json!(["crm.read", "crm.write"]),
                    "enforce",
                ),
            ),
            (
                "p3",
                policy(
                    "Nobody",
                    json!([{"source": "userRoles", "operator": "equals", "value": "Owner"}]),
                    json!("all"),
                    "enforce",
                ),
            ),
        ],
    );
    let both = Who::new(&["Viewer"], json!({"department": "eng"}));
    let decision = set.decide(&both.subject(), &["crm.write", "calendar.read"]);
    assert!(decision.allowed());
    assert_eq!(decision.reason(), Reason::Matched);
    assert_eq!(
        decision.allowed_scopes(&set),
        list(&["calendar.read", "crm.read", "crm.write"]),
        "in the app's order"
    );
    assert_eq!(
        decision.deciding_policies(&set).collect::<Vec<_>>(),
        ["p1", "p2"]
    );

    let decision = set.decide(&both.subject(), &["calendar.read", "calendar.write"]);
    assert!(!decision.allowed());
    assert_eq!(decision.reason(), Reason::ScopesNotAllowed);

    let only_viewer = Who::new(&["Viewer"], json!({"department": "ops"}));
    let decision = set.decide(&only_viewer.subject(), &["crm.read"]);
    assert_eq!(decision.reason(), Reason::ScopesNotAllowed);
    assert_eq!(decision.allowed_scopes(&set), list(&["calendar.read"]));

    // Duplicated scopes in a request change nothing.
    let decision = set.decide(&only_viewer.subject(), &["calendar.read", "calendar.read"]);
    assert!(decision.allowed());
}

#[test]
fn all_grants_every_scope_even_unlisted_ones() {
    let set = set(
        &OFFERED,
        vec![
            (
                "p1",
                policy("Viewers", viewer(), json!(["calendar.read"]), "enforce"),
            ),
            (
                "p2",
                policy(
                    "Admins",
                    json!([{"source": "userRoles", "operator": "equals", "value": "Admin"}]),
                    json!("all"),
                    "enforce",
                ),
            ),
        ],
    );
    let admin = Who::new(&["Admin"], json!({}));
    let decision = set.decide(&admin.subject(), &["calendar.write", "unlisted.scope"]);
    assert!(decision.allowed());
    assert_eq!(decision.allowed_scopes(&set), AllowedScopes::All);
    assert!(decision.allowed_scopes(&set).contains("anything"));

    let viewer = Who::new(&["Viewer"], json!({}));
    let decision = set.decide(&viewer.subject(), &["unlisted.scope"]);
    assert!(!decision.allowed(), "an unlisted scope needs `all`");
    assert_eq!(decision.reason(), Reason::ScopesNotAllowed);
}

#[test]
fn api_key_apps_decide_with_an_empty_request() {
    let set = set(
        &[],
        vec![(
            "p1",
            policy("Engineers", engineer(), json!("all"), "enforce"),
        )],
    );
    let eng = Who::new(&[], json!({"department": "eng"}));
    let ops = Who::new(&[], json!({"department": "ops"}));
    assert!(set.decide(&eng.subject(), &[]).allowed());
    let denied = set.decide(&ops.subject(), &[]);
    assert!(!denied.allowed());
    assert_eq!(denied.reason(), Reason::NoPolicyMatched);
}

#[test]
fn a_policy_without_conditions_matches_everyone() {
    let set = set(
        &OFFERED,
        vec![(
            "p1",
            policy("Everyone", json!([]), json!(["calendar.read"]), "enforce"),
        )],
    );
    let anyone = Who::new(&[], json!({}));
    assert!(set.decide(&anyone.subject(), &["calendar.read"]).allowed());
    assert!(!set.decide(&anyone.subject(), &["calendar.write"]).allowed());
}

#[test]
fn shadow_policies_are_reported_but_never_decide() {
    let set = set(
        &OFFERED,
        vec![
            (
                "p1",
                policy("Viewers", viewer(), json!(["calendar.read"]), "enforce"),
            ),
            (
                "p2",
                policy(
                    "Engineers (trial)",
                    engineer(),
                    json!(["crm.read"]),
                    "shadow",
                ),
            ),
        ],
    );
    let eng = Who::new(&["Viewer"], json!({"department": "eng"}));
    let decision = set.decide(&eng.subject(), &["calendar.read", "crm.read"]);
    assert!(!decision.allowed());
    assert_eq!(decision.reason(), Reason::ScopesNotAllowed);
    assert_eq!(decision.allowed_scopes(&set), list(&["calendar.read"]));
    let shadow = decision.shadow().unwrap();
    assert!(shadow.allowed());
    assert_eq!(
        shadow.allowed_scopes(&set),
        list(&["calendar.read", "crm.read"])
    );
    let verdicts: Vec<_> = decision
        .policies(&set)
        .map(|v| (v.id, v.mode, v.matched))
        .collect();
    assert_eq!(
        verdicts,
        [("p1", Mode::Enforce, true), ("p2", Mode::Shadow, true)]
    );
    assert_eq!(decision.deciding_policies(&set).collect::<Vec<_>>(), ["p1"]);

    // With no enforcing match, a shadow match allows in the shadow outcome only.
    let stranger = Who::new(&[], json!({"department": "eng"}));
    let decision = set.decide(&stranger.subject(), &["crm.read"]);
    assert_eq!(decision.reason(), Reason::NoPolicyMatched);
    assert!(decision.shadow().unwrap().allowed());
}

#[test]
fn policies_are_listed_by_id_whatever_the_input_order() {
    let make = |order: [usize; 3]| {
        let all = [
            (
                "b",
                policy("B", viewer(), json!(["calendar.read"]), "enforce"),
            ),
            ("a", policy("A", engineer(), json!(["crm.read"]), "enforce")),
            ("c", policy("C", json!([]), json!(["crm.write"]), "shadow")),
        ];
        set(&OFFERED, order.iter().map(|i| all[*i].clone()).collect())
    };
    let first = make([0, 1, 2]);
    let second = make([2, 0, 1]);
    let who = Who::new(&["Viewer"], json!({"department": "ops"}));
    let d1 = first.decide(&who.subject(), &["calendar.read"]);
    let d2 = second.decide(&who.subject(), &["calendar.read"]);
    assert_eq!(d1, d2);
    let ids: Vec<_> = d1.policies(&first).map(|v| v.id).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(
        first.explain(&who.subject(), &["calendar.read"], &d1),
        second.explain(&who.subject(), &["calendar.read"], &d2)
    );
    let listed: Vec<_> = first.policies().map(|(id, _)| id).collect();
    assert_eq!(listed, ["a", "b", "c"]);
}

#[test]
fn the_explanation_tells_the_whole_story() {
    let set = set(
        &OFFERED,
        vec![
            (
                "pol_1",
                policy("Viewers", viewer(), json!(["calendar.read"]), "enforce"),
            ),
            (
                "pol_2",
                policy(
                    "Engineers",
                    json!([
                        {"source": "userRoles", "operator": "in", "value": ["Viewer", "Editor"]},
                        {"source": "jwtClaims", "claim": "department", "operator": "equals", "value": "eng"}
                    ]),
                    json!(["crm.read"]),
                    "enforce",
                ),
            ),
            (
                "pol_3",
                policy(
                    "Gold tier",
                    json!([{"source": "jwtClaims", "claim": "org.tier", "operator": "equals", "value": "gold"}]),
                    json!("all"),
                    "shadow",
                ),
            ),
            (
                "pol_4",
                policy(
                    "Owners",
                    json!([{"source": "userRoles", "operator": "contains", "value": "Owner"}]),
                    json!(["crm.write"]),
                    "enforce",
                ),
            ),
        ],
    );
    let who = Who::new(&["Viewer"], json!({"department": "sales"}));
    let requested = ["calendar.read", "crm.read"];
    let decision = set.decide(&who.subject(), &requested);
    let explanation = set.explain(&who.subject(), &requested, &decision);
    let expected = json!({
        "outcome": "deny",
        "reason": "scopesNotAllowed",
        "requestedScopes": ["calendar.read", "crm.read"],
        "allowedScopes": ["calendar.read"],
        "deniedScopes": ["crm.read"],
        "decidingPolicies": ["pol_1"],
        "policies": [
            {"id": "pol_1", "name": "Viewers", "mode": "enforce", "matched": true, "scopes": ["calendar.read"]},
            {"id": "pol_2", "name": "Engineers", "mode": "enforce", "matched": false, "scopes": ["crm.read"],
             "failedCondition": {"index": 1, "source": "jwtClaims", "claim": "department", "operator": "equals",
                                 "value": "eng", "seen": "sales", "reason": "notSatisfied"}},
            {"id": "pol_3", "name": "Gold tier", "mode": "shadow", "matched": false, "scopes": "all",
             "failedCondition": {"index": 0, "source": "jwtClaims", "claim": "org.tier", "operator": "equals",
                                 "value": "gold", "seen": null, "reason": "missing"}},
            {"id": "pol_4", "name": "Owners", "mode": "enforce", "matched": false, "scopes": ["crm.write"],
             "failedCondition": {"index": 0, "source": "userRoles", "operator": "contains",
                                 "value": "Owner", "seen": ["Viewer"], "reason": "notSatisfied"}}
        ],
        "shadow": {"outcome": "deny", "allowedScopes": ["calendar.read"]}
    });
    assert_eq!(serde_json::to_value(&explanation).unwrap(), expected);

    // Open app: "all", nothing denied, no shadow key.
    let open = crate::support::set(&OFFERED, vec![]);
    let decision = open.decide(&who.subject(), &["x"]);
    let json = serde_json::to_value(open.explain(&who.subject(), &["x"], &decision)).unwrap();
    assert_eq!(
        json,
        json!({
            "outcome": "allow", "reason": "open", "requestedScopes": ["x"], "allowedScopes": "all",
            "deniedScopes": [], "decidingPolicies": [], "policies": []
        })
    );
}

#[test]
fn explanation_reports_type_mismatches_with_the_value_seen() {
    let set = set(
        &OFFERED,
        vec![(
            "p",
            policy(
                "Levels",
                json!([{"source": "jwtClaims", "claim": r"https://example\.com/level", "operator": "in", "value": [1, 2]}]),
                json!(["crm.read"]),
                "enforce",
            ),
        )],
    );
    let who = Who::new(&[], json!({"https://example.com/level": {"v": 1}}));
    let decision = set.decide(&who.subject(), &["crm.read"]);
    let explanation = set.explain(&who.subject(), &["crm.read"], &decision);
    let failed = serde_json::to_value(&explanation.policies[0].failed_condition).unwrap();
    assert_eq!(
        failed,
        json!({"index": 0, "source": "jwtClaims", "claim": r"https://example\.com/level", "operator": "in",
               "value": [1, 2], "seen": {"v": 1}, "reason": "typeMismatch"})
    );
    assert_eq!(explanation.denied_scopes, ["crm.read"]);
}

#[test]
fn a_set_shared_across_threads_decides_the_same() {
    let set = std::sync::Arc::new(set(
        &OFFERED,
        vec![(
            "p1",
            policy("Viewers", viewer(), json!(["calendar.read"]), "enforce"),
        )],
    ));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let set: std::sync::Arc<PolicySet> = set.clone();
            std::thread::spawn(move || {
                let who = Who::new(if i % 2 == 0 { &["Viewer"] } else { &[] }, json!({}));
                set.decide(&who.subject(), &["calendar.read"]).allowed()
            })
        })
        .collect();
    let results: Vec<bool> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results, [true, false, true, false]);
}
