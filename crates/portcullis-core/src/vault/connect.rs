//! Connecting: the consent flow (connect links, the provider's callback, the code exchange).

use super::*;

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
        let caller = self.authenticate_caller(bearer, None).await?;
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

    /// A connect link for a checked request: a page of Portcullis bound to the user it is made
    /// for (see [`crate::tickets`]), which starts the flow. Nothing is stored until it is used.
    pub async fn consent_link(
        &self,
        app: &AppRecord,
        key: ConnectionKey,
        scopes: Vec<String>,
        return_url: Option<String>,
        initiated_by: &str,
    ) -> Result<String, ServiceError> {
        debug_assert_eq!(app.id, key.app_id);
        self.connect_ticket_url(&key, scopes, initiated_by, return_url)
    }

    /// Creates a pending consent with the given `state` (unguessable, bound to the browser that
    /// continues the link; a second flow with the same state is refused as `AlreadyExists`) and
    /// returns the provider's authorization URL for it.
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
        // Only the browser that continued the link holds the value the state is the hash of:
        // checked before the state is spent, so another browser cannot burn the user's flow.
        if !Self::holds_connect_binding(state, params.binding.as_ref().map(SecretString::expose)) {
            tracing::warn!(
                "a provider's answer reached a browser that did not start its flow; refused"
            );
            return page(
                403,
                "Not connected",
                "This answer reached another browser than the one that started the connection. Nothing was changed: open the connect link again in the browser you use with the application.".into(),
            );
        }
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

    pub(super) async fn finish_connect(
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
}
