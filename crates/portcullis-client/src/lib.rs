//! A client for Portcullis.
//!
//! - [`Client::fetch_token`]: what an MCP server calls on every tool call, with the user's
//!   inbound token; every outcome (granted, denied, consent required, not connected) is a distinct
//!   variant of [`TokenOutcome`] and [`Refusal`], never a `None`.
//! - [`Client::check`]: the same decision without the credential ([`CheckOutcome`]), to list only
//!   the tools a user may use.
//! - The management API (admin key) through small JSON helpers, used by the `portcullis` CLI.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

/// Why a call failed (outcomes of the token endpoint are not errors: see [`TokenOutcome`]).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached, or the connection failed.
    #[error("cannot reach Portcullis: {0}")]
    Transport(String),
    /// The server answered with an error in the documented shape.
    #[error("{status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The `error` code.
        code: String,
        /// The `message`.
        message: String,
        /// The whole body.
        body: Value,
    },
    /// The answer is not what the API documents.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// The base URL or a path is not valid.
    #[error("invalid URL: {0}")]
    Url(String),
}

/// A credential handed out by the token endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundToken {
    /// The OAuth access token.
    pub access_token: Option<String>,
    /// The API key.
    pub api_key: Option<String>,
    /// The token type.
    pub token_type: Option<String>,
    /// When it expires (RFC 3339).
    pub expires_at: Option<String>,
    /// Its scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The app.
    pub app_id: String,
    /// The user.
    pub user_id: String,
    /// The tenant.
    pub tenant_id: Option<String>,
}

/// Every outcome of a token request.
#[derive(Debug, Clone)]
pub enum TokenOutcome {
    /// Allowed: the credential and the decision.
    Granted {
        /// The credential.
        token: OutboundToken,
        /// The decision summary.
        decision: Value,
    },
    /// Refused: denied by policy, or the user must consent or connect first.
    Refused(Refusal),
}

/// Every outcome of a check ([`Client::check`]): what a token request would answer, without the
/// credential.
#[derive(Debug, Clone)]
pub enum CheckOutcome {
    /// A token request would be answered with a credential carrying these scopes.
    Allowed {
        /// The scopes the credential would carry (none for an API key).
        scopes: Vec<String>,
        /// The decision summary.
        decision: Value,
    },
    /// A token request would be refused so.
    Refused(Refusal),
}

/// Why a token request is (or would be) refused, as an MCP server shows it to its user.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// Denied by the access control policies (403 `access_denied`), with the explanation.
    Denied {
        /// The reason code (`no_policy_matched`, `scopes_not_allowed`...).
        reason: String,
        /// The server's message.
        message: String,
        /// The decision's explanation (as much as the app's `denialDetail` shows).
        decision: Value,
    },
    /// Denied, and the user may consent again to what the policies allow (403 `consent_required`).
    ConsentRequired {
        /// Where the user consents.
        connect_url: String,
        /// The server's message.
        message: String,
        /// The decision's explanation.
        decision: Value,
    },
    /// The user has not connected the app, or the grant lacks a scope (404 `not_connected`).
    NotConnected {
        /// Where the user connects, when the app is an OAuth app.
        connect_url: Option<String>,
        /// Why (`no_connection`, `missing_scopes`, `expired`...).
        reason: String,
        /// The server's message.
        message: String,
        /// The scopes the connection lacks.
        missing_scopes: Vec<String>,
    },
}

impl Refusal {
    /// Where the user can lift the refusal (consent again, or connect), if anywhere.
    pub fn connect_url(&self) -> Option<&str> {
        match self {
            Self::Denied { .. } => None,
            Self::ConsentRequired { connect_url, .. } => Some(connect_url),
            Self::NotConnected { connect_url, .. } => connect_url.as_deref(),
        }
    }

    /// The server's message, for the user.
    pub fn message(&self) -> &str {
        match self {
            Self::Denied { message, .. }
            | Self::ConsentRequired { message, .. }
            | Self::NotConnected { message, .. } => message,
        }
    }

    /// The refusal an error of the token or check endpoint stands for; any other error is
    /// given back.
    fn from_error(e: ClientError) -> Result<Self, ClientError> {
        let ClientError::Api {
            status,
            code,
            message,
            body,
        } = e
        else {
            return Err(e);
        };
        let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
        let reason = body
            .pointer("/details/reason")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let decision = body.get("decision").cloned().unwrap_or(Value::Null);
        match code.as_str() {
            "access_denied" => Ok(Self::Denied {
                reason,
                message,
                decision,
            }),
            "consent_required" => match s("connectUrl") {
                Some(connect_url) => Ok(Self::ConsentRequired {
                    connect_url,
                    message,
                    decision,
                }),
                None => Err(ClientError::Decode(
                    "consent_required without a connectUrl".into(),
                )),
            },
            "not_connected" => Ok(Self::NotConnected {
                connect_url: s("connectUrl"),
                reason,
                message,
                missing_scopes: body
                    .pointer("/details/missingScopes")
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default(),
            }),
            _ => Err(ClientError::Api {
                status,
                code,
                message,
                body,
            }),
        }
    }
}

