//! The access control plane: every outcome of a token request, decided by policy in real time,
//! explained, audited.

use serde_json::{Value, json};
use url::Url;

use crate::both_backends;
use crate::support::{Backend, Idp, Provider, TestServer};

struct World {
    s: TestServer,
    idp: Idp,
    p: Provider,
}

const SCOPES: [&str; 3] = ["calendar.readonly", "calendar", "contacts.readonly"];

/// A server trusting an IdP, an OAuth app `cal` on the stand-in provider, roles Viewer and
/// Editor, users alice (Viewer, connected with `calendar.readonly`) and bob (Editor globally,
/// Viewer in tenant acme, connected with every scope).
async fn world(backend: Backend) -> World {
    let s = TestServer::start(backend).await;
    let idp = Idp::start().await;
    let p = Provider::start().await;
    s.trust(&idp).await;
    s.must_post("/v1/mgmt/outbound-apps", p.app("cal", &SCOPES))
        .await;
    for r in ["Viewer", "Editor", "Tenant Admin"] {
        s.must_post("/v1/mgmt/roles", json!({"name": r})).await;
    }
    s.must_post("/v1/mgmt/tenants", json!({"id": "acme", "name": "Acme"}))
        .await;
    s.must_post(
        "/v1/mgmt/users",
        json!({"id": "alice", "identities": idp.identity("alice"), "email": "alice@example.com", "roles": ["Viewer"]}),
    )
    .await;
    s.must_post("/v1/mgmt/users", json!({"id": "bob", "identities": idp.identity("bob"), "roles": ["Editor"], "tenants": [{"tenantId": "acme", "roles": ["Viewer"]}]})).await;
    s.connect(&idp.token("alice"), "cal", &["calendar.readonly"])
        .await;
    s.connect(&idp.token("bob"), "cal", &SCOPES).await;
    World { s, idp, p }
}

