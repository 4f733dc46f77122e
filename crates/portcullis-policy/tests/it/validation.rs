//! Validation: every error code with its path, limits, unknown fields, duplicate names, and the
//! document's round trip.

use portcullis_policy::{
    Condition, ErrorCode, Limits, Mode, PolicyDocument, PolicySet, Predicate, Scalar, Scopes,
    ValidationErrors, validate_policy,
};
use serde_json::{Value, json};

use crate::support::doc;

fn valid() -> Value {
    json!({
        "name": "Project managers",
        "description": "optional",
        "conditions": [
            {"source": "userRoles", "operator": "contains", "value": "Project Manager"},
            {"source": "jwtClaims", "claim": "org.department", "operator": "in", "value": ["eng", "ops"]}
        ],
        "scopes": ["calendar.readonly", "crm.readonly"],
        "mode": "enforce"
    })
}

/// `valid()` with one top-level field replaced (or removed, for `Value::Null` on `remove`).
fn with(field: &str, value: Value) -> Value {
    let mut doc = valid();
    doc[field] = value;
    doc
}

fn without(field: &str) -> Value {
    let mut doc = valid();
    doc.as_object_mut().unwrap().remove(field);
    doc
}

fn with_condition(condition: Value) -> Value {
    with("conditions", json!([condition]))
}

fn errors_of(value: &Value) -> Vec<(String, ErrorCode)> {
    match PolicyDocument::from_json(value) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(|e| (e.path.clone(), e.code)).collect(),
    }
}

fn offered() -> Vec<String> {
    vec![
        "calendar.readonly".into(),
        "crm.readonly".into(),
        "crm.write".into(),
    ]
}

#[test]
fn the_example_parses_and_round_trips() {
    let parsed = doc(valid());
    assert_eq!(parsed.name, "Project managers");
    assert_eq!(parsed.mode, Mode::Enforce);
    assert_eq!(parsed.conditions.len(), 2);
    assert_eq!(
        parsed.conditions[1].claim().unwrap().segments(),
        ["org", "department"]
    );
    assert_eq!(parsed.to_json(), valid());
    assert_eq!(serde_json::to_value(&parsed).unwrap(), valid());
    let again: PolicyDocument = serde_json::from_value(valid()).unwrap();
    assert_eq!(again, parsed);
    assert!(validate_policy(&parsed, &offered(), &Limits::default()).is_ok());
}

#[test]
fn defaults_and_scalar_kinds_round_trip() {
    let input = json!({
        "name": "n",
        "conditions": [
            {"source": "jwtClaims", "claim": r"https://example\.com/x", "operator": "equals", "value": 1.0},
            {"source": "jwtClaims", "claim": "b", "operator": "notIn", "value": [1, "1", true, 2.5]},
            {"source": "jwtClaims", "claim": "c", "operator": "contains", "value": false},
            {"source": "userRoles", "operator": "notEquals", "value": "x"}
        ],
        "scopes": "all"
    });
    let parsed = doc(input.clone());
    assert_eq!(parsed.mode, Mode::Enforce);
    assert_eq!(parsed.scopes, Scopes::All);
    assert_eq!(parsed.description, None);
    let mut expected = input;
    expected["mode"] = json!("enforce");
    let out = parsed.to_json();
    assert_eq!(out, expected);
    assert_eq!(
        serde_json::to_string(&out["conditions"][0]["value"]).unwrap(),
        "1.0"
    );
    assert_eq!(doc(out), parsed);
    // A null description reads as none.
    assert_eq!(doc(with("description", Value::Null)).description, None);
    assert_eq!(doc(with("mode", json!("shadow"))).mode, Mode::Shadow);
}

