//! The management API: CRUD, pagination, and the documented error shape.

use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, TestServer};

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

both_backends!(apps_and_policies_round_trip, lists_paginate_with_a_cursor);
