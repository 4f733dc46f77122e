//! The example's MCP server, on the official Rust SDK (`rmcp`, streamable HTTP), behind
//! `portcullis-mcp`'s layer. Every tool call fetches the user's third-party credential through
//! Portcullis with the caller's token:
//!
//! - allowed: the tool calls the calendar API (or the CRM) with it;
//! - denied by the policies: a tool error carrying Portcullis's explanation;
//! - not connected, or consent required: a URL-mode elicitation (JSON-RPC error -32042) when the
//!   client declared it can open URLs, otherwise a tool error carrying the connect URL.
//!
//! `tools/list` shows only the tools whose scopes the policies allow the user (a decision-only
//! check per tool; a tool the user could use once connected is shown).

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use portcullis_client::{CheckOutcome, Client, Refusal, TokenOutcome};
use portcullis_mcp::{Caller, McpAuth, SetupError};
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorCode,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Map, Value, json};

use crate::{READ, WRITE};

/// The JSON-RPC error code of a URL-mode elicitation the call needs first.
const URL_ELICITATION_REQUIRED: i32 = -32042;

/// Where the MCP server finds everything.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Portcullis's base URL (its issuer identifier).
    pub portcullis: String,
    /// This server's resource URI, as registered in Portcullis (`.../mcp`).
    pub resource: String,
    /// The example services' base URL (calendar API and CRM).
    pub services: String,
    /// The outbound app of the calendar, in Portcullis.
    pub calendar_app: String,
    /// The outbound app of the CRM, in Portcullis.
    pub crm_app: String,
    /// A credential every tool uses instead of fetching one through Portcullis: the baseline of
    /// `bench/mcp-load.sh`, which measures what the fetch adds to a tool call. `None` in use.
    pub static_credential: Option<String>,
}

/// A tool: the scope the caller's token needs, the outbound app and the scopes it needs there.
struct Spec {
    name: &'static str,
    description: &'static str,
    inbound: &'static str,
    crm: bool,
    outbound: &'static [&'static str],
    input: fn() -> Value,
}

const TOOLS: &[Spec] = &[
    Spec {
        name: "list_events",
        description: "Lists the events of the user's calendar.",
        inbound: "calendar.read",
        crm: false,
        outbound: &[READ],
        input: || json!({"type": "object", "properties": {}}),
    },
    Spec {
        name: "create_event",
        description: "Creates an event in the user's calendar.",
        inbound: "calendar.write",
        crm: false,
        outbound: &[WRITE],
        input: || {
            json!({"type": "object", "required": ["title", "start"], "properties": {
                "title": {"type": "string"}, "start": {"type": "string", "description": "RFC 3339"}}})
        },
    },
    Spec {
        name: "lookup_customer",
        description: "Looks a customer up in the CRM.",
        inbound: "crm.read",
        crm: true,
        outbound: &[],
        input: || json!({"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}),
    },
];

/// The MCP endpoint (at the resource's path) with the layer, and the protected-resource metadata;
/// serve it with [`crate::serve`].
///
/// # Errors
/// When a URL in `settings` is not valid.
pub fn router(settings: Settings) -> Result<Router, SetupError> {
    let mut auth = McpAuth::builder(&settings.portcullis, &settings.resource)
        .name("Calendar")
        .require(&["outbound.token.fetch"]);
    for t in TOOLS {
        auth = auth.tool(t.name, &[t.inbound]);
    }
    let auth = auth.build()?;
    let portcullis =
        Client::new(&settings.portcullis, None).map_err(|e| SetupError::Url(e.to_string()))?;
    let server = Calendar {
        settings: Arc::new(settings.clone()),
        portcullis,
        http: reqwest::Client::new(),
    };
    let path = url::Url::parse(&settings.resource)
        .map_err(|e| SetupError::Url(e.to_string()))?
        .path()
        .to_owned();
    let mcp = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        // A tool's answer as one JSON body, not a one-event stream.
        StreamableHttpServerConfig::default()
            .with_sse_keep_alive(None)
            .with_json_response(true),
    );
    Ok(Router::new()
        .nest_service(&path, mcp)
        .layer(auth.layer())
        .merge(auth.metadata_router()))
}

#[derive(Clone)]
struct Calendar {
    settings: Arc<Settings>,
    portcullis: Client,
    http: reqwest::Client,
}

fn caller(context: &RequestContext<RoleServer>) -> Result<Caller, rmcp::ErrorData> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|p| p.extensions.get::<Caller>())
        .cloned()
        .ok_or_else(|| rmcp::ErrorData::internal_error("the request has no verified caller", None))
}

fn text(s: impl Into<String>) -> ContentBlock {
    ContentBlock::text(s.into())
}

impl Calendar {
    fn app(&self, spec: &Spec) -> &str {
        if spec.crm {
            &self.settings.crm_app
        } else {
            &self.settings.calendar_app
        }
    }

