//! The access control plane: on every outbound token request, the inbound token decides.
//!
//! `fetch_token` is the hot path. A warm request (a token already verified, the app, the user
//! and the connection in memory) does no database IO: it hashes the token, evaluates the app's
//! compiled policies, opens the sealed credential and queues an audit record.

use std::sync::Arc;
use std::time::Instant;

use portcullis_crypto::SecretString;
use portcullis_domain::{
    AppKind, AppRecord, AuditEvent, AuditOutcome, ConnectionKey, ConnectionRecord,
    ConnectionStatus, CredentialKind, DenialDetail, OnDeny, PolicyRecord, PolicyVerdict, Timestamp,
    UserRecord,
};
use portcullis_policy::{AllowedScopes, Decision, Explanation, Limits, PolicySet, Reason, Subject};
use serde::Serialize;
use serde_json::Value;

use crate::inbound::VerifiedToken;
use crate::refusal::{DenialReason, ForbiddenReason, NotConnectedReason, Refusal, RequestProblem};
use crate::vault::RefreshError;
use crate::{Core, ServiceError, ids};

/// An app with its compiled policies, as the token path holds it in memory.
#[derive(Debug)]
pub struct AppSnapshot {
    /// The app.
    pub app: AppRecord,
    /// Its policies, as stored.
    pub policies: Vec<PolicyRecord>,
    /// Its policies, compiled.
    pub set: PolicySet,
}

impl AppSnapshot {
    /// Compiles an app's policies.
    pub fn compile(app: AppRecord, policies: Vec<PolicyRecord>) -> Result<Self, ServiceError> {
        let set = PolicySet::compile(
            &app.settings.scope_names(),
            policies
                .iter()
                .map(|p| (p.id.clone(), p.document.clone()))
                .collect(),
            &Limits::default(),
        )
        .map_err(|e| {
            ServiceError::Internal(format!(
                "stored policies of app {} do not compile: {e}",
                app.id
            ))
        })?;
        Ok(Self { app, policies, set })
    }
}

/// What an MCP server asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenRequest {
    /// The outbound app.
    pub app_id: String,
    /// The scopes wanted (empty: the app's default scopes).
    pub scopes: Vec<String>,
    /// The tenant whose token (or within which the user's token) is wanted.
    pub tenant_id: Option<String>,
    /// Refresh even if the token is still fresh.
    pub force_refresh: bool,
}

/// Which surface asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Surface {
    /// `POST /v1/outbound/apps/{appId}/token`.
    TokenEndpoint,
    /// RFC 8693 token exchange by an authenticated client.
    TokenExchange {
        /// The client's id.
        client_id: String,
    },
}

impl Surface {
    /// The surface's name in the audit log (`token`, `token_exchange`).
    pub const fn action(&self) -> &'static str {
        match self {
            Self::TokenEndpoint => "token",
            Self::TokenExchange { .. } => "token_exchange",
        }
    }
}

/// The part of a denial's explanation callers see, per the app's [`DenialDetail`].
pub(crate) fn shown(explanation: &Explanation, detail: DenialDetail) -> Value {
    let mut v = serde_json::to_value(explanation).unwrap_or(Value::Null);
    match detail {
        DenialDetail::Full => {}
        DenialDetail::Policies => {
            for p in v
                .get_mut("policies")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(c) = p.get_mut("failedCondition").and_then(Value::as_object_mut) {
                    c.remove("value");
                    c.remove("seen");
                }
            }
        }
        DenialDetail::Reason => {
            if let Value::Object(m) = &mut v {
                m.retain(|k, _| {
                    matches!(
                        k.as_str(),
                        "outcome" | "reason" | "requestedScopes" | "deniedScopes"
                    )
                });
            }
        }
    }
    v
}

/// The longest tenant id a request may name, in characters.
pub const MAX_TENANT_ID: usize = 256;
/// The most scopes a request may name.
pub const MAX_SCOPES: usize = 256;
/// The longest scope a request may name, in characters.
pub const MAX_SCOPE_LEN: usize = 256;

fn invalid(message: String) -> Refusal {
    Refusal::invalid(RequestProblem::InvalidRequest, message)
}