async fn policy(s: &TestServer, app: &str, body: Value) -> String {
    s.must_post(&format!("/v1/mgmt/outbound-apps/{app}/policies"), body)
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn viewers_read() -> Value {
    json!({"name": "Viewers read", "conditions": [{"source": "userRoles", "operator": "equals", "value": "Viewer"}], "scopes": ["calendar.readonly"]})
}

async fn an_app_without_policies_is_open(backend: Backend) {
    let w = world(backend).await;
    let (status, body, headers) =
        w.s.fetch(
            Some(&w.idp.token("bob")),
            "cal",
            json!({"scopes": ["calendar"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["decision"]["reason"], "open");
    assert!(body["token"]["accessToken"].as_str().unwrap().len() > 20);
    assert_eq!(body["token"]["userId"], "bob");
    assert_eq!(body["token"]["scopes"], json!(SCOPES));
    assert_eq!(body["token"]["owner"], "user");
}

async fn a_warm_request_reads_nothing_from_the_database(backend: Backend) {
    let w = world(backend).await;
    policy(&w.s, "cal", viewers_read()).await;
    let alice = w.idp.token("alice");
    let read = json!({"scopes": ["calendar.readonly"]});
    assert_eq!(w.s.fetch(Some(&alice), "cal", read.clone()).await.0, 200);
    let loads = w.s.core.cache_loads();
    for _ in 0..20 {
        assert_eq!(w.s.fetch(Some(&alice), "cal", read.clone()).await.0, 200);
    }
    assert_eq!(
        w.s.core.cache_loads(),
        loads,
        "warm requests are served from memory"
    );
    // A change is read again once, then it is warm again.
    assert_eq!(
        w.s.put(
            "/v1/mgmt/users/alice",
            json!({"identities": w.idp.identity("alice"), "email": "alice@example.com", "roles": ["Viewer", "Editor"]})
        )
        .await
        .0,
        200
    );
    assert_eq!(w.s.fetch(Some(&alice), "cal", read.clone()).await.0, 200);
    let after_change = w.s.core.cache_loads();
    assert_eq!(
        after_change,
        loads + 1,
        "only the changed user was read again"
    );
    assert_eq!(w.s.fetch(Some(&alice), "cal", read).await.0, 200);
    assert_eq!(w.s.core.cache_loads(), after_change);
}

async fn one_enforcing_policy_makes_the_app_deny_by_default(backend: Backend) {
    let w = world(backend).await;
    let pid = policy(&w.s, "cal", viewers_read()).await;
    // Alice (Viewer) may read.
    let (status, body, _) =
        w.s.fetch(
            Some(&w.idp.token("alice")),
            "cal",
            json!({"scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"]["decidingPolicies"], json!([pid]));
    // Bob (Editor) matches no policy: denied, and told why.
    let (status, body, _) =
        w.s.fetch(
            Some(&w.idp.token("bob")),
            "cal",
            json!({"scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "access_denied");
    assert_eq!(body["details"]["reason"], "no_policy_matched");
    let considered = &body["decision"]["policies"][0];
    assert_eq!(considered["id"], pid);
    assert_eq!(considered["matched"], false);
    let failed = &considered["failedCondition"];
    assert_eq!(failed["index"], 0);
    assert_eq!(failed["source"], "userRoles");
    assert_eq!(failed["operator"], "equals");
    // The default denialDetail (policies) names the condition, not its values.
    assert!(
        failed.get("seen").is_none() && failed.get("value").is_none(),
        "{failed}"
    );
    assert!(body.get("token").is_none());
    // Alice asking for more than the policy allows: denied, naming the scope.
    let (status, body, _) =
        w.s.fetch(
            Some(&w.idp.token("alice")),
            "cal",
            json!({"scopes": ["calendar.readonly", "calendar"]}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["details"]["reason"], "scopes_not_allowed");
    assert_eq!(body["decision"]["deniedScopes"], json!(["calendar"]));
    assert_eq!(
        body["decision"]["allowedScopes"],
        json!(["calendar.readonly"])
    );
}

/// Shows callers the whole explanation of `cal`'s denials.
async fn show_full_denials(w: &World) {
    let mut app = w.p.app("cal", &SCOPES);
    app["denialDetail"] = json!("full");
    let (status, body) = w.s.put("/v1/mgmt/outbound-apps/cal", app).await;
    assert_eq!(status, 200, "{body}");
}

async fn claims_conditions_read_the_inbound_token(backend: Backend) {
    let w = world(backend).await;
    show_full_denials(&w).await;
    policy(
        &w.s,
        "cal",
        json!({"name": "Engineering", "conditions": [
            {"source": "jwtClaims", "claim": "org.department", "operator": "in", "value": ["eng", "ops"]},
            {"source": "jwtClaims", "claim": "acr", "operator": "notEquals", "value": "low"}
        ], "scopes": "all"}),
    )
    .await;
    let token = |claims: Value| {
        w.idp
            .token_with(portcullis_crypto::jws::Algorithm::RS256, "bob", claims)
    };
    let (status, body, _) =
        w.s.fetch(
            Some(&token(json!({"org": {"department": "eng"}, "acr": "high"}))),
            "cal",
            json!({"scopes": ["calendar"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body, _) =
        w.s.fetch(
            Some(&token(
                json!({"org": {"department": "sales"}, "acr": "high"}),
            )),
            "cal",
            json!({"scopes": ["calendar"]}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["decision"]["policies"][0]["failedCondition"]["seen"],
        "sales"
    );
    // A missing claim fails the negative operator too (fail closed).
    let (status, body, _) =
        w.s.fetch(
            Some(&token(json!({"org": {"department": "eng"}}))),
            "cal",
            json!({"scopes": ["calendar"]}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let failed = &body["decision"]["policies"][0]["failedCondition"];
    assert_eq!(failed["index"], 1);
    assert_eq!(failed["reason"], "missing");
}

async fn shadow_policies_are_reported_never_deciding(backend: Backend) {
    let w = world(backend).await;
    policy(&w.s, "cal", viewers_read()).await;
    policy(
        &w.s,
        "cal",
        json!({"name": "Candidate: editors", "mode": "shadow", "conditions": [{"source": "userRoles", "operator": "contains", "value": "Editor"}], "scopes": ["calendar.readonly"]}),
    )
    .await;
    let (status, body, _) =
        w.s.fetch(
            Some(&w.idp.token("bob")),
            "cal",
            json!({"scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(status, 403, "the shadow policy does not decide: {body}");
    assert_eq!(body["decision"]["shadow"]["outcome"], "allow");
    w.s.flush_audit().await;
    let (_, audit) = w.s.get("/v1/mgmt/audit?userId=bob&appId=cal").await;
    let e = &audit["items"][0];
    assert_eq!(e["outcome"], "denied");
    assert_eq!(e["shadowOutcome"], "allowed");
}

async fn reconsent_apps_answer_with_a_link_for_what_is_allowed(backend: Backend) {
    let w = world(backend).await;
    let mut app = w.p.app("cal", &SCOPES);
    app["onDeny"] = json!("reconsent");
    app.as_object_mut().unwrap().remove("clientSecret");
    assert_eq!(w.s.put("/v1/mgmt/outbound-apps/cal", app).await.0, 200);
    policy(&w.s, "cal", viewers_read()).await;
    let (status, body, _) =
        w.s.fetch(
            Some(&w.idp.token("alice")),
            "cal",
            json!({"scopes": ["calendar"]}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "consent_required");
    let link = Url::parse(&w.s.open_link(body["connectUrl"].as_str().unwrap()).await).unwrap();
    let scope = link
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(
        scope, "calendar.readonly",
        "the link asks only for what the policies allow"
    );
    assert!(body["decision"]["policies"].is_array());
    // Following the link replaces the grant with the allowed one.
    let (st, _) = w.s.consent(link.as_str()).await;
    assert_eq!(st, 200);
    let (_, conns) = w.s.get("/v1/mgmt/users/alice/connections").await;
    assert_eq!(conns["items"][0]["scopes"], json!(["calendar.readonly"]));
}

async fn not_connected_comes_with_a_connect_link(backend: Backend) {
    let w = world(backend).await;
    let carol = w.idp.token("carol");
    let (status, body, _) =
        w.s.fetch(
            Some(&carol),
            "cal",
            json!({"scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "not_connected");
    assert_eq!(body["details"]["reason"], "no_connection");
    let link = body["connectUrl"].as_str().unwrap().to_owned();
    let (st, _) = w.s.consent(&link).await;
    assert_eq!(st, 200);
    let (status, _, _) =
        w.s.fetch(
            Some(&carol),
            "cal",
            json!({"scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(status, 200, "connected through the link");
    // A grant lacking a requested scope is "not connected" too, asking for the union.
    let (status, body, _) =
        w.s.fetch(
            Some(&carol),
            "cal",
            json!({"scopes": ["contacts.readonly"]}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["details"]["reason"], "missing_scopes");
    assert_eq!(
        body["details"]["missingScopes"],
        json!(["contacts.readonly"])
    );
    let link = Url::parse(&w.s.open_link(body["connectUrl"].as_str().unwrap()).await).unwrap();
    let scope = link
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .unwrap()
        .1
        .into_owned();
    assert!(
        scope.contains("contacts.readonly") && scope.contains("calendar.readonly"),
        "{scope}"
    );
}

async fn changes_take_effect_on_the_very_next_request(backend: Backend) {
    let w = world(backend).await;
    let pid = policy(&w.s, "cal", viewers_read()).await;
    let alice = w.idp.token("alice");
    let read = json!({"scopes": ["calendar.readonly"]});
    assert_eq!(w.s.fetch(Some(&alice), "cal", read.clone()).await.0, 200);
    // A role removed from the user.
    assert_eq!(
        w.s.put(
            "/v1/mgmt/users/alice",
            json!({"identities": w.idp.identity("alice"), "email": "alice@example.com", "roles": []})
        )
        .await
        .0,
        200
    );
    assert_eq!(w.s.fetch(Some(&alice), "cal", read.clone()).await.0, 403);
    assert_eq!(
        w.s.put(
            "/v1/mgmt/users/alice",
            json!({"identities": w.idp.identity("alice"), "email": "alice@example.com", "roles": ["Viewer"]})
        )
        .await
        .0,
        200
    );
    assert_eq!(w.s.fetch(Some(&alice), "cal", read.clone()).await.0, 200);
    // A policy changed.
    let mut narrowed = viewers_read();
    narrowed["scopes"] = json!(["contacts.readonly"]);
    assert_eq!(
        w.s.put(
            &format!("/v1/mgmt/outbound-apps/cal/policies/{pid}"),
            narrowed
        )
        .await
        .0,
        200
    );
    assert_eq!(w.s.fetch(Some(&alice), "cal", read.clone()).await.0, 403);
    assert_eq!(
        w.s.put(
            &format!("/v1/mgmt/outbound-apps/cal/policies/{pid}"),
            viewers_read()
        )
        .await
        .0,
        200
    );
    assert_eq!(w.s.fetch(Some(&alice), "cal", read.clone()).await.0, 200);
    // The connection revoked.
    let (_, conns) = w.s.get("/v1/mgmt/users/alice/connections").await;
    let cid = conns["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        w.s.delete(&format!("/v1/mgmt/connections/{cid}")).await.0,
        200
    );
    assert_eq!(w.s.fetch(Some(&alice), "cal", read.clone()).await.0, 404);
    // The user disabled.
    w.s.connect(&alice, "cal", &["calendar.readonly"]).await;
    assert_eq!(w.s.fetch(Some(&alice), "cal", read.clone()).await.0, 200);
    assert_eq!(
        w.s.put(
            "/v1/mgmt/users/alice",
            json!({"identities": w.idp.identity("alice"), "roles": ["Viewer"], "disabled": true})
        )
        .await
        .0,
        200
    );
    let (status, body, _) = w.s.fetch(Some(&alice), "cal", read).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "user_disabled");
}

async fn users_outside_the_directory_use_their_token_roles(backend: Backend) {
    let w = world(backend).await;
    policy(&w.s, "cal", viewers_read()).await;
    let dave = |roles: Value| {
        w.idp.token_with(
            portcullis_crypto::jws::Algorithm::EdDSA,
            "dave",
            json!({"roles": roles}),
        )
    };
    // Connecting is itself checked against the policies: a Guest may not consent to it.
    let resp =
        w.s.http
            .post(format!("{}/v1/outbound/apps/cal/connect", w.s.url))
            .bearer_auth(dave(json!(["Guest"])))
            .json(&json!({"scopes": ["calendar.readonly"]}))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    w.s.connect(&dave(json!(["Viewer"])), "cal", &["calendar.readonly"])
        .await;
    assert_eq!(
        w.s.fetch(
            Some(&dave(json!(["Viewer"]))),
            "cal",
            json!({"scopes": ["calendar.readonly"]})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        w.s.fetch(
            Some(&dave(json!(["Guest"]))),
            "cal",
            json!({"scopes": ["calendar.readonly"]})
        )
        .await
        .0,
        403
    );
    // A directory user's token roles do not count: the directory is the truth, live.
    let alice = w.idp.token_with(
        portcullis_crypto::jws::Algorithm::ES256,
        "alice",
        json!({"roles": ["Editor"]}),
    );
    let (status, body, _) =
        w.s.fetch(
            Some(&alice),
            "cal",
            json!({"scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn tenant_roles_count_within_their_tenant(backend: Backend) {
    let w = world(backend).await;
    policy(&w.s, "cal", viewers_read()).await;
    let bob = w.idp.token("bob");
    // Bob is an Editor globally and a Viewer in acme.
    assert_eq!(
        w.s.fetch(Some(&bob), "cal", json!({"scopes": ["calendar.readonly"]}))
            .await
            .0,
        403
    );
    let url =
        w.s.connect_url(
            &bob,
            "cal",
            json!({"tenantId": "acme", "scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(w.s.consent(&url).await.0, 200);
    let (status, body, _) =
        w.s.fetch(
            Some(&bob),
            "cal",
            json!({"scopes": ["calendar.readonly"], "tenantId": "acme"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"]["tenantId"], "acme");
    // Not a member of another tenant.
    w.s.must_post(
        "/v1/mgmt/tenants",
        json!({"id": "globex", "name": "Globex"}),
    )
    .await;
    let (status, body, _) =
        w.s.fetch(
            Some(&bob),
            "cal",
            json!({"scopes": ["calendar.readonly"], "tenantId": "globex"}),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "not_a_tenant_member");
}

async fn a_broader_grant_is_narrowed_before_it_is_handed_out(backend: Backend) {
    let w = world(backend).await;
    let mut app = w.p.app("cal", &SCOPES);
    app["narrowScopesOnRefresh"] = json!(true);
    app.as_object_mut().unwrap().remove("clientSecret");
    assert_eq!(w.s.put("/v1/mgmt/outbound-apps/cal", app).await.0, 200);
    let alice = w.idp.token("alice");
    // Alice's grant is broader than the policy will allow.
    w.s.connect(&alice, "cal", &SCOPES).await;
    policy(&w.s, "cal", viewers_read()).await;
    w.p.reset().await;
    let (status, body, _) =
        w.s.fetch(
            Some(&alice),
            "cal",
            json!({"scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"]["downscoped"], true);
    assert_eq!(body["token"]["scopes"], json!(["calendar.readonly"]));
    let stats = w.p.stats().await;
    assert_eq!(
        stats["refreshScopes"],
        json!(["calendar.readonly"]),
        "one narrowing refresh: {stats}"
    );
    // The narrowed token is reused while it is fresh.
    let (status, again, _) =
        w.s.fetch(
            Some(&alice),
            "cal",
            json!({"scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["token"]["accessToken"], body["token"]["accessToken"]);
    assert_eq!(w.p.refresh_calls().await, 1);
    // An app whose provider cannot narrow: denied, saying why.
    let mut app = w.p.app("cal", &SCOPES);
    app.as_object_mut().unwrap().remove("clientSecret");
    assert_eq!(w.s.put("/v1/mgmt/outbound-apps/cal", app).await.0, 200);
    let (status, body, _) =
        w.s.fetch(
            Some(&alice),
            "cal",
            json!({"scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["details"]["reason"], "downscoping_unsupported");
}

async fn api_key_apps_are_issued_or_not_by_policy(backend: Backend) {
    let w = world(backend).await;
    w.s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({"id": "crm", "name": "CRM", "type": "apiKey"}),
    )
    .await;
    w.s.must_post(
        "/v1/mgmt/outbound-apps/crm/api-keys",
        json!({"apiKey": "crm-key-1"}),
    )
    .await;
    let (status, body) = w
        .s
        .post("/v1/mgmt/outbound-apps/crm/policies", json!({"name": "Editors", "conditions": [{"source": "userRoles", "operator": "in", "value": ["Editor"]}], "scopes": ["x"]}))
        .await;
    assert_eq!(status, 400, "an API-key app has no scopes to name: {body}");
    policy(&w.s, "crm", json!({"name": "Editors", "conditions": [{"source": "userRoles", "operator": "in", "value": ["Editor"]}], "scopes": "all"})).await;
    let (status, body, _) = w.s.fetch(Some(&w.idp.token("bob")), "crm", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"]["apiKey"], "crm-key-1");
    assert_eq!(body["token"]["owner"], "app");
    let (status, _, _) =
        w.s.fetch(Some(&w.idp.token("alice")), "crm", json!({}))
            .await;
    assert_eq!(status, 403);
}

async fn every_decision_is_audited_without_token_values(backend: Backend) {
    let w = world(backend).await;
    policy(&w.s, "cal", viewers_read()).await;
    let (_, granted, _) =
        w.s.fetch(
            Some(&w.idp.token("alice")),
            "cal",
            json!({"scopes": ["calendar.readonly"]}),
        )
        .await;
    w.s.fetch(
        Some(&w.idp.token("bob")),
        "cal",
        json!({"scopes": ["calendar.readonly"]}),
    )
    .await;
    let carol = w.idp.token_with(
        portcullis_crypto::jws::Algorithm::ES256,
        "carol",
        json!({"roles": ["Viewer"]}),
    );
    w.s.fetch(
        Some(&carol),
        "cal",
        json!({"scopes": ["calendar.readonly"]}),
    )
    .await;
    w.s.fetch(Some("garbage"), "cal", json!({})).await;
    w.s.fetch(Some(&w.idp.token("alice")), "nope", json!({}))
        .await;
    w.s.flush_audit().await;
    let (_, all) = w.s.get("/v1/mgmt/audit?limit=100").await;
    let outcomes: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    for o in ["allowed", "denied", "not_connected", "invalid_request"] {
        assert!(outcomes.contains(&o), "{o} missing from {outcomes:?}");
    }
    // A request without a valid token is not an event of its own: it is counted.
    assert!(!outcomes.contains(&"invalid_token"), "{outcomes:?}");
    let (_, rejected) = w.s.get("/v1/mgmt/audit/rejected").await;
    assert_eq!(rejected["items"].as_array().unwrap().len(), 1, "{rejected}");
    assert_eq!(rejected["items"][0]["surface"], "token");
    assert_eq!(rejected["items"][0]["count"], 1);
    let (_, allowed) = w.s.get("/v1/mgmt/audit?outcome=allowed&appId=cal").await;
    let e = &allowed["items"][0];
    assert_eq!(e["userId"], "alice");
    assert_eq!(e["grantedScopes"], json!(["calendar.readonly"]));
    assert_eq!(e["requestedScopes"], json!(["calendar.readonly"]));
    assert_eq!(e["issuer"], w.idp.issuer);
    assert_eq!(e["clientId"], "mcp-client");
    assert_eq!(e["decidingPolicies"].as_array().unwrap().len(), 1);
    assert!(e["latencyUs"].as_u64().is_some());
    let (_, denied) = w.s.get("/v1/mgmt/audit?outcome=denied").await;
    assert_eq!(denied["items"][0]["reason"], "no_policy_matched");
    assert_eq!(
        denied["items"][0]["consideredPolicies"][0]["matched"],
        false
    );
    // Paging.
    let (_, one) = w.s.get("/v1/mgmt/audit?limit=1").await;
    let cursor = one["nextCursor"].as_str().unwrap();
    let (_, next) =
        w.s.get(&format!("/v1/mgmt/audit?limit=1&cursor={cursor}"))
            .await;
    assert_ne!(next["items"][0]["id"], one["items"][0]["id"]);
    // The export: JSON lines, and no token value anywhere.
    let export =
        w.s.http
            .get(format!("{}/v1/mgmt/audit/export", w.s.url))
            .bearer_auth(&w.s.admin_key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert_eq!(
        export.lines().count(),
        all["items"].as_array().unwrap().len()
    );
    for line in export.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
    let access = granted["token"]["accessToken"].as_str().unwrap();
    assert!(!export.contains(access), "no token value in the audit log");
    assert!(!export.contains(&w.idp.token("alice")[..40]));
}

async fn graceful_shutdown_writes_queued_audit_events(backend: Backend) {
    let w = world(backend).await;
    for _ in 0..20 {
        w.s.fetch(
            Some(&w.idp.token("alice")),
            "cal",
            json!({"scopes": ["calendar.readonly"]}),
        )
        .await;
    }
    let stores = w.s.core.stores_for_tests().clone();
    let World { s, .. } = w;
    let _keep_database = s.db.clone();
    s.shutdown().await;
    let events = stores
        .audit
        .audit(&portcullis_domain::AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.user_id.as_deref() == Some("alice"))
            .count(),
        20
    );
}

async fn the_simulator_explains_without_handing_anything_out(backend: Backend) {
    let w = world(backend).await;
    policy(&w.s, "cal", viewers_read()).await;
    let (st, by_token) =
        w.s.post(
            "/v1/mgmt/decisions/simulate",
            json!({"token": w.idp.token("bob"), "appId": "cal", "scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(st, 200, "{by_token}");
    assert_eq!(by_token["decision"]["outcome"], "deny");
    assert_eq!(by_token["rolesSource"], "directory");
    assert!(by_token.get("token").is_none());
    let (_, by_subject) = w
        .s
        .post("/v1/mgmt/decisions/simulate", json!({"subject": {"userId": "alice"}, "appId": "cal", "scopes": ["calendar.readonly"]}))
        .await;
    assert_eq!(by_subject["decision"]["outcome"], "allow");
    let (_, given) = w
        .s
        .post("/v1/mgmt/decisions/simulate", json!({"subject": {"roles": ["Viewer"], "claims": {"department": "eng"}}, "appId": "cal", "scopes": ["calendar"]}))
        .await;
    assert_eq!(given["decision"]["outcome"], "deny");
    assert_eq!(given["decision"]["reason"], "scopesNotAllowed");
    let (st, bad) =
        w.s.post(
            "/v1/mgmt/decisions/simulate",
            json!({"token": "junk", "appId": "cal"}),
        )
        .await;
    assert_eq!(st, 400, "{bad}");
    assert_eq!(bad["error"], "invalid_token");
    w.s.flush_audit().await;
    let (_, audit) = w.s.get("/v1/mgmt/audit").await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] != "simulate")
    );
}

/// Each app sets how much of a denial its callers see; token exchange shows the same; the
/// simulator always shows everything to administrators.
async fn denial_detail_is_set_per_app(backend: Backend) {
    let w = world(backend).await;
    policy(&w.s, "cal", viewers_read()).await;
    let bob = w.idp.token("bob");
    let denied = || async {
        let (status, body, _) =
            w.s.fetch(Some(&bob), "cal", json!({"scopes": ["calendar.readonly"]}))
                .await;
        assert_eq!(status, 403, "{body}");
        body["decision"].clone()
    };
    // policies (the default): the policies and the failing condition, no values.
    let d = denied().await;
    let failed = &d["policies"][0]["failedCondition"];
    assert_eq!(failed["source"], "userRoles");
    assert!(
        failed.get("value").is_none() && failed.get("seen").is_none(),
        "{d}"
    );
    // full: the values too.
    show_full_denials(&w).await;
    let d = denied().await;
    assert_eq!(d["policies"][0]["failedCondition"]["value"], "Viewer");
    assert_eq!(
        d["policies"][0]["failedCondition"]["seen"],
        json!(["Editor"])
    );
    // reason: only the outcome, the reason and the scopes.
    let mut app = w.p.app("cal", &SCOPES);
    app["denialDetail"] = json!("reason");
    assert_eq!(w.s.put("/v1/mgmt/outbound-apps/cal", app).await.0, 200);
    let d = denied().await;
    let mut keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["deniedScopes", "outcome", "reason", "requestedScopes"],
        "{d}"
    );
    // The simulator shows administrators everything.
    let (status, sim) =
        w.s.post(
            "/v1/mgmt/decisions/simulate",
            json!({"token": bob, "appId": "cal", "scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(status, 200, "{sim}");
    assert_eq!(
        sim["decision"]["policies"][0]["failedCondition"]["seen"],
        json!(["Editor"])
    );
    // An unknown level is refused.
    let mut app = w.p.app("cal", &SCOPES);
    app["denialDetail"] = json!("everything");
    assert_eq!(w.s.put("/v1/mgmt/outbound-apps/cal", app).await.0, 400);
}

/// `POST /v1/outbound/apps/{appId}/check`, through the Rust client an MCP server uses: the
/// answer a token request would get, with nothing handed out, opened or refreshed; audited as
/// `check`.
async fn a_check_decides_like_a_fetch_and_hands_nothing_out(backend: Backend) {
    use portcullis_client::{CheckOutcome, Client, Refusal, TokenOutcome};
    let w = world(backend).await;
    let mut app = w.p.app("cal", &SCOPES);
    app["narrowScopesOnRefresh"] = json!(true);
    app.as_object_mut().unwrap().remove("clientSecret");
    assert_eq!(w.s.put("/v1/mgmt/outbound-apps/cal", app).await.0, 200);
    let client = Client::new(&w.s.url, None).unwrap();
    // Carol is outside the directory: her token's roles count.
    let carol = w.idp.token_with(
        portcullis_crypto::jws::Algorithm::EdDSA,
        "carol",
        json!({"roles": ["Viewer"]}),
    );
    let (alice, bob) = (w.idp.token("alice"), w.idp.token("bob"));
    // Alice's grant is broader than the policy will allow: a fetch would narrow it.
    w.s.connect(&alice, "cal", &SCOPES).await;
    let pid = policy(&w.s, "cal", viewers_read()).await;
    w.p.reset().await;

    let CheckOutcome::Allowed { scopes, decision } = client
        .check(&alice, "cal", &["calendar.readonly"], None)
        .await
        .unwrap()
    else {
        panic!("alice may read");
    };
    assert_eq!(scopes, ["calendar.readonly"]);
    assert_eq!(decision["decidingPolicies"], json!([pid]));
    assert_eq!(decision["downscoped"], true);
    assert_eq!(w.p.refresh_calls().await, 0, "a check refreshes nothing");
    // Asking for more than allowed, or as someone no policy matches: denied, explained.
    for (token, scopes, reason) in [
        (
            &alice,
            vec!["calendar.readonly", "calendar"],
            "scopes_not_allowed",
        ),
        (&bob, vec!["calendar.readonly"], "no_policy_matched"),
    ] {
        match client.check(token, "cal", &scopes, None).await.unwrap() {
            CheckOutcome::Refused(Refusal::Denied {
                reason: r,
                decision,
                ..
            }) => {
                assert_eq!(r, reason);
                assert!(decision["policies"].is_array(), "{decision}");
            }
            other => panic!("{other:?}"),
        }
    }
    // Carol has not connected: the same link a fetch would give.
    let CheckOutcome::Refused(refusal @ Refusal::NotConnected { .. }) = client
        .check(&carol, "cal", &["calendar.readonly"], None)
        .await
        .unwrap()
    else {
        panic!("carol is not connected");
    };
    assert!(
        refusal
            .connect_url()
            .unwrap()
            .contains("/v1/outbound/connect/")
    );
    let Refusal::NotConnected { missing_scopes, .. } = &refusal else {
        unreachable!()
    };
    assert_eq!(missing_scopes, &["calendar.readonly"]);
    // The fetch agrees, and only the fetch hands a token out (narrowed by one refresh).
    let TokenOutcome::Granted { token, .. } = client
        .fetch_token(&alice, "cal", &["calendar.readonly"], None)
        .await
        .unwrap()
    else {
        panic!("alice may read");
    };
    assert_eq!(token.scopes, ["calendar.readonly"]);
    assert!(token.access_token.is_some());
    assert_eq!(w.p.refresh_calls().await, 1);
    assert!(matches!(
        client
            .fetch_token(&carol, "cal", &["calendar.readonly"], None)
            .await
            .unwrap(),
        TokenOutcome::Refused(Refusal::NotConnected { .. })
    ));
    // An app that asks for re-consent: the check carries the link.
    let mut app = w.p.app("cal", &SCOPES);
    app["onDeny"] = json!("reconsent");
    app.as_object_mut().unwrap().remove("clientSecret");
    assert_eq!(w.s.put("/v1/mgmt/outbound-apps/cal", app).await.0, 200);
    let CheckOutcome::Refused(refusal @ Refusal::ConsentRequired { .. }) = client
        .check(&alice, "cal", &["calendar"], None)
        .await
        .unwrap()
    else {
        panic!("alice may consent to less");
    };
    assert!(refusal.connect_url().is_some());

    // A client's mistakes are errors, as on the token endpoint.
    let raw = |token: Option<&str>, body: Value| {
        let mut req = reqwest::Client::new()
            .post(format!("{}/v1/outbound/apps/cal/check", w.s.url))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = raw(Some(&alice), json!({"scopes": ["nope"]})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (status, body) = raw(Some(&alice), json!({"forceRefresh": true})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_body")),
        "{body}"
    );
    let (status, body) = raw(None, json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );

    // Every check is recorded, as a check.
    w.s.flush_audit().await;
    let (_, audit) =
        w.s.get("/v1/mgmt/audit?userId=alice&appId=cal&limit=100")
            .await;
    let checks: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "check")
        .collect();
    assert_eq!(checks.len(), 4, "{audit}");
    assert!(
        checks.iter().any(
            |e| e["outcome"] == "allowed" && e["grantedScopes"] == json!(["calendar.readonly"])
        )
    );
}

both_backends!(
    a_check_decides_like_a_fetch_and_hands_nothing_out,
    denial_detail_is_set_per_app,
    an_app_without_policies_is_open,
    a_warm_request_reads_nothing_from_the_database,
    one_enforcing_policy_makes_the_app_deny_by_default,
    claims_conditions_read_the_inbound_token,
    shadow_policies_are_reported_never_deciding,
    reconsent_apps_answer_with_a_link_for_what_is_allowed,
    not_connected_comes_with_a_connect_link,
    changes_take_effect_on_the_very_next_request,
    users_outside_the_directory_use_their_token_roles,
    tenant_roles_count_within_their_tenant,
    a_broader_grant_is_narrowed_before_it_is_handed_out,
    api_key_apps_are_issued_or_not_by_policy,
    every_decision_is_audited_without_token_values,
    graceful_shutdown_writes_queued_audit_events,
    the_simulator_explains_without_handing_anything_out,
);