/// A Portcullis client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    admin_key: Option<String>,
}

impl Client {
    /// A client for the server at `base_url`, authenticating management calls with `admin_key`.
    pub fn new(base_url: &str, admin_key: Option<String>) -> Result<Self, ClientError> {
        let mut base = Url::parse(base_url).map_err(|e| ClientError::Url(e.to_string()))?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        Ok(Self {
            http,
            base,
            admin_key,
        })
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ClientError::Url(e.to_string()))
    }

    /// A management call: `method` on `path` with an optional JSON body; the JSON answer (or
    /// `null` for 204).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let mut req = self.http.request(method, self.url(path)?);
        if let Some(k) = &self.admin_key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        decode(resp).await
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// POST.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// PUT.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Every item of a paginated list, following `nextCursor`.
    pub async fn list_all(&self, path: &str) -> Result<Vec<Value>, ClientError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = self.url(path)?;
            url.query_pairs_mut().append_pair("limit", "200");
            if let Some(c) = &cursor {
                url.query_pairs_mut().append_pair("cursor", c);
            }
            let page = self
                .get(&format!("{}?{}", url.path(), url.query().unwrap_or("")))
                .await?;
            if let Some(list) = page.get("items").and_then(Value::as_array) {
                items.extend(list.iter().cloned());
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(items),
            }
        }
    }

    /// Asks for an outbound token with the user's inbound token.
    pub async fn fetch_token(
        &self,
        inbound_token: &str,
        app_id: &str,
        scopes: &[&str],
        tenant_id: Option<&str>,
    ) -> Result<TokenOutcome, ClientError> {
        match self
            .outbound(inbound_token, app_id, "token", scopes, tenant_id)
            .await
        {
            Ok(v) => Ok(TokenOutcome::Granted {
                token: serde_json::from_value(v.get("token").cloned().unwrap_or(Value::Null))
                    .map_err(|e| ClientError::Decode(e.to_string()))?,
                decision: v.get("decision").cloned().unwrap_or(Value::Null),
            }),
            Err(e) => Refusal::from_error(e).map(TokenOutcome::Refused),
        }
    }

    /// Asks what a token request would answer, without the credential: an MCP server lists
    /// only the tools whose scopes are [`CheckOutcome::Allowed`] (or refused with a connect
    /// URL, to offer connecting).
    pub async fn check(
        &self,
        inbound_token: &str,
        app_id: &str,
        scopes: &[&str],
        tenant_id: Option<&str>,
    ) -> Result<CheckOutcome, ClientError> {
        match self
            .outbound(inbound_token, app_id, "check", scopes, tenant_id)
            .await
        {
            Ok(v) => Ok(CheckOutcome::Allowed {
                scopes: serde_json::from_value(v.get("scopes").cloned().unwrap_or(Value::Null))
                    .map_err(|e| ClientError::Decode(e.to_string()))?,
                decision: v.get("decision").cloned().unwrap_or(Value::Null),
            }),
            Err(e) => Refusal::from_error(e).map(CheckOutcome::Refused),
        }
    }

    /// `POST /v1/outbound/apps/{appId}/{what}` with the user's inbound token.
    async fn outbound(
        &self,
        inbound_token: &str,
        app_id: &str,
        what: &str,
        scopes: &[&str],
        tenant_id: Option<&str>,
    ) -> Result<Value, ClientError> {
        let path = format!(
            "v1/outbound/apps/{}/{what}",
            url::form_urlencoded::byte_serialize(app_id.as_bytes()).collect::<String>()
        );
        let mut body = json!({ "scopes": scopes });
        if let Some(t) = tenant_id {
            body["tenantId"] = json!(t);
        }
        let resp = self
            .http
            .post(self.url(&path)?)
            .bearer_auth(inbound_token)
            .json(&body)
            .send()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        decode(resp).await
    }
}

async fn decode(resp: reqwest::Response) -> Result<Value, ClientError> {
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ClientError::Transport(e.to_string()))?;
    if status.is_success() {
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()));
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Err(ClientError::Api {
        status: status.as_u16(),
        code: body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("http_error")
            .to_owned(),
        message: body
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| format!("the server answered {status}"), str::to_owned),
        body,
    })
}