/// Checks the fields of a request before anything else happens, so that nothing of a malformed
/// request is recorded: the app id is a slug (at most 64 characters), the tenant id has 1 to 256
/// characters and the scopes at most 256 of 1 to 256 characters, none with a control character.
pub(crate) fn check_fields(
    app_id: &str,
    tenant_id: Option<&str>,
    scopes: &[String],
) -> Result<(), Refusal> {
    portcullis_domain::validate_slug(app_id).map_err(|e| invalid(format!("appId {e}")))?;
    if let Some(t) = tenant_id
        && (t.is_empty() || t.chars().count() > MAX_TENANT_ID || t.chars().any(char::is_control))
    {
        return Err(invalid(format!(
            "tenantId must have 1 to {MAX_TENANT_ID} characters, none a control character"
        )));
    }
    if scopes.len() > MAX_SCOPES
        || scopes.iter().any(|s| {
            s.is_empty() || s.chars().count() > MAX_SCOPE_LEN || s.chars().any(char::is_control)
        })
    {
        return Err(invalid(format!(
            "scopes: at most {MAX_SCOPES} scopes of 1 to {MAX_SCOPE_LEN} characters, none a control character"
        )));
    }
    Ok(())
}

fn check_token_request(req: &TokenRequest) -> Result<(), Refusal> {
    check_fields(&req.app_id, req.tenant_id.as_deref(), &req.scopes)
}

/// A credential handed out.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundToken {
    /// The OAuth access token (OAuth apps).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "expose_opt")]
    pub access_token: Option<SecretString>,
    /// The API key (API-key apps), present instead of `accessToken`.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "expose_opt")]
    pub api_key: Option<SecretString>,
    /// `Bearer`, or the provider's type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// When the access token expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// The scopes the credential carries.
    pub scopes: Vec<String>,
    /// The outbound app the credential is for.
    pub app_id: String,
    /// Whom the credential was fetched for: the directory user's id, or for a subject of an
    /// external issuer that no directory user is linked to, its principal id (`ext:…:<sub>`).
    pub user_id: String,
    /// The tenant, when one was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Whose credential it is: `user`, `tenant` or `app`.
    pub owner: &'static str,
}

fn expose_opt<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(secret) => s.serialize_str(secret.expose()),
        None => s.serialize_none(),
    }
}

/// The decision behind an allowed request, in short.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionSummary {
    /// Always `allow`.
    pub outcome: &'static str,
    /// `open` (no enforcing policy) or `matched`.
    pub reason: &'static str,
    /// The enforcing policies that matched.
    pub deciding_policies: Vec<String>,
    /// The scopes the policies allow: `"all"` or a list.
    pub allowed_scopes: serde_json::Value,
    /// Whether the token was narrowed to fewer scopes than the stored grant.
    pub downscoped: bool,
}

/// A handed-out credential and the decision that allowed it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Granted {
    /// The credential to call the provider with.
    pub token: OutboundToken,
    /// Why it was allowed: the decision in short.
    pub decision: DecisionSummary,
}

/// Who is asking, once the inbound token is verified and the directory consulted.
pub(crate) struct Caller {
    pub(crate) token: Arc<VerifiedToken>,
    /// The directory user the token's identity (issuer and subject) is linked to, if any.
    pub(crate) user: Option<Arc<UserRecord>>,
    /// The principal id: the directory user's id, or the external subject's (issuer-qualified)
    /// id. Connections, pending consents and audit records are keyed by it.
    pub(crate) id: String,
}

impl Caller {
    /// The roles that count: live from the directory, else mapped from the token.
    /// Refuses a disabled directory user (on every user path: token, exchange, connect).
    pub(crate) fn check_enabled(&self) -> Result<(), Refusal> {
        match &self.user {
            Some(u) if u.disabled => Err(Refusal::Forbidden {
                reason: ForbiddenReason::UserDisabled,
                message: "the user is disabled".into(),
            }),
            _ => Ok(()),
        }
    }

    pub(crate) fn roles(&self, tenant: Option<&str>) -> Vec<String> {
        self.roles_ref(tenant).into_owned()
    }

    /// The roles that count, borrowed when no tenant adds any (the common case: no copy).
    pub(crate) fn roles_ref(&self, tenant: Option<&str>) -> std::borrow::Cow<'_, [String]> {
        match (&self.user, tenant) {
            (Some(u), None) => std::borrow::Cow::Borrowed(&u.roles),
            (Some(u), Some(_)) => std::borrow::Cow::Owned(u.effective_roles(tenant)),
            (None, _) => std::borrow::Cow::Borrowed(&self.token.token_roles),
        }
    }

    /// Whether the caller belongs to `tenant`.
    pub(crate) fn in_tenant(&self, tenant: &str) -> bool {
        match &self.user {
            Some(u) => u.is_member_of(tenant),
            None => self.token.tenants.iter().any(|t| t == tenant),
        }
    }
}