#[test]
fn each_error_code_is_reported_at_its_path() {
    let long = "x".repeat(1025);
    #[rustfmt::skip]
    let cases: Vec<(&str, Value, &str, ErrorCode)> = vec![
        ("unknown root field", with("owner", json!("me")), "owner", ErrorCode::UnknownField),
        ("unknown odd field", with("a b", json!(1)), "[\"a b\"]", ErrorCode::UnknownField),
        ("unknown condition field", with_condition(json!({"source": "userRoles", "operator": "equals", "value": "a", "negate": true})), "conditions[0].negate", ErrorCode::UnknownField),
        ("missing name", without("name"), "name", ErrorCode::MissingField),
        ("missing conditions", without("conditions"), "conditions", ErrorCode::MissingField),
        ("missing scopes", without("scopes"), "scopes", ErrorCode::MissingField),
        ("missing source", with_condition(json!({"operator": "equals", "value": "a"})), "conditions[0].source", ErrorCode::MissingField),
        ("missing operator", with_condition(json!({"source": "userRoles", "value": "a"})), "conditions[0].operator", ErrorCode::MissingField),
        ("missing value", with_condition(json!({"source": "userRoles", "operator": "equals"})), "conditions[0].value", ErrorCode::MissingField),
        ("root not an object", json!([1]), "", ErrorCode::InvalidType),
        ("name not a string", with("name", json!(5)), "name", ErrorCode::InvalidType),
        ("description not a string", with("description", json!(["d"])), "description", ErrorCode::InvalidType),
        ("conditions not an array", with("conditions", json!({})), "conditions", ErrorCode::InvalidType),
        ("condition not an object", with("conditions", json!(["x"])), "conditions[0]", ErrorCode::InvalidType),
        ("source not a string", with_condition(json!({"source": 1, "operator": "equals", "value": "a"})), "conditions[0].source", ErrorCode::InvalidType),
        ("operator not a string", with_condition(json!({"source": "userRoles", "operator": null, "value": "a"})), "conditions[0].operator", ErrorCode::InvalidType),
        ("claim not a string", with_condition(json!({"source": "jwtClaims", "claim": ["a"], "operator": "equals", "value": "a"})), "conditions[0].claim", ErrorCode::InvalidType),
        ("scopes a string", with("scopes", json!("calendar")), "scopes", ErrorCode::InvalidType),
        ("scopes an object", with("scopes", json!({"all": true})), "scopes", ErrorCode::InvalidType),
        ("scope not a string", with("scopes", json!(["a", 2])), "scopes[1]", ErrorCode::InvalidType),
        ("unknown mode", with("mode", json!("audit")), "mode", ErrorCode::InvalidType),
        ("unknown source", with_condition(json!({"source": "groups", "operator": "equals", "value": "a"})), "conditions[0].source", ErrorCode::UnknownSource),
        ("unknown operator", with_condition(json!({"source": "userRoles", "operator": "startsWith", "value": "a"})), "conditions[0].operator", ErrorCode::UnknownOperator),
        ("operator case", with_condition(json!({"source": "userRoles", "operator": "Equals", "value": "a"})), "conditions[0].operator", ErrorCode::UnknownOperator),
        ("in with a scalar", with_condition(json!({"source": "jwtClaims", "claim": "d", "operator": "in", "value": "eng"})), "conditions[0].value", ErrorCode::InvalidValueType),
        ("in with an empty array", with_condition(json!({"source": "jwtClaims", "claim": "d", "operator": "in", "value": []})), "conditions[0].value", ErrorCode::InvalidValueType),
        ("notIn with an empty array", with_condition(json!({"source": "userRoles", "operator": "notIn", "value": []})), "conditions[0].value", ErrorCode::InvalidValueType),
        ("equals with an array", with_condition(json!({"source": "jwtClaims", "claim": "d", "operator": "equals", "value": ["eng"]})), "conditions[0].value", ErrorCode::InvalidValueType),
        ("contains with an array", with_condition(json!({"source": "jwtClaims", "claim": "d", "operator": "contains", "value": ["eng"]})), "conditions[0].value", ErrorCode::InvalidValueType),
        ("equals null", with_condition(json!({"source": "jwtClaims", "claim": "d", "operator": "equals", "value": null})), "conditions[0].value", ErrorCode::InvalidValueType),
        ("notEquals object", with_condition(json!({"source": "jwtClaims", "claim": "d", "operator": "notEquals", "value": {}})), "conditions[0].value", ErrorCode::InvalidValueType),
        ("in with null", with_condition(json!({"source": "jwtClaims", "claim": "d", "operator": "in", "value": ["a", null]})), "conditions[0].value[1]", ErrorCode::InvalidValueType),
        ("in with nested array", with_condition(json!({"source": "jwtClaims", "claim": "d", "operator": "in", "value": ["a", ["b"]]})), "conditions[0].value[1]", ErrorCode::InvalidValueType),
        ("in with object", with_condition(json!({"source": "jwtClaims", "claim": "d", "operator": "notIn", "value": [{"a": 1}]})), "conditions[0].value[0]", ErrorCode::InvalidValueType),
        ("userRoles number", with_condition(json!({"source": "userRoles", "operator": "equals", "value": 5})), "conditions[0].value", ErrorCode::InvalidValueType),
        ("userRoles bool in list", with_condition(json!({"source": "userRoles", "operator": "in", "value": ["a", true]})), "conditions[0].value[1]", ErrorCode::InvalidValueType),
        ("empty scopes", with("scopes", json!([])), "scopes", ErrorCode::EmptyScopes),
        ("empty scope name", with("scopes", json!(["a", ""])), "scopes[1]", ErrorCode::EmptyScopes),
        ("duplicate scope", with("scopes", json!(["a", "b", "a"])), "scopes[2]", ErrorCode::DuplicateScope),
        ("empty claim path", with_condition(json!({"source": "jwtClaims", "claim": "", "operator": "equals", "value": "a"})), "conditions[0].claim", ErrorCode::InvalidClaimPath),
        ("double dot", with_condition(json!({"source": "jwtClaims", "claim": "a..b", "operator": "equals", "value": "a"})), "conditions[0].claim", ErrorCode::InvalidClaimPath),
        ("trailing dot", with_condition(json!({"source": "jwtClaims", "claim": "a.", "operator": "equals", "value": "a"})), "conditions[0].claim", ErrorCode::InvalidClaimPath),
        ("bad escape", with_condition(json!({"source": "jwtClaims", "claim": r"a\x", "operator": "equals", "value": "a"})), "conditions[0].claim", ErrorCode::InvalidClaimPath),
        ("missing claim", with_condition(json!({"source": "jwtClaims", "operator": "equals", "value": "a"})), "conditions[0].claim", ErrorCode::MissingClaim),
        ("unexpected claim", with_condition(json!({"source": "userRoles", "claim": "roles", "operator": "equals", "value": "a"})), "conditions[0].claim", ErrorCode::UnexpectedClaim),
        ("empty name", with("name", json!("")), "name", ErrorCode::EmptyName),
        ("blank name", with("name", json!(" \t ")), "name", ErrorCode::EmptyName),
        ("long name", with("name", json!("n".repeat(129))), "name", ErrorCode::LimitExceeded),
        ("long description", with("description", json!("d".repeat(1025))), "description", ErrorCode::LimitExceeded),
        ("too many conditions", with("conditions", json!(vec![json!({"source": "userRoles", "operator": "equals", "value": "a"}); 33])), "conditions", ErrorCode::LimitExceeded),
        ("too many values", with_condition(json!({"source": "userRoles", "operator": "in", "value": (0..257).map(|i| format!("r{i}")).collect::<Vec<_>>()})), "conditions[0].value", ErrorCode::LimitExceeded),
        ("long value", with_condition(json!({"source": "jwtClaims", "claim": "d", "operator": "equals", "value": long})), "conditions[0].value", ErrorCode::LimitExceeded),
        ("long value in list", with_condition(json!({"source": "jwtClaims", "claim": "d", "operator": "in", "value": ["a", "b", "c", long]})), "conditions[0].value[3]", ErrorCode::LimitExceeded),
        ("too many scopes", with("scopes", json!((0..257).map(|i| format!("s{i}")).collect::<Vec<_>>())), "scopes", ErrorCode::LimitExceeded),
        ("long scope", with("scopes", json!(["s".repeat(257)])), "scopes[0]", ErrorCode::LimitExceeded),
        ("long claim path", with_condition(json!({"source": "jwtClaims", "claim": "c".repeat(257), "operator": "equals", "value": "a"})), "conditions[0].claim", ErrorCode::LimitExceeded),
        ("deep claim path", with_condition(json!({"source": "jwtClaims", "claim": vec!["c"; 17].join("."), "operator": "equals", "value": "a"})), "conditions[0].claim", ErrorCode::LimitExceeded),
    ];
    let mut failures = Vec::new();
    for (label, input, path, code) in &cases {
        let got = errors_of(input);
        if !got.contains(&((*path).to_owned(), *code)) {
            failures.push(format!(
                "{label}: expected {code:?} at {path:?}, got {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn limits_at_the_boundary_are_accepted() {
    let at_limit = json!({
        "name": "n".repeat(128),
        "description": "d".repeat(1024),
        "conditions": vec![json!({"source": "jwtClaims", "claim": vec!["c"; 16].join("."), "operator": "in",
                                  "value": (0..256).map(|i| format!("{i:0>1024}")).collect::<Vec<_>>()}); 32],
        "scopes": (0..256).map(|i| format!("{i:s>256}")).collect::<Vec<_>>()
    });
    assert_eq!(errors_of(&at_limit), []);
}

#[test]
fn every_problem_is_reported_at_once() {
    let input = json!({
        "name": " ",
        "extra": 1,
        "conditions": [
            {"source": "userRoles", "operator": "equals", "value": "ok"},
            {"source": "jwtClaims", "operator": "in", "value": []},
            {"source": "teams", "operator": "is", "value": "x"}
        ],
        "scopes": ["a", "a", 3],
        "mode": "loud"
    });
    let errors = PolicyDocument::from_json(&input).unwrap_err();
    let got: Vec<(String, ErrorCode)> = errors.iter().map(|e| (e.path.clone(), e.code)).collect();
    let expected = [
        ("extra", ErrorCode::UnknownField),
        ("name", ErrorCode::EmptyName),
        ("conditions[1].claim", ErrorCode::MissingClaim),
        ("conditions[1].value", ErrorCode::InvalidValueType),
        ("conditions[2].source", ErrorCode::UnknownSource),
        ("conditions[2].operator", ErrorCode::UnknownOperator),
        ("scopes[2]", ErrorCode::InvalidType),
        ("scopes[1]", ErrorCode::DuplicateScope),
        ("mode", ErrorCode::InvalidType),
    ];
    for (path, code) in expected {
        assert!(
            got.contains(&(path.to_owned(), code)),
            "{path} {code:?} missing from {got:?}"
        );
    }
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for error in &errors {
        let first = error.message.chars().next().unwrap();
        assert!(
            !first.is_uppercase(),
            "messages are lowercase: {}",
            error.message
        );
        assert!(!error.message.contains("PolicyDocument") && !error.message.contains("Value"));
    }
}

#[test]
fn messages_read_as_sentences() {
    let errors = PolicyDocument::from_json(&with_condition(
        json!({"source": "jwtClaims", "claim": "d", "operator": "in", "value": "eng"}),
    ))
    .unwrap_err();
    assert_eq!(
        errors.0[0].message,
        "operator \"in\" needs a non-empty array of values"
    );
    let json = serde_json::to_value(&errors).unwrap();
    assert_eq!(
        json,
        json!([{"path": "conditions[0].value", "code": "invalid_value_type",
                "message": "operator \"in\" needs a non-empty array of values"}])
    );
    let err = serde_json::from_value::<PolicyDocument>(with("name", json!(""))).unwrap_err();
    assert!(
        err.to_string()
            .contains("name: a policy needs a non-blank name"),
        "{err}"
    );
}

#[test]
fn configured_limits_are_honoured() {
    let tight = Limits {
        max_conditions: 1,
        max_values: 2,
        max_string_len: 3,
        max_scopes: 1,
        ..Limits::default()
    };
    let input = json!({
        "name": "n",
        "conditions": [
            {"source": "jwtClaims", "claim": "d", "operator": "in", "value": ["a", "b", "c"]},
            {"source": "jwtClaims", "claim": "d", "operator": "equals", "value": "long"}
        ],
        "scopes": ["a", "b"]
    });
    let errors = PolicyDocument::from_json_with_limits(&input, &tight).unwrap_err();
    let got: Vec<(String, ErrorCode)> = errors.iter().map(|e| (e.path.clone(), e.code)).collect();
    assert_eq!(
        got,
        [
            ("conditions".to_owned(), ErrorCode::LimitExceeded),
            ("conditions[0].value".to_owned(), ErrorCode::LimitExceeded),
            ("scopes".to_owned(), ErrorCode::LimitExceeded),
        ]
    );
    // The same document built by hand and checked by validate_policy.
    let by_hand = doc(input);
    let errors = validate_policy(&by_hand, &["a".into(), "b".into()], &tight).unwrap_err();
    let got: Vec<(String, ErrorCode)> = errors.iter().map(|e| (e.path.clone(), e.code)).collect();
    assert_eq!(
        got,
        [
            // The app itself offers more scopes than allowed.
            (String::new(), ErrorCode::LimitExceeded),
            ("conditions".to_owned(), ErrorCode::LimitExceeded),
            ("conditions[0].value".to_owned(), ErrorCode::LimitExceeded),
            ("conditions[1].value".to_owned(), ErrorCode::LimitExceeded),
            ("scopes".to_owned(), ErrorCode::LimitExceeded),
        ]
    );
}

#[test]
fn validate_policy_checks_scopes_against_the_app() {
    let parsed = doc(with("scopes", json!(["crm.readonly", "mail.send"])));
    let errors = validate_policy(&parsed, &offered(), &Limits::default()).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors.0[0].path, "scopes[1]");
    assert_eq!(errors.0[0].code, ErrorCode::UnknownScope);
    assert_eq!(
        errors.0[0].message,
        "this app does not offer the scope \"mail.send\""
    );
    // `all` needs no offered scope.
    let all = doc(with("scopes", json!("all")));
    assert!(validate_policy(&all, &[], &Limits::default()).is_ok());
}

#[test]
fn validate_policy_catches_documents_built_by_hand() {
    let bad = PolicyDocument {
        name: "  ".into(),
        description: None,
        conditions: vec![
            Condition::UserRoles(Predicate::Equals(Scalar::Bool(true))),
            Condition::UserRoles(Predicate::In(vec![])),
        ],
        scopes: Scopes::List(vec![]),
        mode: Mode::Enforce,
    };
    let errors = validate_policy(&bad, &offered(), &Limits::default()).unwrap_err();
    let got: Vec<(String, ErrorCode)> = errors.iter().map(|e| (e.path.clone(), e.code)).collect();
    assert_eq!(
        got,
        [
            ("name".to_owned(), ErrorCode::EmptyName),
            (
                "conditions[0].value".to_owned(),
                ErrorCode::InvalidValueType
            ),
            (
                "conditions[1].value".to_owned(),
                ErrorCode::InvalidValueType
            ),
            ("scopes".to_owned(), ErrorCode::EmptyScopes),
        ]
    );
    let compiled = PolicySet::compile(&offered(), vec![("p".into(), bad)], &Limits::default());
    assert!(compiled.is_err(), "compile validates too");
}

#[test]
fn compile_rejects_duplicate_names_ignoring_case() {
    let a = doc(with("name", json!("Viewers")));
    let b = doc(with("name", json!(" viewers ")));
    let c = doc(with("name", json!("Editors")));
    let errors = PolicySet::compile(
        &offered(),
        vec![("p2".into(), b), ("p1".into(), a), ("p3".into(), c)],
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(errors.len(), 1);
    let error = &errors.0[0];
    assert_eq!(error.code, ErrorCode::DuplicateName);
    assert_eq!(error.path, "name");
    assert_eq!(
        error.policy_id.as_deref(),
        Some("p2"),
        "reported on the later id"
    );
    assert_eq!(
        serde_json::to_value(error).unwrap()["policyId"],
        json!("p2")
    );
}

#[test]
fn compile_rejects_duplicate_ids_unknown_scopes_and_too_many_policies() {
    let one = doc(valid());
    let other = doc(with("name", json!("Other")));
    let errors = PolicySet::compile(
        &offered(),
        vec![("p".into(), one.clone()), ("p".into(), other)],
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.code == ErrorCode::DuplicateName && e.path.is_empty())
    );

    let errors = PolicySet::compile(
        &["calendar.readonly".into()],
        vec![("p".into(), one.clone())],
        &Limits::default(),
    )
    .unwrap_err();
    let e = &errors.0[0];
    assert_eq!(
        (e.path.as_str(), e.code, e.policy_id.as_deref()),
        ("scopes[1]", ErrorCode::UnknownScope, Some("p"))
    );

    let limits = Limits {
        max_policies: 1,
        ..Limits::default()
    };
    let two = vec![
        ("a".into(), one.clone()),
        ("b".into(), doc(with("name", json!("B")))),
    ];
    let errors = PolicySet::compile(&offered(), two, &limits).unwrap_err();
    assert_eq!(errors.0[0].code, ErrorCode::LimitExceeded);
    assert_eq!(errors.0[0].path, "");

    let many: Vec<String> = (0..257).map(|i| format!("s{i}")).collect();
    let errors = PolicySet::compile(&many, vec![], &Limits::default()).unwrap_err();
    assert_eq!(errors.0[0].code, ErrorCode::LimitExceeded);
    // Duplicates in the app's list are ignored, so 256 distinct scopes are fine.
    let mut doubled: Vec<String> = (0..256).map(|i| format!("s{i}")).collect();
    doubled.extend(doubled.clone());
    let set = PolicySet::compile(&doubled, vec![], &Limits::default()).unwrap();
    assert_eq!(set.offered_scopes().len(), 256);
}

#[test]
fn a_hostile_document_gets_a_bounded_report() {
    let mut object = serde_json::Map::new();
    for i in 0..10_000 {
        object.insert(format!("field{i}"), json!(i));
    }
    let errors = PolicyDocument::from_json(&Value::Object(object)).unwrap_err();
    assert!(errors.len() <= 101, "{}", errors.len());
    assert_eq!(errors.0.last().unwrap().code, ErrorCode::LimitExceeded);

    let huge_list = with_condition(
        json!({"source": "userRoles", "operator": "in", "value": vec![json!(null); 100_000]}),
    );
    let errors: ValidationErrors = PolicyDocument::from_json(&huge_list).unwrap_err();
    assert!(errors.len() <= 101);
}
