//! Resource servers (MCP servers) as an admin registers them: canonical URIs, the fetch scope
//! always offered, clear refusals that change nothing, scoped admin keys, the management audit,
//! and the RFC 9728 metadata each can serve.

use reqwest::Method;
use serde_json::json;

use crate::both_backends;
use crate::support::{Backend, TestServer};

async fn resource_servers_are_registered_exactly(backend: Backend) {
    let s = TestServer::start(backend).await;
    let crm = json!({
        "id": "crm",
        "uri": "https://CRM.Example.com:443/",
        "name": "CRM tools",
        "description": "Accounts and deals",
        "scopes": [{"name": "crm.read", "description": "Read accounts"}, {"name": "crm.write"}],
    });
    let (st, created) = s.post("/v1/mgmt/resources", crm.clone()).await;
    assert_eq!(st, 201, "{created}");
    // Stored canonical; the fetch scope is offered too.
    assert_eq!(created["uri"], "https://crm.example.com");
    let scopes: Vec<&str> = created["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["crm.read", "crm.write", "outbound.token.fetch"]);

    // Refusals say why and change nothing.
    for (uri, why) in [
        ("https://crm.example.com/mcp#tools", "fragment"),
        ("https://crm.example.com/mcp?x=1", "query"),
        ("http://crm.example.com/mcp", "https"),
        ("ftp://crm.example.com/mcp", "https"),
        ("https://user:pw@crm.example.com/mcp", "credentials"),
        ("/mcp", "absolute"),
    ] {
        let mut bad = crm.clone();
        bad["id"] = json!("other");
        bad["uri"] = json!(uri);
        let (st, e) = s.post("/v1/mgmt/resources", bad).await;
        assert_eq!(st, 400, "{uri}: {e}");
        assert_eq!(e["error"], "invalid_resource_uri", "{uri}: {e}");
        assert!(e["message"].as_str().unwrap().contains(why), "{uri}: {e}");
    }
    let mut dup_scope = crm.clone();
    dup_scope["id"] = json!("other");
    dup_scope["uri"] = json!("https://other.example.com/mcp");
    dup_scope["scopes"] = json!([{"name": "a"}, {"name": "a"}]);
    let (st, e) = s.post("/v1/mgmt/resources", dup_scope).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_scope")),
        "{e}"
    );
    let mut spaced = crm.clone();
    spaced["id"] = json!("other");
    spaced["uri"] = json!("https://other.example.com/mcp");
    spaced["scopes"] = json!([{"name": "two words"}]);
    let (st, e) = s.post("/v1/mgmt/resources", spaced).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_scope")),
        "{e}"
    );
    // The same URI, written otherwise, is the same resource.
    let mut same_uri = crm.clone();
    same_uri["id"] = json!("crm2");
    same_uri["uri"] = json!("https://crm.example.com");
    let (st, e) = s.post("/v1/mgmt/resources", same_uri).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (409, Some("already_exists")),
        "{e}"
    );
    let (_, listed) = s.get("/v1/mgmt/resources").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");

    // A loopback MCP server in development may use http.
    let local = json!({"id": "local", "uri": "http://127.0.0.1:9000/mcp", "name": "Local"});
    let (st, e) = s.post("/v1/mgmt/resources", local).await;
    assert_eq!(st, 201, "{e}");

    // Only a key with the `clients` scope (or `admin`) registers; `read` reads.
    let (_, reader) = s
        .post(
            "/v1/mgmt/admin-keys",
            json!({"name": "reader", "scopes": ["read"]}),
        )
        .await;
    let reader = reader["key"].as_str().unwrap().to_owned();
    let mut docs = crm.clone();
    docs["id"] = json!("docs");
    docs["uri"] = json!("https://docs.example.com/mcp");
    let (st, e) = s
        .with_key(
            &reader,
            Method::POST,
            "/v1/mgmt/resources",
            Some(docs.clone()),
        )
        .await;
    assert_eq!(
        (st, e["error"].as_str()),
        (403, Some("insufficient_scope")),
        "{e}"
    );
    let (st, _) = s
        .with_key(&reader, Method::GET, "/v1/mgmt/resources/crm", None)
        .await;
    assert_eq!(st, 200);

    // Replace; the id stays; the audit holds before and after with who changed it.
    let mut renamed = crm.clone();
    renamed["name"] = json!("CRM");
    renamed["uri"] = json!("https://crm.example.com/mcp");
    let (st, updated) = s.put("/v1/mgmt/resources/crm", renamed).await;
    assert_eq!(st, 200, "{updated}");
    assert_eq!(updated["uri"], "https://crm.example.com/mcp");
    assert_eq!(updated["createdAt"], created["createdAt"]);
    let (_, audit) = s
        .get("/v1/mgmt/audit?kind=management&target=resources/crm")
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["resource.update", "resource.create"], "{audit}");
    assert_eq!(audit["items"][0]["change"]["before"]["name"], "CRM tools");
    assert_eq!(audit["items"][0]["change"]["after"]["name"], "CRM");

    // The RFC 9728 document the MCP server serves.
    let (st, prm) = s.get("/v1/mgmt/resources/crm/metadata").await;
    assert_eq!(st, 200, "{prm}");
    assert_eq!(prm["resource"], "https://crm.example.com/mcp");
    assert_eq!(
        prm["authorization_servers"],
        json!([s.url.trim_end_matches('/')])
    );
    assert_eq!(
        prm["scopes_supported"],
        json!(["crm.read", "crm.write", "outbound.token.fetch"])
    );
    assert_eq!(prm["bearer_methods_supported"], json!(["header"]));

    let (st, _) = s.delete("/v1/mgmt/resources/crm").await;
    assert_eq!(st, 204);
    let (st, e) = s.get("/v1/mgmt/resources/crm/metadata").await;
    assert_eq!((st, e["error"].as_str()), (404, Some("not_found")), "{e}");
}

both_backends!(resource_servers_are_registered_exactly);