/// What the audit record of a request collects as the request goes.
struct Trail {
    started: Instant,
    token: Option<Arc<VerifiedToken>>,
    /// The caller's principal id, once known.
    principal: Option<String>,
    requested: Vec<String>,
    decided: Option<(Arc<AppSnapshot>, Decision)>,
}

impl Core {
    /// Decides an outbound token request and, when allowed, hands the credential out.
    pub async fn fetch_token(
        &self,
        bearer: Option<&str>,
        req: &TokenRequest,
        surface: &Surface,
    ) -> Result<Granted, Refusal> {
        if let Err(refusal) = check_token_request(req) {
            let (_, reason) = refusal.audit_outcome();
            self.audit
                .reject(surface.action(), reason, self.clock.now());
            return Err(refusal);
        }
        let mut trail = Trail {
            started: Instant::now(),
            token: None,
            principal: None,
            requested: Vec::new(),
            decided: None,
        };
        let result = self.decide_and_fetch(bearer, req, &mut trail).await;
        self.audit_fetch(req, surface, trail, &result).await;
        result
    }

    async fn decide_and_fetch(
        &self,
        bearer: Option<&str>,
        req: &TokenRequest,
        trail: &mut Trail,
    ) -> Result<Granted, Refusal> {
        let caller = self.authenticate_caller(bearer).await?;
        self.rate_limit_subject(&caller.id)?;
        trail.token = Some(caller.token.clone());
        trail.principal = Some(caller.id.clone());
        let snapshot =
            self.app_snapshot(&req.app_id)
                .await?
                .ok_or_else(|| Refusal::UnknownApp {
                    app_id: req.app_id.clone(),
                })?;
        let app = &snapshot.app;
        caller.check_enabled()?;
        let tenant = req.tenant_id.as_deref();
        if let Some(t) = tenant
            && !caller.in_tenant(t)
        {
            return Err(Refusal::Forbidden {
                reason: ForbiddenReason::NotATenantMember,
                message: format!("the user is not a member of tenant {t}"),
            });
        }
        let requested: Vec<String> = if req.scopes.is_empty() && app.kind == AppKind::OAuth {
            app.settings.default_scopes.clone()
        } else {
            req.scopes.clone()
        };
        trail.requested.clone_from(&requested);
        let now = self.clock.now();
        check_offered(app, &requested)?;

        // The decision.
        let roles = caller.roles_ref(tenant);
        let subject = Subject::new(&roles, &caller.token.claims);
        let requested_refs: Vec<&str> = requested.iter().map(String::as_str).collect();
        let decision = snapshot.set.decide(&subject, &requested_refs);
        trail.decided = Some((snapshot.clone(), decision.clone()));
        if !decision.allowed() {
            return Err(self
                .refuse(
                    &snapshot, &caller, tenant, &requested, &decision, &subject, None,
                )
                .await);
        }
        let allowed = decision.allowed_scopes(&snapshot.set);
        let not_connected = async |reason: NotConnectedReason, granted: &[String]| {
            self.not_connected(
                &snapshot, &caller, tenant, reason, &requested, granted, &allowed,
            )
            .await
        };

        // The credential.
        let conn = self.find_credential(app, &caller.id, tenant).await?;
        let Some(conn) = conn else {
            return Err(not_connected(NotConnectedReason::NoConnection, &[]).await);
        };
        if conn.status == ConnectionStatus::ConsentRequired {
            return Err(
                not_connected(NotConnectedReason::ConsentRequiredByProvider, &conn.scopes).await,
            );
        }
        let owner = owner_of(&conn.key);
        if conn.kind == CredentialKind::ApiKey {
            let api_key = self.open_secret(&conn, "access").await?;
            self.audit.used(&conn.id, now);
            return Ok(Granted {
                token: OutboundToken {
                    access_token: None,
                    api_key: Some(api_key),
                    token_type: None,
                    expires_at: None,
                    scopes: Vec::new(),
                    app_id: app.id.clone(),
                    user_id: caller.id.clone(),
                    tenant_id: tenant.map(str::to_owned),
                    owner,
                },
                decision: summary(&decision, &snapshot.set, false),
            });
        }
        if requested.iter().any(|s| !conn.scopes.contains(s)) {
            return Err(not_connected(NotConnectedReason::MissingScopes, &conn.scopes).await);
        }
        // Never hand out more than allowed: narrow when the grant is broader.
        let excess = match &allowed {
            AllowedScopes::All => false,
            AllowedScopes::List(_) => conn.scopes.iter().any(|s| !allowed.contains(s)),
        };
        let stored = conn.clone();
        let granted = &stored.scopes;
        let conn = match self.ensure_fresh(app, conn, req.force_refresh).await {
            Ok(c) => c,
            Err(RefreshError::ConsentRequired) => {
                return Err(
                    not_connected(NotConnectedReason::ConsentRequiredByProvider, granted).await,
                );
            }
            Err(RefreshError::Expired) => {
                return Err(not_connected(NotConnectedReason::Expired, granted).await);
            }
            Err(RefreshError::Gone) => {
                return Err(not_connected(NotConnectedReason::NoConnection, &[]).await);
            }
            Err(RefreshError::Unavailable(message)) => {
                return Err(Refusal::Unavailable { message });
            }
            Err(RefreshError::Internal(message)) => return Err(Refusal::Internal { message }),
        };
        let token = if excess {
            let target: Vec<String> = if requested.is_empty() {
                conn.scopes
                    .iter()
                    .filter(|s| allowed.contains(s))
                    .cloned()
                    .collect()
            } else {
                requested.clone()
            };
            if !app.settings.narrow_scopes_on_refresh || conn.refresh.is_none() {
                return Err(self
                    .refuse(
                        &snapshot,
                        &caller,
                        tenant,
                        &requested,
                        &decision,
                        &subject,
                        Some(DenialReason::DownscopingUnsupported),
                    )
                    .await);
            }
            match self.narrowed_token(app, &conn, &target).await {
                Ok(t) => OutboundToken {
                    access_token: Some(t.access_token.clone()),
                    api_key: None,
                    token_type: t.token_type.clone(),
                    expires_at: t.expires_at,
                    scopes: t.scopes.clone(),
                    app_id: app.id.clone(),
                    user_id: caller.id.clone(),
                    tenant_id: tenant.map(str::to_owned),
                    owner,
                },
                Err(RefreshError::Unavailable(message)) => {
                    return Err(Refusal::Unavailable { message });
                }
                Err(RefreshError::ConsentRequired) => {
                    return Err(
                        not_connected(NotConnectedReason::ConsentRequiredByProvider, &[]).await,
                    );
                }
                Err(e) => {
                    return Err(Refusal::Internal {
                        message: e.to_string(),
                    });
                }
            }
        } else {
            OutboundToken {
                access_token: Some(self.open_secret(&conn, "access").await?),
                api_key: None,
                token_type: conn.token_type.clone(),
                expires_at: conn.expires_at,
                scopes: conn.scopes.clone(),
                app_id: app.id.clone(),
                user_id: caller.id.clone(),
                tenant_id: tenant.map(str::to_owned),
                owner,
            }
        };
        self.audit.used(&conn.id, now);
        Ok(Granted {
            token,
            decision: summary(&decision, &snapshot.set, excess),
        })
    }

