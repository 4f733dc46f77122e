//! Outbound apps: create, read, change, delete; their settings checked whole.

use super::*;

/// An outbound app, as written by the management API (POST and PUT).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppInput {
    /// The app's id: a slug, immutable, used in every URL (required on create; on update, it must
    /// match the path if given).
    #[serde(default)]
    pub id: Option<String>,
    /// The name shown to administrators and on consent pages, 1 to 128 characters.
    pub name: String,
    /// What the app is for, at most 1,024 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// How the app hands out credentials: `oauth` (users connect through the provider's consent
    /// flow) or `apiKey` (an admin stores keys).
    #[serde(rename = "type")]
    pub kind: AppKind,
    /// The OAuth client id registered with the provider (OAuth apps).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The OAuth client secret registered with the provider. It is write-only: sealed at rest,
    /// never shown; on update, leaving it out keeps the stored one.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// The provider's authorization endpoint, where users consent (OAuth apps).
    #[serde(default)]
    pub authorization_url: Option<String>,
    /// The provider's token endpoint, for the code exchange and refreshes (OAuth apps).
    #[serde(default)]
    pub token_url: Option<String>,
    /// The provider's token revocation endpoint (RFC 7009), called when a connection is revoked.
    #[serde(default)]
    pub revocation_url: Option<String>,
    /// An OpenID Connect userinfo endpoint, read once at connect time for the user's id at the
    /// provider.
    #[serde(default)]
    pub userinfo_url: Option<String>,
    /// The scopes the app offers, with descriptions; policies may only name these.
    #[serde(default)]
    pub scopes: Vec<ScopeDef>,
    /// The scopes asked for when a request names none.
    #[serde(default)]
    pub default_scopes: Vec<String>,
    /// Whether the authorization request uses PKCE with S256 (default true).
    #[serde(default)]
    pub pkce: Option<bool>,
    /// Extra parameters added to the authorization request (e.g. `access_type=offline`); the OAuth
    /// parameters Portcullis sets itself cannot be overridden.
    #[serde(default)]
    pub authorization_params: BTreeMap<String, String>,
    /// Whether the provider honours a narrower `scope` on refresh (RFC 6749 §6), which lets
    /// Portcullis hand out tokens downscoped to what the policies allow.
    #[serde(default)]
    pub narrow_scopes_on_refresh: bool,
    /// How Portcullis authenticates at the provider's token endpoint: `client_secret_basic` (the
    /// default), `client_secret_post`, or `none` (a public client, with PKCE).
    #[serde(default)]
    pub token_endpoint_auth_method: Option<ClientAuthMethod>,
    /// What a request the policies do not allow gets: `forbid` (the default: a 403 `access_denied`)
    /// or `reconsent` (a 403 `consent_required` with a link asking the provider for only what the
    /// policies allow).
    #[serde(default)]
    pub on_deny: Option<OnDeny>,
    /// How much of a denial's explanation callers see: `full` (every condition with its expected
    /// value and what was seen), `policies` (the default: the policies and each failing
    /// condition's source, claim and operator, without values) or `reason` (the reason and the
    /// scopes refused). The simulator always shows everything.
    #[serde(default)]
    pub denial_detail: Option<DenialDetail>,
    /// The provider's issuer identifier (RFC 9207): when set, the provider's redirect back must
    /// carry it as `iss` (OAuth apps).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Keep the shared callback `/v1/outbound/callback` as the `redirect_uri` instead of the
    /// app's own `/v1/outbound/callback/{appId}` (default false; apps registered before per-app
    /// callbacks keep the shared one until this is set to false). Register the `redirect_uri`
    /// the app uses with the provider.
    #[serde(default)]
    pub shared_callback: Option<bool>,
}

/// An outbound app, as the management API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppView {
    /// The app's id (a slug).
    pub id: String,
    /// The app's name.
    pub name: String,
    /// What the app is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How the app hands out credentials: `oauth` or `apiKey`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Everything else.
    #[serde(flatten)]
    pub settings: OAuthSettings,
    /// Whether a client secret is stored (it is never shown).
    pub has_client_secret: bool,
    /// Bumped by every change to the app or its policies.
    pub revision: i64,
    /// When the app was registered.
    pub created_at: Timestamp,
    /// When the app was last changed.
    pub updated_at: Timestamp,
}

