//! The command line against a running server: policy tests, policy as code, the simulator,
//! migrations, and exit codes (0 success, 1 failure, 2 usage, 3 denial or failed expectation).

use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::support::{Backend, TestServer};

pub(crate) async fn portcullis(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(&args)
            .env_remove("PORTCULLIS_URL")
            .env_remove("PORTCULLIS_ADMIN_KEY")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

pub(crate) fn remote(s: &TestServer) -> Vec<String> {
    vec![
        "--url".into(),
        s.url.clone(),
        "--admin-key".into(),
        s.admin_key.clone(),
    ]
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const POLICIES: &str = r#"
roles:
  - name: Viewer
    description: reads
  - name: Editor
tenants:
  - id: acme
    name: Acme
apps:
  - id: calendar
    name: Calendar
    type: oauth
    clientId: cal-client
    clientSecret: cal-secret
    authorizationUrl: https://provider.example/authorize
    tokenUrl: https://provider.example/token
    scopes:
      - name: calendar.readonly
      - name: calendar
    defaultScopes: [calendar.readonly]
    policies:
      - name: Viewers read
        conditions:
          - source: userRoles
            operator: equals
            value: Viewer
        scopes: [calendar.readonly]
      - name: Editors write
        conditions:
          - source: userRoles
            operator: contains
            value: Editor
          - source: jwtClaims
            claim: department
            operator: in
            value: [eng, ops]
        scopes: all
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_is_idempotent_and_dry_run_changes_nothing() {
    let s = TestServer::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.yaml");
    std::fs::write(&file, POLICIES).unwrap();
    let apply = |extra: &[&str]| {
        let mut args: Vec<String> = vec!["apply".into(), "-f".into(), file.display().to_string()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.extend(remote(&s));
        args
    };
    // A dry run against an empty server plans everything and changes nothing.
    let out = portcullis(apply(&["--dry-run"])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = stdout(&out);
    assert!(
        plan.contains("+ app calendar")
            && plan.contains("+ policy calendar/Viewers read")
            && plan.contains("+ role Viewer"),
        "{plan}"
    );
    assert_eq!(s.get("/v1/mgmt/outbound-apps/calendar").await.0, 404);
    // Apply.
    let out = portcullis(apply(&[])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, policies) = s.get("/v1/mgmt/outbound-apps/calendar/policies").await;
    assert_eq!(policies["items"].as_array().unwrap().len(), 2);
    let (_, app) = s.get("/v1/mgmt/outbound-apps/calendar").await;
    let revision = app["revision"].clone();
    // Again: nothing to change, nothing changed.
    let out = portcullis(apply(&["--output", "json"])).await;
    assert!(out.status.success());
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["changes"], json!([]), "{report}");
    assert_eq!(
        s.get("/v1/mgmt/outbound-apps/calendar").await.1["revision"],
        revision
    );
    // Edit the file: one policy changes, one goes away, the app drops a scope only it named.
    let edited = POLICIES
        .replace("      - name: Editors write\n        conditions:\n          - source: userRoles\n            operator: contains\n            value: Editor\n          - source: jwtClaims\n            claim: department\n            operator: in\n            value: [eng, ops]\n        scopes: all\n", "")
        .replace("      - name: calendar\n", "")
        .replace("value: Viewer\n        scopes: [calendar.readonly]", "value: Editor\n        scopes: [calendar.readonly]");
    std::fs::write(&file, edited).unwrap();
    let out = portcullis(apply(&["--dry-run"])).await;
    let plan = stdout(&out);
    assert!(plan.contains("- policy calendar/Editors write"), "{plan}");
    assert!(
        plan.contains("~ policy calendar/Viewers read (conditions)"),
        "{plan}"
    );
    assert!(plan.contains("~ app calendar (scopes)"), "{plan}");
    assert_eq!(
        s.get("/v1/mgmt/outbound-apps/calendar/policies").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "dry run changed nothing"
    );
    let out = portcullis(apply(&[])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, policies) = s.get("/v1/mgmt/outbound-apps/calendar/policies").await;
    assert_eq!(policies["items"].as_array().unwrap().len(), 1);
    assert_eq!(policies["items"][0]["conditions"][0]["value"], "Editor");
    assert_eq!(
        s.get("/v1/mgmt/outbound-apps/calendar").await.1["scopes"],
        json!([{"name": "calendar.readonly"}])
    );
    let out = portcullis(apply(&[])).await;
    assert!(
        stdout(&out).contains("nothing to change"),
        "{}",
        stdout(&out)
    );
}

/// `portcullis admin-keys`: a key made with the scopes it needs works for them and no more, is
/// listed with them, and stops working once revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_keys_are_created_listed_and_revoked_from_the_command_line() {
    let s = TestServer::start(Backend::Sqlite).await;
    let mut args: Vec<String> = [
        "admin-keys",
        "create",
        "--name",
        "auditor",
        "--scope",
        "read",
        "--scope",
        "audit",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(remote(&s));
    args.extend(["--output".to_owned(), "json".to_owned()]);
    let out = portcullis(args).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(created["scopes"], json!(["read", "audit"]));
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let with_key = |method: reqwest::Method, path: &str| {
        s.http
            .request(method, format!("{}{path}", s.url))
            .bearer_auth(&key)
            .json(&json!({"name": "Nope"}))
            .send()
    };
    assert_eq!(
        with_key(reqwest::Method::GET, "/v1/mgmt/audit")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        with_key(reqwest::Method::POST, "/v1/mgmt/roles")
            .await
            .unwrap()
            .status(),
        403
    );

    let mut list = vec!["admin-keys".to_owned(), "list".to_owned()];
    list.extend(remote(&s));
    let out = portcullis(list).await;
    assert!(out.status.success());
    let listed = stdout(&out);
    assert!(
        listed.contains(&id) && listed.contains("[read audit]"),
        "{listed}"
    );
    assert!(!listed.contains(&key));

    let mut revoke = vec!["admin-keys".to_owned(), "revoke".to_owned(), id.clone()];
    revoke.extend(remote(&s));
    let out = portcullis(revoke).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        with_key(reqwest::Method::GET, "/v1/mgmt/audit")
            .await
            .unwrap()
            .status(),
        401
    );
    // A scope that does not exist is refused by the server, and the command fails.
    let mut bad: Vec<String> = ["admin-keys", "create", "--name", "x", "--scope", "root"]
        .map(str::to_owned)
        .to_vec();
    bad.extend(remote(&s));
    assert!(!portcullis(bad).await.status.success());
}

/// The upgrade path of the README: users made before identity links existed are linked to their
/// issuer with one `apply -f`, keeping every field the file does not name; applying it again
/// changes nothing; the linked user's token is the directory user from the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_links_existing_users_to_their_identities() {
    let s = TestServer::start(Backend::Sqlite).await;
    let idp = crate::support::Idp::start().await;
    s.trust(&idp).await;
    s.must_post("/v1/mgmt/roles", json!({"name": "Viewer"}))
        .await;
    s.must_post(
        "/v1/mgmt/users",
        json!({"id": "alice", "email": "alice@example.com", "roles": ["Viewer"]}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({"id": "crm", "name": "CRM", "type": "apiKey"}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/crm/api-keys",
        json!({"apiKey": "key-of-alice", "userId": "alice"}),
    )
    .await;
    let alice = idp.token("alice");
    // Not linked yet: alice's token is an external subject, without her key.
    assert_eq!(s.fetch(Some(&alice), "crm", json!({})).await.0, 404);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.yaml");
    std::fs::write(
        &file,
        format!(
            "users:\n  - id: alice\n    identities: [{{issuer: \"{}\", subject: alice}}]\n  - id: bob\n    identities: [{{issuer: \"{}\", subject: bob}}]\n",
            idp.issuer, idp.issuer
        ),
    )
    .unwrap();
    let mut args: Vec<String> = vec!["apply".into(), "-f".into(), file.display().to_string()];
    args.extend(remote(&s));
    let out = portcullis(args.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = stdout(&out);
    assert!(
        plan.contains("~ user alice (identities)") && plan.contains("+ user bob"),
        "{plan}"
    );
    let (_, linked) = s.get("/v1/mgmt/users/alice").await;
    assert_eq!(linked["identities"], idp.identity("alice"));
    assert_eq!(
        linked["roles"],
        json!(["Viewer"]),
        "what the file omits is kept"
    );
    assert_eq!(linked["email"], "alice@example.com");
    let (st, body, _) = s.fetch(Some(&alice), "crm", json!({})).await;
    assert_eq!(
        (st, body["token"]["apiKey"].as_str()),
        (200, Some("key-of-alice")),
        "{body}"
    );
    let out = portcullis(args).await;
    assert!(
        stdout(&out).contains("nothing to change"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_tests_pass_or_fail_with_a_readable_diff() {
    let s = TestServer::start(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.yaml");
    std::fs::write(&file, POLICIES).unwrap();
    let mut args = vec!["apply".into(), "-f".into(), file.display().to_string()];
    args.extend(remote(&s));
    assert!(portcullis(args).await.status.success());
    s.must_post("/v1/mgmt/users", json!({"id": "vera", "roles": ["Viewer"]}))
        .await;
    let cases = dir.path().join("cases.yaml");
    std::fs::write(
        &cases,
        r#"
cases:
  - name: viewers read the calendar
    app: calendar
    user: vera
    scopes: [calendar.readonly]
    expect: allow
    expectAllowedScopes: [calendar.readonly]
    expectDecidingPolicies: [Viewers read]
  - name: viewers do not write
    app: calendar
    user: vera
    scopes: [calendar]
    expect: deny
  - name: engineers who edit write
    app: calendar
    roles: [Editor]
    claims: {department: eng}
    scopes: [calendar]
    expect: allow
  - name: sales editors do not
    app: calendar
    roles: [Editor]
    claims: {department: sales}
    scopes: [calendar]
    expect: deny
"#,
    )
    .unwrap();
    let test = |f: &std::path::Path, extra: &[&str]| {
        let mut args: Vec<String> = vec!["policy".into(), "test".into(), f.display().to_string()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.extend(remote(&s));
        args
    };
    let out = portcullis(test(&cases, &[])).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("4 passed, 0 failed"),
        "{}",
        stdout(&out)
    );
    // A wrong expectation: exit 3, and the diff says what was expected and what happened.
    let failing = dir.path().join("failing.yaml");
    std::fs::write(
        &failing,
        "cases:\n  - name: sales editors write\n    app: calendar\n    roles: [Editor]\n    claims: {department: sales}\n    scopes: [calendar]\n    expect: allow\n",
    )
    .unwrap();
    let out = portcullis(test(&failing, &[])).await;
    assert_eq!(out.status.code(), Some(3));
    let text = stdout(&out);
    assert!(text.contains("FAIL  sales editors write"), "{text}");
    assert!(text.contains("expected allow, got deny"), "{text}");
    assert!(
        text.contains("failed (notSatisfied), saw \"sales\""),
        "{text}"
    );
    let out = portcullis(test(&failing, &["--output", "json"])).await;
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["failed"], 1);
    // A file that is not a case file: a failure (1), not a denial.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "cases: 7\n").unwrap();
    assert_eq!(portcullis(test(&bad, &[])).await.status.code(), Some(1));
}

/// `examples/policies.yaml` applies, and `examples/policy-cases.yaml` holds against it: the
/// files the README shows stay true.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_policies_apply_and_their_cases_pass() {
    let s = TestServer::start(Backend::Sqlite).await;
    let examples = crate::support::provider::repo_root().join("examples");
    let run = |args: &[&str]| {
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.extend(remote(&s));
        portcullis(args)
    };
    let policies = examples.join("policies.yaml").display().to_string();
    let out = run(&["apply", "-f", &policies]).await;
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["apply", "-f", &policies, "--output", "json"]).await;
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        report["changes"],
        json!([]),
        "applying twice changes nothing"
    );
    let cases = examples.join("policy-cases.yaml").display().to_string();
    let out = run(&["policy", "test", &cases]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("7 passed, 0 failed"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_exits_3_when_denied() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({"id": "crm", "name": "CRM", "type": "apiKey"}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/crm/policies",
        json!({"name": "Admins", "conditions": [{"source": "userRoles", "operator": "contains", "value": "Admin"}], "scopes": "all"}),
    )
    .await;
    let mut args: Vec<String> = vec![
        "simulate".into(),
        "--app".into(),
        "crm".into(),
        "--roles".into(),
        "Admin,Viewer".into(),
    ];
    args.extend(remote(&s));
    let out = portcullis(args).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).starts_with("allow"), "{}", stdout(&out));
    let mut args: Vec<String> = vec![
        "simulate".into(),
        "--app".into(),
        "crm".into(),
        "--roles".into(),
        "Viewer".into(),
    ];
    args.extend(remote(&s));
    let out = portcullis(args).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout(&out).contains("Admins [enforce] no match"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_usage_errors_have_their_own_codes() {
    // No server there: a failure.
    let out = portcullis(vec![
        "keys".into(),
        "status".into(),
        "--url".into(),
        "http://127.0.0.1:9".into(),
        "--admin-key".into(),
        "k".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    // No admin key: a failure that says what is missing.
    let out = portcullis(vec!["keys".into(), "status".into()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin key"));
    // Unknown subcommand: usage.
    let out = portcullis(vec!["frobnicate".into()]).await;
    assert_eq!(out.status.code(), Some(2));
    // A wrong admin key: a failure naming the server's answer.
    let s = TestServer::start(Backend::Sqlite).await;
    let out = portcullis(vec![
        "keys".into(),
        "status".into(),
        "--url".into(),
        s.url.clone(),
        "--admin-key".into(),
        "wrong".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_prepares_a_database_and_serve_reports_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = portcullis(vec![
        "migrate".into(),
        "--data-dir".into(),
        dir.path().display().to_string(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("portcullis.db").exists());
    let db = crate::support::pg::FreshDatabase::create().await;
    let out = portcullis(vec![
        "migrate".into(),
        "--database-url".into(),
        db.url.clone(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "listen = 7\n").unwrap();
    let out = portcullis(vec![
        "serve".into(),
        "--config".into(),
        config.display().to_string(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml"));
}

/// `portcullis keys rotate-signing` makes a new signing key active and keeps the old one listed
/// as retired; `portcullis keys signing` shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_rotated_from_the_command_line() {
    let s = TestServer::start(Backend::Sqlite).await;
    let mut args: Vec<String> = vec!["keys".into(), "rotate-signing".into()];
    args.extend(remote(&s));
    let out = portcullis(args).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert_eq!(text.matches("[retired]").count(), 1, "{text}");
    assert_eq!(text.matches("[active]").count(), 1, "{text}");
    assert!(text.contains("ES256"), "{text}");
    let mut args: Vec<String> = vec!["keys".into(), "signing".into()];
    args.extend(remote(&s));
    args.extend(["--output".to_owned(), "json".to_owned()]);
    let out = portcullis(args).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(keys.as_array().map(Vec::len), Some(2), "{keys}");
    assert_eq!(keys[1]["state"], "active");
}
