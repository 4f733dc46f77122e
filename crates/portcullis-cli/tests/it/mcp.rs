//! `portcullis-mcp`'s layer in front of an MCP server on the official Rust SDK (`rmcp`,
//! streamable HTTP), with tokens issued by a real Portcullis: RFC 9728 metadata, the 401 that
//! sends a client to sign in, the step-up 403 naming every scope a tool call needs, and the
//! verified caller handed to the tool.

use std::sync::Arc;

use portcullis_mcp::{Caller, McpAuth};
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};

use crate::support::{Backend, Idp, TestServer};

/// A calendar MCP server: `list_events` needs `calendar.read`, `create_event` `calendar.write`.
/// Each tool answers with who called it, as the layer verified.
#[derive(Clone)]
struct Calendar;

impl ServerHandler for Calendar {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, rmcp::ErrorData> {
        let schema: Arc<serde_json::Map<String, Value>> =
            Arc::new(json!({"type": "object"}).as_object().cloned().unwrap());
        Ok(ListToolsResult::with_all_items(vec![
            Tool::new("list_events", "Lists events", schema.clone()),
            Tool::new("create_event", "Creates an event", schema),
        ]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, rmcp::ErrorData> {
        let caller = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Caller>())
            .cloned()
            .ok_or_else(|| rmcp::ErrorData::internal_error("no verified caller", None))?;
        let scopes: Vec<&str> = caller.scopes.iter().map(String::as_str).collect();
        Ok(CallToolResult::success(vec![ContentBlock::text(format!(
            "{} called {} with {}",
            caller.subject,
            request.name,
            scopes.join(" ")
        ))])
        .into())
    }
}

/// Serves the calendar behind the layer; its resource URI.
async fn serve_calendar(issuer: &str) -> (String, McpAuth) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let auth = McpAuth::builder(issuer, &resource)
        .name("Calendar")
        .tool("list_events", &["calendar.read"])
        .tool("create_event", &["calendar.read", "calendar.write"])
        .build()
        .unwrap();
    let mcp = StreamableHttpService::new(
        || Ok(Calendar),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_sse_keep_alive(None),
    );
    let app = axum::Router::new()
        .nest_service("/mcp", mcp)
        .layer(auth.layer())
        .merge(auth.metadata_router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (resource, auth)
}

async fn client_token(s: &TestServer, secret: &str, resource: &str, scope: &str) -> String {
    let resp: Value = s
        .http
        .post(format!("{}/oauth2/token", s.url))
        .basic_auth("agent", Some(secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", resource),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{resp}"))
        .to_owned()
}

/// The `_meta` a request carries under protocol revision 2026-07-28 (no session).
fn request_meta() -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}})
}

/// A JSON-RPC call to the MCP endpoint, as a streamable-HTTP client posts it.
async fn rpc(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, String, String) {
    let mut req = http
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", body["method"].as_str().unwrap());
    if let Some(name) = body.pointer("/params/name").and_then(Value::as_str) {
        req = req.header("Mcp-Name", name);
    }
    req = req.json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, resp.text().await.unwrap())
}

fn call(tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": {}, "_meta": request_meta()}})
}

async fn the_layer_guards_an_rmcp_server_with_portcullis_tokens(backend: Backend) {
    let s = TestServer::start(backend).await;
    let issuer = s.url.clone();
    let (resource, auth) = serve_calendar(&issuer).await;
    s.must_post(
        "/v1/mgmt/resources",
        json!({"id": "calendar", "uri": resource, "name": "Calendar",
            "scopes": [{"name": "calendar.read"}, {"name": "calendar.write"}]}),
    )
    .await;
    let agent = s
        .must_post(
            "/v1/mgmt/clients",
            json!({"id": "agent", "name": "Agent", "grantTypes": ["client_credentials"]}),
        )
        .await;
    let secret = agent["clientSecret"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();

    // The protected-resource metadata, at the RFC 9728 path for /mcp.
    let meta_url = auth.metadata_url().to_owned();
    assert!(meta_url.ends_with("/.well-known/oauth-protected-resource/mcp"));
    let meta: Value = http
        .get(&meta_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["resource"], resource);
    assert_eq!(meta["authorization_servers"], json!([issuer]));
    assert_eq!(
        meta["scopes_supported"],
        json!(["calendar.read", "calendar.write"])
    );

    // No token: 401, pointing at the metadata.
    let (status, challenge, _) = rpc(&http, &resource, None, call("list_events")).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{meta_url}\"")
    );

    // A reader may list events; the tool sees who called.
    let reader = client_token(&s, &secret, &resource, "calendar.read").await;
    let (status, _, body) = rpc(&http, &resource, Some(&reader), call("list_events")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("agent called list_events with calendar.read"),
        "{body}"
    );
    // ... and is asked to step up to create one: every scope the call needs, named.
    let (status, challenge, _) = rpc(&http, &resource, Some(&reader), call("create_event")).await;
    assert_eq!(status, 403);
    assert_eq!(
        challenge,
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"calendar.read calendar.write\", resource_metadata=\"{meta_url}\""
        )
    );
    let writer = client_token(&s, &secret, &resource, "calendar.read calendar.write").await;
    let (status, _, body) = rpc(&http, &resource, Some(&writer), call("create_event")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("agent called create_event"), "{body}");
    // Listing tools needs no tool scope.
    let (status, _, body) = rpc(
        &http,
        &resource,
        Some(&reader),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": request_meta()}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("create_event"), "{body}");

    // Tokens this server must not accept: 401 invalid_token, nothing reaches the tool.
    let other_resource = "https://elsewhere.example/mcp";
    s.must_post(
        "/v1/mgmt/resources",
        json!({"id": "elsewhere", "uri": other_resource, "name": "Elsewhere",
            "scopes": [{"name": "calendar.read"}]}),
    )
    .await;
    let for_elsewhere = client_token(&s, &secret, other_resource, "calendar.read").await;
    let idp = Idp::start().await;
    let foreign = idp.token("mallory");
    let tampered = format!("{}x", &reader[..reader.len() - 1]);
    for bad in [
        for_elsewhere.as_str(),
        foreign.as_str(),
        tampered.as_str(),
        "not-a-jwt",
    ] {
        let (status, challenge, body) = rpc(&http, &resource, Some(bad), call("list_events")).await;
        assert_eq!(status, 401, "{body}");
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\"")
                && challenge.ends_with(&format!("resource_metadata=\"{meta_url}\"")),
            "{challenge}"
        );
    }
}

crate::both_backends!(the_layer_guards_an_rmcp_server_with_portcullis_tokens);