impl From<&AppRecord> for AppView {
    fn from(a: &AppRecord) -> Self {
        Self {
            id: a.id.clone(),
            name: a.name.clone(),
            description: a.description.clone(),
            kind: a.kind.as_str(),
            settings: a.settings.clone(),
            has_client_secret: a.client_secret.is_some(),
            revision: a.revision,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

const RESERVED_AUTH_PARAMS: [&str; 7] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

impl Core {
    pub(crate) fn app_settings(&self, input: &AppInput) -> Result<OAuthSettings, ServiceError> {
        check_name("name", &input.name)?;
        check_description("description", input.description.as_deref())?;
        let on_deny = input.on_deny.unwrap_or_default();
        if input.kind == AppKind::ApiKey {
            let oauth_fields = [
                ("clientId", input.client_id.is_some()),
                ("clientSecret", input.client_secret.is_some()),
                ("authorizationUrl", input.authorization_url.is_some()),
                ("tokenUrl", input.token_url.is_some()),
                ("revocationUrl", input.revocation_url.is_some()),
                ("userinfoUrl", input.userinfo_url.is_some()),
                ("scopes", !input.scopes.is_empty()),
                ("defaultScopes", !input.default_scopes.is_empty()),
                (
                    "authorizationParams",
                    !input.authorization_params.is_empty(),
                ),
                ("narrowScopesOnRefresh", input.narrow_scopes_on_refresh),
                ("issuer", input.issuer.is_some()),
                ("sharedCallback", input.shared_callback.is_some()),
            ];
            if let Some((f, _)) = oauth_fields.iter().find(|(_, set)| *set) {
                return Err(ServiceError::invalid_at(
                    "invalid_app",
                    *f,
                    format!("{f} applies to OAuth apps only; an apiKey app has none"),
                ));
            }
            if on_deny == OnDeny::Reconsent {
                return Err(ServiceError::invalid_at(
                    "invalid_app",
                    "onDeny",
                    "onDeny reconsent applies to OAuth apps only",
                ));
            }
            return Ok(OAuthSettings {
                on_deny,
                denial_detail: input.denial_detail.unwrap_or_default(),
                ..OAuthSettings::default()
            });
        }
        let client_id = input
            .client_id
            .clone()
            .filter(|c| !c.is_empty() && c.len() <= 512)
            .ok_or_else(|| {
                ServiceError::invalid_at(
                    "invalid_app",
                    "clientId",
                    "an OAuth app needs a clientId (1 to 512 characters)",
                )
            })?;
        let url = |u: &str, field: &str| check_body_url(u, field, &self.settings);
        let authorization_url = url(
            input.authorization_url.as_deref().ok_or_else(|| {
                ServiceError::invalid_at(
                    "invalid_app",
                    "authorizationUrl",
                    "an OAuth app needs an authorizationUrl",
                )
            })?,
            "authorizationUrl",
        )?;
        let token_url = url(
            input.token_url.as_deref().ok_or_else(|| {
                ServiceError::invalid_at("invalid_app", "tokenUrl", "an OAuth app needs a tokenUrl")
            })?,
            "tokenUrl",
        )?;
        let revocation_url = input
            .revocation_url
            .as_deref()
            .map(|u| url(u, "revocationUrl"))
            .transpose()?;
        let userinfo_url = input
            .userinfo_url
            .as_deref()
            .map(|u| url(u, "userinfoUrl"))
            .transpose()?;
        if input.scopes.len() > portcullis_policy::MAX_OFFERED_SCOPES {
            return Err(ServiceError::invalid_at(
                "invalid_app",
                "scopes",
                format!(
                    "an app offers at most {} scopes",
                    portcullis_policy::MAX_OFFERED_SCOPES
                ),
            ));
        }
        let mut names = HashSet::new();
        for (i, s) in input.scopes.iter().enumerate() {
            if s.name.is_empty()
                || s.name.chars().count() > 256
                || s.name.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(ServiceError::invalid_at(
                    "invalid_app",
                    format!("scopes[{i}].name"),
                    format!(
                        "scopes[{i}].name must be 1 to 256 characters without spaces or control characters"
                    ),
                ));
            }
            if s.description
                .as_deref()
                .is_some_and(|d| d.chars().count() > 1024)
            {
                return Err(ServiceError::invalid_at(
                    "invalid_app",
                    format!("scopes[{i}].description"),
                    format!("scopes[{i}].description must be at most 1024 characters"),
                ));
            }
            if !names.insert(s.name.as_str()) {
                return Err(ServiceError::invalid_at(
                    "invalid_app",
                    format!("scopes[{i}].name"),
                    format!("scope {:?} is listed twice", s.name),
                ));
            }
        }
        if input.default_scopes.len() > crate::plane::MAX_SCOPES
            || input.default_scopes.iter().any(|s| {
                s.is_empty()
                    || s.chars().count() > crate::plane::MAX_SCOPE_LEN
                    || s.chars().any(char::is_control)
            })
        {
            return Err(ServiceError::invalid_at(
                "invalid_app",
                "defaultScopes",
                format!(
                    "defaultScopes: at most {} scopes of 1 to {} characters, none a control character",
                    crate::plane::MAX_SCOPES,
                    crate::plane::MAX_SCOPE_LEN
                ),
            ));
        }
        for (i, s) in input.default_scopes.iter().enumerate() {
            if !input.scopes.is_empty() && !names.contains(s.as_str()) {
                return Err(ServiceError::invalid_at(
                    "invalid_app",
                    format!("defaultScopes[{i}]"),
                    format!("defaultScopes names {s:?}, which is not in scopes"),
                ));
            }
        }
        if input.authorization_params.len() > 32 {
            return Err(ServiceError::invalid_at(
                "invalid_app",
                "authorizationParams",
                "at most 32 authorizationParams",
            ));
        }
        for (k, v) in &input.authorization_params {
            if RESERVED_AUTH_PARAMS.contains(&k.as_str()) {
                return Err(ServiceError::invalid_at(
                    "invalid_app",
                    "authorizationParams",
                    format!("authorizationParams may not set {k}: Portcullis sets it"),
                ));
            }
            if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 1024 {
                return Err(ServiceError::invalid_at(
                    "invalid_app",
                    "authorizationParams",
                    "authorizationParams keys are 1 to 128 characters, values at most 1024",
                ));
            }
        }
        let method = input.token_endpoint_auth_method.unwrap_or_default();
        let pkce = input.pkce.unwrap_or(true);
        if method == ClientAuthMethod::None && !pkce {
            return Err(ServiceError::invalid_at(
                "invalid_app",
                "pkce",
                "a public client (tokenEndpointAuthMethod none) must use PKCE",
            ));
        }
        Ok(OAuthSettings {
            client_id: Some(client_id),
            authorization_url: Some(authorization_url),
            token_url: Some(token_url),
            revocation_url,
            userinfo_url,
            scopes: input.scopes.clone(),
            default_scopes: input.default_scopes.clone(),
            pkce,
            authorization_params: input.authorization_params.clone(),
            narrow_scopes_on_refresh: input.narrow_scopes_on_refresh,
            token_endpoint_auth_method: method,
            on_deny,
            denial_detail: input.denial_detail.unwrap_or_default(),
            issuer: input.issuer.clone(),
            shared_callback: input.shared_callback.unwrap_or(false),
        })
    }

    /// Creates an outbound app.
    pub async fn create_app(&self, input: &AppInput) -> Result<AppView, ServiceError> {
        let record = self.new_app(input)?;
        self.stores.apps.insert_app(&record).await?;
        Ok(AppView::from(&record))
    }

    /// The record a new app would be, checked.
    pub(crate) fn new_app(&self, input: &AppInput) -> Result<AppRecord, ServiceError> {
        let id = input
            .id
            .clone()
            .ok_or_else(|| ServiceError::invalid_at("invalid_request", "id", "id is required"))?;
        check_slug("id", &id)?;
        let settings = self.app_settings(input)?;
        if input.kind == AppKind::OAuth
            && input.client_secret.is_none()
            && settings.token_endpoint_auth_method != ClientAuthMethod::None
        {
            return Err(ServiceError::invalid_at(
                "invalid_app",
                "clientSecret",
                "clientSecret is required unless tokenEndpointAuthMethod is none",
            ));
        }
        let now = self.clock.now();
        let client_secret = input
            .client_secret
            .as_ref()
            .map(|s| {
                self.sealer
                    .seal(s.expose().as_bytes(), &app_secret_aad(&id))
            })
            .transpose()?;
        let record = AppRecord {
            id,
            name: input.name.trim().to_owned(),
            description: input.description.clone(),
            kind: input.kind,
            settings,
            client_secret,
            revision: 1,
            created_at: now,
            updated_at: now,
        };
        Ok(record)
    }

    /// Reads an app.
    pub async fn get_app(&self, id: &str) -> Result<AppView, ServiceError> {
        view_of(self.stores.apps.app(id).await?, "app", id)
    }

    /// Lists apps.
    pub async fn list_apps(&self, params: &ListParams) -> Result<Page<AppView>, ServiceError> {
        page_of(
            params,
            async |page| self.stores.apps.apps(page).await,
            |a| a.id.clone(),
        )
        .await
    }

    /// Replaces an app. Its type is immutable; removing a scope that a policy still names is a
    /// conflict.
    pub async fn update_app(&self, id: &str, input: &AppInput) -> Result<AppView, ServiceError> {
        same_id(input.id.as_deref(), id)?;
        let settings = self.app_settings(input)?;
        let (current, policies) = self
            .stores
            .apps
            .app_with_policies(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("app", id))?;
        let next = self.changed_app(&current, input, settings)?;
        if let Err(e) = portcullis_policy::PolicySet::compile(
            &next.settings.scope_names(),
            policies
                .iter()
                .map(|p| (p.id.clone(), p.document.clone()))
                .collect(),
            &Limits::default(),
        ) {
            return Err(ServiceError::Conflict {
                code: "policies_reference_removed_scopes",
                message: format!(
                    "the app's policies would no longer be valid: {e}; change them first"
                ),
            });
        }
        self.stores.apps.update_app(&next, current.revision).await?;
        Ok(AppView::from(&next))
    }

    /// The record `current` becomes with `input` (its settings checked), at the next revision.
    pub(crate) fn changed_app(
        &self,
        current: &AppRecord,
        input: &AppInput,
        settings: OAuthSettings,
    ) -> Result<AppRecord, ServiceError> {
        if current.kind != input.kind {
            return Err(ServiceError::Conflict {
                code: "immutable",
                message: format!("type is immutable: the app is {}", current.kind.as_str()),
            });
        }
        let client_secret = match &input.client_secret {
            Some(s) => Some(
                self.sealer
                    .seal(s.expose().as_bytes(), &app_secret_aad(&current.id))?,
            ),
            None => current.client_secret.clone(),
        };
        let mut settings = settings;
        if input.shared_callback.is_none() {
            // The callback the provider knows stays until the operator moves it.
            settings.shared_callback = current.settings.shared_callback;
        }
        Ok(AppRecord {
            id: current.id.clone(),
            name: input.name.trim().to_owned(),
            description: input.description.clone(),
            kind: input.kind,
            settings,
            client_secret,
            revision: current.revision + 1,
            created_at: current.created_at,
            updated_at: self.clock.now(),
        })
    }

    /// Deletes an app with its policies and connections.
    pub async fn delete_app(&self, id: &str) -> Result<(), ServiceError> {
        self.stores
            .apps
            .delete_app(id)
            .await
            .map_err(|e| not_found(e, "app", id))
    }
}
