//! The demo's story, walked as an MCP client and its users would: people sign in to Portcullis
//! through single sign-on, their MCP client lists and calls the calendar server's tools, and
//! every call is decided by Portcullis — allowed, blocked with the reason, or sent to connect
//! first. Each step is told as it happens and checked: the walk stops at the first step that does
//! not turn out as the story says.

use portcullis_client::Client;
use serde_json::{Value, json};

use crate::browser::{Browser, Page};
use crate::story::{self, Configured, MCP_CLIENT, SSO_CONNECTION};

/// The protocol revision the client speaks.
const PROTOCOL: &str = "2026-07-28";
/// The scopes the MCP client asks for: the server's, and fetching outbound tokens.
const SCOPES: &str = "calendar.read calendar.write crm.read outbound.token.fetch";
/// Where the client's loopback redirect goes (RFC 8252: any port).
const REDIRECT: &str = "http://127.0.0.1:53682/callback";

/// Where everything is.
#[derive(Debug, Clone, Copy)]
pub struct Scene<'a> {
    /// Portcullis's base URL.
    pub portcullis: &'a str,
    /// The MCP server's endpoint (its resource URI).
    pub mcp: &'a str,
    /// An admin client of Portcullis.
    pub admin: &'a Client,
    /// What the story's configuration made.
    pub configured: &'a Configured,
}

/// A streamable-HTTP MCP client, as one speaks revision 2026-07-28: no session, the protocol
/// version, method and tool name in headers, the client's capabilities in each request's `_meta`.
#[derive(Debug, Clone)]
pub struct McpClient {
    http: reqwest::Client,
    url: String,
    token: String,
    /// The capabilities the client declares.
    pub capabilities: Value,
}

impl McpClient {
    /// A client of the server at `url`, presenting `token`, declaring no capability.
    pub fn new(url: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: url.to_owned(),
            token: token.to_owned(),
            capabilities: json!({}),
        }
    }

    /// Sends one JSON-RPC request; the JSON-RPC answer (from JSON or the stream's last event).
    ///
    /// # Errors
    /// When the server cannot be reached, or answers with an HTTP error.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, String> {
        let mut params = params;
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": PROTOCOL,
            "io.modelcontextprotocol/clientInfo": {"name": "portcullis-demo", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": self.capabilities,
        });
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", PROTOCOL)
            .header("Mcp-Method", method);
        if let Some(name) = params["name"].as_str() {
            req = req.header("Mcp-Name", name);
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let resp = req.json(&body).send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{method}: HTTP {status}: {text}"));
        }
        let data = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .rfind(|d| !d.trim().is_empty())
            .unwrap_or(&text);
        serde_json::from_str(data.trim()).map_err(|e| format!("{method}: {e}: {text}"))
    }

    /// The names of the tools the server lists, sorted.
    ///
    /// # Errors
    /// As [`McpClient::request`].
    pub async fn tool_names(&self) -> Result<Vec<String>, String> {
        let answer = self.request("tools/list", json!({})).await?;
        let mut names: Vec<String> = answer["result"]["tools"]
            .as_array()
            .ok_or_else(|| format!("tools/list: {answer}"))?
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Calls a tool; what came of it.
    ///
    /// # Errors
    /// As [`McpClient::request`].
    pub async fn call(&self, tool: &str, arguments: Value) -> Result<ToolOutcome, String> {
        let answer = self
            .request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await?;
        Ok(ToolOutcome::of(&answer))
    }
}

/// What a tool call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolOutcome {
    /// The tool ran: its text.
    Done(String),
    /// The tool failed: its text (a denial's explanation, or a connect link).
    Failed(String),
    /// The client must have the user open this URL first (URL-mode elicitation).
    OpenUrl(String),
    /// A JSON-RPC error.
    Error(String),
}

impl ToolOutcome {
    fn of(answer: &Value) -> Self {
        if let Some(e) = answer.get("error") {
            return match e["data"]["elicitations"][0]["url"].as_str() {
                Some(url) if e["code"] == -32042 => Self::OpenUrl(url.to_owned()),
                _ => Self::Error(e.to_string()),
            };
        }
        let text = answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if answer["result"]["isError"] == true {
            Self::Failed(text)
        } else {
            Self::Done(text)
        }
    }
}