    /// Counts a request of the principal `id`: `RateLimited` when it is over its limit.
    pub(crate) fn rate_limit_subject(&self, id: &str) -> Result<(), Refusal> {
        match &self.per_subject {
            None => Ok(()),
            Some(limiter) => limiter
                .check(id, Instant::now())
                .map_err(|retry_after| Refusal::RateLimited { retry_after }),
        }
    }

    /// Verifies the bearer token, checks its scope, and reads the user from the directory.
    pub(crate) async fn authenticate_caller(
        &self,
        bearer: Option<&str>,
    ) -> Result<Caller, Refusal> {
        let Some(bearer) = bearer else {
            return Err(Refusal::InvalidToken {
                code: None,
                message: "an inbound access token is required (Authorization: Bearer ...)".into(),
            });
        };
        let token = self
            .inbound
            .verify(bearer)
            .await
            .map_err(|e| Refusal::InvalidToken {
                code: Some(e.code()),
                message: e.to_string(),
            })?;
        if !token.has_scope(&self.settings.fetch_scope) {
            return Err(Refusal::InsufficientScope {
                scope: self.settings.fetch_scope.clone(),
            });
        }
        let (user, id) = self.resolve_identity(&token).await?;
        Ok(Caller { token, user, id })
    }

    /// Finds who a verified token is: Portcullis's own tokens name directory users by id; any
    /// other issuer's subject is a directory user only through an identity link, else an
    /// external subject of that issuer.
    pub(crate) async fn resolve_identity(
        &self,
        token: &VerifiedToken,
    ) -> Result<(Option<Arc<UserRecord>>, String), ServiceError> {
        if self.inbound.is_local_issuer(&token.issuer) {
            let user = self.directory_user(&token.subject).await?;
            return Ok((user, token.subject.clone()));
        }
        let directory = self.stores.directory.clone();
        let (issuer, subject) = (token.issuer.as_str(), token.subject.as_str());
        let user = self
            .caches
            .identities
            .get_or_load(
                &crate::cache::IdentityRef(issuer, subject),
                || (issuer.to_owned(), subject.to_owned()),
                || async move {
                    Ok::<_, ServiceError>(
                        directory
                            .user_by_identity(issuer, subject)
                            .await?
                            .map(Arc::new),
                    )
                },
            )
            .await?;
        let id = match &user {
            Some(u) => u.id.clone(),
            None => crate::external_principal(issuer, subject),
        };
        Ok((user, id))
    }

