//! An identity is an issuer and a subject. Two trusted issuers both have a subject `alice`: issuer
//! A's alice is the directory user `alice` (linked to A), issuer B's is someone else. Neither
//! reaches the other's roles, connections, tenant-shared connections or pending connect links.

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Idp, Provider, TestServer};

const READ: &str = "calendar.readonly";
const CONTACTS: &str = "contacts.readonly";

struct World {
    s: TestServer,
    a: Idp,
    b: Idp,
    p: Provider,
}

/// Issuers A and B; roles Viewer and Tenant Admin; tenant acme; the directory user alice, linked
/// to A's `alice`, a Viewer and acme's Tenant Admin; an OAuth app `cal` whose policy lets Viewers
/// read; an API-key app `crm` with keys for alice and for acme.
async fn world(backend: Backend) -> World {
    let s = TestServer::start(backend).await;
    let (a, b) = (Idp::start().await, Idp::start().await);
    assert_ne!(a.issuer, b.issuer);
    let p = Provider::start().await;
    s.trust(&a).await;
    s.trust(&b).await;
    for r in ["Viewer", "Tenant Admin"] {
        s.must_post("/v1/mgmt/roles", json!({ "name": r })).await;
    }
    s.must_post("/v1/mgmt/tenants", json!({ "id": "acme", "name": "Acme" }))
        .await;
    s.must_post(
        "/v1/mgmt/users",
        json!({
            "id": "alice", "identities": a.identity("alice"), "roles": ["Viewer"],
            "tenants": [{ "tenantId": "acme", "roles": ["Tenant Admin"] }],
        }),
    )
    .await;
    s.must_post("/v1/mgmt/outbound-apps", p.app("cal", &[READ, CONTACTS]))
        .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/cal/policies",
        json!({
            "name": "Viewers read",
            "conditions": [{ "source": "userRoles", "operator": "equals", "value": "Viewer" }],
            "scopes": [READ],
        }),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({ "id": "crm", "name": "CRM", "type": "apiKey" }),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/crm/api-keys",
        json!({ "apiKey": "key-of-alice", "userId": "alice" }),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/crm/api-keys",
        json!({ "apiKey": "key-of-acme", "tenantId": "acme" }),
    )
    .await;
    World { s, a, b, p }
}

/// A principal's connections to `cal`.
async fn connections_of(s: &TestServer, principal: &str) -> Vec<Value> {
    let (st, page) = s
        .get(&format!("/v1/mgmt/users/{principal}/connections"))
        .await;
    assert_eq!(st, 200, "{page}");
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["appId"] == "cal")
        .cloned()
        .collect()
}

async fn the_same_subject_at_another_issuer_is_someone_else(backend: Backend) {
    let w = world(backend).await;
    let s = &w.s;
    let read = json!({ "scopes": [READ] });
    let alice_a = w.a.token("alice");
    s.connect(&alice_a, "cal", &[READ]).await;
    let (st, mine, _) = s.fetch(Some(&alice_a), "cal", read.clone()).await;
    assert_eq!(st, 200, "{mine}");
    assert_eq!(mine["token"]["userId"], "alice");
    let alices_token = mine["token"]["accessToken"].as_str().unwrap().to_owned();

    // B's alice does not get the directory alice's roles.
    let alice_b = w.b.token("alice");
    let (st, e, _) = s.fetch(Some(&alice_b), "cal", read.clone()).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (403, Some("access_denied")),
        "{e}"
    );
    // With B's own roles claim she passes the policy, but alice's connection is not hers.
    let viewer_b = w.b.token_with(
        portcullis_crypto::jws::Algorithm::ES256,
        "alice",
        json!({ "roles": ["Viewer"] }),
    );
    let (st, e, _) = s.fetch(Some(&viewer_b), "cal", read.clone()).await;
    assert_eq!(st, 404, "{e}");
    assert_eq!(e["details"]["reason"], "no_connection");
    // Nor alice's API key, nor, without a membership of her own, acme's.
    let (st, e, _) = s.fetch(Some(&alice_b), "crm", json!({})).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (404, Some("not_connected")),
        "{e}"
    );
    let (st, e, _) = s
        .fetch(Some(&alice_b), "crm", json!({ "tenantId": "acme" }))
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (403, Some("not_a_tenant_member")),
        "{e}"
    );
    let (st, e) = post_connect(
        s,
        &alice_b,
        json!({ "tenantId": "acme", "tenantLevel": true, "scopes": [READ] }),
    )
    .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (403, Some("not_a_tenant_member")),
        "{e}"
    );
    // Whereas A's alice, a member through the directory, may ask within acme (her own key
    // comes first).
    let (st, k, _) = s
        .fetch(Some(&alice_a), "crm", json!({ "tenantId": "acme" }))
        .await;
    assert_eq!(st, 200, "{k}");

    // A connect link A's alice left pending is hers alone: B's alice connecting makes her own
    // connection, under her own principal, and leaves alice's untouched.
    let pending = s
        .connect_url(&alice_a, "cal", json!({ "scopes": [READ] }))
        .await;
    s.connect(&viewer_b, "cal", &[READ]).await;
    let principal_b = w.b.principal("alice");
    assert!(principal_b.starts_with("ext:") && principal_b != w.a.principal("alice"));
    let theirs = connections_of(s, &principal_b).await;
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    assert_eq!(theirs[0]["userId"], principal_b.as_str());
    let (st, hers, _) = s.fetch(Some(&viewer_b), "cal", read.clone()).await;
    assert_eq!(st, 200, "{hers}");
    assert_eq!(hers["token"]["userId"], principal_b.as_str());
    assert_ne!(hers["token"]["accessToken"], alices_token.as_str());
    let (st, still, _) = s.fetch(Some(&alice_a), "cal", read.clone()).await;
    assert_eq!(st, 200, "{still}");
    assert_eq!(still["token"]["accessToken"], alices_token.as_str());
    assert_eq!(connections_of(s, "alice").await.len(), 1);
    // The pending link, completed later, still connects A's alice (whoever opens it; binding it to
    // a browser session comes with sign-in).
    let (st, page) = s.consent(&pending).await;
    assert_eq!(st, 200, "{page}");
    assert_eq!(connections_of(s, "alice").await.len(), 1);
    assert_eq!(connections_of(s, &principal_b).await.len(), 1);

    // The audit log tells the two apart: each event names its principal and issuer.
    s.flush_audit().await;
    let (_, events) = s
        .get(&format!("/v1/mgmt/audit?userId={principal_b}&appId=cal"))
        .await;
    let events = events["items"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["issuer"] == w.b.issuer.as_str()));
    let (_, events) = s.get("/v1/mgmt/audit?userId=alice&appId=cal").await;
    let events = events["items"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["issuer"] == w.a.issuer.as_str()));
    drop(w.p);
}

