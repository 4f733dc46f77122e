//! What-if replay: real decisions are recorded with what the policies read (roles, claims), and
//! a draft policy set re-decides them through `POST .../policies/replay` — who would lose or gain
//! which scopes — without changing anything. And the CLI's `portcullis policy replay`.

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Idp, TestServer};

/// An app with two policies, and recorded decisions: two Viewers and an Editor allowed, someone
/// with no role denied, a Viewer denied `write`.
async fn history(backend: Backend) -> (TestServer, Idp) {
    let s = TestServer::start_with(backend, |env| {
        env.insert(
            "PORTCULLIS_AUDIT_NEVER_STORE_CLAIMS".into(),
            "email, employee_id".into(),
        );
    })
    .await;
    let idp = Idp::start().await;
    s.trust(&idp).await;
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({"id": "docs", "name": "Docs", "type": "oauth", "clientId": "c", "clientSecret": "s",
            "authorizationUrl": "https://provider.example/authorize",
            "tokenUrl": "https://provider.example/token",
            "scopes": [{"name": "read"}, {"name": "write"}]}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/docs/policies",
        json!({"name": "Readers", "conditions": [{"source": "userRoles", "operator": "in", "value": ["Viewer", "Editor"]}], "scopes": ["read"]}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/docs/policies",
        json!({"name": "Writers", "conditions": [{"source": "userRoles", "operator": "equals", "value": "Editor"}], "scopes": "all"}),
    )
    .await;
    let check = |sub: &str, roles: Value, scopes: &[&str]| {
        let token = idp.token_with(
            portcullis_crypto::jws::Algorithm::ES256,
            sub,
            json!({"roles": roles, "email": format!("{sub}@example.com"), "dept": "eng"}),
        );
        let body = json!({ "scopes": scopes });
        let url = format!("{}/v1/outbound/apps/docs/check", s.url);
        let http = s.http.clone();
        async move {
            let resp = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        }
    };
    // Allowed by the policies (then not connected: the policies ran all the same).
    assert_eq!(check("v1", json!(["Viewer"]), &["read"]).await, 404);
    assert_eq!(check("v2", json!(["Viewer"]), &["read"]).await, 404);
    assert_eq!(
        check("e1", json!(["Editor"]), &["read", "write"]).await,
        404
    );
    // Denied.
    assert_eq!(check("x1", json!([]), &["read"]).await, 403);
    assert_eq!(check("v1", json!(["Viewer"]), &["write"]).await, 403);
    s.flush_audit().await;
    (s, idp)
}

async fn replay(s: &TestServer, body: Value) -> (u16, Value) {
    s.post("/v1/mgmt/outbound-apps/docs/policies/replay", body)
        .await
}

fn readers(roles: Value) -> Value {
    json!({"name": "Readers", "conditions": [{"source": "userRoles", "operator": "in", "value": roles}], "scopes": ["read"]})
}

fn writers() -> Value {
    json!({"name": "Writers", "conditions": [{"source": "userRoles", "operator": "equals", "value": "Editor"}], "scopes": "all"})
}

async fn a_draft_is_replayed_against_recorded_decisions(backend: Backend) {
    let (s, idp) = history(backend).await;
    let (v1, v2, x1) = (
        idp.principal("v1"),
        idp.principal("v2"),
        idp.principal("x1"),
    );

    // Each decision carries what the policies read, minus the claims never to be stored.
    let (_, audit) = s.get("/v1/mgmt/audit?appId=docs&limit=10").await;
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "{audit}");
    let newest = &items[0]["inputs"];
    assert_eq!(newest["roles"], json!(["Viewer"]), "{newest}");
    assert_eq!(newest["allowed"], false);
    assert_eq!(newest["claims"]["dept"], "eng");
    assert_eq!(newest["claims"]["sub"], "v1");
    assert!(newest["claims"].get("email").is_none(), "{newest}");

    // The same set: nothing changes.
    let (status, same) = replay(
        &s,
        json!({"policies": [readers(json!(["Viewer", "Editor"])), writers()]}),
    )
    .await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(
        (same["replayed"].as_u64(), same["changed"].as_u64()),
        (Some(5), Some(0))
    );
    assert_eq!(same["complete"], true);

    // Narrowing "Readers" to Editors: both Viewers lose read; nothing else moves.
    let (status, narrowed) = replay(
        &s,
        json!({"policies": [readers(json!(["Editor"])), writers()]}),
    )
    .await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(narrowed["appId"], "docs");
    assert_eq!(narrowed["changed"], 2, "{narrowed}");
    assert_eq!(narrowed["newlyDenied"], 2);
    assert_eq!(narrowed["newlyAllowed"], 0);
    assert_eq!(narrowed["losing"]["users"], 2);
    let mut losers: Vec<String> = narrowed["losing"]["first"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            assert_eq!(u["scopes"], json!(["read"]), "{u}");
            assert_eq!(u["decisions"], 1, "{u}");
            u["userId"].as_str().unwrap().to_owned()
        })
        .collect();
    losers.sort();
    let mut expected = vec![v1.clone(), v2];
    expected.sort();
    assert_eq!(losers, expected);
    assert_eq!(narrowed["gaining"], json!({"users": 0, "first": []}));
    assert_eq!(
        narrowed["scopes"],
        json!({"read": {"losing": 2, "gaining": 0}})
    );

    // No policy at all (an open app): the denied ones would get what they asked; `limit` cuts
    // the list, not the count.
    let (status, open) = replay(&s, json!({"policies": [], "limit": 1})).await;
    assert_eq!(status, 200, "{open}");
    assert_eq!(open["newlyAllowed"], 2, "{open}");
    assert_eq!(open["gaining"]["users"], 2);
    assert_eq!(open["gaining"]["first"].as_array().unwrap().len(), 1);
    assert_eq!(open["scopes"]["write"]["gaining"], 1);
    assert_eq!(open["scopes"]["read"]["gaining"], 1);
    let gainer = open["gaining"]["first"][0]["userId"].as_str().unwrap();
    assert!(gainer == v1 || gainer == x1, "{open}");

    // A claim condition reads the recorded claims.
    let by_dept = json!({"name": "Engineers", "conditions": [{"source": "jwtClaims", "claim": "dept", "operator": "equals", "value": "eng"}], "scopes": "all"});
    let (_, engineers) = replay(&s, json!({"policies": [by_dept]})).await;
    assert_eq!(engineers["newlyAllowed"], 2, "{engineers}");
    assert_eq!(engineers["changed"], 2);

    // A window before the decisions: nothing to replay.
    let (status, empty) = replay(
        &s,
        json!({"policies": [], "since": "2020-01-01T00:00:00Z", "until": "2020-01-08T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["replayed"], 0);
}

async fn a_bad_draft_is_refused_and_changes_nothing(backend: Backend) {
    let (s, _idp) = history(backend).await;
    let (_, before) = s.get("/v1/mgmt/outbound-apps/docs/policies").await;
    let bad_policy = json!({"name": "Bad", "conditions": [{"source": "userRoles", "operator": "near", "value": "Viewer"}], "scopes": ["read"]});
    let cases = [
        (
            json!({"policies": [writers(), bad_policy]}),
            "invalid_policy",
            Some("policies[1]"),
        ),
        (
            json!({"policies": [json!({"name": "Unknown scope", "conditions": [], "scopes": ["delete"]})]}),
            "invalid_policy",
            Some("policies[0]"),
        ),
        (
            json!({"policies": [writers(), writers()]}),
            "invalid_policy",
            None,
        ),
        (
            json!({"policies": [7]}),
            "invalid_request",
            Some("policies[0]"),
        ),
        (
            json!({"policies": [json!({"id": "pol_1", "name": "x", "conditions": [], "scopes": "all"})]}),
            "invalid_policy",
            Some("policies[0]"),
        ),
        (
            json!({"policies": [], "since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
            "invalid_request",
            Some("since"),
        ),
        (
            json!({"policies": [], "limit": 0}),
            "invalid_request",
            Some("limit"),
        ),
        (json!({"policies": {}}), "invalid_body", None),
        (json!({"policies": [], "extra": 1}), "invalid_body", None),
    ];
    for (body, code, mentions) in cases {
        let (status, err) = replay(&s, body.clone()).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"], code, "{body}: {err}");
        if let Some(m) = mentions {
            assert!(
                err["message"].as_str().unwrap().contains(m),
                "{body}: {err}"
            );
        }
    }
    let (status, err) = s
        .post(
            "/v1/mgmt/outbound-apps/nope/policies/replay",
            json!({"policies": []}),
        )
        .await;
    assert_eq!((status, err["error"].as_str()), (404, Some("not_found")));
    let (_, after) = s.get("/v1/mgmt/outbound-apps/docs/policies").await;
    assert_eq!(before, after);
}

/// `portcullis policy replay` reads the app's policies from an apply file, as a review step
/// before `portcullis apply`: who would lose access, and exit 3 with `--fail-on-loss`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_replays_an_apply_file_before_it_is_applied() {
    let (s, idp) = history(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.yaml");
    std::fs::write(
        &file,
        "apps:\n  - id: docs\n    policies:\n      - name: Readers\n        conditions:\n          - source: userRoles\n            operator: equals\n            value: Editor\n        scopes: [read]\n      - name: Writers\n        conditions:\n          - source: userRoles\n            operator: equals\n            value: Editor\n        scopes: all\n",
    )
    .unwrap();
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "policy",
            "replay",
            "-f",
            file.to_str().unwrap(),
            "--app",
            "docs",
        ]
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect();
        a.extend(crate::cli::remote(&s));
        a
    };
    let out = crate::cli::portcullis(args(&[])).await;
    let text = crate::cli::stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("5 decisions replayed; 2 would change (2 newly denied, 0 newly allowed)"),
        "{text}"
    );
    assert!(text.contains("Would lose access (2 users):"), "{text}");
    assert!(
        text.contains(&format!("{} — read (1 decision)", idp.principal("v1"))),
        "{text}"
    );

    let out = crate::cli::portcullis(args(&["--fail-on-loss", "--output", "json"])).await;
    assert_eq!(out.status.code(), Some(3));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["losing"]["users"], 2, "{answer}");

    // The policies are untouched: replay is not apply.
    let (_, policies) = s.get("/v1/mgmt/outbound-apps/docs/policies").await;
    assert_eq!(policies["items"][0]["conditions"][0]["operator"], "in");

    // A file without the app: a clear error.
    let out = crate::cli::portcullis(vec![
        "policy".into(),
        "replay".into(),
        "-f".into(),
        file.display().to_string(),
        "--app".into(),
        "crm".into(),
        "--admin-key".into(),
        "k".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the file lists no app \"crm\""));
}

both_backends!(
    a_draft_is_replayed_against_recorded_decisions,
    a_bad_draft_is_refused_and_changes_nothing
);
