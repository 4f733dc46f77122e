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

mod answer;
mod caller;
mod lookup;

pub(crate) use answer::effective_scopes;
use answer::{check_offered, owner_of, summary};
pub(crate) use caller::Caller;

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
    /// `POST /v1/outbound/apps/{appId}/check`: the decision only.
    Check,
}

impl Surface {
    /// The surface's name in the audit log (`token`, `token_exchange`, `check`).
    pub const fn action(&self) -> &'static str {
        match self {
            Self::TokenEndpoint => "token",
            Self::TokenExchange { .. } => "token_exchange",
            Self::Check => "check",
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

/// What the policies decided, and the credential a fetch would hand out, before anything is
/// opened or refreshed.
struct Decided {
    caller: Caller,
    snapshot: Arc<AppSnapshot>,
    decision: Decision,
    /// The scopes asked for (the app's default scopes when none were named).
    requested: Vec<String>,
    conn: Arc<ConnectionRecord>,
    /// The grant holds scopes the policies do not allow: the token must be narrowed.
    excess: bool,
}

/// Whether a broader grant can be narrowed to what the policies allow (a refresh with fewer
/// scopes, when the app allows it and the grant has a refresh token).
fn can_narrow(app: &AppRecord, conn: &ConnectionRecord) -> bool {
    app.settings.narrow_scopes_on_refresh && conn.refresh.is_some()
}

/// What a check answers when a fetch with the same token and scopes would hand a credential out.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checked {
    /// The scopes that credential would carry (none for an API key).
    pub scopes: Vec<String>,
    /// Why it is allowed: the decision in short.
    pub decision: DecisionSummary,
}

/// What the audit record of a request collects as the request goes.
struct Trail {
    started: Instant,
    token: Option<Arc<VerifiedToken>>,
    /// The caller's principal id, once known.
    principal: Option<String>,
    requested: Vec<String>,
    decided: Option<(Arc<AppSnapshot>, Decision)>,
    /// The directory user the policies read (their roles go to the audit event's inputs).
    user: Option<Arc<UserRecord>>,
}

impl Core {
    /// Decides an outbound token request and, when allowed, hands the credential out.
    pub async fn fetch_token(
        &self,
        bearer: Option<&str>,
        req: &TokenRequest,
        surface: &Surface,
    ) -> Result<Granted, Refusal> {
        let mut trail = self.open_trail(req, surface)?;
        let result = self.decide_and_fetch(bearer, req, &mut trail).await;
        let granted = result.as_ref().map(|g| g.token.scopes.clone());
        self.audit_fetch(req, surface, trail, granted).await;
        result
    }

    /// Decides an outbound token request as [`Core::fetch_token`] would, and answers what it
    /// would: allowed (with the decision), or the same refusal. Nothing is opened, refreshed or
    /// handed out; the check is audited as `check`.
    pub async fn check_token(
        &self,
        bearer: Option<&str>,
        req: &TokenRequest,
    ) -> Result<Checked, Refusal> {
        let surface = Surface::Check;
        let mut trail = self.open_trail(req, &surface)?;
        let result = self.decide_only(bearer, req, &mut trail).await;
        let granted = result.as_ref().map(|c| c.scopes.clone());
        self.audit_fetch(req, &surface, trail, granted).await;
        result
    }

    /// Checks a request's shape (a malformed one is only counted, per surface and reason) and
    /// starts its audit trail.
    fn open_trail(&self, req: &TokenRequest, surface: &Surface) -> Result<Trail, Refusal> {
        if let Err(refusal) = check_token_request(req) {
            let (_, reason) = refusal.audit_outcome();
            self.audit
                .reject(surface.action(), reason, self.clock.now());
            return Err(refusal);
        }
        Ok(Trail {
            started: Instant::now(),
            token: None,
            principal: None,
            requested: Vec::new(),
            decided: None,
            user: None,
        })
    }

