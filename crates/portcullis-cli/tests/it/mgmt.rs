//! The management API: CRUD of every resource, pagination, secrets shown once, key rotation,
//! the operational endpoints, and the documented error shape.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use portcullis_domain::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Idp, TestServer};

async fn apps_and_policies_round_trip(backend: Backend) {
    let s = TestServer::start(backend).await;
    let app = json!({
        "id": "calendar", "name": "Calendar", "type": "oauth",
        "clientId": "cid", "clientSecret": "very-secret",
        "authorizationUrl": "https://provider.example/authorize",
        "tokenUrl": "https://provider.example/token",
        "scopes": [{"name": "calendar.readonly"}, {"name": "calendar"}],
        "defaultScopes": ["calendar.readonly"]
    });
    let (st, created) = s.post("/v1/mgmt/outbound-apps", app.clone()).await;
    assert_eq!(st, 201, "{created}");
    assert_eq!(created["hasClientSecret"], true);
    assert!(
        created.get("clientSecret").is_none(),
        "the secret is write-only"
    );
    let (st, _) = s.post("/v1/mgmt/outbound-apps", app.clone()).await;
    assert_eq!(st, 409);
    let (st, p) = s
        .post(
            "/v1/mgmt/outbound-apps/calendar/policies",
            json!({"name": "Viewers", "conditions": [{"source": "userRoles", "operator": "equals", "value": "Viewer"}], "scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(st, 201, "{p}");
    let pid = p["id"].as_str().unwrap().to_owned();
    let (st, got) = s
        .get(&format!("/v1/mgmt/outbound-apps/calendar/policies/{pid}"))
        .await;
    assert_eq!(st, 200);
    assert_eq!(got["name"], "Viewers");
    // Removing a scope a policy names is refused.
    let mut narrower = app.clone();
    narrower["scopes"] = json!([{"name": "calendar"}]);
    narrower["defaultScopes"] = json!([]);
    let (st, e) = s.put("/v1/mgmt/outbound-apps/calendar", narrower).await;
    assert_eq!(st, 409, "{e}");
    assert_eq!(e["error"], "policies_reference_removed_scopes");
    let (st, _) = s
        .delete(&format!("/v1/mgmt/outbound-apps/calendar/policies/{pid}"))
        .await;
    assert_eq!(st, 204);
    let (st, _) = s.delete("/v1/mgmt/outbound-apps/calendar").await;
    assert_eq!(st, 204);
    let (st, e) = s.get("/v1/mgmt/outbound-apps/calendar").await;
    assert_eq!(st, 404);
    assert_eq!(e["error"], "not_found");
    s.shutdown().await;
}

async fn lists_paginate_with_a_cursor(backend: Backend) {
    let s = TestServer::start(backend).await;
    for i in 0..5 {
        s.must_post("/v1/mgmt/roles", json!({"name": format!("role-{i}")}))
            .await;
    }
    let (_, first) = s.get("/v1/mgmt/roles?limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["nextCursor"].as_str().unwrap();
    let (_, second) = s
        .get(&format!("/v1/mgmt/roles?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second["items"][0]["name"], "role-2");
    let cursor = second["nextCursor"].as_str().unwrap();
    let (_, last) = s
        .get(&format!("/v1/mgmt/roles?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(last["items"].as_array().unwrap().len(), 1);
    assert!(last.get("nextCursor").is_none());
    let (st, e) = s.get("/v1/mgmt/roles?cursor=%%%").await;
    assert_eq!(st, 400, "{e}");
    s.shutdown().await;
}

// ----- Helpers -----------------------------------------------------------------------------------

/// Form parameters one token request carried.
type Form = Vec<(String, String)>;

/// A provider token endpoint that records every request (to see which client secret Portcullis
/// presents) and answers a fresh token.
struct TokenEndpoint {
    url: String,
    seen: Arc<Mutex<Vec<Form>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record_token_request(
    State(seen): State<Arc<Mutex<Vec<Form>>>>,
    body: Bytes,
) -> axum::Json<Value> {
    let form: Form = url::form_urlencoded::parse(&body).into_owned().collect();
    let n = {
        let mut seen = seen.lock().unwrap();
        seen.push(form);
        seen.len()
    };
    axum::Json(json!({
        "access_token": format!("refreshed-{n}"),
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": format!("refresh-{n}"),
    }))
}

impl TokenEndpoint {
    async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/token", post(record_token_request))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, seen, task }
    }

    /// The `client_secret` of every request so far.
    fn client_secrets(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|form| {
                form.iter()
                    .find(|(k, _)| k == "client_secret")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// The `id`s (or `name`s) of a list answer's items.
fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|i| {
            i.get("id")
                .or_else(|| i.get("name"))
                .and_then(Value::as_str)
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Asserts an error answer: its status and the documented shape with `code`.
fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    let (st, body) = got;
    assert_eq!(*st, status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

fn now() -> Timestamp {
    Timestamp::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
}

fn oauth_app(id: &str, token_url: &str) -> Value {
    json!({
        "id": id, "name": format!("App {id}"), "type": "oauth",
        "clientId": format!("{id}-client"), "clientSecret": format!("{id}-secret"),
        "authorizationUrl": "https://provider.example/authorize",
        "tokenUrl": token_url,
        "scopes": [{"name": "read"}, {"name": "write"}],
        "defaultScopes": ["read"],
    })
}

// ----- Outbound apps ----------------------------------------------------------------------------

async fn outbound_apps_keep_every_field_and_the_write_only_secret(backend: Backend) {
    let s = TestServer::start(backend).await;
    let tokens = TokenEndpoint::start().await;
    let full = json!({
        "id": "crm", "name": "CRM", "description": "Customer records", "type": "oauth",
        "clientId": "crm-client", "clientSecret": "first-secret",
        "authorizationUrl": "https://crm.example/oauth/authorize",
        "tokenUrl": tokens.url,
        "revocationUrl": "https://crm.example/oauth/revoke",
        "userinfoUrl": "https://crm.example/oauth/userinfo",
        "scopes": [{"name": "contacts.read", "description": "Read contacts"}, {"name": "contacts.write"}],
        "defaultScopes": ["contacts.read"],
        "pkce": false,
        "authorizationParams": {"access_type": "offline", "prompt": "consent"},
        "narrowScopesOnRefresh": true,
        "tokenEndpointAuthMethod": "client_secret_post",
        "onDeny": "reconsent"
    });
    let (st, created) = s.post("/v1/mgmt/outbound-apps", full.clone()).await;
    assert_eq!(st, 201, "{created}");
    for (k, v) in full.as_object().unwrap() {
        if k != "clientSecret" {
            assert_eq!(&created[k], v, "{k} in {created}");
        }
    }
    assert_eq!(created["hasClientSecret"], true);
    assert_eq!(created["revision"], 1);
    assert!(
        created.get("clientSecret").is_none(),
        "the secret is write-only"
    );
    assert!(!created.to_string().contains("first-secret"));

    let (st, got) = s.get("/v1/mgmt/outbound-apps/crm").await;
    assert_eq!(st, 200);
    assert_eq!(got, created, "GET shows what POST answered");
    let (st, list) = s.get("/v1/mgmt/outbound-apps").await;
    assert_eq!(st, 200);
    assert_eq!(ids(&list), ["crm"]);
    assert_eq!(list["items"][0], created);
    assert!(!list.to_string().contains("first-secret"));

    // PUT replaces the whole app: what is omitted is reset, except the secret, which is kept.
    let replacement = json!({
        "name": "CRM v2", "type": "oauth", "clientId": "crm-client-2",
        "authorizationUrl": "https://crm.example/v2/authorize",
        "tokenUrl": tokens.url,
        "scopes": [{"name": "contacts.read"}],
        "tokenEndpointAuthMethod": "client_secret_post",
    });
    let (st, updated) = s.put("/v1/mgmt/outbound-apps/crm", replacement).await;
    assert_eq!(st, 200, "{updated}");
    assert_eq!(updated["name"], "CRM v2");
    assert_eq!(updated["clientId"], "crm-client-2");
    assert!(updated.get("description").is_none(), "{updated}");
    assert_eq!(updated["revocationUrl"], Value::Null);
    assert_eq!(updated["userinfoUrl"], Value::Null);
    assert_eq!(updated["defaultScopes"], json!([]));
    assert_eq!(updated["authorizationParams"], json!({}));
    assert_eq!(updated["pkce"], true, "PKCE is on by default");
    assert_eq!(updated["narrowScopesOnRefresh"], false);
    assert_eq!(updated["onDeny"], "forbid");
    assert_eq!(
        updated["hasClientSecret"], true,
        "an omitted secret is kept"
    );
    assert_eq!(updated["revision"], 2);
    assert_eq!(updated["createdAt"], created["createdAt"]);
    assert_eq!(s.get("/v1/mgmt/outbound-apps/crm").await.1, updated);

    // The kept secret is the one first written: the provider sees it on a refresh.
    let imported = s
        .must_post(
            "/v1/mgmt/outbound-apps/crm/tokens",
            json!({"tokens": [{"userId": "alice", "accessToken": "at-1", "refreshToken": "rt-1", "scopes": ["contacts.read"]}]}),
        )
        .await;
    let conn = imported["items"][0]["id"].as_str().unwrap().to_owned();
    let (st, refreshed) = s
        .post(&format!("/v1/mgmt/connections/{conn}/refresh"), json!({}))
        .await;
    assert_eq!(st, 200, "{refreshed}");
    assert_eq!(tokens.client_secrets(), ["first-secret"]);
    // A new secret replaces it.
    let mut with_secret = s.get("/v1/mgmt/outbound-apps/crm").await.1;
    for k in ["hasClientSecret", "revision", "createdAt", "updatedAt"] {
        with_secret.as_object_mut().unwrap().remove(k);
    }
    with_secret["clientSecret"] = json!("second-secret");
    let (st, body) = s.put("/v1/mgmt/outbound-apps/crm", with_secret).await;
    assert_eq!(st, 200, "{body}");
    let (st, _) = s
        .post(&format!("/v1/mgmt/connections/{conn}/refresh"), json!({}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(tokens.client_secrets(), ["first-secret", "second-secret"]);

    // The type is immutable (a conflict with what is stored: 409), and so is the id (a body that
    // contradicts its path: 400).
    let mut as_api_key = json!({"name": "CRM", "type": "apiKey"});
    assert_error(
        &s.put("/v1/mgmt/outbound-apps/crm", as_api_key.clone())
            .await,
        409,
        "immutable",
    );
    as_api_key["id"] = json!("other");
    assert_error(
        &s.put("/v1/mgmt/outbound-apps/crm", as_api_key).await,
        400,
        "invalid_request",
    );
    let mut renamed = oauth_app("other", &tokens.url);
    renamed["tokenEndpointAuthMethod"] = json!("client_secret_post");
    assert_error(
        &s.put("/v1/mgmt/outbound-apps/crm", renamed.clone()).await,
        400,
        "invalid_request",
    );
    let (_, after) = s.get("/v1/mgmt/outbound-apps/crm").await;
    assert_eq!(after["type"], "oauth");
    assert_eq!(after["revision"], 3, "refused updates change nothing");
    // PUT does not create.
    renamed.as_object_mut().unwrap().remove("id");
    assert_error(
        &s.put("/v1/mgmt/outbound-apps/nope", renamed).await,
        404,
        "not_found",
    );

    // An API-key app has no OAuth settings, and refuses them.
    let (st, keyed) = s
        .post(
            "/v1/mgmt/outbound-apps",
            json!({"id": "weather", "name": "Weather", "type": "apiKey", "description": "d"}),
        )
        .await;
    assert_eq!(st, 201, "{keyed}");
    assert_eq!(keyed["type"], "apiKey");
    assert_eq!(keyed["hasClientSecret"], false);
    assert_error(
        &s.post(
            "/v1/mgmt/outbound-apps",
            json!({"id": "weather2", "name": "Weather", "type": "apiKey", "clientId": "x"}),
        )
        .await,
        400,
        "invalid_app",
    );
    s.shutdown().await;
}

async fn deleting_an_app_removes_its_policies_and_connections(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.must_post(
        "/v1/mgmt/outbound-apps",
        oauth_app("cal", "https://provider.example/token"),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps",
        oauth_app("keep", "https://provider.example/token"),
    )
    .await;
    let policy = json!({"name": "Everyone", "conditions": [], "scopes": ["read"]});
    for app in ["cal", "keep"] {
        s.must_post(
            &format!("/v1/mgmt/outbound-apps/{app}/policies"),
            policy.clone(),
        )
        .await;
    }
    let imported = s
        .must_post(
            "/v1/mgmt/outbound-apps/cal/tokens",
            json!({"tokens": [
                {"userId": "alice", "accessToken": "a1", "scopes": ["read"]},
                {"userId": "bob", "accessToken": "b1", "scopes": ["read"]}
            ]}),
        )
        .await;
    let gone: Vec<String> = imported["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    let kept = s
        .must_post(
            "/v1/mgmt/outbound-apps/keep/tokens",
            json!({"tokens": [{"userId": "alice", "accessToken": "k1", "scopes": ["read"]}]}),
        )
        .await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        s.get("/v1/mgmt/users/alice/connections").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let (st, _) = s.delete("/v1/mgmt/outbound-apps/cal").await;
    assert_eq!(st, 204);
    assert_error(&s.get("/v1/mgmt/outbound-apps/cal").await, 404, "not_found");
    assert_error(
        &s.get("/v1/mgmt/outbound-apps/cal/policies").await,
        404,
        "not_found",
    );
    for id in &gone {
        assert_error(
            &s.get(&format!("/v1/mgmt/connections/{id}")).await,
            404,
            "not_found",
        );
    }
    assert_eq!(
        ids(&s.get("/v1/mgmt/users/alice/connections").await.1),
        [kept.as_str()]
    );
    assert_eq!(
        ids(&s.get("/v1/mgmt/users/bob/connections").await.1),
        Vec::<String>::new()
    );
    // The other app is untouched.
    assert_eq!(
        s.get("/v1/mgmt/outbound-apps/keep/policies").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.get(&format!("/v1/mgmt/connections/{kept}")).await.0, 200);
    // An app created again with the same id starts empty.
    s.must_post(
        "/v1/mgmt/outbound-apps",
        oauth_app("cal", "https://provider.example/token"),
    )
    .await;
    assert_eq!(
        ids(&s.get("/v1/mgmt/outbound-apps/cal/policies").await.1),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&s.get("/v1/mgmt/outbound-apps/cal/connections").await.1),
        Vec::<String>::new()
    );
    // Deleting twice is a 404.
    assert_eq!(s.delete("/v1/mgmt/outbound-apps/keep").await.0, 204);
    assert_error(
        &s.delete("/v1/mgmt/outbound-apps/keep").await,
        404,
        "not_found",
    );
    s.shutdown().await;
}

// ----- Policies ---------------------------------------------------------------------------------

async fn policies_crud_and_validation(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.must_post(
        "/v1/mgmt/outbound-apps",
        oauth_app("cal", "https://provider.example/token"),
    )
    .await;
    let viewers = json!({
        "name": "Viewers", "description": "People who read",
        "conditions": [
            {"source": "userRoles", "operator": "equals", "value": "Viewer"},
            {"source": "jwtClaims", "claim": "org.department", "operator": "in", "value": ["eng", "ops"]}
        ],
        "scopes": ["read"], "mode": "shadow"
    });
    let (st, created) = s
        .post("/v1/mgmt/outbound-apps/cal/policies", viewers.clone())
        .await;
    assert_eq!(st, 201, "{created}");
    let pid = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["appId"], "cal");
    for (k, v) in viewers.as_object().unwrap() {
        assert_eq!(&created[k], v, "{k}");
    }
    let path = format!("/v1/mgmt/outbound-apps/cal/policies/{pid}");
    assert_eq!(s.get(&path).await.1, created);
    assert_eq!(
        ids(&s.get("/v1/mgmt/outbound-apps/cal/policies").await.1),
        [pid.as_str()]
    );

    // PUT replaces the document; mode defaults to enforce, description goes away.
    let (st, updated) = s
        .put(
            &path,
            json!({"name": "Viewers", "conditions": [], "scopes": "all"}),
        )
        .await;
    assert_eq!(st, 200, "{updated}");
    assert_eq!(updated["id"], pid.as_str());
    assert_eq!(updated["scopes"], "all");
    assert_eq!(updated["mode"], "enforce");
    assert!(
        updated.get("description").is_none_or(Value::is_null),
        "{updated}"
    );
    assert_eq!(updated["createdAt"], created["createdAt"]);
    assert_eq!(s.get(&path).await.1, updated);

    // Validation errors carry every problem with its path.
    let (st, e) = s
        .post(
            "/v1/mgmt/outbound-apps/cal/policies",
            json!({"name": "Bad", "conditions": [{"source": "userRoles", "operator": "within", "value": "x"}], "scopes": ["read", "admin"]}),
        )
        .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["error"], "invalid_policy");
    let details: Vec<(String, String)> = e["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap().to_owned(),
                d["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        details,
        [
            (
                "conditions[0].operator".to_owned(),
                "unknown_operator".to_owned()
            ),
            ("scopes[1]".to_owned(), "unknown_scope".to_owned()),
        ],
        "{e}"
    );
    // A scope the app does not offer, alone.
    let (st, e) = s
        .post(
            "/v1/mgmt/outbound-apps/cal/policies",
            json!({"name": "Admins", "conditions": [], "scopes": ["admin"]}),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(
        e["details"],
        json!([{"path": "scopes[0]", "code": "unknown_scope", "message": "this app does not offer the scope \"admin\""}])
    );

    // Names are unique per app, case-insensitively and ignoring surrounding spaces.
    for dup in ["viewers", " VIEWERS "] {
        let (st, e) = s
            .post(
                "/v1/mgmt/outbound-apps/cal/policies",
                json!({"name": dup, "conditions": [], "scopes": ["read"]}),
            )
            .await;
        assert_eq!(st, 409, "{e}");
        assert_eq!(e["error"], "duplicate_policy_name");
    }
    let (st, editors) = s
        .post(
            "/v1/mgmt/outbound-apps/cal/policies",
            json!({"name": "Editors", "conditions": [], "scopes": ["write"]}),
        )
        .await;
    assert_eq!(st, 201);
    let editors_path = format!(
        "/v1/mgmt/outbound-apps/cal/policies/{}",
        editors["id"].as_str().unwrap()
    );
    assert_error(
        &s.put(
            &editors_path,
            json!({"name": "VIEWERS", "conditions": [], "scopes": ["write"]}),
        )
        .await,
        409,
        "duplicate_policy_name",
    );
    assert_eq!(s.get(&editors_path).await.1["name"], "Editors");
    // The same name on another app is fine.
    s.must_post(
        "/v1/mgmt/outbound-apps",
        oauth_app("mail", "https://provider.example/token"),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/mail/policies",
        json!({"name": "Viewers", "conditions": [], "scopes": ["read"]}),
    )
    .await;

    // API-key apps: only "all".
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({"id": "weather", "name": "Weather", "type": "apiKey"}),
    )
    .await;
    let (st, e) = s
        .post(
            "/v1/mgmt/outbound-apps/weather/policies",
            json!({"name": "Some", "conditions": [], "scopes": ["read"]}),
        )
        .await;
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["error"], "invalid_policy");
    assert_eq!(e["details"][0]["path"], "scopes[0]");
    let (st, e) = s
        .post(
            "/v1/mgmt/outbound-apps/weather/policies",
            json!({"name": "Everyone", "conditions": [], "scopes": "all"}),
        )
        .await;
    assert_eq!(st, 201, "{e}");

    // A policy is reached only through its own app.
    assert_error(
        &s.get(&format!("/v1/mgmt/outbound-apps/mail/policies/{pid}"))
            .await,
        404,
        "not_found",
    );
    assert_error(
        &s.delete(&format!("/v1/mgmt/outbound-apps/mail/policies/{pid}"))
            .await,
        404,
        "not_found",
    );
    assert_eq!(s.delete(&path).await.0, 204);
    assert_error(&s.get(&path).await, 404, "not_found");
    assert_error(&s.delete(&path).await, 404, "not_found");
    assert_error(
        &s.put(
            &path,
            json!({"name": "Viewers", "conditions": [], "scopes": ["read"]}),
        )
        .await,
        404,
        "not_found",
    );
    s.shutdown().await;
}

// ----- Directory --------------------------------------------------------------------------------

async fn users_roles_and_tenants(backend: Backend) {
    let s = TestServer::start(backend).await;
    for r in ["Viewer", "Editor", "Tenant Admin"] {
        let (st, role) = s
            .post(
                "/v1/mgmt/roles",
                json!({"name": r, "description": format!("{r}s")}),
            )
            .await;
        assert_eq!(st, 201, "{role}");
        assert_eq!(role["name"], r);
    }
    assert_error(
        &s.post("/v1/mgmt/roles", json!({"name": "Viewer"})).await,
        409,
        "already_exists",
    );
    let (st, role) = s.get("/v1/mgmt/roles/Tenant%20Admin").await;
    assert_eq!(st, 200, "{role}");
    assert_eq!(role["description"], "Tenant Admins");
    let (st, role) = s
        .put("/v1/mgmt/roles/Editor", json!({"description": "Writes"}))
        .await;
    assert_eq!(st, 200, "{role}");
    assert_eq!(
        s.get("/v1/mgmt/roles/Editor").await.1["description"],
        "Writes"
    );
    for t in ["acme", "globex"] {
        s.must_post(
            "/v1/mgmt/tenants",
            json!({"id": t, "name": t.to_uppercase(), "attributes": {"tier": "gold"}}),
        )
        .await;
    }
    let (st, t) = s
        .put("/v1/mgmt/tenants/globex", json!({"name": "Globex Corp"}))
        .await;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["attributes"], json!({}), "PUT replaces the attributes");
    assert_eq!(
        s.get("/v1/mgmt/tenants/globex").await.1["name"],
        "Globex Corp"
    );

    let alice = json!({
        "id": "alice", "email": "Alice@Example.com", "name": "Alice",
        "roles": ["Viewer", "Editor", "Viewer"],
        "tenants": [{"tenantId": "acme", "roles": ["Tenant Admin"]}, {"tenantId": "globex", "roles": []}],
        "attributes": {"team": "blue"},
    });
    let (st, created) = s.post("/v1/mgmt/users", alice).await;
    assert_eq!(st, 201, "{created}");
    assert_eq!(
        created["roles"],
        json!(["Editor", "Viewer"]),
        "sorted, once each"
    );
    assert_eq!(
        created["tenants"],
        json!([{"tenantId": "acme", "roles": ["Tenant Admin"]}, {"tenantId": "globex", "roles": []}])
    );
    assert_eq!(created["disabled"], false);
    assert_eq!(s.get("/v1/mgmt/users/alice").await.1, created);

    // Unknown references are named, and nothing is stored.
    for (body, entity, id) in [
        (
            json!({"id": "bob", "roles": ["Viewer", "Ghost"]}),
            "role",
            "Ghost",
        ),
        (
            json!({"id": "bob", "tenants": [{"tenantId": "initech", "roles": []}]}),
            "tenant",
            "initech",
        ),
        (
            json!({"id": "bob", "tenants": [{"tenantId": "acme", "roles": ["Phantom"]}]}),
            "role",
            "Phantom",
        ),
    ] {
        let (st, e) = s.post("/v1/mgmt/users", body).await;
        assert_eq!(st, 409, "{e}");
        assert_eq!(e["error"], "unknown_reference", "{e}");
        assert!(e["message"].as_str().unwrap().contains(id), "{e}");
        assert_eq!(e["details"], json!({"entity": entity, "id": id}));
        assert_error(&s.get("/v1/mgmt/users/bob").await, 404, "not_found");
    }
    let (st, e) = s
        .put("/v1/mgmt/users/alice", json!({"roles": ["Ghost"]}))
        .await;
    assert_eq!((st, &e["error"]), (409, &json!("unknown_reference")), "{e}");
    assert_eq!(
        s.get("/v1/mgmt/users/alice").await.1,
        created,
        "a refused update changes nothing"
    );

    // Emails are unique, case-insensitively; ids too.
    assert_error(
        &s.post(
            "/v1/mgmt/users",
            json!({"id": "alice2", "email": "alice@example.COM"}),
        )
        .await,
        409,
        "already_exists",
    );
    assert_error(
        &s.post("/v1/mgmt/users", json!({"id": "alice"})).await,
        409,
        "already_exists",
    );
    s.must_post(
        "/v1/mgmt/users",
        json!({"id": "bob", "email": "bob@example.com", "roles": ["Viewer"]}),
    )
    .await;
    assert_error(
        &s.put("/v1/mgmt/users/bob", json!({"email": "ALICE@example.com"}))
            .await,
        409,
        "already_exists",
    );
    assert_eq!(
        s.get("/v1/mgmt/users/bob").await.1["email"],
        "bob@example.com"
    );
    assert_eq!(ids(&s.get("/v1/mgmt/users").await.1), ["alice", "bob"]);

    // A role in use cannot be deleted (globally or in a tenant), until nobody holds it.
    assert_error(&s.delete("/v1/mgmt/roles/Viewer").await, 409, "role_in_use");
    assert_error(
        &s.delete("/v1/mgmt/roles/Tenant%20Admin").await,
        409,
        "role_in_use",
    );
    let (st, u) = s
        .put("/v1/mgmt/users/alice", json!({"email": "alice@example.com", "roles": ["Editor"], "tenants": [{"tenantId": "acme", "roles": []}]}))
        .await;
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["roles"], json!(["Editor"]));
    assert_eq!(u["attributes"], json!({}), "PUT replaces the attributes");
    assert_eq!(s.delete("/v1/mgmt/roles/Tenant%20Admin").await.0, 204);
    assert_error(&s.delete("/v1/mgmt/roles/Viewer").await, 409, "role_in_use");
    assert_eq!(s.delete("/v1/mgmt/users/bob").await.0, 204);
    assert_eq!(s.delete("/v1/mgmt/roles/Viewer").await.0, 204);
    assert_error(&s.get("/v1/mgmt/roles/Viewer").await, 404, "not_found");
    assert_eq!(ids(&s.get("/v1/mgmt/roles").await.1), ["Editor"]);

    // Deleting a tenant removes its memberships.
    s.must_post("/v1/mgmt/roles", json!({"name": "Auditor"}))
        .await;
    let (st, _) = s
        .put("/v1/mgmt/users/alice", json!({"roles": ["Editor"], "tenants": [{"tenantId": "acme", "roles": ["Auditor"]}, {"tenantId": "globex", "roles": []}]}))
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.delete("/v1/mgmt/tenants/acme").await.0, 204);
    assert_error(&s.get("/v1/mgmt/tenants/acme").await, 404, "not_found");
    assert_eq!(
        s.get("/v1/mgmt/users/alice").await.1["tenants"],
        json!([{"tenantId": "globex", "roles": []}])
    );
    assert_eq!(
        s.delete("/v1/mgmt/roles/Auditor").await.0,
        204,
        "the tenant role went with it"
    );
    assert_eq!(ids(&s.get("/v1/mgmt/tenants").await.1), ["globex"]);
    assert_error(&s.delete("/v1/mgmt/tenants/acme").await, 404, "not_found");
    s.shutdown().await;
}

// ----- Issuers ----------------------------------------------------------------------------------

async fn issuers_from_the_api_and_the_configuration(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        r#"
[[inbound.issuers]]
issuer = "https://login.example.com"
jwks_url = "https://login.example.com/keys"
audiences = ["https://mcp.example.test/mcp"]
roles_claim = "roles"
"#,
    )
    .unwrap();
    let s = TestServer::start_with(backend, |env| {
        env.insert("PORTCULLIS_CONFIG".into(), config.display().to_string());
    })
    .await;
    let idp = Idp::start().await;
    let (st, created) = s.post("/v1/mgmt/issuers", idp.registration()).await;
    assert_eq!(st, 201, "{created}");
    assert_eq!(created["source"], "api");
    assert_eq!(created["issuer"], idp.issuer.as_str());
    assert_eq!(created["audiences"], json!([idp.audience]));
    assert_eq!(created["rolesClaim"], "roles");
    assert_eq!(created["clockSkewSeconds"], 5);
    let id = created["id"].as_str().unwrap().to_owned();

    let (st, list) = s.get("/v1/mgmt/issuers").await;
    assert_eq!(st, 200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    assert_eq!(items[0]["source"], "config");
    assert_eq!(items[0]["issuer"], "https://login.example.com");
    assert_eq!(items[0]["jwksUrl"], "https://login.example.com/keys");
    assert_eq!(items[1], created);
    // The configuration's issuer is read-only: it cannot be registered again.
    let mut again = idp.registration();
    again["issuer"] = json!("https://login.example.com");
    assert_error(
        &s.post("/v1/mgmt/issuers", again).await,
        409,
        "already_exists",
    );
    assert_error(
        &s.post("/v1/mgmt/issuers", idp.registration()).await,
        409,
        "already_exists",
    );

    // The stored issuer's tokens are accepted until it is removed.
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({"id": "weather", "name": "Weather", "type": "apiKey"}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/weather/api-keys",
        json!({"apiKey": "k-1", "userId": idp.principal("alice")}),
    )
    .await;
    let (st, body, _) = s
        .fetch(Some(&idp.token("alice")), "weather", json!({}))
        .await;
    assert_eq!(st, 200, "{body}");

    // Update: a new audience; the old one is refused from the next request.
    let mut changed = idp.registration();
    changed["audiences"] = json!(["https://other.example/mcp"]);
    changed["clockSkewSeconds"] = json!(30);
    let (st, updated) = s.put(&format!("/v1/mgmt/issuers/{id}"), changed).await;
    assert_eq!(st, 200, "{updated}");
    assert_eq!(updated["audiences"], json!(["https://other.example/mcp"]));
    assert_eq!(updated["clockSkewSeconds"], 30);
    assert_eq!(s.get(&format!("/v1/mgmt/issuers/{id}")).await.1, updated);
    let (st, body, _) = s
        .fetch(Some(&idp.token("alice")), "weather", json!({}))
        .await;
    assert_eq!(st, 401, "{body}");

    // A missing or empty audience list is refused: audience validation is mandatory.
    let mut no_audience = idp.registration();
    no_audience["issuer"] = json!("https://elsewhere.example");
    no_audience["audiences"] = json!([]);
    assert_error(
        &s.post("/v1/mgmt/issuers", no_audience.clone()).await,
        400,
        "invalid_issuer",
    );
    no_audience.as_object_mut().unwrap().remove("audiences");
    assert_error(
        &s.post("/v1/mgmt/issuers", no_audience).await,
        400,
        "invalid_body",
    );
    let mut bad = idp.registration();
    bad["audiences"] = json!([]);
    assert_error(
        &s.put(&format!("/v1/mgmt/issuers/{id}"), bad).await,
        400,
        "invalid_issuer",
    );
    assert_eq!(s.get(&format!("/v1/mgmt/issuers/{id}")).await.1, updated);

    assert_eq!(s.delete(&format!("/v1/mgmt/issuers/{id}")).await.0, 204);
    assert_error(
        &s.get(&format!("/v1/mgmt/issuers/{id}")).await,
        404,
        "not_found",
    );
    assert_error(
        &s.delete(&format!("/v1/mgmt/issuers/{id}")).await,
        404,
        "not_found",
    );
    let (_, list) = s.get("/v1/mgmt/issuers").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["source"], "config");
    s.shutdown().await;
}

// ----- OAuth clients ----------------------------------------------------------------------------

/// A token exchange with these client credentials (the subject token is junk: only whether the
/// client authenticates matters).
async fn exchange_as(s: &TestServer, id: &str, secret: &str) -> (u16, Value) {
    let resp = s
        .http
        .post(format!("{}/oauth2/token", s.url))
        .basic_auth(id, Some(secret))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", "not-a-jwt"),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("resource", "urn:portcullis:outbound-app:weather"),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn clients_show_their_secret_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (st, created) = s
        .post(
            "/v1/mgmt/clients",
            json!({"id": "mcp-server", "name": "MCP server", "allowedApps": ["weather", "cal"]}),
        )
        .await;
    assert_eq!(st, 201, "{created}");
    let secret = created["clientSecret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 32, "{secret}");
    assert_eq!(created["id"], "mcp-server");
    assert_eq!(created["allowedApps"], json!(["cal", "weather"]));
    assert_eq!(
        created["grantTypes"],
        json!(["urn:ietf:params:oauth:grant-type:token-exchange"])
    );
    let (st, generated) = s
        .post("/v1/mgmt/clients", json!({"name": "Generated id"}))
        .await;
    assert_eq!(st, 201, "{generated}");
    assert!(generated["id"].as_str().is_some_and(|i| !i.is_empty()));
    assert!(generated.get("allowedApps").is_none());

    let (_, got) = s.get("/v1/mgmt/clients/mcp-server").await;
    let (_, list) = s.get("/v1/mgmt/clients").await;
    for shown in [&got, &list] {
        assert!(!shown.to_string().contains(&secret), "{shown}");
        assert!(!shown.to_string().contains("clientSecret"), "{shown}");
    }
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().remove("clientSecret");
    assert_eq!(got, expected);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // The secret authenticates the client; a wrong one does not.
    let (st, e) = exchange_as(&s, "mcp-server", &secret).await;
    assert_ne!(e["error"], "invalid_client", "{st} {e}");
    let (st, e) = exchange_as(&s, "mcp-server", "pcs_wrong").await;
    assert_eq!((st, &e["error"]), (401, &json!("invalid_client")), "{e}");

    // PUT changes the name and apps, keeps the secret.
    let (st, updated) = s
        .put("/v1/mgmt/clients/mcp-server", json!({"name": "Renamed"}))
        .await;
    assert_eq!(st, 200, "{updated}");
    assert_eq!(updated["name"], "Renamed");
    assert!(updated.get("allowedApps").is_none(), "absent: every app");
    assert_ne!(
        exchange_as(&s, "mcp-server", &secret).await.1["error"],
        "invalid_client"
    );

    // Rotation: a new secret, shown once; the old one stops working at once.
    let (st, rotated) = s
        .post("/v1/mgmt/clients/mcp-server/secret", json!({}))
        .await;
    assert_eq!(st, 201, "{rotated}");
    let new_secret = rotated["clientSecret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert_eq!(exchange_as(&s, "mcp-server", &secret).await.0, 401);
    assert_ne!(
        exchange_as(&s, "mcp-server", &new_secret).await.1["error"],
        "invalid_client"
    );
    assert!(
        !s.get("/v1/mgmt/clients/mcp-server")
            .await
            .1
            .to_string()
            .contains(&new_secret)
    );
    assert_error(
        &s.post("/v1/mgmt/clients/nope/secret", json!({})).await,
        404,
        "not_found",
    );

    assert_eq!(s.delete("/v1/mgmt/clients/mcp-server").await.0, 204);
    assert_eq!(exchange_as(&s, "mcp-server", &new_secret).await.0, 401);
    assert_error(
        &s.get("/v1/mgmt/clients/mcp-server").await,
        404,
        "not_found",
    );
    assert_error(
        &s.delete("/v1/mgmt/clients/mcp-server").await,
        404,
        "not_found",
    );
    s.shutdown().await;
}

// ----- Admin keys -------------------------------------------------------------------------------

async fn new_key(s: &TestServer, scopes: Value) -> String {
    let (st, k) = s
        .post(
            "/v1/mgmt/admin-keys",
            json!({"name": "scoped", "scopes": scopes}),
        )
        .await;
    assert_eq!(st, 201, "{k}");
    assert_eq!(k["scopes"], scopes);
    k["key"].as_str().unwrap().to_owned()
}

/// Who changed what: every management change is recorded with the key that made it, the request
/// that made it, and for policies the document before and after; no secret is recorded; the log is
/// filtered by actor and target and exported as JSON lines.
async fn management_changes_are_recorded_with_their_actor(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (st, alice) = s
        .post(
            "/v1/mgmt/admin-keys",
            json!({"name": "alice-ci", "scopes": ["apps", "policies", "vault"]}),
        )
        .await;
    assert_eq!(st, 201, "{alice}");
    let (st, bob) = s
        .post(
            "/v1/mgmt/admin-keys",
            json!({"name": "bob-ci", "scopes": ["policies"]}),
        )
        .await;
    assert_eq!(st, 201, "{bob}");
    let (alice_key, bob_key) = (alice["key"].as_str().unwrap(), bob["key"].as_str().unwrap());
    let (alice_id, bob_id) = (alice["id"].as_str().unwrap(), bob["id"].as_str().unwrap());
    let call = |key: &str, method: Method, path: &str, body: Option<Value>| {
        let mut req = s
            .http
            .request(method, format!("{}{path}", s.url))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    let resp = call(
        alice_key,
        Method::POST,
        "/v1/mgmt/outbound-apps",
        Some(json!({
        "id": "crm", "name": "CRM", "type": "apiKey"})),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = call(alice_key, Method::POST, "/v1/mgmt/outbound-apps/crm/policies", Some(json!({
        "name": "Viewers", "conditions": [{"source": "userRoles", "operator": "equals", "value": "Viewer"}],
        "scopes": "all"}))).await.unwrap();
    assert_eq!(resp.status(), 201);
    let create_request = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let policy: Value = resp.json().await.unwrap();
    let pid = policy["id"].as_str().unwrap();
    let path = format!("/v1/mgmt/outbound-apps/crm/policies/{pid}");
    let resp = call(bob_key, Method::PUT, &path, Some(json!({
        "name": "Viewers", "conditions": [{"source": "userRoles", "operator": "equals", "value": "Editor"}],
        "scopes": "all"}))).await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = call(bob_key, Method::DELETE, &path, None).await.unwrap();
    assert_eq!(resp.status(), 204);
    let resp = call(
        alice_key,
        Method::POST,
        "/v1/mgmt/outbound-apps/crm/api-keys",
        Some(json!({
        "apiKey": "the-secret-api-key", "userId": "u1"})),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    // A refused change is not recorded.
    let resp = call(bob_key, Method::DELETE, "/v1/mgmt/outbound-apps/crm", None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    let target = format!("outbound-apps/crm/policies/{pid}");
    let (st, log) = s
        .get(&format!("/v1/mgmt/audit?kind=management&target={target}"))
        .await;
    assert_eq!(st, 200, "{log}");
    let items = log["items"].as_array().unwrap();
    let summary: Vec<(&str, &str)> = items
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actorName"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("policy.delete", "bob-ci"),
            ("policy.update", "bob-ci"),
            ("policy.create", "alice-ci")
        ]
    );
    let update = &items[1];
    assert_eq!(update["actorId"], bob_id);
    assert_eq!(
        update["change"]["before"]["conditions"][0]["value"],
        "Viewer"
    );
    assert_eq!(
        update["change"]["after"]["conditions"][0]["value"],
        "Editor"
    );
    assert_eq!(
        items[0]["change"]["before"]["conditions"][0]["value"],
        "Editor"
    );
    assert_eq!(items[2]["requestId"], create_request.as_str());
    // By actor; the app's target finds its policies too; no secret anywhere.
    let (_, by_alice) = s
        .get(&format!("/v1/mgmt/audit?kind=management&actor={alice_id}"))
        .await;
    let actions: Vec<&str> = by_alice["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["api_key.put", "policy.create", "app.create"]);
    let (_, under_app) = s
        .get("/v1/mgmt/audit?kind=management&target=outbound-apps/crm")
        .await;
    assert_eq!(
        under_app["items"].as_array().unwrap().len(),
        4,
        "{under_app}"
    );
    let export = s
        .http
        .get(format!("{}/v1/mgmt/audit/export?kind=management", s.url))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!export.contains("the-secret-api-key"));
    assert!(!export.contains(alice_key) && !export.contains(bob_key));
    let lines: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The two keys' creation, by the bootstrap key, are in the log too.
    assert_eq!(lines.len(), 7, "{export}");
    assert!(lines.iter().any(|e| e["action"] == "admin_key.create"
        && e["target"] == format!("admin-keys/{bob_id}").as_str()));
    // Decision filters do not apply to management events, nor the reverse.
    assert_error(
        &s.get("/v1/mgmt/audit?kind=management&appId=crm").await,
        400,
        "invalid_request",
    );
    assert_error(
        &s.get("/v1/mgmt/audit?actor=ak_x").await,
        400,
        "invalid_request",
    );
    assert_error(
        &s.get("/v1/mgmt/audit?kind=everything").await,
        400,
        "invalid_request",
    );
}

/// Least privilege: a `read` key reads everything but changes nothing and sees no secret; a
/// `policies` key manages policies but cannot touch the vault or the directory; only `admin`
/// manages admin keys; every refusal is 403 `insufficient_scope` naming the scope.
async fn admin_keys_hold_only_their_scopes(backend: Backend) {
    let s = TestServer::start(backend).await;
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({"id": "cal", "name": "Calendar", "type": "oauth", "clientId": "c",
               "clientSecret": "the-client-secret",
               "authorizationUrl": "https://provider.example/authorize",
               "tokenUrl": "https://provider.example/token",
               "scopes": [{"name": "read"}]}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/cal/policies",
        json!({"name": "All", "conditions": [], "scopes": "all"}),
    )
    .await;
    let refused = |(st, e): (u16, Value), scope: &str| {
        assert_eq!(st, 403, "{e}");
        assert_eq!(e["error"], "insufficient_scope", "{e}");
        assert_eq!(e["details"]["scope"], scope, "{e}");
    };

    let read = new_key(&s, json!(["read"])).await;
    for path in [
        "/v1/mgmt/outbound-apps",
        "/v1/mgmt/outbound-apps/cal",
        "/v1/mgmt/outbound-apps/cal/policies",
        "/v1/mgmt/outbound-apps/cal/connections",
        "/v1/mgmt/users",
        "/v1/mgmt/issuers",
        "/v1/mgmt/clients",
        "/v1/mgmt/audit",
        "/v1/mgmt/keys",
    ] {
        let (st, body) = s.with_key(&read, Method::GET, path, None).await;
        assert_eq!(st, 200, "{path}: {body}");
        assert!(!body.to_string().contains("the-client-secret"), "{path}");
    }
    refused(
        s.with_key(
            &read,
            Method::POST,
            "/v1/mgmt/outbound-apps",
            Some(json!({"id": "x", "name": "X", "type": "apiKey"})),
        )
        .await,
        "apps",
    );
    refused(
        s.with_key(&read, Method::DELETE, "/v1/mgmt/outbound-apps/cal", None)
            .await,
        "apps",
    );
    refused(
        s.with_key(
            &read,
            Method::POST,
            "/v1/mgmt/outbound-apps/cal/policies",
            Some(json!({"name": "N", "conditions": [], "scopes": "all"})),
        )
        .await,
        "policies",
    );
    refused(
        s.with_key(
            &read,
            Method::POST,
            "/v1/mgmt/roles",
            Some(json!({"name": "R"})),
        )
        .await,
        "directory",
    );
    refused(
        s.with_key(&read, Method::POST, "/v1/mgmt/keys/rotate", Some(json!({})))
            .await,
        "keys",
    );
    refused(
        s.with_key(&read, Method::GET, "/v1/mgmt/admin-keys", None)
            .await,
        "admin",
    );
    refused(
        s.with_key(
            &read,
            Method::POST,
            "/v1/mgmt/admin-keys",
            Some(json!({"name": "n", "scopes": ["admin"]})),
        )
        .await,
        "admin",
    );
    assert_eq!(
        s.get("/v1/mgmt/outbound-apps/x").await.0,
        404,
        "nothing was created"
    );
    assert_eq!(
        s.get("/v1/mgmt/outbound-apps/cal/policies").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let policies = new_key(&s, json!(["policies"])).await;
    let (st, p) = s
        .with_key(
            &policies,
            Method::POST,
            "/v1/mgmt/outbound-apps/cal/policies",
            Some(json!({"name": "Two", "conditions": [], "scopes": ["read"]})),
        )
        .await;
    assert_eq!(st, 201, "{p}");
    assert_eq!(
        s.with_key(
            &policies,
            Method::GET,
            "/v1/mgmt/outbound-apps/cal/policies",
            None
        )
        .await
        .0,
        200
    );
    refused(
        s.with_key(
            &policies,
            Method::POST,
            "/v1/mgmt/outbound-apps/cal/api-keys",
            Some(json!({"apiKey": "k", "userId": "u"})),
        )
        .await,
        "vault",
    );
    refused(
        s.with_key(
            &policies,
            Method::GET,
            "/v1/mgmt/outbound-apps/cal/connections",
            None,
        )
        .await,
        "read",
    );
    refused(
        s.with_key(
            &policies,
            Method::DELETE,
            "/v1/mgmt/users/u/connections",
            None,
        )
        .await,
        "vault",
    );
    refused(
        s.with_key(
            &policies,
            Method::PUT,
            "/v1/mgmt/outbound-apps/cal",
            Some(json!({"name": "C"})),
        )
        .await,
        "apps",
    );
    refused(
        s.with_key(
            &policies,
            Method::POST,
            "/v1/mgmt/users",
            Some(json!({"id": "u"})),
        )
        .await,
        "directory",
    );

    // A key needs at least one known scope.
    assert_error(
        &s.post("/v1/mgmt/admin-keys", json!({"name": "n", "scopes": []}))
            .await,
        400,
        "invalid_request",
    );
    assert_error(
        &s.post(
            "/v1/mgmt/admin-keys",
            json!({"name": "n", "scopes": ["root"]}),
        )
        .await,
        400,
        "invalid_body",
    );
    assert_error(
        &s.post("/v1/mgmt/admin-keys", json!({"name": "n"})).await,
        400,
        "invalid_body",
    );
    // The bootstrap key is an admin key; every key's scopes are listed.
    let (_, keys) = s.get("/v1/mgmt/admin-keys").await;
    let scopes: Vec<&Value> = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["scopes"])
        .collect();
    assert!(scopes.contains(&&json!(["admin"])), "{keys}");
    assert!(
        scopes.contains(&&json!(["read"])) && scopes.contains(&&json!(["policies"])),
        "{keys}"
    );
}

async fn admin_keys_work_expire_and_die_at_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (st, created) = s
        .post(
            "/v1/mgmt/admin-keys",
            json!({"name": "ci", "scopes": ["admin"]}),
        )
        .await;
    assert_eq!(st, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "ci");
    assert!(created.get("expiresAt").is_none());
    let (_, list) = s.get("/v1/mgmt/admin-keys").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    assert!(!list.to_string().contains(&key));
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("key").is_none())
    );

    // The new key works, for reads and writes.
    assert_eq!(
        s.with_key(&key, Method::GET, "/v1/mgmt/roles", None)
            .await
            .0,
        200
    );
    let resp = s
        .http
        .post(format!("{}/v1/mgmt/roles", s.url))
        .bearer_auth(&key)
        .json(&json!({"name": "made-by-ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);

    // A key cannot delete itself.
    let resp = s
        .http
        .delete(format!("{}/v1/mgmt/admin-keys/{id}", s.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"], "cannot_delete_own_key");
    assert_eq!(
        s.with_key(&key, Method::GET, "/v1/mgmt/roles", None)
            .await
            .0,
        200
    );

    // Deleted by another key, it stops working at once.
    assert_eq!(s.delete(&format!("/v1/mgmt/admin-keys/{id}")).await.0, 204);
    assert_eq!(
        s.with_key(&key, Method::GET, "/v1/mgmt/roles", None)
            .await
            .0,
        401
    );
    assert_error(
        &s.delete(&format!("/v1/mgmt/admin-keys/{id}")).await,
        404,
        "not_found",
    );

    // An expiry in the past is refused; a key past its expiry is refused.
    let past = now().add_secs(-60).to_rfc3339();
    assert_error(
        &s.post(
            "/v1/mgmt/admin-keys",
            json!({"name": "late", "scopes": ["read"], "expiresAt": past}),
        )
        .await,
        400,
        "invalid_request",
    );
    let expires = now().add_millis(1500);
    let (st, short) = s
        .post(
            "/v1/mgmt/admin-keys",
            json!({"name": "short", "scopes": ["read"], "expiresAt": expires.to_rfc3339()}),
        )
        .await;
    assert_eq!(st, 201, "{short}");
    assert_eq!(short["expiresAt"], expires.to_rfc3339().as_str());
    let short_key = short["key"].as_str().unwrap().to_owned();
    assert_eq!(
        s.with_key(&short_key, Method::GET, "/v1/mgmt/roles", None)
            .await
            .0,
        200
    );
    let started = Instant::now();
    while now() <= expires.add_millis(50) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    let resp = s
        .http
        .get(format!("{}/v1/mgmt/roles", s.url))
        .bearer_auth(&short_key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"], "unauthorized");
    assert!(e["message"].as_str().unwrap().contains("expired"), "{e}");
    // The bootstrap key still works.
    assert_eq!(s.get("/v1/mgmt/roles").await.0, 200);
    s.shutdown().await;
}

// ----- Data keys --------------------------------------------------------------------------------

async fn key_rotation_keeps_stored_tokens_working(backend: Backend) {
    let s = TestServer::start(backend).await;
    let idp = Idp::start().await;
    s.trust(&idp).await;
    let tokens = TokenEndpoint::start().await;
    s.must_post(
        "/v1/mgmt/outbound-apps",
        json!({"id": "weather", "name": "Weather", "type": "apiKey"}),
    )
    .await;
    s.must_post(
        "/v1/mgmt/outbound-apps/weather/api-keys",
        json!({"apiKey": "weather-key-1", "userId": idp.principal("alice")}),
    )
    .await;
    let mut cal = oauth_app("cal", &tokens.url);
    cal["tokenEndpointAuthMethod"] = json!("client_secret_post");
    s.must_post("/v1/mgmt/outbound-apps", cal).await;
    let expires = now().add_secs(86_400).to_rfc3339();
    s.must_post(
        "/v1/mgmt/outbound-apps/cal/tokens",
        json!({"tokens": [{"userId": idp.principal("alice"), "accessToken": "cal-access-1", "refreshToken": "cal-refresh-1", "expiresAt": expires, "scopes": ["read"]}]}),
    )
    .await;

    let (st, before) = s.get("/v1/mgmt/keys").await;
    assert_eq!(st, 200, "{before}");
    let old = before["activeKeyId"].as_u64().unwrap();
    assert_eq!(before["keys"].as_array().unwrap().len(), 1, "{before}");
    assert_eq!(before["keys"][0]["active"], true);

    let (st, rotated) = s.post("/v1/mgmt/keys/rotate", json!({})).await;
    assert_eq!(st, 200, "{rotated}");
    let new = rotated["activeKeyId"].as_u64().unwrap();
    assert_ne!(new, old);
    assert_eq!(rotated["reencryption"]["targetKeyId"], new);
    let started = Instant::now();
    let status = loop {
        let (_, k) = s.get("/v1/mgmt/keys").await;
        if k["reencryption"]["state"] != "running" {
            break k;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "re-encryption never ends: {k}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["reencryption"]["state"], "done", "{status}");
    assert_eq!(status["activeKeyId"], new);
    assert_eq!(
        status["reencryption"]["report"]["connections"], 2,
        "{status}"
    );
    assert_eq!(
        status["reencryption"]["report"]["appSecrets"], 1,
        "{status}"
    );
    let keys = status["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().filter(|k| k["active"] == true).count(), 1);

    // Everything sealed before the rotation still opens.
    let token = idp.token("alice");
    let (st, body, _) = s.fetch(Some(&token), "weather", json!({})).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["token"]["apiKey"], "weather-key-1");
    let (st, body, _) = s
        .fetch(Some(&token), "cal", json!({"scopes": ["read"]}))
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["token"]["accessToken"], "cal-access-1");
    let (st, body, _) = s
        .fetch(
            Some(&token),
            "cal",
            json!({"scopes": ["read"], "forceRefresh": true}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["token"]["accessToken"], "refreshed-1");
    let seen = tokens.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].contains(&("refresh_token".into(), "cal-refresh-1".into())),
        "{seen:?}"
    );
    assert!(
        seen[0].contains(&("client_secret".into(), "cal-secret".into())),
        "{seen:?}"
    );
    s.shutdown().await;
}

// ----- Operations -------------------------------------------------------------------------------

async fn operational_endpoints_answer(backend: Backend) {
    let s = TestServer::start(backend).await;
    for path in ["/healthz", "/readyz"] {
        let resp = s.http.get(format!("{}{path}", s.url)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["status"].is_string(), "{path}: {body}");
    }
    let resp = s
        .http
        .get(format!("{}/openapi.json", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        resp.headers()
    );
    let doc: Value = resp.json().await.expect("the OpenAPI document is JSON");
    assert!(doc.is_object());
    // Something to count, then the count.
    assert_eq!(s.get("/v1/mgmt/roles").await.0, 200);
    let resp = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        resp.headers()
    );
    let text = resp.text().await.unwrap();
    assert!(text.contains("portcullis_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/v1/mgmt/roles\""), "{text}");
    s.shutdown().await;
}

both_backends!(
    apps_and_policies_round_trip,
    lists_paginate_with_a_cursor,
    outbound_apps_keep_every_field_and_the_write_only_secret,
    deleting_an_app_removes_its_policies_and_connections,
    policies_crud_and_validation,
    users_roles_and_tenants,
    issuers_from_the_api_and_the_configuration,
    clients_show_their_secret_once,
    admin_keys_work_expire_and_die_at_once,
    admin_keys_hold_only_their_scopes,
    management_changes_are_recorded_with_their_actor,
    key_rotation_keeps_stored_tokens_working,
    operational_endpoints_answer,
);
