//! The token vault: connecting outbound apps (the consent flow), storing credentials sealed,
//! refreshing them with exactly one refresh in flight per connection across every node, API keys,
//! imports, revocation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use portcullis_crypto::envelope::aad;
use portcullis_crypto::{SecretString, pkce, random_token, sha256};
use portcullis_domain::{
    AppKind, AppRecord, ConnectionKey, ConnectionRecord, ConnectionStatus, ConsentState,
    CredentialKind, RefreshFailure, StoreError, Timestamp, TokenSet,
};
use portcullis_policy::{AllowedScopes, Subject};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::provider::{Provider, ProviderError, TokenResponse};
use crate::refusal::Refusal;
use crate::{Core, ServiceError, ids};

/// The associated data binding a connection's secret to its row: the row's identity (app, user,
/// tenant) and the field. A ciphertext copied into another row, or from the access field into the
/// refresh field, fails to open.
pub fn connection_aad(key: &ConnectionKey, field: &str) -> Vec<u8> {
    aad(&[
        "connection",
        &key.app_id,
        key.user_id.as_deref().unwrap_or(""),
        key.tenant_id.as_deref().unwrap_or(""),
        field,
    ])
}

/// The associated data binding a pending consent's PKCE verifier to it.
pub fn state_aad(state_id: &str) -> Vec<u8> {
    aad(&["consent", state_id, "pkce_verifier"])
}

/// Why a refresh did not produce a fresh token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// The provider rejected the refresh token: the user must consent again.
    #[error("the provider rejected the grant; the user must consent again")]
    ConsentRequired,
    /// The token expired and there is no refresh token.
    #[error("the token expired and cannot be refreshed")]
    Expired,
    /// The connection was deleted meanwhile.
    #[error("the connection no longer exists")]
    Gone,
    /// The provider or the database is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// Something else.
    #[error("{0}")]
    Internal(String),
}

/// The first wait before writing a refresh's result again; it doubles, up to a second.
const STORE_RETRY_FIRST: Duration = Duration::from_millis(100);
/// The time retries of that write may take (part of `Settings::refresh_budget`).
pub(crate) const STORE_RETRY_BUDGET: Duration = Duration::from_secs(5);

impl From<StoreError> for RefreshError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<ServiceError> for RefreshError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unavailable(m) => Self::Unavailable(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

pub(crate) type RefreshFuture =
    Shared<BoxFuture<'static, Result<Arc<ConnectionRecord>, RefreshError>>>;

/// A token narrowed to fewer scopes than the stored grant, held in memory until it expires.
#[derive(Debug, Clone)]
pub(crate) struct Narrowed {
    pub(crate) access_token: SecretString,
    pub(crate) token_type: Option<String>,
    pub(crate) expires_at: Option<Timestamp>,
    pub(crate) scopes: Vec<String>,
}

/// What a user asks for when connecting an app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectRequest {
    /// Scopes to ask the provider for (default: the app's default scopes). With an existing
    /// connection, the grant is extended (incremental consent).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Connect within this tenant (the user must be a member of it).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Connect for the whole tenant (a tenant admin only).
    #[serde(default)]
    pub tenant_level: bool,
    /// Where to send the browser afterwards (must be allowed by the configuration).
    #[serde(default)]
    pub return_url: Option<String>,
}

/// The provider's redirect back to Portcullis.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackParams {
    /// The `state` Portcullis sent (a capability: whoever holds it completes the flow).
    pub state: Option<SecretString>,
    /// The authorization code.
    pub code: Option<SecretString>,
    /// An error instead of a code.
    pub error: Option<String>,
    /// The error's description.
    pub error_description: Option<String>,
    /// The provider's issuer identifier (RFC 9207), when it sends one.
    pub iss: Option<String>,
}

/// How the callback ends for the user's browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// Send the browser to this URL.
    Redirect(String),
    /// Show a page.
    Page {
        /// HTTP status.
        status: u16,
        /// Short title.
        title: &'static str,
        /// What happened and what to do.
        message: String,
    },
}

/// A connection's metadata, as the management API shows it (never a token).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    /// The connection's id.
    pub id: String,
    /// The outbound app the connection is to.
    pub app_id: String,
    /// The user who owns the connection (absent for a tenant's or the app's connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The tenant: a tenant's shared connection, or a user's within the tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Whose credential it is: `user`, `tenant` or `app`.
    pub owner: &'static str,
    /// What the credential is: `oauth` (tokens Portcullis refreshes) or `apiKey`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `active`, or `consentRequired` when the provider refused the grant and the user must connect
    /// again.
    pub status: &'static str,
    /// The scopes the provider granted.
    pub scopes: Vec<String>,
    /// The access token's type, usually `Bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// When the access token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Whether a refresh token is stored.
    pub has_refresh_token: bool,
    /// The user's id at the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_subject: Option<String>,
    /// When the token was last refreshed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_refresh_at: Option<Timestamp>,
    /// Why the last refresh failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_refresh_error: Option<String>,
    /// When the credential was last handed out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<Timestamp>,
    /// Who created the connection: `user:<id>` (the user's consent) or `admin:<key id>` (an admin's
    /// link, import or API key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted_by: Option<String>,
    /// When the connection was created.
    pub created_at: Timestamp,
    /// When the connection last changed (a refresh, a new consent).
    pub updated_at: Timestamp,
}

