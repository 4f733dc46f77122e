//! Calls to third-party OAuth providers: the authorization URL, the code exchange, refresh,
//! revocation (RFC 7009) and userinfo. Every call has a timeout; a refresh that fails for a
//! transient reason (timeout, connection failure, 5xx, 429) is retried with backoff.

use std::time::Duration;

use base64::Engine;
use portcullis_crypto::SecretString;
use portcullis_domain::{AppRecord, ClientAuthMethod};
use serde::Deserialize;
use url::Url;

use crate::urls::{describe, read_limited};

/// A token endpoint's answer (RFC 6749 §5.1).
#[derive(Debug, Clone)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: SecretString,
    /// Its type (`Bearer`).
    pub token_type: Option<String>,
    /// Lifetime in seconds.
    pub expires_in: Option<i64>,
    /// A (possibly rotated) refresh token.
    pub refresh_token: Option<SecretString>,
    /// The granted scopes, when the provider says (space-separated).
    pub scope: Option<String>,
    /// An OpenID Connect id_token, when the provider sends one.
    pub id_token: Option<SecretString>,
}

impl TokenResponse {
    /// The granted scopes: what the provider says (each scope once, in its order), else what was
    /// asked.
    pub fn granted_scopes(&self, asked: &[String]) -> Vec<String> {
        match &self.scope {
            Some(s) => {
                let mut seen = std::collections::HashSet::new();
                s.split_whitespace()
                    .filter(|scope| seen.insert(*scope))
                    .map(str::to_owned)
                    .collect()
            }
            None => asked.to_vec(),
        }
    }

    /// The `sub` of the id_token, read without verifying its signature: the token came straight
    /// from the provider's token endpoint over the connection we opened (OpenID Connect Core
    /// §3.1.3.7 allows relying on TLS server validation there). Used only as a label.
    pub fn id_token_subject(&self) -> Option<String> {
        let payload = self.id_token.as_ref()?.expose().split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        v.get("sub")?.as_str().map(str::to_owned)
    }
}

#[derive(Deserialize)]
struct RawToken {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
    refresh_token: Option<String>,
    scope: Option<String>,
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct RawError {
    error: String,
    error_description: Option<String>,
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused with an OAuth error (`invalid_grant`, `invalid_client`...).
    #[error("the provider refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        /// The OAuth error code.
        error: String,
        /// Its description.
        description: Option<String>,
    },
    /// Timeout, connection failure, 5xx or 429: worth retrying later.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider answered something that is not a valid token response.
    #[error("the provider sent a malformed answer: {0}")]
    Malformed(String),
    /// The app is missing a setting the call needs.
    #[error("the app is not configured for this: {0}")]
    Misconfigured(String),
}

impl ProviderError {
    /// Whether the provider rejected the grant itself: the user must consent again.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::Rejected { error, .. } if error == "invalid_grant")
    }
}

/// A token endpoint and how Portcullis authenticates there.
#[derive(Debug, Clone, Copy)]
pub struct TokenEndpoint<'a> {
    /// Its URL.
    pub url: &'a str,
    /// Portcullis's client id there.
    pub client_id: &'a str,
    /// How the client secret is sent (when there is one).
    pub auth: ClientAuthMethod,
}

/// The client Portcullis calls providers with.
#[derive(Debug, Clone)]
pub struct Provider {
    http: reqwest::Client,
    retries: u32,
}

/// Builds the HTTP client for providers and IdPs: a timeout on every call, no redirects followed
/// (a token endpoint that redirects is misconfigured, and following could leak credentials).
///
/// With `public_only` (production mode), names that resolve only to internal addresses are not
/// called (see `check_url`).
pub fn http_client(timeout: Duration, public_only: bool) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder();
    let builder = if public_only {
        builder.dns_resolver(std::sync::Arc::new(crate::urls::PublicOnly))
    } else {
        builder
    };
    builder
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

impl Provider {
    /// A provider client on `http`, retrying transient refresh failures `retries` times.
    pub fn new(http: reqwest::Client, retries: u32) -> Self {
        Self { http, retries }
    }