/// Signs `person` in to Portcullis through single sign-on at the example's OpenID provider, the
/// way their MCP client sends them (authorization code, PKCE S256, `resource`), consents, and
/// redeems the code: the access token for the MCP server, and the browser, still signed in.
///
/// # Errors
/// The step that did not go as a sign-in goes.
pub async fn sign_in(
    portcullis: &str,
    mcp: &str,
    person: &str,
) -> Result<(String, Browser), String> {
    let verifier = portcullis_crypto::random_token(32);
    let challenge = portcullis_crypto::pkce::challenge_s256(&verifier);
    let mut url =
        url::Url::parse(&format!("{portcullis}/oauth2/authorize")).map_err(|e| e.to_string())?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", MCP_CLIENT)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", SCOPES)
        .append_pair("state", &portcullis_crypto::random_token(12))
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", mcp);
    let mut b = Browser::new();
    let page = b.get(url.as_str()).await?;
    let form = |p: &Page, name: &str| {
        p.field(name)
            .ok_or_else(|| p.unexpected(&format!("no field {name}")))
    };
    let to_idp = b
        .post(
            &format!("{portcullis}/oauth2/sso/start"),
            &[
                ("request", &form(&page, "request")?),
                ("csrf", &form(&page, "csrf")?),
                ("connection", SSO_CONNECTION),
            ],
        )
        .await?;
    let chooser = b.get(&location(&to_idp, "single sign-on")?).await?;
    let chosen_at = location_base(&to_idp)? + "/as";
    let back = b
        .post(
            &chosen_at,
            &[("flow", &form(&chooser, "flow")?), ("person", person)],
        )
        .await?;
    let mut answer = b.get(&location(&back, "the identity provider")?).await?;
    if answer.status == 200 {
        // The consent screen: the client asks for the server's scopes on the user's behalf.
        answer = b
            .post(
                &format!("{portcullis}/oauth2/authorize"),
                &[
                    ("request", &form(&answer, "request")?),
                    ("csrf", &form(&answer, "csrf")?),
                    ("action", "allow"),
                ],
            )
            .await?;
    }
    let code = answer
        .param("code")
        .ok_or_else(|| answer.unexpected("no code came back"))?;
    let t: Value = reqwest::Client::new()
        .post(format!("{portcullis}/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
            ("client_id", MCP_CLIENT),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let token = t["access_token"]
        .as_str()
        .ok_or_else(|| format!("the token endpoint answered {t}"))?;
    Ok((token.to_owned(), b))
}

fn location(page: &Page, step: &str) -> Result<String, String> {
    page.location
        .clone()
        .filter(|_| (300..400).contains(&page.status))
        .ok_or_else(|| page.unexpected(step))
}

/// The redirect's location without its query.
fn location_base(page: &Page) -> Result<String, String> {
    let l = location(page, "single sign-on")?;
    Ok(l.split('?').next().unwrap_or_default().to_owned())
}

/// Opens a connect link in the user's browser (signed in at Portcullis): the page, "Continue",
/// the provider (which consents at once), the callback.
///
/// # Errors
/// The step that did not go as connecting goes.
pub async fn connect(b: &mut Browser, link: &str) -> Result<(), String> {
    let page = b.get(link).await?;
    let csrf = page
        .field("csrf")
        .ok_or_else(|| page.unexpected("the connect page"))?;
    let go = b
        .post(link, &[("action", "continue"), ("csrf", &csrf)])
        .await?;
    let back = b.get(&location(&go, "continue")?).await?;
    let done = b.get(&location(&back, "the provider")?).await?;
    if done.status == 200 {
        Ok(())
    } else {
        Err(done.unexpected("the callback"))
    }
}

/// The roles an access token carries.
fn roles(token: &str) -> String {
    use base64::Engine as _;
    token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(|c| c["roles"].to_string())
        .unwrap_or_default()
}

fn expect(what: &str, got: &ToolOutcome, ok: bool) -> Result<String, String> {
    match got {
        ToolOutcome::Done(t) if ok => Ok(t.clone()),
        ToolOutcome::Failed(t) if !ok && t.starts_with("Not allowed") => Ok(t.clone()),
        other => Err(format!(
            "{what}: expected {}, got {other:?}",
            if ok { "success" } else { "a denial" }
        )),
    }
}

/// Walks the story, telling each step through `say`.
///
/// # Errors
/// The first step that does not turn out as the story says.
pub async fn walk(scene: Scene<'_>, say: &mut dyn FnMut(String)) -> Result<(), String> {
    let Scene {
        portcullis,
        mcp,
        admin,
        configured,
    } = scene;
    say(format!(
        "The calendar MCP server at {mcp} asks Portcullis before each tool call. Policies:\n  \
         calendar: \"Viewers read\" — roles Viewer or Editor → calendar.readonly\n  \
         calendar: \"Editors write\" — role Editor → all scopes\n  \
         crm:      \"Viewers look up\" — role Viewer → the API key"
    ));

    say(format!(
        "\n1. Vera signs in through single sign-on. The identity provider puts her in the group {}, which the SSO connection maps to the role Viewer.",
        story::VIEWERS_GROUP
    ));
    let (vera_token, mut vera_browser) = sign_in(portcullis, mcp, "vera").await?;
    say(format!(
        "   ✓ her MCP client holds an access token for {mcp}, roles {}",
        roles(&vera_token)
    ));
    let mut vera = McpClient::new(mcp, &vera_token);
    vera.capabilities = json!({"elicitation": {"url": {}}});

    say("\n2. Her client lists the tools.".into());
    let tools = vera.tool_names().await?;
    if tools != ["list_events", "lookup_customer"] {
        return Err(format!("Vera's tools: {tools:?}"));
    }
    say(format!(
        "   ✓ {} — create_event is hidden: no policy gives a Viewer calendar.events",
        tools.join(", ")
    ));

    say("\n3. Vera calls list_events. She has not connected her calendar yet.".into());
    let link = match vera.call("list_events", json!({})).await? {
        ToolOutcome::OpenUrl(link) => link,
        other => return Err(format!("Vera's first list_events: {other:?}")),
    };
    say(format!(
        "   → the server asks her client to open a link (URL elicitation): {link}"
    ));
    connect(&mut vera_browser, &link).await?;
    say(
        "   ✓ she opens it, the calendar provider asks her consent, and she is back: connected"
            .into(),
    );

    say("\n4. Vera calls list_events again.".into());
    let listed = expect(
        "Vera's list_events",
        &vera.call("list_events", json!({})).await?,
        true,
    )?;
    say(format!("   ✓ allowed: {listed}"));

    say("\n5. Vera calls create_event.".into());
    let denied = expect(
        "Vera's create_event",
        &vera
            .call(
                "create_event",
                json!({"title": "Offsite", "start": "2026-12-10T09:00:00Z"}),
            )
            .await?,
        false,
    )?;
    say(format!("   ✗ blocked: {denied}"));

    say("\n6. Vera looks a customer up in the CRM (an API-key app).".into());
    let found = expect(
        "Vera's lookup_customer",
        &vera
            .call("lookup_customer", json!({"name": "Acme"}))
            .await?,
        true,
    )?;
    say(format!("   ✓ allowed: {found}"));

    say(format!(
        "\n7. Eddie signs in through single sign-on (group {} → role Editor), connects his calendar and calls create_event.",
        story::EDITORS_GROUP
    ));
    let (eddie_token, mut eddie_browser) = sign_in(portcullis, mcp, "eddie").await?;
    say(format!("   ✓ roles {}", roles(&eddie_token)));
    let eddie = McpClient::new(mcp, &eddie_token);
    let link = match eddie
        .call(
            "create_event",
            json!({"title": "Team offsite", "start": "2026-12-10T09:00:00Z"}),
        )
        .await?
    {
        ToolOutcome::Failed(text) => text
            .split_whitespace()
            .find(|w| w.starts_with("http"))
            .map(str::to_owned)
            .ok_or_else(|| format!("Eddie's first create_event: {text}"))?,
        other => return Err(format!("Eddie's first create_event: {other:?}")),
    };
    say(format!(
        "   → his client does not open URLs, so the tool's answer carries the link: {link}"
    ));
    connect(&mut eddie_browser, &link).await?;
    let created = expect(
        "Eddie's create_event",
        &eddie
            .call(
                "create_event",
                json!({"title": "Team offsite", "start": "2026-12-10T09:00:00Z"}),
            )
            .await?,
        true,
    )?;
    say(format!("   ✓ connected, and allowed: {created}"));

    say(
        "\n8. An admin narrows \"Viewers read\" to Editors only. Vera calls list_events again."
            .into(),
    );
    let path = format!(
        "/v1/mgmt/outbound-apps/calendar/policies/{}",
        configured.viewers_read
    );
    let before = admin.get(&path).await.map_err(|e| e.to_string())?;
    let mut narrowed = json!({"name": before["name"], "conditions": [{"source": "userRoles", "operator": "equals", "value": "Editor"}], "scopes": before["scopes"]});
    admin
        .put(&path, &narrowed)
        .await
        .map_err(|e| e.to_string())?;
    let now_denied = expect(
        "Vera's list_events after the change",
        &vera.call("list_events", json!({})).await?,
        false,
    )?;
    say(format!("   ✗ the very next call is blocked: {now_denied}"));
    narrowed["conditions"] = before["conditions"].clone();
    admin
        .put(&path, &narrowed)
        .await
        .map_err(|e| e.to_string())?;
    expect(
        "Vera's list_events after the policy is put back",
        &vera.call("list_events", json!({})).await?,
        true,
    )?;
    say("   ✓ the admin puts the policy back; Vera's next call is allowed again".into());
    say("\nEvery one of these decisions is in the audit log: GET /v1/mgmt/audit".into());
    Ok(())
}