impl From<&ConnectionRecord> for ConnectionInfo {
    fn from(c: &ConnectionRecord) -> Self {
        Self {
            id: c.id.clone(),
            app_id: c.key.app_id.clone(),
            user_id: c.key.user_id.clone(),
            tenant_id: c.key.tenant_id.clone(),
            owner: match (&c.key.user_id, &c.key.tenant_id) {
                (Some(_), _) => "user",
                (None, Some(_)) => "tenant",
                (None, None) => "app",
            },
            kind: c.kind.as_str(),
            status: c.status.as_str(),
            scopes: c.scopes.clone(),
            token_type: c.token_type.clone(),
            expires_at: c.expires_at,
            has_refresh_token: c.refresh.is_some(),
            provider_subject: c.provider_subject.clone(),
            last_refresh_at: c.last_refresh_at,
            last_refresh_error: c.last_refresh_error.clone(),
            last_used_at: c.last_used_at,
            granted_by: c.granted_by.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A token to import (migration from another vault).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportToken {
    /// The owning user (for a user connection).
    #[serde(default)]
    pub user_id: Option<String>,
    /// The tenant (for a tenant connection, or a user's within a tenant).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The access token (sealed at rest, never shown).
    pub access_token: SecretString,
    /// The refresh token, if any: Portcullis refreshes the access token with it when it expires.
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    /// The token type (default `Bearer`).
    #[serde(default)]
    pub token_type: Option<String>,
    /// When the access token expires (RFC 3339).
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// The scopes the token was granted (each one the app offers).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The user's id at the provider.
    #[serde(default)]
    pub provider_subject: Option<String>,
}

/// What revoking a connection did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokeReport {
    /// The connection removed.
    pub connection: ConnectionInfo,
    /// Whether the provider's revocation endpoint confirmed.
    pub provider_revoked: bool,
    /// Why the provider did not confirm (the connection is removed regardless).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_error: Option<String>,
}

impl Core {
    /// Starts a consent flow for the signed-in user: returns the provider's authorization URL.
    pub async fn start_connect(
        &self,
        bearer: Option<&str>,
        app_id: &str,
        req: &ConnectRequest,
    ) -> Result<String, Refusal> {
        crate::plane::check_fields(
            app_id,
            req.tenant_id.as_deref(),
            req.scopes.as_deref().unwrap_or_default(),
        )?;
        let caller = self.authenticate_caller(bearer).await?;
        self.rate_limit_subject(&caller.id)?;
        let snapshot = self
            .app_snapshot(app_id)
            .await?
            .ok_or_else(|| Refusal::UnknownApp {
                app_id: app_id.to_owned(),
            })?;
        caller.check_enabled()?;
        let app = &snapshot.app;
        if app.kind != AppKind::OAuth {
            return Err(Refusal::InvalidRequest {
                problem: crate::refusal::RequestProblem::NotAnOAuthApp,
                message: format!("app {app_id} uses API keys; an admin stores them"),
            });
        }
        let user = &caller.id;
        let tenant = req.tenant_id.as_deref();
        if let Some(t) = tenant
            && !caller.in_tenant(t)
        {
            return Err(Refusal::Forbidden {
                reason: crate::refusal::ForbiddenReason::NotATenantMember,
                message: format!("the user is not a member of tenant {t}"),
            });
        }
        let key = if req.tenant_level {
            let Some(t) = tenant else {
                return Err(Refusal::InvalidRequest {
                    problem: crate::refusal::RequestProblem::InvalidRequest,
                    message: "tenantLevel needs a tenantId".into(),
                });
            };
            if !caller
                .roles(Some(t))
                .contains(&self.settings.tenant_admin_role)
            {
                return Err(Refusal::Forbidden {
                    reason: crate::refusal::ForbiddenReason::NotATenantAdmin,
                    message: format!(
                        "connecting an app for tenant {t} needs the role {:?} in it",
                        self.settings.tenant_admin_role
                    ),
                });
            }
            ConnectionKey::tenant(&app.id, t)
        } else {
            ConnectionKey::user(&app.id, user, tenant)
        };
        let mut scopes = req
            .scopes
            .clone()
            .unwrap_or_else(|| app.settings.default_scopes.clone());
        dedup(&mut scopes);
        check_scopes_offered(app, &scopes).map_err(Refusal::from)?;
        // Consenting to scopes the policies would never hand out is pointless: refuse early.
        let roles = caller.roles(tenant);
        let subject = Subject::new(&roles, &caller.token.claims);
        let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
        let decision = snapshot.set.decide(&subject, &refs);
        if !decision.allowed() {
            return Err(Refusal::Denied {
                reason: crate::refusal::DenialReason::ScopesNotAllowed,
                explanation: Box::new(crate::plane::shown(
                    &snapshot.set.explain(&subject, &refs, &decision),
                    app.settings.denial_detail,
                )),
            });
        }
        // Incremental consent: keep what is already granted (and still allowed).
        if let Some(existing) = self
            .stores
            .connections
            .connection(&key)
            .await
            .map_err(ServiceError::from)?
        {
            let allowed = decision.allowed_scopes(&snapshot.set);
            for s in existing.scopes {
                if !scopes.contains(&s)
                    && (matches!(allowed, AllowedScopes::All) || allowed.contains(&s))
                {
                    scopes.push(s);
                }
            }
        }
        if let Some(r) = &req.return_url
            && !crate::urls::return_url_allowed(r, &self.settings)
        {
            return Err(Refusal::InvalidRequest {
                problem: crate::refusal::RequestProblem::InvalidReturnUrl,
                message: "returnUrl is not an allowed return URL (see allowed_return_urls in the configuration)".into(),
            });
        }
        Ok(self
            .consent_link(
                app,
                key,
                scopes,
                req.return_url.clone(),
                &format!("user:{user}"),
            )
            .await?)
    }

    /// Creates a pending consent and returns the provider's authorization URL for it.
    pub async fn consent_link(
        &self,
        app: &AppRecord,
        key: ConnectionKey,
        scopes: Vec<String>,
        return_url: Option<String>,
        initiated_by: &str,
    ) -> Result<String, ServiceError> {
        self.consent_link_with_state(app, key, scopes, return_url, initiated_by, random_token(32))
            .await
    }

    /// [`Self::consent_link`] with the given `state` (unguessable; a second flow with the same
    /// state is refused as `AlreadyExists`).
    pub(crate) async fn consent_link_with_state(
        &self,
        app: &AppRecord,
        key: ConnectionKey,
        scopes: Vec<String>,
        return_url: Option<String>,
        initiated_by: &str,
        state: String,
    ) -> Result<String, ServiceError> {
        let id = hex(&sha256(state.as_bytes()));
        let now = self.clock.now();
        let (verifier, challenge) = if app.settings.pkce {
            let v = pkce::new_verifier();
            let c = pkce::challenge_s256(v.expose());
            (
                Some(self.sealer.seal(v.expose().as_bytes(), &state_aad(&id))?),
                Some(c),
            )
        } else {
            (None, None)
        };
        let redirect_uri = self.settings.callback_url_for(app);
        let url =
            Provider::authorization_url(app, &redirect_uri, &state, &scopes, challenge.as_deref())
                .map_err(|e| ServiceError::invalid("app_misconfigured", e.to_string()))?;
        self.stores
            .consent_states
            .insert_state(&ConsentState {
                id,
                key,
                scopes,
                return_url,
                pkce_verifier: verifier,
                redirect_uri,
                initiated_by: initiated_by.to_owned(),
                created_at: now,
                expires_at: now.add_secs(self.settings.consent_ttl_secs),
            })
            .await?;
        Ok(url)
    }

    /// Completes a consent flow: checks the state (single use, unexpired), exchanges the code,
    /// stores the connection (merging with an existing one), and says where the browser goes.
    ///
    /// `via_app` is the app whose callback path the response came to (`None`: the shared
    /// callback): a response is accepted only where its connect link sent the provider, and with
    /// the provider's `iss` when the app names its issuer (mix-up defence, RFC 9700 §4.4).
    pub async fn complete_connect(
        &self,
        params: &CallbackParams,
        via_app: Option<&str>,
    ) -> CallbackOutcome {
        let page = |status: u16, title: &'static str, message: String| CallbackOutcome::Page {
            status,
            title,
            message,
        };
        let unavailable = |what: &str, e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "{what}");
            page(
                503,
                "Try again",
                "Portcullis cannot reach its database right now.".into(),
            )
        };
        let Some(state) = params
            .state
            .as_ref()
            .map(SecretString::expose)
            .filter(|s| !s.is_empty() && s.chars().count() <= 512)
        else {
            return page(
                400,
                "Invalid request",
                "The request carries no valid state.".into(),
            );
        };
        let id = hex(&sha256(state.as_bytes()));
        let pending = match self.stores.consent_states.take_state(&id).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return page(
                    404,
                    "Link already used or unknown",
                    "This connect link was already used or is unknown. Start again from the application.".into(),
                );
            }
            Err(e) => {
                return unavailable("reading a pending consent failed", &e);
            }
        };
        let back = |query: &[(&str, &str)], fallback: CallbackOutcome| match &pending.return_url {
            Some(r) => match Url::parse(r) {
                Ok(mut url) => {
                    url.query_pairs_mut().extend_pairs(query);
                    CallbackOutcome::Redirect(url.to_string())
                }
                Err(_) => fallback,
            },
            None => fallback,
        };
        let app_id = pending.key.app_id.clone();
        let arrived_at = match via_app {
            Some(a) => format!("{}/v1/outbound/callback/{a}", self.settings.public_url),
            None => self.settings.callback_url(),
        };
        if pending.redirect_uri != arrived_at {
            tracing::warn!(app = %app_id, "a provider's answer came back to another app's callback; refused (possible mix-up)");
            return page(
                400,
                "Not connected",
                "This answer came back to the wrong address. Nothing was changed; start again from the application.".into(),
            );
        }
        match self.app_snapshot(&app_id).await {
            Ok(Some(snapshot)) => {
                if let Some(issuer) = &snapshot.app.settings.issuer
                    && params.iss.as_deref() != Some(issuer.as_str())
                {
                    tracing::warn!(app = %app_id, "a provider's answer has no or another iss; refused (possible mix-up)");
                    return page(
                        400,
                        "Not connected",
                        "This answer does not come from the app's provider. Nothing was changed; start again from the application.".into(),
                    );
                }
            }
            Ok(None) => {}
            Err(e) => {
                return unavailable("reading an app failed", &e);
            }
        }
        if self.clock.now() > pending.expires_at {
            return back(
                &[("error", "expired"), ("app", &app_id)],
                page(
                    400,
                    "Link expired",
                    "This connect link has expired. Start again from the application.".into(),
                ),
            );
        }
        if let Some(error) = params.error.as_deref() {
            let error = error.chars().take(64).collect::<String>();
            let description = params
                .error_description
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(256)
                .collect::<String>();
            return back(
                &[
                    ("error", &error),
                    ("error_description", &description),
                    ("app", &app_id),
                ],
                page(
                    400,
                    "Not connected",
                    format!("The provider answered {error}. Nothing was changed."),
                ),
            );
        }
        // A user disabled since the link was made connects nothing.
        let initiator = pending.initiated_by.strip_prefix("user:");
        let user = match initiator {
            Some(id) => self.directory_user(id).await,
            None => Ok(None),
        };
        match user {
            Ok(Some(u)) if u.disabled => {
                return back(
                    &[("error", "user_disabled"), ("app", &app_id)],
                    page(
                        403,
                        "Not connected",
                        "This account is disabled. Nothing was changed.".into(),
                    ),
                );
            }
            Ok(_) => {}
            Err(e) => {
                return unavailable("reading the user of a pending consent failed", &e);
            }
        }
        let Some(code) = params
            .code
            .as_ref()
            .map(SecretString::expose)
            .filter(|c| !c.is_empty() && c.len() <= 4096)
        else {
            return page(
                400,
                "Invalid request",
                "The provider sent no authorization code.".into(),
            );
        };
        match self.finish_connect(&pending, code).await {
            Ok(conn) => {
                tracing::info!(app = %app_id, connection = %conn.id, "connected an outbound app");
                back(
                    &[("connected", &app_id)],
                    page(
                        200,
                        "Connected",
                        format!("{app_id} is connected. You can close this window."),
                    ),
                )
            }
            Err(e) => {
                tracing::warn!(app = %app_id, error = %e, "completing a consent failed");
                let code = match &e {
                    ServiceError::Unavailable(_) => "temporarily_unavailable",
                    _ => "connect_failed",
                };
                back(
                    &[("error", code), ("app", &app_id)],
                    page(
                        502,
                        "Not connected",
                        match &e {
                            // The provider's own answer is the user's business; internal
                            // failures are logged above, not shown.
                            ServiceError::Invalid { message, .. } => {
                                format!(
                                    "Connecting {app_id} failed: {message}. Nothing was changed."
                                )
                            }
                            ServiceError::Unavailable(_) => format!(
                                "Connecting {app_id} failed: the provider did not answer in time. Nothing was changed; try again."
                            ),
                            _ => format!("Connecting {app_id} failed. Nothing was changed."),
                        },
                    ),
                )
            }
        }
    }

    async fn finish_connect(
        &self,
        pending: &ConsentState,
        code: &str,
    ) -> Result<ConnectionRecord, ServiceError> {
        let app = self
            .stores
            .apps
            .app(&pending.key.app_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("app", &pending.key.app_id))?;
        let verifier = match &pending.pkce_verifier {
            Some(v) => Some(self.sealer.open(v, &state_aad(&pending.id)).await?),
            None => None,
        };
        let verifier = verifier
            .map(|v| String::from_utf8(v.expose().to_vec()))
            .transpose()
            .map_err(|_| ServiceError::Internal("a stored PKCE verifier is not UTF-8".into()))?;
        let secret = self.app_client_secret(&app).await?;
        let resp = self
            .provider
            .exchange_code(
                &app,
                secret.as_ref(),
                code,
                &pending.redirect_uri,
                verifier.as_deref(),
            )
            .await
            .map_err(provider_service_error)?;
        let subject = match resp.id_token_subject() {
            Some(s) => Some(s),
            None => {
                self.provider
                    .userinfo_subject(&app, resp.access_token.expose())
                    .await
            }
        };
        let existing = self.stores.connections.connection(&pending.key).await?;
        let now = self.clock.now();
        let key = &pending.key;
        let refresh_plain = match (&resp.refresh_token, &existing) {
            (Some(rt), _) => Some(rt.clone()),
            // Providers often send a refresh token only on the first consent: keep the old one.
            (None, Some(e)) => match &e.refresh {
                Some(r) => Some(SecretString::from(
                    String::from_utf8(
                        self.sealer
                            .open(r, &connection_aad(key, "refresh"))
                            .await?
                            .expose()
                            .to_vec(),
                    )
                    .map_err(|_| {
                        ServiceError::Internal("a stored refresh token is not UTF-8".into())
                    })?,
                )),
                None => None,
            },
            (None, None) => None,
        };
        let id = existing
            .as_ref()
            .map_or_else(|| ids::new_id("con", now), |e| e.id.clone());
        let base = self.sealed_connection(
            id,
            key.clone(),
            CredentialKind::OAuth,
            resp.access_token.expose(),
            refresh_plain.as_ref().map(SecretString::expose),
            &pending.initiated_by,
            now,
        )?;
        let record = ConnectionRecord {
            scopes: resp.granted_scopes(&pending.scopes),
            token_type: resp.token_type.clone(),
            expires_at: resp.expires_in.map(|s| now.add_secs(s)),
            provider_subject: subject,
            ..base
        };
        Ok(self.stores.connections.put_connection(&record).await?)
    }

    /// The app's OAuth client secret, opened.
    pub(crate) async fn app_client_secret(
        &self,
        app: &AppRecord,
    ) -> Result<Option<SecretString>, ServiceError> {
        match &app.client_secret {
            None => Ok(None),
            Some(c) => {
                let plain = self
                    .sealer
                    .open(c, &crate::manage::app_secret_aad(&app.id))
                    .await?;
                String::from_utf8(plain.expose().to_vec())
                    .map(|s| Some(SecretString::from(s)))
                    .map_err(|_| {
                        ServiceError::Internal("a stored client secret is not UTF-8".into())
                    })
            }
        }
    }

    /// Returns the connection with a token fresh enough to hand out, refreshing it when it expires
    /// within the refresh window, has expired, or `force` is set.
    pub(crate) async fn ensure_fresh(
        &self,
        app: &AppRecord,
        conn: Arc<ConnectionRecord>,
        force: bool,
    ) -> Result<Arc<ConnectionRecord>, RefreshError> {
        let now = self.clock.now();
        let due = conn
            .expires_at
            .is_some_and(|e| e.millis_since(now) <= self.settings.refresh_window_secs * 1000);
        if !force && !due {
            return Ok(conn);
        }
        if conn.refresh.is_none() {
            return match conn.expires_at {
                Some(e) if e <= now => Err(RefreshError::Expired),
                _ => Ok(conn),
            };
        }
        let forced_at = force.then_some(now);
        self.single_flight(format!("refresh:{}", conn.id), {
            let app = app.clone();
            move |core| {
                async move {
                    core.refresh_cluster(&app, conn, forced_at, None)
                        .await
                        .map(|(c, _)| c)
                }
                .boxed()
            }
        })
        .await
    }

    /// A token narrowed to `scopes` (a refresh with a `scope` subset, RFC 6749 §6), remembered in
    /// memory until it is about to expire.
    pub(crate) async fn narrowed_token(
        &self,
        app: &AppRecord,
        conn: &Arc<ConnectionRecord>,
        scopes: &[String],
    ) -> Result<Arc<Narrowed>, RefreshError> {
        let mut sorted = scopes.to_vec();
        sorted.sort();
        let cache_key = (conn.id.clone(), sorted.join(" "));
        let now = self.clock.now();
        if let Some(hit) = self.narrowed.get(&cache_key)
            && hit
                .expires_at
                .is_none_or(|e| e.millis_since(now) > self.settings.refresh_window_secs * 1000)
        {
            return Ok(hit);
        }
        let result: Result<Arc<ConnectionRecord>, RefreshError> = self
            .single_flight(format!("narrow:{}:{}", conn.id, cache_key.1), {
                let app = app.clone();
                let conn = conn.clone();
                let scopes = sorted.clone();
                move |core| {
                    async move {
                        let (c, narrowed) = core
                            .refresh_cluster(&app, conn, None, Some(&scopes))
                            .await?;
                        if let Some(n) = narrowed {
                            core.narrowed
                                .insert((c.id.clone(), scopes.join(" ")), Arc::new(n));
                        }
                        Ok(c)
                    }
                    .boxed()
                }
            })
            .await;
        result?;
        self.narrowed.get(&cache_key).ok_or_else(|| {
            RefreshError::Unavailable("the narrowed token could not be obtained".into())
        })
    }

    /// Runs `work` once per key on this node: concurrent callers share its result. The work runs
    /// on its own task, so a caller that goes away cannot abandon a refresh half-way.
    async fn single_flight<F>(
        &self,
        key: String,
        work: F,
    ) -> Result<Arc<ConnectionRecord>, RefreshError>
    where
        F: FnOnce(Arc<Core>) -> BoxFuture<'static, Result<Arc<ConnectionRecord>, RefreshError>>
            + Send
            + 'static,
    {
        let shared = {
            let mut inflight = self
                .inflight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(f) = inflight.get(&key) {
                f.clone()
            } else {
                let core = self
                    .me
                    .upgrade()
                    .ok_or_else(|| RefreshError::Internal("the server is shutting down".into()))?;
                let key2 = key.clone();
                let core2 = core.clone();
                let handle = tokio::spawn(async move {
                    let result = work(core2.clone()).await;
                    core2
                        .inflight
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&key2);
                    result
                });
                let fut: BoxFuture<'static, Result<Arc<ConnectionRecord>, RefreshError>> =
                    async move {
                        handle.await.unwrap_or_else(|e| {
                            Err(RefreshError::Internal(format!(
                                "a refresh task failed: {e}"
                            )))
                        })
                    }
                    .boxed();
                let shared = fut.shared();
                inflight.insert(key, shared.clone());
                shared
            }
        };
        shared.await
    }

    /// The cluster-wide refresh: take the connection's lease (or wait for the node holding it),
    /// call the provider once, write the new tokens fenced by the version read.
    async fn refresh_cluster(
        &self,
        app: &AppRecord,
        observed: Arc<ConnectionRecord>,
        forced_at: Option<Timestamp>,
        narrow: Option<&[String]>,
    ) -> Result<(Arc<ConnectionRecord>, Option<Narrowed>), RefreshError> {
        let store = &self.stores.connections;
        let owner = format!("{}:{}", self.settings.node_id, random_token(6));
        let lease_ms = self.settings.refresh_lease_secs * 1000;
        let deadline = Instant::now()
            + Duration::from_millis(u64::try_from(lease_ms).unwrap_or(30_000) + 5_000);
        let mut poll = Duration::from_millis(10);
        let mut tried_after_failure = false;
        loop {
            let now = self.clock.now();
            match store
                .acquire_refresh_lease(&observed.id, &owner, now, now.add_millis(lease_ms))
                .await?
            {
                Some(row) => {
                    if narrow.is_none() && self.refreshed_since(&row, &observed, forced_at) {
                        store.release_refresh_lease(&row.id, &owner).await?;
                        return Ok((Arc::new(row), None));
                    }
                    if row.status == ConnectionStatus::ConsentRequired {
                        store.release_refresh_lease(&row.id, &owner).await?;
                        return Err(RefreshError::ConsentRequired);
                    }
                    return self.refresh_held(app, row, &owner, narrow).await;
                }
                None => {
                    // Another node (or task) holds the lease: wait for its result.
                    tokio::time::sleep(poll).await;
                    poll = (poll * 2).min(Duration::from_millis(100));
                    let Some(row) = store.connection_by_id(&observed.id).await? else {
                        return Err(RefreshError::Gone);
                    };
                    if narrow.is_none() && self.refreshed_since(&row, &observed, forced_at) {
                        return Ok((Arc::new(row), None));
                    }
                    if row.lease.is_none() {
                        if row.status == ConnectionStatus::ConsentRequired {
                            return Err(RefreshError::ConsentRequired);
                        }
                        if row.last_refresh_error.is_some() && row.version == observed.version {
                            // The holder failed; try once ourselves, then give up.
                            if tried_after_failure {
                                return Err(RefreshError::Unavailable(
                                    row.last_refresh_error.unwrap_or_default(),
                                ));
                            }
                            tried_after_failure = true;
                        }
                    }
                    if Instant::now() > deadline {
                        return Err(RefreshError::Unavailable(
                            "waited too long for another node's refresh".into(),
                        ));
                    }
                }
            }
        }
    }

    /// Whether `row` holds tokens newer than what `observed` held and fresh enough.
    fn refreshed_since(
        &self,
        row: &ConnectionRecord,
        observed: &ConnectionRecord,
        forced_at: Option<Timestamp>,
    ) -> bool {
        if row.version <= observed.version {
            return false;
        }
        match forced_at {
            Some(t) => row.last_refresh_at.is_some_and(|r| r >= t) || row.updated_at >= t,
            None => row.expires_at.is_none_or(|e| {
                e.millis_since(self.clock.now()) > self.settings.refresh_window_secs * 1000
            }),
        }
    }

    /// Writes a refresh's result, retrying a failed write while the lease is held: the provider
    /// may have rotated the refresh token, and the old one no longer works.
    async fn store_refresh(
        &self,
        row: &ConnectionRecord,
        owner: &str,
        tokens: &TokenSet,
        now: Timestamp,
        held_until: Instant,
    ) -> Result<Option<ConnectionRecord>, RefreshError> {
        let store = &self.stores.connections;
        let mut wait = STORE_RETRY_FIRST;
        loop {
            match store
                .complete_refresh(&row.id, owner, row.version, tokens, now)
                .await
            {
                Ok(stored) => return Ok(stored),
                Err(e) if Instant::now() + wait < held_until => {
                    metrics::counter!("portcullis_refresh_write_retries_total").increment(1);
                    tracing::warn!(connection = %row.id, error = %e, "writing refreshed tokens failed; retrying while the lease is held");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    tracing::error!(connection = %row.id, error = %e, "writing refreshed tokens failed; a rotated refresh token may be lost");
                    return Err(e.into());
                }
            }
        }
    }

    /// Refreshes while holding the lease.
    async fn refresh_held(
        &self,
        app: &AppRecord,
        row: ConnectionRecord,
        owner: &str,
        narrow: Option<&[String]>,
    ) -> Result<(Arc<ConnectionRecord>, Option<Narrowed>), RefreshError> {
        let store = &self.stores.connections;
        // The lease was taken just now; keep a margin so the last write lands before it lapses.
        let held_until = Instant::now()
            + Duration::from_millis(
                u64::try_from(self.settings.refresh_lease_secs * 1000)
                    .unwrap_or(0)
                    .saturating_sub(1000),
            );
        let key = row.key.clone();
        let release_with = |error: String, consent: bool| {
            let id = row.id.clone();
            let owner = owner.to_owned();
            async move {
                if let Err(e) = store
                    .fail_refresh(
                        &id,
                        &owner,
                        &RefreshFailure {
                            error,
                            consent_required: consent,
                        },
                    )
                    .await
                {
                    tracing::warn!(error = %e, "recording a refresh failure failed");
                }
            }
        };
        let Some(sealed_rt) = &row.refresh else {
            release_with("no refresh token is stored".into(), false).await;
            return Err(RefreshError::Expired);
        };
        let opened = async {
            let rt = self
                .sealer
                .open(sealed_rt, &connection_aad(&key, "refresh"))
                .await?;
            let secret = self.app_client_secret(app).await?;
            Ok::<_, ServiceError>((rt, secret))
        }
        .await;
        let (rt, secret) = match opened {
            Ok(v) => v,
            Err(e) => {
                release_with("cannot open the stored refresh token".into(), false).await;
                return Err(e.into());
            }
        };
        let rt = String::from_utf8_lossy(rt.expose()).into_owned();
        metrics::counter!("portcullis_provider_refresh_total", "app" => app.id.clone())
            .increment(1);
        let resp = match self
            .provider
            .refresh(app, secret.as_ref(), &rt, narrow)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let consent = e.is_invalid_grant();
                tracing::warn!(app = %app.id, connection = %row.id, error = %e, "refresh failed");
                release_with(e.to_string(), consent).await;
                return Err(if consent {
                    RefreshError::ConsentRequired
                } else {
                    RefreshError::Unavailable(e.to_string())
                });
            }
        };
        let now = self.clock.now();
        let tokens = match self.token_set(&row, &resp, &rt, narrow.is_some()) {
            Ok(t) => t,
            Err(e) => {
                release_with("cannot seal the refreshed tokens".into(), false).await;
                return Err(e.into());
            }
        };
        let narrowed = narrow.map(|scopes| Narrowed {
            access_token: resp.access_token.clone(),
            token_type: resp.token_type.clone(),
            expires_at: resp.expires_in.map(|s| now.add_secs(s)),
            scopes: resp.granted_scopes(scopes),
        });
        match self
            .store_refresh(&row, owner, &tokens, now, held_until)
            .await?
        {
            Some(stored) => Ok((Arc::new(stored), narrowed)),
            None => {
                // Fenced out (our lease lapsed and someone else refreshed): theirs is newer.
                tracing::warn!(connection = %row.id, "a refresh was fenced out by a newer one");
                let current = store
                    .connection_by_id(&row.id)
                    .await?
                    .ok_or(RefreshError::Gone)?;
                Ok((Arc::new(current), narrowed))
            }
        }
    }

    /// The tokens to store after a refresh. A narrowing refresh keeps the stored (broader) access
    /// token and stores only a rotated refresh token.
    fn token_set(
        &self,
        row: &ConnectionRecord,
        resp: &TokenResponse,
        old_rt: &str,
        narrowing: bool,
    ) -> Result<TokenSet, ServiceError> {
        let now = self.clock.now();
        let access_aad = connection_aad(&row.key, "access");
        let refresh_aad = connection_aad(&row.key, "refresh");
        let rt = resp.refresh_token.as_ref().map_or(old_rt, |r| r.expose());
        let refresh = Some(self.sealer.seal(rt.as_bytes(), &refresh_aad)?);
        if narrowing {
            let access = self
                .sealer
                .open_cached(&row.access, &access_aad)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            return Ok(TokenSet {
                access: self.sealer.seal(access.expose(), &access_aad)?,
                refresh,
                token_type: row.token_type.clone(),
                expires_at: row.expires_at,
                scopes: row.scopes.clone(),
            });
        }
        Ok(TokenSet {
            access: self
                .sealer
                .seal(resp.access_token.expose().as_bytes(), &access_aad)?,
            refresh,
            token_type: resp.token_type.clone().or_else(|| row.token_type.clone()),
            expires_at: resp.expires_in.map(|s| now.add_secs(s)),
            scopes: resp.granted_scopes(&row.scopes),
        })
    }

    /// Stores an API key for a user, a tenant, or (neither) the whole app.
    pub async fn put_api_key(
        &self,
        app_id: &str,
        api_key: &SecretString,
        user_id: Option<String>,
        tenant_id: Option<String>,
        granted_by: &str,
    ) -> Result<ConnectionInfo, ServiceError> {
        let app = self
            .stores
            .apps
            .app(app_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("app", app_id))?;
        if app.kind != AppKind::ApiKey {
            return Err(ServiceError::Conflict {
                code: "not_an_api_key_app",
                message: format!("app {app_id} is an OAuth app; its users connect through consent"),
            });
        }
        if api_key.is_empty() || api_key.len() > 8192 {
            return Err(ServiceError::invalid(
                "invalid_api_key",
                "apiKey must be 1 to 8192 characters",
            ));
        }
        self.check_owner(user_id.as_deref(), tenant_id.as_deref())
            .await?;
        let key = ConnectionKey {
            app_id: app_id.to_owned(),
            user_id,
            tenant_id,
        };
        let now = self.clock.now();
        let record = self.sealed_connection(
            ids::new_id("con", now),
            key,
            CredentialKind::ApiKey,
            api_key.expose(),
            None,
            granted_by,
            now,
        )?;
        let stored = self.stores.connections.put_connection(&record).await?;
        Ok(ConnectionInfo::from(&stored))
    }

    /// A new active connection with its secrets sealed (bound to `key`); the caller fills in
    /// scopes, expiry and the rest.
    #[expect(
        clippy::too_many_arguments,
        reason = "every field a new connection needs"
    )]
    fn sealed_connection(
        &self,
        id: String,
        key: ConnectionKey,
        kind: CredentialKind,
        access: &str,
        refresh: Option<&str>,
        granted_by: &str,
        now: Timestamp,
    ) -> Result<ConnectionRecord, ServiceError> {
        Ok(ConnectionRecord {
            id,
            access: self
                .sealer
                .seal(access.as_bytes(), &connection_aad(&key, "access"))?,
            refresh: refresh
                .map(|r| {
                    self.sealer
                        .seal(r.as_bytes(), &connection_aad(&key, "refresh"))
                })
                .transpose()?,
            key,
            kind,
            status: ConnectionStatus::Active,
            scopes: Vec::new(),
            token_type: None,
            expires_at: None,
            provider_subject: None,
            version: 0,
            lease: None,
            last_refresh_at: None,
            last_refresh_error: None,
            last_used_at: None,
            granted_by: Some(granted_by.to_owned()),
            created_at: now,
            updated_at: now,
        })
    }

    async fn check_owner(
        &self,
        user: Option<&str>,
        tenant: Option<&str>,
    ) -> Result<(), ServiceError> {
        for (field, v) in [("userId", user), ("tenantId", tenant)] {
            if let Some(v) = v
                && (v.is_empty()
                    || v.chars().count() > 256
                    || v.chars().any(|c| c.is_control() || c.is_whitespace()))
            {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    format!(
                        "{field} must be 1 to 256 characters without whitespace or control characters"
                    ),
                ));
            }
        }
        if let Some(t) = tenant
            && self.stores.directory.tenant(t).await?.is_none()
        {
            return Err(ServiceError::UnknownReference {
                entity: "tenant",
                id: t.to_owned(),
            });
        }
        Ok(())
    }

    /// Imports OAuth tokens from another system, all or nothing.
    pub async fn import_tokens(
        &self,
        app_id: &str,
        items: &[ImportToken],
        granted_by: &str,
    ) -> Result<Vec<ConnectionInfo>, ServiceError> {
        let app = self
            .stores
            .apps
            .app(app_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("app", app_id))?;
        if app.kind != AppKind::OAuth {
            return Err(ServiceError::Conflict {
                code: "not_an_oauth_app",
                message: format!("app {app_id} uses API keys; store keys through /api-keys"),
            });
        }
        if items.is_empty() || items.len() > 1000 {
            return Err(ServiceError::invalid(
                "invalid_request",
                "an import holds 1 to 1000 tokens",
            ));
        }
        let now = self.clock.now();
        let mut records = Vec::with_capacity(items.len());
        let mut seen = std::collections::HashSet::new();
        for (i, item) in items.iter().enumerate() {
            if item.user_id.is_none() && item.tenant_id.is_none() {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    format!("tokens[{i}] needs a userId or a tenantId"),
                ));
            }
            for (field, v, max) in [
                ("tokenType", item.token_type.as_deref(), 64),
                ("providerSubject", item.provider_subject.as_deref(), 255),
            ] {
                if let Some(v) = v
                    && (v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control))
                {
                    return Err(ServiceError::invalid(
                        "invalid_request",
                        format!(
                            "tokens[{i}].{field} must be 1 to {max} characters without control characters"
                        ),
                    ));
                }
            }
            if item.access_token.is_empty() {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    format!("tokens[{i}].accessToken must not be empty"),
                ));
            }
            self.check_owner(item.user_id.as_deref(), item.tenant_id.as_deref())
                .await?;
            check_scopes_offered(&app, &item.scopes)?;
            let mut scopes = item.scopes.clone();
            dedup(&mut scopes);
            let key = ConnectionKey {
                app_id: app_id.to_owned(),
                user_id: item.user_id.clone(),
                tenant_id: item.tenant_id.clone(),
            };
            if !seen.insert(key.clone()) {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    format!("tokens[{i}] repeats the owner of an earlier token"),
                ));
            }
            let base = self.sealed_connection(
                ids::new_id("con", now),
                key,
                CredentialKind::OAuth,
                item.access_token.expose(),
                item.refresh_token.as_ref().map(SecretString::expose),
                granted_by,
                now,
            )?;
            records.push(ConnectionRecord {
                scopes,
                token_type: Some(item.token_type.clone().unwrap_or_else(|| "Bearer".into())),
                expires_at: item.expires_at,
                provider_subject: item.provider_subject.clone(),
                ..base
            });
        }
        let stored = self.stores.connections.put_connections(&records).await?;
        Ok(stored.iter().map(ConnectionInfo::from).collect())
    }

    /// Revokes one connection: at the provider when the app has a revocation endpoint (best
    /// effort), and here (always).
    pub async fn revoke_connection(&self, id: &str) -> Result<RevokeReport, ServiceError> {
        let conn = self
            .stores
            .connections
            .connection_by_id(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("connection", id))?;
        let (provider_revoked, provider_error) = self.revoke_at_provider(&conn).await;
        let gone = self
            .stores
            .connections
            .delete_connection(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("connection", id))?;
        self.forget_narrowed(&gone.id);
        Ok(RevokeReport {
            connection: ConnectionInfo::from(&gone),
            provider_revoked,
            provider_error,
        })
    }

    /// Revokes every connection of a user.
    pub async fn revoke_user_connections(
        &self,
        user_id: &str,
    ) -> Result<Vec<RevokeReport>, ServiceError> {
        let mut after = None;
        let mut all = Vec::new();
        loop {
            let page = self
                .stores
                .connections
                .connections_for_user(
                    user_id,
                    &portcullis_domain::PageRequest {
                        after: after.clone(),
                        limit: 200,
                    },
                )
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            all.extend(page);
        }
        let mut revoked = HashMap::new();
        for c in &all {
            revoked.insert(c.id.clone(), self.revoke_at_provider(c).await);
        }
        let gone = self
            .stores
            .connections
            .delete_user_connections(user_id)
            .await?;
        Ok(gone
            .iter()
            .map(|c| {
                self.forget_narrowed(&c.id);
                let (provider_revoked, provider_error) =
                    revoked.remove(&c.id).unwrap_or((false, None));
                RevokeReport {
                    connection: ConnectionInfo::from(c),
                    provider_revoked,
                    provider_error,
                }
            })
            .collect())
    }

    async fn revoke_at_provider(&self, conn: &ConnectionRecord) -> (bool, Option<String>) {
        if conn.kind != CredentialKind::OAuth {
            return (false, None);
        }
        let Ok(Some(app)) = self.stores.apps.app(&conn.key.app_id).await else {
            return (false, Some("the app could not be read".into()));
        };
        if app.settings.revocation_url.is_none() {
            return (false, None);
        }
        let (field, hint, sealed) = match &conn.refresh {
            Some(r) => ("refresh", "refresh_token", r),
            None => ("access", "access_token", &conn.access),
        };
        let result = async {
            let token = self
                .sealer
                .open(sealed, &connection_aad(&conn.key, field))
                .await?;
            let secret = self.app_client_secret(&app).await?;
            self.provider
                .revoke(
                    &app,
                    secret.as_ref(),
                    &String::from_utf8_lossy(token.expose()),
                    hint,
                )
                .await
                .map_err(provider_service_error)
        }
        .await;
        match result {
            Ok(()) => (true, None),
            Err(e) => {
                tracing::warn!(connection = %conn.id, error = %e, "the provider did not confirm a revocation");
                (false, Some(e.to_string()))
            }
        }
    }

    fn forget_narrowed(&self, connection_id: &str) {
        // Narrowed tokens are keyed by (connection, scopes); drop all of this connection's.
        let stale: Vec<(String, String)> = self
            .narrowed
            .iter()
            .filter(|(k, _)| k.0 == connection_id)
            .map(|(k, _)| k)
            .collect();
        for k in stale {
            self.narrowed.remove(&k);
        }
    }

    /// Forces a refresh of one connection now (an admin action).
    pub async fn force_refresh_connection(&self, id: &str) -> Result<ConnectionInfo, ServiceError> {
        let conn = self
            .stores
            .connections
            .connection_by_id(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("connection", id))?;
        if conn.kind != CredentialKind::OAuth {
            return Err(ServiceError::Conflict {
                code: "not_refreshable",
                message: "API keys are not refreshed".into(),
            });
        }
        if conn.refresh.is_none() {
            return Err(ServiceError::Conflict {
                code: "not_refreshable",
                message: "the connection has no refresh token".into(),
            });
        }
        let app = self
            .stores
            .apps
            .app(&conn.key.app_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("app", &conn.key.app_id))?;
        match self.ensure_fresh(&app, Arc::new(conn), true).await {
            Ok(c) => Ok(ConnectionInfo::from(c.as_ref())),
            Err(RefreshError::ConsentRequired) => Err(ServiceError::Conflict {
                code: "consent_required",
                message: "the provider rejected the refresh token; the connection now needs the user's consent".into(),
            }),
            Err(RefreshError::Unavailable(m)) => Err(ServiceError::Unavailable(m)),
            Err(RefreshError::Gone) => Err(ServiceError::not_found("connection", id)),
            Err(e) => Err(ServiceError::Internal(e.to_string())),
        }
    }
}