    /// The authorization URL a user is sent to.
    pub fn authorization_url(
        app: &AppRecord,
        redirect_uri: &str,
        state: &str,
        scopes: &[String],
        code_challenge: Option<&str>,
    ) -> Result<String, ProviderError> {
        let base = app.settings.authorization_url.as_deref().ok_or_else(|| {
            ProviderError::Misconfigured("the app has no authorizationUrl".into())
        })?;
        let client_id = app
            .settings
            .client_id
            .as_deref()
            .ok_or_else(|| ProviderError::Misconfigured("the app has no clientId".into()))?;
        let mut url = Url::parse(base)
            .map_err(|e| ProviderError::Misconfigured(format!("authorizationUrl: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &app.settings.authorization_params {
                q.append_pair(k, v);
            }
            q.append_pair("response_type", "code");
            q.append_pair("client_id", client_id);
            q.append_pair("redirect_uri", redirect_uri);
            if !scopes.is_empty() {
                q.append_pair("scope", &scopes.join(" "));
            }
            q.append_pair("state", state);
            if let Some(c) = code_challenge {
                q.append_pair("code_challenge", c);
                q.append_pair("code_challenge_method", "S256");
            }
        }
        Ok(url.to_string())
    }

    /// Exchanges an authorization code (never retried: a code is single-use).
    pub async fn exchange_code(
        &self,
        app: &AppRecord,
        client_secret: Option<&SecretString>,
        code: &str,
        redirect_uri: &str,
        code_verifier: Option<&str>,
    ) -> Result<TokenResponse, ProviderError> {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", redirect_uri.to_owned()),
        ];
        if let Some(v) = code_verifier {
            form.push(("code_verifier", v.to_owned()));
        }
        self.token_request(app, client_secret, form).await
    }

