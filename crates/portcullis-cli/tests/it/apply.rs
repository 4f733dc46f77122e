//! Policy as code that cannot half-apply, on both backends: the whole file is checked on the
//! server before anything changes (the dry run included), every problem named with its place in
//! the file; a failed apply changes nothing and is not recorded; a good one is one transaction and
//! one management audit event; applying the same file twice changes nothing.

use serde_json::{Value, json};

use crate::both_backends;
use crate::cli::{portcullis, remote, stdout};
use crate::support::{Backend, TestServer};

/// Two apps; the second app's policy has an unknown operator.
const BROKEN: &str = r#"
roles:
  - name: Viewer
apps:
  - id: calendar
    name: Calendar
    type: oauth
    clientId: cal-client
    clientSecret: s3cret
    authorizationUrl: https://provider.example/authorize
    tokenUrl: https://provider.example/token
    scopes: [{name: calendar.readonly}]
    policies:
      - name: Viewers read
        conditions: [{source: userRoles, operator: equals, value: Viewer}]
        scopes: [calendar.readonly]
  - id: crm
    name: CRM
    type: oauth
    clientId: crm-client
    clientSecret: s3cret
    authorizationUrl: https://provider.example/authorize
    tokenUrl: https://provider.example/token
    scopes: [{name: contacts}]
    policies:
      - name: Sales
        conditions: [{source: userRoles, operator: resembles, value: Sales}]
        scopes: [contacts, deals]
"#;

async fn apply_file(s: &TestServer, text: &str, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.yaml");
    std::fs::write(&file, text).unwrap();
    let mut args: Vec<String> = vec!["apply".into(), "-f".into(), file.display().to_string()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.extend(remote(s));
    portcullis(args).await
}

async fn apply_events(s: &TestServer) -> usize {
    let (status, page) = s.get("/v1/mgmt/audit?kind=management&action=apply").await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().len()
}

async fn a_bad_file_changes_nothing_and_says_where(backend: Backend) {
    let s = TestServer::start(backend).await;
    for extra in [&["--dry-run"][..], &[]] {
        let out = apply_file(&s, BROKEN, extra).await;
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {}", stdout(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("apps[1].policies[0].conditions[0].operator"),
            "{extra:?}: {err}"
        );
        // The scope the app does not offer is reported too, with its place.
        assert!(err.contains("apps[1].policies[0].scopes"), "{err}");
        assert!(!err.contains("apps[0]"), "{err}");
    }
    assert_eq!(s.get("/v1/mgmt/outbound-apps/calendar").await.0, 404);
    assert_eq!(s.get("/v1/mgmt/roles/Viewer").await.0, 404);
    assert_eq!(apply_events(&s).await, 0);

    // Problems only the database finds (a user holding a role that does not exist) roll the
    // whole transaction back too.
    let (status, body) = s
        .post(
            "/v1/mgmt/apply",
            json!({
                "roles": [{"name": "Viewer"}],
                "users": [{"id": "alice", "roles": ["Nope"]}],
            }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_apply");
    assert_eq!(s.get("/v1/mgmt/roles/Viewer").await.0, 404);
    assert_eq!(s.get("/v1/mgmt/users/alice").await.0, 404);
    assert_eq!(apply_events(&s).await, 0);

    // A refusal that names its field is placed under the entry's own place in the file.
    let (status, body) = s
        .post(
            "/v1/mgmt/apply",
            json!({
                "users": [
                    {"id": "bob"},
                    {"id": "carol", "identities": [
                        {"issuer": "https://idp.example", "subject": "c"},
                        {"issuer": "https://idp.example", "subject": "c"},
                    ]},
                ],
                "apps": [{
                    "id": "crm", "name": "CRM", "type": "oauth", "clientId": "c",
                    "authorizationUrl": "https://provider.example/authorize",
                    "scopes": [{"name": "contacts"}],
                }],
            }),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let paths: Vec<&str> = body["details"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["users[1].identities[1].issuer", "apps[0].tokenUrl"],
        "{body}"
    );
    assert_eq!(s.get("/v1/mgmt/users/bob").await.0, 404);
    assert_eq!(apply_events(&s).await, 0);
}

async fn a_good_file_applies_once_and_again_changes_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    let fixed = BROKEN
        .replace("operator: resembles", "operator: equals")
        .replace("scopes: [contacts, deals]", "scopes: [contacts]");
    let out = apply_file(&s, &fixed, &["--dry-run"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("+ policy crm/Sales"),
        "{}",
        stdout(&out)
    );
    assert_eq!(s.get("/v1/mgmt/outbound-apps/crm").await.0, 404);

    let out = apply_file(&s, &fixed, &["--output", "json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["changes"].as_array().unwrap().len(), 5, "{report}");
    assert_eq!(s.get("/v1/mgmt/outbound-apps/crm").await.0, 200);
    let (_, app) = s.get("/v1/mgmt/outbound-apps/crm").await;
    assert_eq!(app["hasClientSecret"], true);
    let revision = app["revision"].clone();
    // One apply, one management event, naming its actor and every change.
    let (_, events) = s.get("/v1/mgmt/audit?kind=management&action=apply").await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1);
    assert_eq!(events["items"][0]["actorName"], "bootstrap");
    assert_eq!(
        events["items"][0]["change"]["changes"]
            .as_array()
            .unwrap()
            .len(),
        5
    );

    // Again: nothing to change, nothing written, nothing recorded.
    let out = apply_file(&s, &fixed, &[]).await;
    assert!(
        stdout(&out).contains("nothing to change"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        s.get("/v1/mgmt/outbound-apps/crm").await.1["revision"],
        revision
    );
    assert_eq!(apply_events(&s).await, 1);

    // A key that may change policies but not apps cannot apply apps; its dry run works.
    let (_, key) = s
        .post(
            "/v1/mgmt/admin-keys",
            json!({"name": "policy-editor", "scopes": ["policies"]}),
        )
        .await;
    let key = key["key"].as_str().unwrap();
    let call = |dry: bool| {
        s.http
            .post(format!("{}/v1/mgmt/apply", s.url))
            .bearer_auth(key)
            .json(
                &json!({"dryRun": dry, "apps": [{"id": "crm", "name": "CRM 2", "type": "oauth"}]}),
            )
            .send()
    };
    let refused = call(false).await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope", "{body}");
    assert_eq!(
        call(true).await.unwrap().status(),
        400,
        "an incomplete app is a problem"
    );
}

both_backends!(
    a_bad_file_changes_nothing_and_says_where,
    a_good_file_applies_once_and_again_changes_nothing,
);