    /// A refusal, as the user sees it.
    fn refused(
        refusal: &Refusal,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, rmcp::ErrorData> {
        let Some(url) = refusal.connect_url() else {
            let (summary, explanation) = match refusal {
                Refusal::Denied { decision, .. } => (summary(decision), decision.to_string()),
                _ => (String::new(), String::new()),
            };
            return Ok(CallToolResult::error(vec![
                text(format!("Not allowed: {}{summary}", refusal.message())),
                text(explanation),
            ])
            .into());
        };
        let message = match refusal {
            Refusal::ConsentRequired { .. } => "Consent again to what your access allows",
            _ => "Connect your account to continue",
        };
        // Under revision 2026-07-28 the request carries the client's capabilities; before it,
        // the session's handshake did.
        let capabilities = context
            .meta
            .client_capabilities()
            .or_else(|| context.peer.peer_info().map(|i| i.capabilities.clone()));
        let opens_urls = capabilities
            .and_then(|c| c.elicitation)
            .is_some_and(|e| e.url.is_some());
        if opens_urls {
            // SEP-1036: the client opens the URL out of band, then retries the call.
            return Err(rmcp::ErrorData::new(
                ErrorCode(URL_ELICITATION_REQUIRED),
                message.to_owned(),
                Some(json!({"elicitations": [{
                    "mode": "url",
                    "elicitationId": portcullis_crypto::random_token(12),
                    "url": url,
                    "message": message,
                }]})),
            ));
        }
        Ok(CallToolResult::error(vec![text(format!("{message}: {url}"))]).into())
    }

    /// The tool's answer: what its API said.
    async fn answer(
        &self,
        spec: &Spec,
        credential: &str,
        args: &Map<String, Value>,
    ) -> CallToolResponse {
        match self.call_api(spec, credential, args).await {
            Ok(body) => CallToolResult::success(vec![text(body.to_string())]),
            Err(e) => CallToolResult::error(vec![text(e)]),
        }
        .into()
    }

    async fn call_api(
        &self,
        spec: &Spec,
        credential: &str,
        args: &Map<String, Value>,
    ) -> Result<Value, String> {
        let base = &self.settings.services;
        let req = match spec.name {
            "list_events" => self.http.get(format!("{base}/calendar/events")),
            "create_event" => self
                .http
                .post(format!("{base}/calendar/events"))
                .json(&json!({"title": args.get("title"), "start": args.get("start")})),
            _ => {
                let name = args.get("name").and_then(Value::as_str).unwrap_or_default();
                let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
                self.http.get(format!("{base}/crm/customers/{name}"))
            }
        };
        let resp = req
            .bearer_auth(credential)
            .send()
            .await
            .map_err(|e| format!("the API is unreachable: {e}"))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("the API answered {status}: {body}"))
        }
    }
}

impl ServerHandler for Calendar {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, rmcp::ErrorData> {
        let caller = caller(&context)?;
        let checks = TOOLS.iter().map(|t| {
            self.portcullis
                .check(caller.token.expose(), self.app(t), t.outbound, None)
        });
        let outcomes = futures_util::future::join_all(checks).await;
        let mut tools = Vec::new();
        for (spec, outcome) in TOOLS.iter().zip(outcomes) {
            let shown = match outcome {
                Ok(CheckOutcome::Allowed { .. }) => true,
                // Usable once the user connects or consents.
                Ok(CheckOutcome::Refused(r)) => r.connect_url().is_some(),
                Err(e) => return Err(rmcp::ErrorData::internal_error(e.to_string(), None)),
            };
            if shown {
                let schema = (spec.input)().as_object().cloned().unwrap_or_default();
                tools.push(Tool::new(
                    Cow::Borrowed(spec.name),
                    Cow::Borrowed(spec.description),
                    Arc::new(schema),
                ));
            }
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, rmcp::ErrorData> {
        let caller = caller(&context)?;
        let Some(spec) = TOOLS.iter().find(|t| t.name == request.name) else {
            return Err(rmcp::ErrorData::invalid_params(
                format!("no tool {}", request.name),
                None,
            ));
        };
        let args = request.arguments.unwrap_or_default();
        if let Some(credential) = &self.settings.static_credential {
            return Ok(self.answer(spec, credential, &args).await);
        }
        let outcome = self
            .portcullis
            .fetch_token(caller.token.expose(), self.app(spec), spec.outbound, None)
            .await
            .map_err(|e| rmcp::ErrorData::internal_error(format!("Portcullis: {e}"), None))?;
        let token = match outcome {
            TokenOutcome::Granted { token, .. } => token,
            TokenOutcome::Refused(r) => return Self::refused(&r, &context),
        };
        // The credential goes to its API only, never back to the client.
        let Some(credential) = token.access_token.or(token.api_key) else {
            return Err(rmcp::ErrorData::internal_error(
                "Portcullis handed out no credential",
                None,
            ));
        };
        Ok(self.answer(spec, &credential, &args).await)
    }
}

/// A decision's explanation in a sentence: the scopes denied, those the user may have, and the
/// policies that gave them (as much as the app's `denialDetail` lets Portcullis say).
fn summary(decision: &Value) -> String {
    let list = |v: &Value| match v {
        Value::String(s) if s == "all" => Some("every scope".to_owned()),
        Value::Array(a) if !a.is_empty() => Some(
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        _ => None,
    };
    let mut parts = Vec::new();
    if let Some(denied) = list(&decision["deniedScopes"]) {
        parts.push(format!("denied {denied}"));
    }
    let matched: Vec<&str> = decision["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["matched"] == true && p["mode"] == "enforce")
        .filter_map(|p| p["name"].as_str())
        .collect();
    match list(&decision["allowedScopes"]) {
        Some(allowed) if !matched.is_empty() => parts.push(format!(
            "this user may have {allowed} (policy {})",
            matched
                .iter()
                .map(|m| format!("\"{m}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some(allowed) => parts.push(format!("this user may have {allowed}")),
        None if decision.get("allowedScopes").is_some() => {
            parts.push("no policy matches this user".to_owned());
        }
        None => {}
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" — {}", parts.join("; "))
    }
}