    /// Refreshes, optionally asking for a narrower `scope` (RFC 6749 §6). Transient failures are
    /// retried with backoff; a refusal is not.
    pub async fn refresh(
        &self,
        app: &AppRecord,
        client_secret: Option<&SecretString>,
        refresh_token: &str,
        scopes: Option<&[String]>,
    ) -> Result<TokenResponse, ProviderError> {
        let mut attempt = 0;
        loop {
            let mut form = vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", refresh_token.to_owned()),
            ];
            if let Some(s) = scopes {
                form.push(("scope", s.join(" ")));
            }
            match self.token_request(app, client_secret, form).await {
                Err(ProviderError::Unavailable(e)) if attempt < self.retries => {
                    attempt += 1;
                    let backoff = Duration::from_millis(200 * (1 << attempt));
                    tracing::info!(app = %app.id, error = %e, attempt, "refresh failed transiently; retrying");
                    tokio::time::sleep(backoff).await;
                }
                other => return other,
            }
        }
    }

    async fn token_request(
        &self,
        app: &AppRecord,
        client_secret: Option<&SecretString>,
        form: Vec<(&'static str, String)>,
    ) -> Result<TokenResponse, ProviderError> {
        let endpoint =
            TokenEndpoint {
                url: app.settings.token_url.as_deref().ok_or_else(|| {
                    ProviderError::Misconfigured("the app has no tokenUrl".into())
                })?,
                client_id: app.settings.client_id.as_deref().ok_or_else(|| {
                    ProviderError::Misconfigured("the app has no clientId".into())
                })?,
                auth: app.settings.token_endpoint_auth_method,
            };
        self.token_request_at(&endpoint, client_secret, form).await
    }

    /// Exchanges an authorization code at any token endpoint (an upstream identity provider's).
    pub async fn exchange_code_at(
        &self,
        endpoint: &TokenEndpoint<'_>,
        client_secret: Option<&SecretString>,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<TokenResponse, ProviderError> {
        let form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", redirect_uri.to_owned()),
            ("code_verifier", code_verifier.to_owned()),
        ];
        self.token_request_at(endpoint, client_secret, form).await
    }

    /// The HTTP client (timeouts, no redirects; public addresses only in production).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn token_request_at(
        &self,
        endpoint: &TokenEndpoint<'_>,
        client_secret: Option<&SecretString>,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<TokenResponse, ProviderError> {
        let (token_url, client_id) = (endpoint.url, endpoint.client_id);
        let mut req = self
            .http
            .post(token_url)
            .header(reqwest::header::ACCEPT, "application/json");
        match (endpoint.auth, client_secret) {
            (ClientAuthMethod::ClientSecretBasic, Some(secret)) => {
                req = req.basic_auth(form_encode(client_id), Some(form_encode(secret.expose())));
            }
            (ClientAuthMethod::ClientSecretPost, Some(secret)) => {
                form.push(("client_id", client_id.to_owned()));
                form.push(("client_secret", secret.expose().to_owned()));
            }
            _ => form.push(("client_id", client_id.to_owned())),
        }
        let resp = req
            .form(&form)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(describe(&e)))?;
        let status = resp.status();
        let body = read_limited(resp)
            .await
            .map_err(ProviderError::Unavailable)?;
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(ProviderError::Unavailable(format!(
                "the token endpoint answered {status}"
            )));
        }
        if !status.is_success() {
            return match serde_json::from_slice::<RawError>(&body) {
                Ok(e) => Err(ProviderError::Rejected {
                    error: e.error,
                    description: e.error_description,
                }),
                Err(_) => Err(ProviderError::Malformed(format!(
                    "the token endpoint answered {status} without an OAuth error"
                ))),
            };
        }
        let raw: RawToken = serde_json::from_slice(&body).map_err(|e| {
            ProviderError::Malformed(format!("the token response is not valid JSON: {e}"))
        })?;
        let access_token = raw.access_token.filter(|t| !t.is_empty()).ok_or_else(|| {
            ProviderError::Malformed("the token response has no access_token".into())
        })?;
        let expires_in = match raw.expires_in {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n)) => n.as_i64().filter(|v| *v >= 0),
            // Some providers send a string.
            Some(serde_json::Value::String(s)) => s.parse::<i64>().ok().filter(|v| *v >= 0),
            Some(_) => None,
        };
        Ok(TokenResponse {
            access_token: SecretString::from(access_token),
            token_type: raw.token_type,
            expires_in,
            refresh_token: raw
                .refresh_token
                .filter(|t| !t.is_empty())
                .map(SecretString::from),
            scope: raw.scope,
            id_token: raw.id_token.map(SecretString::from),
        })
    }

    /// Revokes a token at the provider (RFC 7009), when the app has a revocation endpoint.
    pub async fn revoke(
        &self,
        app: &AppRecord,
        client_secret: Option<&SecretString>,
        token: &str,
        hint: &str,
    ) -> Result<(), ProviderError> {
        let Some(url) = app.settings.revocation_url.as_deref() else {
            return Ok(());
        };
        let client_id = app.settings.client_id.clone().unwrap_or_default();
        let mut form = vec![
            ("token", token.to_owned()),
            ("token_type_hint", hint.to_owned()),
        ];
        let mut req = self.http.post(url);
        match (app.settings.token_endpoint_auth_method, client_secret) {
            (ClientAuthMethod::ClientSecretBasic, Some(secret)) => {
                req = req.basic_auth(form_encode(&client_id), Some(form_encode(secret.expose())));
            }
            (ClientAuthMethod::ClientSecretPost, Some(secret)) => {
                form.push(("client_id", client_id));
                form.push(("client_secret", secret.expose().to_owned()));
            }
            _ => form.push(("client_id", client_id)),
        }
        let resp = req
            .form(&form)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(describe(&e)))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() {
            Err(ProviderError::Unavailable(format!(
                "the revocation endpoint answered {status}"
            )))
        } else {
            let body = read_limited(resp).await.unwrap_or_default();
            match serde_json::from_slice::<RawError>(&body) {
                Ok(e) => Err(ProviderError::Rejected {
                    error: e.error,
                    description: e.error_description,
                }),
                Err(_) => Err(ProviderError::Malformed(format!(
                    "the revocation endpoint answered {status}"
                ))),
            }
        }
    }

    /// Reads the user's `sub` from the app's userinfo endpoint, if it has one.
    pub async fn userinfo_subject(&self, app: &AppRecord, access_token: &str) -> Option<String> {
        let url = app.settings.userinfo_url.as_deref()?;
        let resp = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body = read_limited(resp).await.ok()?;
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        v.get("sub")?.as_str().map(str::to_owned)
    }
}

/// RFC 6749 §2.3.1: client credentials in HTTP Basic are form-urlencoded first.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