    /// The user's directory entry (live, from memory when nothing changed).
    pub(crate) async fn directory_user(
        &self,
        id: &str,
    ) -> Result<Option<Arc<UserRecord>>, ServiceError> {
        let directory = self.stores.directory.clone();
        self.caches
            .users
            .get_or_load(
                id,
                || id.to_owned(),
                || async move { Ok::<_, ServiceError>(directory.user(id).await?.map(Arc::new)) },
            )
            .await
    }

    /// The app and its compiled policies (from memory when nothing changed).
    pub async fn app_snapshot(&self, id: &str) -> Result<Option<Arc<AppSnapshot>>, ServiceError> {
        let apps = self.stores.apps.clone();
        self.caches
            .apps
            .get_or_load(
                id,
                || id.to_owned(),
                || async move {
                    match apps.app_with_policies(id).await? {
                        None => Ok::<_, ServiceError>(None),
                        Some((app, policies)) => {
                            Ok(Some(Arc::new(AppSnapshot::compile(app, policies)?)))
                        }
                    }
                },
            )
            .await
    }

    /// A connection by key (from memory when nothing changed).
    /// A connection by key, from memory when nothing changed.
    async fn cached_connection(
        &self,
        key: crate::cache::ConnectionKeyRef<'_>,
    ) -> Result<Option<Arc<ConnectionRecord>>, ServiceError> {
        let store = self.stores.connections.clone();
        self.caches
            .connections
            .get_or_load(
                &key,
                || key.to_owned_key(),
                || async move {
                    Ok::<_, ServiceError>(
                        store.connection(&key.to_owned_key()).await?.map(Arc::new),
                    )
                },
            )
            .await
    }

