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

use crate::authz::Browser;
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

/// The `_meta` a request carries under protocol revision 2026-07-28 (no session), declaring
/// the client's `capabilities`.
fn request_meta(capabilities: Value) -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": capabilities})
}

/// `tools/list`.
fn list_tools() -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": request_meta(json!({}))}})
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

/// `tools/call` of `tool` with no arguments, from a client declaring no capabilities.
fn call(tool: &str) -> Value {
    call_with(tool, json!({}), json!({}))
}

/// `tools/call` with `arguments`, from a client declaring `capabilities`.
fn call_with(tool: &str, arguments: Value, capabilities: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, "_meta": request_meta(capabilities)}})
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
    let (status, _, body) = rpc(&http, &resource, Some(&reader), list_tools()).await;
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

/// A user's access token for `resource`, through the real sign-in and consent pages, and the
/// browser now signed in at Portcullis.
async fn user_token(s: &TestServer, resource: &str, login: &str) -> (String, Browser) {
    let (verifier, challenge) = crate::authz::pkce();
    let redirect = "http://127.0.0.1:5555/callback";
    let mut url = url::Url::parse(&format!("{}/oauth2/authorize", s.url)).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "desktop")
        .append_pair("redirect_uri", redirect)
        .append_pair(
            "scope",
            "calendar.read calendar.write crm.read outbound.token.fetch",
        )
        .append_pair("state", "st")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", resource);
    let mut b = Browser::new();
    let page = b.get(url.as_str()).await;
    let consent = b.sign_in(s, &page, login, "correct horse battery").await;
    let back = b.allow(s, &consent, false).await;
    let code = back
        .param("code")
        .unwrap_or_else(|| panic!("{}", back.body));
    let t: Value = s
        .http
        .post(format!("{}/oauth2/token", s.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", verifier.as_str()),
            ("client_id", "desktop"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = t["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{t}"))
        .to_owned();
    (token, b)
}

/// Connects `app` in the user's own browser (signed in at Portcullis): the connect link's page,
/// "Continue", the provider (which consents at once), the callback.
async fn connect_in(s: &TestServer, b: &mut Browser, token: &str, app: &str, scopes: &[&str]) {
    let link = s
        .connect_link(token, app, json!({ "scopes": scopes }))
        .await;
    let page = b.get(&link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let go = b
        .post(
            &link,
            &[("action", "continue"), ("csrf", &page.field("csrf"))],
        )
        .await;
    assert_eq!(go.status, 303, "{}", go.body);
    let back = b.get(go.location.as_deref().unwrap()).await;
    assert!([302, 303].contains(&back.status), "{}", back.body);
    let done = b.get(back.location.as_deref().unwrap()).await;
    assert_eq!(done.status, 200, "{}", done.body);
}

/// The JSON-RPC answer in an MCP response body (JSON, or the last event of a stream).
fn answer(body: &str) -> Value {
    let data = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .rfind(|d| !d.trim().is_empty())
        .unwrap_or(body);
    serde_json::from_str(data.trim()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The calendar example end to end: Portcullis, the example's provider, calendar API and CRM,
/// and its MCP server on rmcp. Users sign in through Portcullis; every tool call is decided by
/// the policies on the caller's roles at that moment.
async fn the_calendar_example_decides_every_tool_call(backend: Backend) {
    use portcullis_example_calendar::{Config, mcp, story};
    let s = TestServer::start(backend).await;
    let services = portcullis_example_calendar::start(
        "127.0.0.1:0".parse().unwrap(),
        Config {
            client_id: story::CLIENT_ID.into(),
            client_secret: story::CLIENT_SECRET.into(),
            redirect_uris: vec![format!("{}/v1/outbound/callback/calendar", s.url)],
            crm_keys: vec!["crm-key".into()],
            idp: None,
        },
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    let app = mcp::router(mcp::Settings {
        portcullis: s.url.clone(),
        resource: resource.clone(),
        services: services.base_url.clone(),
        calendar_app: "calendar".into(),
        crm_app: "crm".into(),
        static_credential: None,
    })
    .unwrap();
    tokio::spawn(portcullis_example_calendar::serve(listener, app));

    // The MCP server, its client, the apps and their policies, two users.
    let admin = portcullis_client::Client::new(&s.url, Some(s.admin_key.clone())).unwrap();
    let story = story::configure(
        &admin,
        &story::Story {
            services: &services.base_url,
            resource: &resource,
            password: "correct horse battery",
            crm_key: "crm-key",
            idp: None,
        },
    )
    .await
    .unwrap();
    let (vera, mut vera_browser) = user_token(&s, &resource, "vera@example.com").await;
    let (eddie, mut eddie_browser) = user_token(&s, &resource, "eddie@example.com").await;
    let http = reqwest::Client::new();
    let call_as = |token: &str, tool: &str, args: Value, caps: Value| {
        let body = call_with(tool, args, caps);
        let (http, resource, token) = (http.clone(), resource.clone(), token.to_owned());
        async move {
            let (status, _, body) = rpc(&http, &resource, Some(&token), body).await;
            assert_eq!(status, 200, "{body}");
            answer(&body)
        }
    };
    let tools_of = |token: &str| {
        let (http, resource, token) = (http.clone(), resource.clone(), token.to_owned());
        async move {
            let (status, _, body) = rpc(&http, &resource, Some(&token), list_tools()).await;
            assert_eq!(status, 200, "{body}");
            let mut names: Vec<String> = answer(&body)["result"]["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_owned())
                .collect();
            names.sort();
            names
        }
    };
    let text_of = |v: &Value| {
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    // Vera (Viewer) sees what her policies allow: no create_event.
    assert_eq!(tools_of(&vera).await, ["list_events", "lookup_customer"]);
    // Not connected yet: a client that opens URLs is asked to (URL elicitation); another gets
    // the link in the result.
    let asked = call_as(
        &vera,
        "list_events",
        json!({}),
        json!({"elicitation": {"url": {}}}),
    )
    .await;
    assert_eq!(asked["error"]["code"], -32042, "{asked}");
    let link = asked["error"]["data"]["elicitations"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(s.is_connect_link(&link), "{link}");
    let told = call_as(&vera, "list_events", json!({}), json!({})).await;
    assert_eq!(told["result"]["isError"], true, "{told}");
    assert!(text_of(&told).contains("/v1/outbound/connect/"), "{told}");
    // She connects (the example's provider consents at once), then lists her events.
    connect_in(
        &s,
        &mut vera_browser,
        &vera,
        "calendar",
        &["calendar.readonly"],
    )
    .await;
    let listed = call_as(&vera, "list_events", json!({}), json!({})).await;
    assert_eq!(listed["result"]["isError"], false, "{listed}");
    assert!(text_of(&listed).contains("\"items\""), "{listed}");
    // Creating one is denied by the policies, with the explanation, even though she asks.
    let denied = call_as(
        &vera,
        "create_event",
        json!({"title": "Offsite", "start": "2026-12-10T09:00:00Z"}),
        json!({}),
    )
    .await;
    assert_eq!(denied["result"]["isError"], true, "{denied}");
    assert!(text_of(&denied).starts_with("Not allowed:"), "{denied}");
    // The CRM by its API key.
    let found = call_as(&vera, "lookup_customer", json!({"name": "Acme"}), json!({})).await;
    assert!(text_of(&found).contains("Acme Inc."), "{found}");

    // Eddie (Editor) connects with both scopes and creates an event.
    assert_eq!(tools_of(&eddie).await, ["create_event", "list_events"]);
    connect_in(
        &s,
        &mut eddie_browser,
        &eddie,
        "calendar",
        &["calendar.readonly", "calendar.events"],
    )
    .await;
    let created = call_as(
        &eddie,
        "create_event",
        json!({"title": "Offsite", "start": "2026-12-10T09:00:00Z"}),
        json!({}),
    )
    .await;
    assert_eq!(created["result"]["isError"], false, "{created}");
    assert!(
        services
            .events_of("demo")
            .iter()
            .any(|e| e["title"] == "Offsite")
    );

    // An admin narrows the policy: the very next call is decided on it.
    let pid = &story.viewers_read;
    let (status, _) = s
        .put(
            &format!("/v1/mgmt/outbound-apps/calendar/policies/{pid}"),
            json!({"name": "Viewers read", "conditions": [{"source": "userRoles", "operator": "equals", "value": "Editor"}],
                "scopes": ["calendar.readonly"]}),
        )
        .await;
    assert_eq!(status, 200);
    let now_denied = call_as(&vera, "list_events", json!({}), json!({})).await;
    assert!(
        text_of(&now_denied).starts_with("Not allowed:"),
        "{now_denied}"
    );
    assert_eq!(tools_of(&vera).await, ["lookup_customer"]);
}

crate::both_backends!(
    the_layer_guards_an_rmcp_server_with_portcullis_tokens,
    the_calendar_example_decides_every_tool_call
);

/// `portcullis demo`, as a newcomer runs it: the story walks to its end — single sign-on whose
/// groups become roles, the connect step, allowed and blocked calls with the reason, a policy
/// change decided on the very next call — and says where everything is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_walks_its_story_and_says_where_everything_is() {
    let any = ["--listen", "127.0.0.1:0", "--mcp-listen", "127.0.0.1:0"];
    let args = |extra: &[&str]| {
        let mut a = vec!["demo".to_owned()];
        a.extend(any.iter().chain(extra).map(|s| (*s).to_owned()));
        a
    };
    let out = crate::cli::portcullis(args(&["--exit"])).await;
    let text = crate::cli::stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "roles [\"Viewer\"]",
        "✓ list_events, lookup_customer",
        "(URL elicitation): http://",
        "✗ blocked: Not allowed: the access control policies do not allow every requested scope — denied calendar.events; this user may have calendar.readonly (policy \"Viewers read\")",
        "✓ allowed: {\"account\":\"Acme Inc.\"",
        "roles [\"Editor\"]",
        "✓ connected, and allowed: {\"id\":",
        "✗ the very next call is blocked: Not allowed: no access control policy of this app allows this user",
        "Vera's next call is allowed again",
        "admin key         pca_",
    ] {
        assert!(text.contains(step), "missing {step:?} in:\n{text}");
    }

    // For programs: the story on stderr, then one JSON object of where everything is.
    let out = crate::cli::portcullis(args(&["--exit", "--no-story", "--output", "json"])).await;
    assert!(out.status.success());
    let ready: Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in ["portcullis", "mcp", "identityProvider", "services"] {
        assert!(
            ready[key]
                .as_str()
                .unwrap()
                .starts_with("http://127.0.0.1:"),
            "{ready}"
        );
    }
    assert!(ready["adminKey"].as_str().unwrap().starts_with("pca_"));
    assert!(
        !std::path::Path::new(ready["dataDir"].as_str().unwrap()).exists(),
        "the temporary data is removed"
    );

    // A port in use: a clear error, exit 1.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let out = crate::cli::portcullis(vec![
        "demo".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--mcp-listen".into(),
        port.clone(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {port}")), "{err}");
}