    /// The decision of a fetch, and the scopes the token it would hand out would carry.
    async fn decide_only(
        &self,
        bearer: Option<&str>,
        req: &TokenRequest,
        trail: &mut Trail,
    ) -> Result<Checked, Refusal> {
        let Decided {
            caller,
            snapshot,
            decision,
            requested,
            conn,
            excess,
        } = self.decide(bearer, req, trail).await?;
        let tenant = req.tenant_id.as_deref();
        if conn.kind == CredentialKind::ApiKey {
            return Ok(Checked {
                scopes: Vec::new(),
                decision: summary(&decision, &snapshot.set, false),
            });
        }
        // What the fetch would meet at the credential: an expired grant that cannot be
        // refreshed, or one broader than allowed that cannot be narrowed.
        let now = self.clock.now();
        if conn.refresh.is_none() && conn.expires_at.is_some_and(|e| e <= now) {
            let allowed = decision.allowed_scopes(&snapshot.set);
            return Err(self
                .not_connected(
                    &snapshot,
                    &caller,
                    tenant,
                    NotConnectedReason::Expired,
                    &requested,
                    &conn.scopes,
                    &allowed,
                )
                .await);
        }
        if excess && !can_narrow(&snapshot.app, &conn) {
            return Err(self
                .downscoping_unsupported(&snapshot, &caller, tenant, &requested, &decision)
                .await);
        }
        let allowed = decision.allowed_scopes(&snapshot.set);
        let scopes = if excess {
            if requested.is_empty() {
                conn.scopes
                    .iter()
                    .filter(|s| allowed.contains(s))
                    .cloned()
                    .collect()
            } else {
                requested
            }
        } else {
            conn.scopes.clone()
        };
        Ok(Checked {
            scopes,
            decision: summary(&decision, &snapshot.set, excess),
        })
    }

    /// Everything a fetch decides before it touches the credential's secrets: the caller, the
    /// app, the tenant, the policies' decision, and a connection that holds every requested
    /// scope.
    async fn decide(
        &self,
        bearer: Option<&str>,
        req: &TokenRequest,
        trail: &mut Trail,
    ) -> Result<Decided, Refusal> {
        let wanted = caller::Wanted {
            app_id: &req.app_id,
            tenant: req.tenant_id.as_deref(),
        };
        let caller = self.authenticate_caller(bearer, Some(wanted)).await?;
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
        check_offered(app, &requested)?;

        // The decision.
        let roles = caller.roles_ref(tenant);
        let subject = Subject::new(&roles, &caller.token.claims);
        let requested_refs: Vec<&str> = requested.iter().map(String::as_str).collect();
        let decision = snapshot.set.decide(&subject, &requested_refs);
        trail.decided = Some((snapshot.clone(), decision.clone()));
        trail.user.clone_from(&caller.user);
        if !decision.allowed() {
            return Err(self
                .refuse(
                    &snapshot, &caller, tenant, &requested, &decision, &subject, None,
                )
                .await);
        }
        let allowed = decision.allowed_scopes(&snapshot.set);

        // The credential.
        let not_connected = async |reason: NotConnectedReason, granted: &[String]| {
            self.not_connected(
                &snapshot, &caller, tenant, reason, &requested, granted, &allowed,
            )
            .await
        };
        let Some(conn) = self.find_credential(app, &caller.id, tenant).await? else {
            return Err(not_connected(NotConnectedReason::NoConnection, &[]).await);
        };
        if conn.status == ConnectionStatus::ConsentRequired {
            return Err(
                not_connected(NotConnectedReason::ConsentRequiredByProvider, &conn.scopes).await,
            );
        }
        if conn.kind == CredentialKind::ApiKey {
            return Ok(Decided {
                caller,
                snapshot,
                decision,
                requested,
                conn,
                excess: false,
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
        Ok(Decided {
            caller,
            snapshot,
            decision,
            requested,
            conn,
            excess,
        })
    }

    async fn decide_and_fetch(
        &self,
        bearer: Option<&str>,
        req: &TokenRequest,
        trail: &mut Trail,
    ) -> Result<Granted, Refusal> {
        let d = self.decide(bearer, req, trail).await?;
        let Decided {
            caller,
            snapshot,
            decision,
            requested,
            conn,
            excess,
        } = d;
        let app = &snapshot.app;
        let tenant = req.tenant_id.as_deref();
        let now = self.clock.now();
        let allowed = decision.allowed_scopes(&snapshot.set);
        let not_connected = async |reason: NotConnectedReason, granted: &[String]| {
            self.not_connected(
                &snapshot, &caller, tenant, reason, &requested, granted, &allowed,
            )
            .await
        };
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
            if !can_narrow(app, &conn) {
                return Err(self
                    .downscoping_unsupported(&snapshot, &caller, tenant, &requested, &decision)
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
}