    /// Finds the credential for a request: the user's (within the tenant if one is named), else
    /// the tenant's shared one; for API-key apps, the user's own outside the tenant and finally
    /// the app-wide key.
    async fn find_credential(
        &self,
        app: &AppRecord,
        user: &str,
        tenant: Option<&str>,
    ) -> Result<Option<Arc<ConnectionRecord>>, Refusal> {
        use crate::cache::ConnectionKeyRef as K;
        let app_id = app.id.as_str();
        let api_key = app.kind == AppKind::ApiKey;
        let candidates = [
            Some(K {
                app_id,
                user_id: Some(user),
                tenant_id: tenant,
            }),
            (api_key && tenant.is_some()).then_some(K {
                app_id,
                user_id: Some(user),
                tenant_id: None,
            }),
            tenant.map(|t| K {
                app_id,
                user_id: None,
                tenant_id: Some(t),
            }),
            api_key.then_some(K {
                app_id,
                user_id: None,
                tenant_id: None,
            }),
        ];
        for key in candidates.into_iter().flatten() {
            if let Some(c) = self.cached_connection(key).await? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    async fn open_secret(
        &self,
        conn: &ConnectionRecord,
        field: &str,
    ) -> Result<SecretString, Refusal> {
        let aad = crate::vault::connection_aad(&conn.key, field);
        let sealed = if field == "refresh" {
            conn.refresh.as_ref().ok_or_else(|| Refusal::Internal {
                message: "the connection has no refresh token".into(),
            })?
        } else {
            &conn.access
        };
        let bytes = match self.sealer.open_cached(sealed, &aad) {
            Ok(b) => b,
            Err(_) => self.sealer.open(sealed, &aad).await?,
        };
        String::from_utf8(bytes.expose().to_vec())
            .map(SecretString::from)
            .map_err(|_| Refusal::Internal {
                message: "a stored credential is not UTF-8".into(),
            })
    }

    /// A denial: `access_denied`, or `consent_required` with a connect URL asking for what the
    /// policies allow when the app says so (and some scope is allowed at all).
    #[expect(
        clippy::too_many_arguments,
        reason = "the denial needs the whole request context"
    )]
    async fn refuse(
        &self,
        snapshot: &AppSnapshot,
        caller: &Caller,
        tenant: Option<&str>,
        requested: &[String],
        decision: &Decision,
        subject: &Subject<'_>,
        reason_override: Option<DenialReason>,
    ) -> Refusal {
        let refs: Vec<&str> = requested.iter().map(String::as_str).collect();
        let explanation = Box::new(shown(
            &snapshot.set.explain(subject, &refs, decision),
            snapshot.app.settings.denial_detail,
        ));
        let reason =
            reason_override.unwrap_or_else(|| DenialReason::of_decision(decision.reason()));
        let app = &snapshot.app;
        if app.settings.on_deny == OnDeny::Reconsent && app.kind == AppKind::OAuth {
            let allowed = decision.allowed_scopes(&snapshot.set);
            let scopes: Vec<String> = match &allowed {
                AllowedScopes::All => requested.to_vec(),
                AllowedScopes::List(list) => {
                    let wanted: Vec<String> = requested
                        .iter()
                        .filter(|s| allowed.contains(s))
                        .cloned()
                        .collect();
                    if wanted.is_empty() {
                        list.iter().map(|s| (*s).to_owned()).collect()
                    } else {
                        wanted
                    }
                }
            };
            if !scopes.is_empty() {
                let key = ConnectionKey::user(&app.id, &caller.id, tenant);
                match self.connect_ticket_url(&key, scopes, &format!("user:{}", caller.id)) {
                    Ok(connect_url) => {
                        return Refusal::ConsentRequired {
                            reason,
                            connect_url,
                            explanation,
                        };
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot build a re-consent link"),
                }
            }
        }
        Refusal::Denied {
            reason,
            explanation,
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the answer needs the whole request context"
    )]
    async fn not_connected(
        &self,
        snapshot: &AppSnapshot,
        caller: &Caller,
        tenant: Option<&str>,
        reason: NotConnectedReason,
        requested: &[String],
        granted: &[String],
        allowed: &AllowedScopes<'_>,
    ) -> Refusal {
        let app = &snapshot.app;
        // Only a usable grant can lack particular scopes; a missing grant lacks them all, and an
        // expired or revoked one must be replaced whole.
        let missing: Vec<String> = match reason {
            NotConnectedReason::MissingScopes => requested
                .iter()
                .filter(|s| !granted.contains(s))
                .cloned()
                .collect(),
            NotConnectedReason::NoConnection => requested.to_vec(),
            NotConnectedReason::ConsentRequiredByProvider | NotConnectedReason::Expired => {
                Vec::new()
            }
        };
        let connect_url = if app.kind == AppKind::OAuth {
            // Ask for what was requested plus what is already granted and still allowed, so that
            // the new grant replaces the old one without losing anything the user may keep.
            let mut scopes = requested.to_vec();
            for s in granted {
                if allowed.contains(s) && !scopes.contains(s) {
                    scopes.push(s.clone());
                }
            }
            let key = ConnectionKey::user(&app.id, &caller.id, tenant);
            match self.connect_ticket_url(&key, scopes, &format!("user:{}", caller.id)) {
                Ok(url) => Some(url),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot build a connect link");
                    None
                }
            }
        } else {
            None
        };
        Refusal::NotConnected {
            reason,
            connect_url,
            missing_scopes: missing,
        }
    }

