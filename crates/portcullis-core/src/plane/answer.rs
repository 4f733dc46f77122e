//! The answers of the token path: a denial with its explanation, a missing connection with its
//! connect link, the audit record, the decision in short.

use super::*;

impl Core {
    /// A denial: `access_denied`, or `consent_required` with a connect URL asking for what the
    /// policies allow when the app says so (and some scope is allowed at all).
    #[expect(
        clippy::too_many_arguments,
        reason = "the denial needs the whole request context"
    )]
    pub(super) async fn refuse(
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
                match self.connect_ticket_url(&key, scopes, &format!("user:{}", caller.id), None) {
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

    /// A denial because the grant is broader than allowed and cannot be narrowed.
    pub(super) async fn downscoping_unsupported(
        &self,
        snapshot: &AppSnapshot,
        caller: &Caller,
        tenant: Option<&str>,
        requested: &[String],
        decision: &Decision,
    ) -> Refusal {
        let roles = caller.roles_ref(tenant);
        let subject = Subject::new(&roles, &caller.token.claims);
        self.refuse(
            snapshot,
            caller,
            tenant,
            requested,
            decision,
            &subject,
            Some(DenialReason::DownscopingUnsupported),
        )
        .await
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the answer needs the whole request context"
    )]
    pub(super) async fn not_connected(
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
            match self.connect_ticket_url(&key, scopes, &format!("user:{}", caller.id), None) {
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

    pub(super) async fn audit_fetch(
        &self,
        req: &TokenRequest,
        surface: &Surface,
        trail: Trail,
        result: Result<Vec<String>, &Refusal>,
    ) {
        let rate_limited = matches!(result, Err(Refusal::RateLimited { .. }));
        let (outcome, reason, granted) = match result {
            Ok(granted) => (AuditOutcome::Allowed, None, granted),
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
        if trail.principal.is_none() || rate_limited {
            self.audit
                .reject(surface.action(), reason.unwrap_or("unknown"), at);
            return;
        }
        let latency_us = u64::try_from(trail.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let action = surface.action();
        let exchange_client = match surface {
            Surface::TokenEndpoint | Surface::Check => None,
            Surface::TokenExchange { client_id } => Some(client_id.clone()),
        };
        let app_id = req.app_id.clone();
        let tenant_id = req.tenant_id.clone();
        let requested = if trail.requested.is_empty() {
            req.scopes.clone()
        } else {
            trail.requested
        };
        let (token, principal, decided, user) =
            (trail.token, trail.principal, trail.decided, trail.user);
        let never_store = self.settings.audit_never_store_claims.clone();
        // The event is built by the audit writer, off the request's path: the request only hands
        // over what it already holds.
        self.audit
            .record_with(move || {
                let (deciding, considered, shadow) = match &decided {
                    Some((snapshot, decision)) => verdicts(&snapshot.set, decision),
                    None => (Vec::new(), Vec::new(), None),
                };
                let inputs = match (&decided, &token) {
                    (Some((snapshot, decision)), Some(token)) => {
                        let roles = match &user {
                            Some(u) => u.effective_roles(tenant_id.as_deref()),
                            None => token.token_roles.clone(),
                        };
                        Some(portcullis_domain::DecisionInputs::capture(
                            &roles,
                            &token.claims,
                            &never_store,
                            decision.allowed(),
                            effective_scopes(&snapshot.set, decision, &requested),
                        ))
                    }
                    _ => None,
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
                    inputs,
                }
            })
            .await;
    }
}

/// The requested scopes a decision lets the request have, in the request's order: none when it
/// denies.
pub(crate) fn effective_scopes(
    set: &PolicySet,
    decision: &Decision,
    requested: &[String],
) -> Vec<String> {
    if !decision.allowed() {
        return Vec::new();
    }
    let allowed = decision.allowed_scopes(set);
    requested
        .iter()
        .filter(|s| allowed.contains(s))
        .cloned()
        .collect()
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

pub(super) fn summary(decision: &Decision, set: &PolicySet, downscoped: bool) -> DecisionSummary {
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

pub(super) fn owner_of(key: &ConnectionKey) -> &'static str {
    match (&key.user_id, &key.tenant_id) {
        (Some(_), _) => "user",
        (None, Some(_)) => "tenant",
        (None, None) => "app",
    }
}

/// Rejects scopes the app does not offer (when it lists its scopes).
pub(super) fn check_offered(app: &AppRecord, requested: &[String]) -> Result<(), Refusal> {
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