fn provider_service_error(e: ProviderError) -> ServiceError {
    match e {
        ProviderError::Unavailable(m) => {
            ServiceError::Unavailable(format!("the provider is unavailable: {m}"))
        }
        other => ServiceError::invalid("provider_error", other.to_string()),
    }
}

/// Rejects scopes an OAuth app does not offer (when it lists its scopes).
pub(crate) fn check_scopes_offered(app: &AppRecord, scopes: &[String]) -> Result<(), ServiceError> {
    if scopes.len() > crate::plane::MAX_SCOPES
        || scopes.iter().any(|s| {
            s.is_empty()
                || s.chars().count() > crate::plane::MAX_SCOPE_LEN
                || s.chars().any(char::is_control)
        })
    {
        return Err(ServiceError::invalid(
            "invalid_request",
            format!(
                "scopes: at most {} scopes of 1 to {} characters, none a control character",
                crate::plane::MAX_SCOPES,
                crate::plane::MAX_SCOPE_LEN
            ),
        ));
    }
    if app.settings.scopes.is_empty() {
        return Ok(());
    }
    for s in scopes {
        if !app.settings.scopes.iter().any(|d| &d.name == s) {
            return Err(ServiceError::invalid(
                "invalid_scope",
                format!("app {} does not offer the scope {s:?}", app.id),
            ));
        }
    }
    Ok(())
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// An admin's request for a connect link: a tenant's shared connection (or a named user's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminConnectRequest {
    /// The tenant whose shared connection this creates.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Or the user whose connection this creates (the link must be opened by that user).
    #[serde(default)]
    pub user_id: Option<String>,
    /// Scopes to ask for (default: the app's default scopes).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Where to send the browser afterwards.
    #[serde(default)]
    pub return_url: Option<String>,
}