    async fn audit_fetch(
        &self,
        req: &TokenRequest,
        surface: &Surface,
        trail: Trail,
        result: &Result<Granted, Refusal>,
    ) {
        let (outcome, reason, granted) = match result {
            Ok(g) => (AuditOutcome::Allowed, None, g.token.scopes.clone()),
            Err(r) => {
                let (o, reason) = r.audit_outcome();
                (o, Some(reason), Vec::new())
            }
        };
        metrics::counter!("portcullis_token_requests_total", "outcome" => outcome.as_str())
            .increment(1);
        let at = self.clock.now();
        // Only a decision about an identified caller is an event of its own; what was refused
        // before (no valid token, over a rate limit) is counted, so that it cannot grow the log.
        if trail.principal.is_none() || matches!(result, Err(Refusal::RateLimited { .. })) {
            self.audit
                .reject(surface.action(), reason.unwrap_or("unknown"), at);
            return;
        }
        let latency_us = u64::try_from(trail.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let action = surface.action();
        let exchange_client = match surface {
            Surface::TokenEndpoint => None,
            Surface::TokenExchange { client_id } => Some(client_id.clone()),
        };
        let app_id = req.app_id.clone();
        let tenant_id = req.tenant_id.clone();
        let requested = if trail.requested.is_empty() {
            req.scopes.clone()
        } else {
            trail.requested
        };
        let (token, principal, decided) = (trail.token, trail.principal, trail.decided);
        // The event is built by the audit writer, off the request's path: the request only hands
        // over what it already holds.
        self.audit
            .record_with(move || {
                let (deciding, considered, shadow) = match &decided {
                    Some((snapshot, decision)) => verdicts(&snapshot.set, decision),
                    None => (Vec::new(), Vec::new(), None),
                };
                AuditEvent {
                    id: ids::new_event_id(at),
                    at,
                    action: action.to_owned(),
                    app_id: Some(app_id),
                    user_id: principal,
                    tenant_id,
                    client_id: exchange_client
                        .or_else(|| token.as_ref().and_then(|t| t.client_id.clone())),
                    issuer: token.as_ref().map(|t| t.issuer.clone()),
                    requested_scopes: requested,
                    granted_scopes: granted,
                    outcome,
                    reason: reason.map(str::to_owned),
                    deciding_policies: deciding,
                    considered_policies: considered,
                    shadow_outcome: shadow,
                    latency_us,
                }
            })
            .await;
    }
}

/// The deciding policies, every policy's verdict, and the shadow outcome of a decision.
fn verdicts(
    set: &PolicySet,
    decision: &Decision,
) -> (Vec<String>, Vec<PolicyVerdict>, Option<String>) {
    let considered = decision
        .policies(set)
        .map(|v| PolicyVerdict {
            id: v.id.to_owned(),
            matched: v.matched,
            shadow: v.mode == portcullis_policy::Mode::Shadow,
        })
        .collect();
    let deciding = decision.deciding_policies(set).map(str::to_owned).collect();
    let shadow = decision.shadow().map(|s| {
        if s.allowed() {
            "allowed".to_owned()
        } else {
            "denied".to_owned()
        }
    });
    (deciding, considered, shadow)
}

fn summary(decision: &Decision, set: &PolicySet, downscoped: bool) -> DecisionSummary {
    DecisionSummary {
        outcome: "allow",
        reason: match decision.reason() {
            Reason::Open => "open",
            _ => "matched",
        },
        deciding_policies: decision.deciding_policies(set).map(str::to_owned).collect(),
        allowed_scopes: match decision.allowed_scopes(set) {
            AllowedScopes::All => serde_json::Value::String("all".into()),
            AllowedScopes::List(l) => serde_json::Value::from(l),
        },
        downscoped,
    }
}

fn owner_of(key: &ConnectionKey) -> &'static str {
    match (&key.user_id, &key.tenant_id) {
        (Some(_), _) => "user",
        (None, Some(_)) => "tenant",
        (None, None) => "app",
    }
}

/// Rejects scopes the app does not offer (when it lists its scopes).
fn check_offered(app: &AppRecord, requested: &[String]) -> Result<(), Refusal> {
    if app.kind == AppKind::ApiKey {
        if requested.is_empty() {
            return Ok(());
        }
        return Err(Refusal::InvalidRequest {
            problem: RequestProblem::InvalidScope,
            message: "API-key apps have no scopes; send an empty scope list".into(),
        });
    }
    if app.settings.scopes.is_empty() {
        return Ok(());
    }
    let unknown: Vec<&String> = requested
        .iter()
        .filter(|s| !app.settings.scopes.iter().any(|d| &d.name == *s))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Refusal::InvalidRequest {
            problem: RequestProblem::InvalidScope,
            message: format!(
                "app {} does not offer the scope(s) {}",
                app.id,
                unknown
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
}