async fn post_connect(s: &TestServer, token: &str, body: Value) -> (u16, Value) {
    let resp = s
        .http
        .post(format!("{}/v1/outbound/apps/cal/connect", s.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

/// Identity links are managed with the user: shown, changed, refused when another user has the
/// identity, and removed with the user; a changed link applies to the very next request.
async fn identity_links_follow_the_directory(backend: Backend) {
    let w = world(backend).await;
    let s = &w.s;
    let (_, alice) = s.get("/v1/mgmt/users/alice").await;
    assert_eq!(alice["identities"], w.a.identity("alice"));
    // Another user cannot claim A's alice; nothing is stored.
    let (st, e) = s
        .post(
            "/v1/mgmt/users",
            json!({ "id": "mallory", "identities": w.a.identity("alice") }),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (409, Some("already_exists")),
        "{e}"
    );
    assert_eq!(s.get("/v1/mgmt/users/mallory").await.0, 404);
    // Malformed links and reserved ids are refused.
    for body in [
        json!({ "id": "x", "identities": [{ "issuer": "", "subject": "a" }] }),
        json!({ "id": "x", "identities": [{ "issuer": "https://i", "subject": "" }] }),
        json!({ "id": "x", "identities": [{ "issuer": "https://i" }] }),
        json!({ "id": "x", "identities": [{ "issuer": "https://i", "subject": "a" }, { "issuer": "https://i", "subject": "a" }] }),
        json!({ "id": "ext:x", "identities": [] }),
    ] {
        let (st, e) = s.post("/v1/mgmt/users", body.clone()).await;
        assert_eq!(st, 400, "{body} {e}");
    }
    assert_eq!(s.get("/v1/mgmt/users/x").await.0, 404);

    // Linking B's alice too makes her the directory alice, at once; unlinking A's makes A's an
    // external subject on the very next request.
    let read = json!({ "scopes": [READ] });
    let alice_a = w.a.token("alice");
    let alice_b = w.b.token("alice");
    s.connect(&alice_a, "cal", &[READ]).await;
    assert_eq!(s.fetch(Some(&alice_b), "cal", read.clone()).await.0, 403);
    let both = json!([
        { "issuer": w.a.issuer, "subject": "alice" },
        { "issuer": w.b.issuer, "subject": "alice" },
    ]);
    let (st, u) = s
        .put(
            "/v1/mgmt/users/alice",
            json!({ "identities": both, "roles": ["Viewer"] }),
        )
        .await;
    assert_eq!(st, 200, "{u}");
    let (st, t, _) = s.fetch(Some(&alice_b), "cal", read.clone()).await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["token"]["userId"], "alice");
    let (st, u) = s
        .put(
            "/v1/mgmt/users/alice",
            json!({ "identities": w.b.identity("alice"), "roles": ["Viewer"] }),
        )
        .await;
    assert_eq!(st, 200, "{u}");
    let (st, e, _) = s.fetch(Some(&alice_a), "cal", read.clone()).await;
    assert_eq!(st, 403, "{e}");
    assert_eq!(s.fetch(Some(&alice_b), "cal", read.clone()).await.0, 200);
    // Deleting the user removes the link: B's alice is an external subject again.
    assert_eq!(s.delete("/v1/mgmt/users/alice").await.0, 204);
    let (st, e, _) = s.fetch(Some(&alice_b), "cal", read).await;
    assert_eq!(st, 403, "{e}");
    let (st, who) = s
        .post(
            "/v1/mgmt/decisions/simulate",
            json!({ "token": alice_b, "appId": "cal", "scopes": [READ] }),
        )
        .await;
    assert_eq!(st, 200, "{who}");
    assert_eq!(who["userId"], w.b.principal("alice").as_str());
    assert_eq!(who["rolesSource"], "token");
}

both_backends!(
    the_same_subject_at_another_issuer_is_someone_else,
    identity_links_follow_the_directory,
);