impl Core {
    /// A connect link created by an admin (tenant connections are provisioned this way).
    pub async fn admin_connect(
        &self,
        app_id: &str,
        req: &AdminConnectRequest,
        admin: &crate::AdminIdentity,
    ) -> Result<String, ServiceError> {
        let app = self.require_app(app_id).await?;
        if app.kind != AppKind::OAuth {
            return Err(ServiceError::Conflict {
                code: "not_an_oauth_app",
                message: format!("app {app_id} uses API keys; store them through /api-keys"),
            });
        }
        let key = match (&req.user_id, &req.tenant_id) {
            (None, None) => {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    "name a tenantId (a tenant connection) or a userId",
                ));
            }
            (user, tenant) => ConnectionKey {
                app_id: app_id.to_owned(),
                user_id: user.clone(),
                tenant_id: tenant.clone(),
            },
        };
        self.check_owner(key.user_id.as_deref(), key.tenant_id.as_deref())
            .await?;
        let mut scopes = req
            .scopes
            .clone()
            .unwrap_or_else(|| app.settings.default_scopes.clone());
        dedup(&mut scopes);
        check_scopes_offered(&app, &scopes)?;
        if let Some(r) = &req.return_url
            && !crate::urls::return_url_allowed(r, &self.settings)
        {
            return Err(ServiceError::invalid(
                "invalid_return_url",
                "returnUrl is not an allowed return URL (see allowed_return_urls in the configuration)",
            ));
        }
        self.consent_link(
            &app,
            key,
            scopes,
            req.return_url.clone(),
            &format!("admin:{}", admin.key_id),
        )
        .await
    }

    /// One connection's metadata.
    pub async fn get_connection(&self, id: &str) -> Result<ConnectionInfo, ServiceError> {
        let c = self
            .stores
            .connections
            .connection_by_id(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("connection", id))?;
        Ok(ConnectionInfo::from(&c))
    }

    /// An app's connections.
    pub async fn list_app_connections(
        &self,
        app_id: &str,
        params: &crate::manage::ListParams,
    ) -> Result<crate::manage::Page<ConnectionInfo>, ServiceError> {
        self.require_app(app_id).await?;
        let (page, limit) = params.page_request()?;
        let rows = self
            .stores
            .connections
            .connections_for_app(app_id, &page)
            .await?;
        Ok(
            crate::manage::Page::from_rows(rows, limit, |c| c.id.clone())
                .map(|c| ConnectionInfo::from(&c)),
        )
    }

    /// A user's connections (the user need not be in the directory).
    pub async fn list_user_connections(
        &self,
        user_id: &str,
        params: &crate::manage::ListParams,
    ) -> Result<crate::manage::Page<ConnectionInfo>, ServiceError> {
        let (page, limit) = params.page_request()?;
        let rows = self
            .stores
            .connections
            .connections_for_user(user_id, &page)
            .await?;
        Ok(
            crate::manage::Page::from_rows(rows, limit, |c| c.id.clone())
                .map(|c| ConnectionInfo::from(&c)),
        )
    }
}
