//! Management: outbound apps and their policies, the directory, trusted issuers, OAuth clients,
//! key rotation, the decision simulator. Inputs are validated here, once, with precise errors.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use portcullis_crypto::envelope::aad;
use portcullis_crypto::{SecretString, random_token, sha256};
use portcullis_domain::{
    AppKind, AppRecord, ClientAuthMethod, ClientRecord, DenialDetail, Identity, IssuerRecord,
    OAuthSettings, OnDeny, PageRequest, PolicyRecord, Role, ScopeDef, StoreError, TenantMembership,
    TenantRecord, Timestamp, UserRecord, validate_slug,
};
use portcullis_policy::{
    ErrorCode, Explanation, Limits, Mode, PolicyDocument, Scopes, Subject, ValidationError,
    ValidationErrors, validate_policy,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Core, IssuerSpec, ServiceError, check_url, ids};

/// Serializes a secret on purpose (answers that show a secret once).
pub(crate) fn expose<S: serde::Serializer>(v: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.expose())
}

/// The associated data binding an app's client secret to it.
pub fn app_secret_aad(app_id: &str) -> Vec<u8> {
    aad(&["app", app_id, "client_secret"])
}

/// Maps a store `NotFound` to one naming what was looked for.
pub(crate) fn not_found(e: StoreError, entity: &'static str, id: &str) -> ServiceError {
    match e {
        StoreError::NotFound { .. } => ServiceError::not_found(entity, id),
        other => other.into(),
    }
}

/// A one-line display name: 1 to 128 characters, none of them a control character (they would
/// reach logs, terminals and the console verbatim, and PostgreSQL refuses NUL in text), neither
/// the first nor the last a space.
pub(crate) fn check_name(field: &str, v: &str) -> Result<(), ServiceError> {
    let n = v.chars().count();
    if n == 0 || n > 128 || v.chars().any(char::is_control) || v.trim() != v {
        return Err(ServiceError::invalid(
            "invalid_request",
            format!(
                "{field} must be 1 to 128 characters, without control characters or leading or trailing spaces"
            ),
        ));
    }
    Ok(())
}

/// Whether free text holds a control character other than a line break or a tab.
fn has_control_besides_whitespace(v: &str) -> bool {
    v.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
}

/// An update may repeat the id of the path, not change it.
pub(crate) fn same_id(given: Option<&str>, path: &str) -> Result<(), ServiceError> {
    if given.is_some_and(|i| i != path) {
        return Err(ServiceError::invalid("invalid_request", "id is immutable"));
    }
    Ok(())
}

fn check_description(v: Option<&str>) -> Result<(), ServiceError> {
    if v.is_some_and(|d| d.chars().count() > 1024 || has_control_besides_whitespace(d)) {
        return Err(ServiceError::invalid(
            "invalid_request",
            "description must be at most 1024 characters, without control characters other than line breaks and tabs",
        ));
    }
    Ok(())
}

fn check_slug(field: &str, v: &str) -> Result<(), ServiceError> {
    validate_slug(v).map_err(|why| ServiceError::invalid("invalid_id", format!("{field} {why}")))
}

/// A directory user id: 1–255 visible characters, no whitespace or control characters, and not
/// starting with `ext:` (the prefix of external subjects' principal ids).
fn check_user_id(v: &str) -> Result<(), ServiceError> {
    if v.is_empty()
        || v.chars().count() > 255
        || v.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ServiceError::invalid(
            "invalid_id",
            "id must be 1 to 255 characters without whitespace or control characters",
        ));
    }
    if v.starts_with(crate::EXTERNAL_PREFIX) {
        return Err(ServiceError::invalid(
            "invalid_id",
            "ids starting with ext: are reserved for subjects of external issuers",
        ));
    }
    Ok(())
}

fn check_attributes(v: &Map<String, Value>) -> Result<(), ServiceError> {
    if serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX) > 16 * 1024 {
        return Err(ServiceError::invalid(
            "invalid_request",
            "attributes must be at most 16 KiB of JSON",
        ));
    }
    Ok(())
}

/// A page of a list and the cursor of the next one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to read on; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` rows read: the extra row only says there is more.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, id: impl Fn(&T) -> String) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| encode_cursor(&id(r)))
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }

    /// Maps the items.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// List parameters: `limit` (1–200, default 50) and an opaque `cursor`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// How many items (1–200, default 50).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListParams {
    /// The store request: reads one row more than asked, to know whether there is a next page.
    pub fn page_request(&self) -> Result<(PageRequest, u32), ServiceError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ServiceError::invalid(
                "invalid_request",
                "limit must be between 1 and 200",
            ));
        }
        let after = self.cursor.as_deref().map(decode_cursor).transpose()?;
        Ok((
            PageRequest {
                after,
                limit: limit + 1,
            },
            limit,
        ))
    }
}

fn encode_cursor(id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// Reads a cursor: any base64url text (without padding) is a position in the list — the one this
/// server wrote after the last item of a page, or any other, which reads on from wherever it
/// falls. Text that is not base64url is refused.
pub(crate) fn decode_cursor(c: &str) -> Result<String, ServiceError> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    );
    let bytes = Some(c)
        .filter(|c| !c.is_empty() && c.len() <= MAX_CURSOR_LEN)
        .and_then(|c| LENIENT.decode(c).ok())
        .ok_or_else(|| {
            ServiceError::invalid(
                "invalid_cursor",
                "cursor must be the nextCursor of a page (base64url)",
            )
        })?;
    // No id holds a control character (and PostgreSQL refuses NUL): a position needs none.
    Ok(String::from_utf8_lossy(&bytes)
        .chars()
        .filter(|c| !c.is_control())
        .collect())
}

/// The longest cursor read: the base64url of 512 bytes.
pub const MAX_CURSOR_LEN: usize = 684;

// ----- Outbound apps -------------------------------------------------------------------------

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
        check_description(input.description.as_deref())?;
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
                return Err(ServiceError::invalid(
                    "invalid_app",
                    format!("{f} applies to OAuth apps only; an apiKey app has none"),
                ));
            }
            if on_deny == OnDeny::Reconsent {
                return Err(ServiceError::invalid(
                    "invalid_app",
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
                ServiceError::invalid(
                    "invalid_app",
                    "an OAuth app needs a clientId (1 to 512 characters)",
                )
            })?;
        let authorization_url = check_url(
            input.authorization_url.as_deref().ok_or_else(|| {
                ServiceError::invalid("invalid_app", "an OAuth app needs an authorizationUrl")
            })?,
            "authorizationUrl",
            &self.settings,
        )?;
        let token_url = check_url(
            input.token_url.as_deref().ok_or_else(|| {
                ServiceError::invalid("invalid_app", "an OAuth app needs a tokenUrl")
            })?,
            "tokenUrl",
            &self.settings,
        )?;
        let revocation_url = input
            .revocation_url
            .as_deref()
            .map(|u| check_url(u, "revocationUrl", &self.settings))
            .transpose()?;
        let userinfo_url = input
            .userinfo_url
            .as_deref()
            .map(|u| check_url(u, "userinfoUrl", &self.settings))
            .transpose()?;
        if input.scopes.len() > portcullis_policy::MAX_OFFERED_SCOPES {
            return Err(ServiceError::invalid(
                "invalid_app",
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
                return Err(ServiceError::invalid(
                    "invalid_app",
                    format!(
                        "scopes[{i}].name must be 1 to 256 characters without spaces or control characters"
                    ),
                ));
            }
            if s.description
                .as_deref()
                .is_some_and(|d| d.chars().count() > 1024)
            {
                return Err(ServiceError::invalid(
                    "invalid_app",
                    format!("scopes[{i}].description must be at most 1024 characters"),
                ));
            }
            if !names.insert(s.name.as_str()) {
                return Err(ServiceError::invalid(
                    "invalid_app",
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
            return Err(ServiceError::invalid(
                "invalid_app",
                format!(
                    "defaultScopes: at most {} scopes of 1 to {} characters, none a control character",
                    crate::plane::MAX_SCOPES,
                    crate::plane::MAX_SCOPE_LEN
                ),
            ));
        }
        for s in &input.default_scopes {
            if !input.scopes.is_empty() && !names.contains(s.as_str()) {
                return Err(ServiceError::invalid(
                    "invalid_app",
                    format!("defaultScopes names {s:?}, which is not in scopes"),
                ));
            }
        }
        if input.authorization_params.len() > 32 {
            return Err(ServiceError::invalid(
                "invalid_app",
                "at most 32 authorizationParams",
            ));
        }
        for (k, v) in &input.authorization_params {
            if RESERVED_AUTH_PARAMS.contains(&k.as_str()) {
                return Err(ServiceError::invalid(
                    "invalid_app",
                    format!("authorizationParams may not set {k}: Portcullis sets it"),
                ));
            }
            if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 1024 {
                return Err(ServiceError::invalid(
                    "invalid_app",
                    "authorizationParams keys are 1 to 128 characters, values at most 1024",
                ));
            }
        }
        let method = input.token_endpoint_auth_method.unwrap_or_default();
        let pkce = input.pkce.unwrap_or(true);
        if method == ClientAuthMethod::None && !pkce {
            return Err(ServiceError::invalid(
                "invalid_app",
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
            .ok_or_else(|| ServiceError::invalid("invalid_request", "id is required"))?;
        check_slug("id", &id)?;
        let settings = self.app_settings(input)?;
        if input.kind == AppKind::OAuth
            && input.client_secret.is_none()
            && settings.token_endpoint_auth_method != ClientAuthMethod::None
        {
            return Err(ServiceError::invalid(
                "invalid_app",
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
        let app = self
            .stores
            .apps
            .app(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("app", id))?;
        Ok(AppView::from(&app))
    }

    /// Lists apps.
    pub async fn list_apps(&self, params: &ListParams) -> Result<Page<AppView>, ServiceError> {
        let (page, limit) = params.page_request()?;
        let rows = self.stores.apps.apps(&page).await?;
        Ok(Page::from_rows(rows, limit, |a| a.id.clone()).map(|a| AppView::from(&a)))
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

// ----- Policies ------------------------------------------------------------------------------

/// A policy as the management API shows it: the document with its id and times.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    /// The policy's id.
    pub id: String,
    /// The app the policy belongs to.
    pub app_id: String,
    /// The document (`name`, `description`, `conditions`, `scopes`, `mode`).
    #[serde(flatten)]
    pub document: PolicyDocument,
    /// When the policy was created.
    pub created_at: Timestamp,
    /// When the policy was last changed.
    pub updated_at: Timestamp,
}

impl From<&PolicyRecord> for PolicyView {
    fn from(p: &PolicyRecord) -> Self {
        Self {
            id: p.id.clone(),
            app_id: p.app_id.clone(),
            document: p.document.clone(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

impl Core {
    /// Parses and checks a policy document against its app. A document that does not parse is
    /// still checked against the app's scopes, so that one answer lists every problem.
    pub(crate) fn checked_policy(
        &self,
        app: &AppRecord,
        body: &Value,
    ) -> Result<PolicyDocument, ServiceError> {
        let invalid = |e: ValidationErrors| ServiceError::Invalid {
            code: "invalid_policy",
            message: e.to_string(),
            details: serde_json::to_value(&e).ok(),
        };
        let offered = app.settings.scope_names();
        let limits = Limits::default();
        let (doc, mut problems) = match PolicyDocument::from_json(body) {
            Ok(doc) => {
                let problems = validate_policy(&doc, &offered, &limits)
                    .err()
                    .map(|e| e.0)
                    .unwrap_or_default();
                (Some(doc), problems)
            }
            Err(e) => {
                let mut problems = e.0;
                // Past the cap of reported problems, nothing more is added.
                if !problems
                    .iter()
                    .any(|p| p.code == ErrorCode::LimitExceeded && p.path.is_empty())
                {
                    merge_problems(&mut problems, unoffered_scopes(body, &offered, &limits));
                }
                (None, problems)
            }
        };
        if let Some(name) = body.get("name").and_then(Value::as_str)
            && name.chars().any(char::is_control)
            && !problems.iter().any(|p| p.path == "name")
        {
            merge_problems(
                &mut problems,
                vec![ValidationError {
                    path: "name".into(),
                    code: ErrorCode::InvalidType,
                    message: "a policy name cannot contain control characters".into(),
                    policy_id: None,
                }],
            );
        }
        match doc {
            Some(doc) if problems.is_empty() => Ok(doc),
            _ => Err(invalid(ValidationErrors(problems))),
        }
    }

    /// Creates a policy on an app.
    pub async fn create_policy(
        &self,
        app_id: &str,
        body: &Value,
    ) -> Result<PolicyView, ServiceError> {
        let (app, policies) = self
            .stores
            .apps
            .app_with_policies(app_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("app", app_id))?;
        let doc = self.checked_policy(&app, body)?;
        if policies.len() >= Limits::default().max_policies {
            return Err(ServiceError::Conflict {
                code: "limit_exceeded",
                message: format!("app {app_id} already has the most policies an app may have"),
            });
        }
        let now = self.clock.now();
        let record = PolicyRecord {
            id: ids::new_id("pol", now),
            app_id: app_id.to_owned(),
            document: doc,
            created_at: now,
            updated_at: now,
        };
        self.stores
            .apps
            .insert_policy(&record, app.revision)
            .await
            .map_err(duplicate_policy_name)?;
        Ok(PolicyView::from(&record))
    }

    /// Reads a policy.
    pub async fn get_policy(&self, app_id: &str, id: &str) -> Result<PolicyView, ServiceError> {
        self.require_app(app_id).await?;
        let p = self
            .stores
            .apps
            .policy(app_id, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("policy", id))?;
        Ok(PolicyView::from(&p))
    }

    /// Lists an app's policies.
    pub async fn list_policies(
        &self,
        app_id: &str,
        params: &ListParams,
    ) -> Result<Page<PolicyView>, ServiceError> {
        self.require_app(app_id).await?;
        let (page, limit) = params.page_request()?;
        let rows = self.stores.apps.policies(app_id, &page).await?;
        Ok(Page::from_rows(rows, limit, |p| p.id.clone()).map(|p| PolicyView::from(&p)))
    }

    /// Replaces a policy.
    pub async fn update_policy(
        &self,
        app_id: &str,
        id: &str,
        body: &Value,
    ) -> Result<PolicyView, ServiceError> {
        let app = self.require_app(app_id).await?;
        let current = self
            .stores
            .apps
            .policy(app_id, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("policy", id))?;
        let doc = self.checked_policy(&app, body)?;
        let record = PolicyRecord {
            document: doc,
            updated_at: self.clock.now(),
            ..current
        };
        self.stores
            .apps
            .update_policy(&record, app.revision)
            .await
            .map_err(duplicate_policy_name)?;
        Ok(PolicyView::from(&record))
    }

    /// Deletes a policy.
    pub async fn delete_policy(&self, app_id: &str, id: &str) -> Result<(), ServiceError> {
        self.require_app(app_id).await?;
        self.stores
            .apps
            .delete_policy(app_id, id)
            .await
            .map_err(|e| not_found(e, "policy", id))
    }

    pub(crate) async fn require_app(&self, app_id: &str) -> Result<AppRecord, ServiceError> {
        self.stores
            .apps
            .app(app_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("app", app_id))
    }
}

/// Where a problem sits in a policy document, in the order the parser reports them (fields it
/// does not know first).
fn policy_rank(p: &ValidationError) -> u8 {
    match p.path.split(['.', '[']).next().unwrap_or_default() {
        "name" => 1,
        "description" => 2,
        "conditions" => 3,
        "scopes" => 4,
        "mode" => 5,
        _ => 0,
    }
}

/// Adds problems found by another check, keeping the report in document order.
fn merge_problems(problems: &mut Vec<ValidationError>, extra: Vec<ValidationError>) {
    for p in extra {
        let rank = policy_rank(&p);
        let at = problems
            .iter()
            .position(|q| policy_rank(q) > rank)
            .unwrap_or(problems.len());
        problems.insert(at, p);
    }
}

/// The scopes a document lists that the app does not offer, found even when the rest of the
/// document does not parse: the checks `validate_policy` makes on the scope list alone.
fn unoffered_scopes(body: &Value, offered: &[String], limits: &Limits) -> Vec<ValidationError> {
    let Some(items) = body.get("scopes").and_then(Value::as_array) else {
        return Vec::new();
    };
    // Entries that are not strings are reported by the parser; as "" they are skipped here.
    let names = items
        .iter()
        .take(limits.max_scopes.min(portcullis_policy::MAX_OFFERED_SCOPES))
        .map(|i| i.as_str().unwrap_or_default().to_owned())
        .collect();
    let probe = PolicyDocument {
        name: "probe".into(),
        description: None,
        conditions: Vec::new(),
        scopes: Scopes::List(names),
        mode: Mode::Enforce,
    };
    validate_policy(&probe, offered, limits)
        .err()
        .map(|e| {
            e.0.into_iter()
                .filter(|p| p.code == ErrorCode::UnknownScope)
                .collect()
        })
        .unwrap_or_default()
}

fn duplicate_policy_name(e: StoreError) -> ServiceError {
    match e {
        StoreError::AlreadyExists {
            entity: "policy name",
        } => ServiceError::Conflict {
            code: "duplicate_policy_name",
            message: "the app already has a policy with this name".into(),
        },
        other => other.into(),
    }
}

// ----- Directory -----------------------------------------------------------------------------

/// A user as written by the management API.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserInput {
    /// The user's id in the directory (required on create).
    #[serde(default)]
    pub id: Option<String>,
    /// The identities that are this user: a token whose `iss` and `sub` match one of these is
    /// this user (at most 16; each identity belongs to one user).
    #[serde(default)]
    pub identities: Vec<Identity>,
    /// The user's email address, unique (case-insensitive).
    #[serde(default)]
    pub email: Option<String>,
    /// The user's display name, at most 256 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// The roles the user holds everywhere (each one must exist); policies' `userRoles` conditions
    /// read them.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The tenants the user belongs to, with the roles the user holds in each (each tenant and role
    /// must exist).
    #[serde(default)]
    pub tenants: Vec<TenantMembership>,
    /// Free-form attributes: a JSON object of at most 16 KiB.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// Whether the user is disabled: a disabled user gets no outbound token.
    #[serde(default)]
    pub disabled: bool,
}

/// A user as the management API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// The user's id in the directory.
    pub id: String,
    /// The identities that are this user (issuer and subject).
    pub identities: Vec<Identity>,
    /// The user's email address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The user's display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The roles the user holds everywhere.
    pub roles: Vec<String>,
    /// The tenants the user belongs to, with the user's roles in each.
    pub tenants: Vec<TenantMembership>,
    /// Free-form attributes.
    pub attributes: Map<String, Value>,
    /// Whether the user is disabled (a disabled user gets no outbound token).
    pub disabled: bool,
    /// When the user was added.
    pub created_at: Timestamp,
    /// When the user was last changed.
    pub updated_at: Timestamp,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id.clone(),
            identities: u.identities.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            roles: u.roles.clone(),
            tenants: u.tenants.clone(),
            attributes: u.attributes.clone(),
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

fn check_user_input(input: &UserInput) -> Result<(), ServiceError> {
    if let Some(e) = &input.email {
        let at = e.find('@');
        if e.chars().count() > 254
            || at.is_none_or(|i| i == 0 || i + 1 == e.len())
            || e.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ServiceError::invalid(
                "invalid_request",
                "email is not a valid address",
            ));
        }
    }
    if let Some(n) = &input.name
        && (n.chars().count() > 256 || n.chars().any(char::is_control))
    {
        return Err(ServiceError::invalid(
            "invalid_request",
            "name must be at most 256 characters, without control characters",
        ));
    }
    if input.roles.len() > 256 || input.tenants.len() > 256 {
        return Err(ServiceError::invalid(
            "invalid_request",
            "at most 256 roles and 256 tenants",
        ));
    }
    let mut tenants = HashSet::new();
    for m in &input.tenants {
        if !tenants.insert(&m.tenant_id) {
            return Err(ServiceError::invalid(
                "invalid_request",
                format!("tenant {} is listed twice", m.tenant_id),
            ));
        }
    }
    // No role or tenant is named with a control character: answer as the store does for one that
    // does not exist, without asking it (PostgreSQL refuses NUL even in a lookup).
    let roles = input
        .roles
        .iter()
        .chain(input.tenants.iter().flat_map(|m| m.roles.iter()))
        .map(|r| ("role", r));
    let tenants = input.tenants.iter().map(|m| ("tenant", &m.tenant_id));
    if let Some((entity, id)) = roles
        .chain(tenants)
        .find(|(_, id)| id.chars().any(char::is_control))
    {
        return Err(StoreError::MissingReference {
            entity,
            id: id.clone(),
        }
        .into());
    }
    crate::identity::check_identities(&input.identities)?;
    check_attributes(&input.attributes)
}

impl Core {
    /// Creates a user.
    pub async fn create_user(&self, input: &UserInput) -> Result<UserView, ServiceError> {
        let id = input
            .id
            .clone()
            .ok_or_else(|| ServiceError::invalid("invalid_request", "id is required"))?;
        check_user_id(&id)?;
        let user = self.user_record(id, input, None)?;
        self.stores.directory.insert_user(&user).await?;
        Ok(UserView::from(&user))
    }

    /// Reads a user.
    pub async fn get_user(&self, id: &str) -> Result<UserView, ServiceError> {
        let u = self
            .stores
            .directory
            .user(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("user", id))?;
        Ok(UserView::from(&u))
    }

    /// Lists users.
    pub async fn list_users(&self, params: &ListParams) -> Result<Page<UserView>, ServiceError> {
        let (page, limit) = params.page_request()?;
        let rows = self.stores.directory.users(&page).await?;
        Ok(Page::from_rows(rows, limit, |u| u.id.clone()).map(|u| UserView::from(&u)))
    }

    /// Replaces a user (roles take effect on the very next token request).
    pub async fn update_user(&self, id: &str, input: &UserInput) -> Result<UserView, ServiceError> {
        same_id(input.id.as_deref(), id)?;
        check_user_input(input)?;
        let current = self
            .stores
            .directory
            .user(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("user", id))?;
        let user = self.user_record(id.to_owned(), input, Some(&current))?;
        self.stores
            .directory
            .update_user(&user)
            .await
            .map_err(|e| not_found(e, "user", id))?;
        Ok(UserView::from(&user))
    }

    /// The record of user `id` with `input`, checked (`current`: the user it replaces).
    pub(crate) fn user_record(
        &self,
        id: String,
        input: &UserInput,
        current: Option<&UserRecord>,
    ) -> Result<UserRecord, ServiceError> {
        if current.is_none() {
            check_user_id(&id)?;
        }
        check_user_input(input)?;
        let now = self.clock.now();
        Ok(UserRecord {
            id,
            identities: sorted_identities(&input.identities),
            email: input.email.clone(),
            name: input.name.clone(),
            roles: sorted_unique(&input.roles),
            tenants: input.tenants.clone(),
            attributes: input.attributes.clone(),
            disabled: input.disabled,
            created_at: current.map_or(now, |c| c.created_at),
            updated_at: now,
        })
    }

    /// Deletes a user and the user's connections.
    pub async fn delete_user(&self, id: &str) -> Result<(), ServiceError> {
        self.stores
            .directory
            .delete_user(id)
            .await
            .map_err(|e| not_found(e, "user", id))
    }
}

fn sorted_identities(v: &[Identity]) -> Vec<Identity> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn sorted_unique(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

/// A role as written and shown by the management API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleInput {
    /// The role's name (its id; required on create).
    #[serde(default)]
    pub name: Option<String>,
    /// What the role is for, at most 1,024 characters.
    #[serde(default)]
    pub description: Option<String>,
}

/// A role as the management API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleView {
    /// The role's name (its id).
    pub name: String,
    /// What the role is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When the role was added.
    pub created_at: Timestamp,
    /// When the role was last changed.
    pub updated_at: Timestamp,
}

impl From<&Role> for RoleView {
    fn from(r: &Role) -> Self {
        Self {
            name: r.name.clone(),
            description: r.description.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn check_role_name(name: &str) -> Result<(), ServiceError> {
    if name.trim() != name
        || name.is_empty()
        || name.chars().count() > 128
        || name.chars().any(char::is_control)
    {
        return Err(ServiceError::invalid(
            "invalid_id",
            "a role name is 1 to 128 characters, without leading or trailing spaces",
        ));
    }
    Ok(())
}

impl Core {
    /// Creates a role.
    pub async fn create_role(&self, input: &RoleInput) -> Result<RoleView, ServiceError> {
        let name = input
            .name
            .clone()
            .ok_or_else(|| ServiceError::invalid("invalid_request", "name is required"))?;
        let role = self.role_record(name, input, None)?;
        self.stores.directory.insert_role(&role).await?;
        Ok(RoleView::from(&role))
    }

    /// Reads a role.
    pub async fn get_role(&self, name: &str) -> Result<RoleView, ServiceError> {
        let r = self
            .stores
            .directory
            .role(name)
            .await?
            .ok_or_else(|| ServiceError::not_found("role", name))?;
        Ok(RoleView::from(&r))
    }

    /// Lists roles.
    pub async fn list_roles(&self, params: &ListParams) -> Result<Page<RoleView>, ServiceError> {
        let (page, limit) = params.page_request()?;
        let rows = self.stores.directory.roles(&page).await?;
        Ok(Page::from_rows(rows, limit, |r| r.name.clone()).map(|r| RoleView::from(&r)))
    }

    /// Replaces a role's description.
    pub async fn update_role(
        &self,
        name: &str,
        input: &RoleInput,
    ) -> Result<RoleView, ServiceError> {
        if input.name.as_deref().is_some_and(|n| n != name) {
            return Err(ServiceError::invalid(
                "invalid_request",
                "name is immutable",
            ));
        }
        check_description(input.description.as_deref())?;
        let current = self
            .stores
            .directory
            .role(name)
            .await?
            .ok_or_else(|| ServiceError::not_found("role", name))?;
        let role = self.role_record(name.to_owned(), input, Some(&current))?;
        self.stores
            .directory
            .update_role(&role)
            .await
            .map_err(|e| not_found(e, "role", name))?;
        Ok(RoleView::from(&role))
    }

    /// The record of role `name` with `input`, checked (`current`: the role it replaces).
    pub(crate) fn role_record(
        &self,
        name: String,
        input: &RoleInput,
        current: Option<&Role>,
    ) -> Result<Role, ServiceError> {
        check_role_name(&name)?;
        check_description(input.description.as_deref())?;
        let now = self.clock.now();
        Ok(Role {
            name,
            description: input.description.clone(),
            created_at: current.map_or(now, |c| c.created_at),
            updated_at: now,
        })
    }

    /// Deletes a role no user holds.
    pub async fn delete_role(&self, name: &str) -> Result<(), ServiceError> {
        self.stores
            .directory
            .delete_role(name)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(message) => ServiceError::Conflict {
                    code: "role_in_use",
                    message,
                },
                other => not_found(other, "role", name),
            })
    }
}

/// A tenant as written by the management API.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantInput {
    /// The tenant's id: a slug, immutable (required on create).
    #[serde(default)]
    pub id: Option<String>,
    /// The tenant's name, 1 to 128 characters.
    pub name: String,
    /// Free-form attributes: a JSON object of at most 16 KiB.
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// A tenant as the management API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    /// The tenant's id (a slug).
    pub id: String,
    /// The tenant's name.
    pub name: String,
    /// Free-form attributes.
    pub attributes: Map<String, Value>,
    /// When the tenant was added.
    pub created_at: Timestamp,
    /// When the tenant was last changed.
    pub updated_at: Timestamp,
}

impl From<&TenantRecord> for TenantView {
    fn from(t: &TenantRecord) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            attributes: t.attributes.clone(),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

impl Core {
    /// Creates a tenant.
    pub async fn create_tenant(&self, input: &TenantInput) -> Result<TenantView, ServiceError> {
        let id = input
            .id
            .clone()
            .ok_or_else(|| ServiceError::invalid("invalid_request", "id is required"))?;
        let t = self.tenant_record(id, input, None)?;
        self.stores.directory.insert_tenant(&t).await?;
        Ok(TenantView::from(&t))
    }

    /// Reads a tenant.
    pub async fn get_tenant(&self, id: &str) -> Result<TenantView, ServiceError> {
        let t = self
            .stores
            .directory
            .tenant(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("tenant", id))?;
        Ok(TenantView::from(&t))
    }

    /// Lists tenants.
    pub async fn list_tenants(
        &self,
        params: &ListParams,
    ) -> Result<Page<TenantView>, ServiceError> {
        let (page, limit) = params.page_request()?;
        let rows = self.stores.directory.tenants(&page).await?;
        Ok(Page::from_rows(rows, limit, |t| t.id.clone()).map(|t| TenantView::from(&t)))
    }

    /// Replaces a tenant.
    pub async fn update_tenant(
        &self,
        id: &str,
        input: &TenantInput,
    ) -> Result<TenantView, ServiceError> {
        same_id(input.id.as_deref(), id)?;
        check_name("name", &input.name)?;
        check_attributes(&input.attributes)?;
        let current = self
            .stores
            .directory
            .tenant(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("tenant", id))?;
        let t = self.tenant_record(id.to_owned(), input, Some(&current))?;
        self.stores
            .directory
            .update_tenant(&t)
            .await
            .map_err(|e| not_found(e, "tenant", id))?;
        Ok(TenantView::from(&t))
    }

    /// The record of tenant `id` with `input`, checked (`current`: the tenant it replaces).
    pub(crate) fn tenant_record(
        &self,
        id: String,
        input: &TenantInput,
        current: Option<&TenantRecord>,
    ) -> Result<TenantRecord, ServiceError> {
        check_slug("id", &id)?;
        check_name("name", &input.name)?;
        check_attributes(&input.attributes)?;
        let now = self.clock.now();
        Ok(TenantRecord {
            id,
            name: input.name.trim().to_owned(),
            attributes: input.attributes.clone(),
            created_at: current.map_or(now, |c| c.created_at),
            updated_at: now,
        })
    }

    /// Deletes a tenant, its memberships and its connections.
    pub async fn delete_tenant(&self, id: &str) -> Result<(), ServiceError> {
        self.stores
            .directory
            .delete_tenant(id)
            .await
            .map_err(|e| not_found(e, "tenant", id))
    }
}

// ----- Issuers -------------------------------------------------------------------------------

/// A whole number of seconds, written as JSON allows it (`60`, or `60.0`).
fn whole_seconds<'de, D>(d: D) -> Result<Option<u32>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error as _;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(f))
                // The range is checked: the cast is exact.
                .map(|f| f as u64)
        })
        .and_then(|v| u32::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| {
            D::Error::custom(format!(
                "invalid value: {n}, expected a whole number of seconds"
            ))
        })
}

/// A trusted issuer as written by the management API.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerInput {
    /// The exact `iss` of its tokens.
    pub issuer: String,
    /// The URL of the issuer's JSON Web Key Set.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Its OpenID Connect discovery URL (used when `jwksUrl` is absent).
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// Accepted audiences (at least one).
    pub audiences: Vec<String>,
    /// Accepted algorithms (default RS256, ES256, EdDSA).
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Claim with the user's roles (dotted path).
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// Claim with the user's tenant(s).
    #[serde(default)]
    pub tenant_claim: Option<String>,
    /// Leeway on `exp`/`nbf`/`iat` (default 60, at most 600).
    #[serde(default, deserialize_with = "whole_seconds")]
    pub clock_skew_seconds: Option<u32>,
    /// The `typ` header its tokens must carry, such as `at+jwt` (RFC 9068 access tokens):
    /// tokens without it (an ID token, say) are refused. Absent: any `typ`.
    #[serde(default)]
    pub required_typ: Option<String>,
}

/// A trusted issuer as the management API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuerView {
    /// The issuer's id: `config:<n>` for the configuration file's issuers, a generated id for those
    /// added through the API.
    pub id: String,
    /// The exact `iss` of the issuer's tokens.
    pub issuer: String,
    /// The URL of the issuer's JSON Web Key Set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// The issuer's OpenID Connect discovery URL (used when there is no JWKS URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_url: Option<String>,
    /// The audiences accepted: a token must name one of them in `aud`.
    pub audiences: Vec<String>,
    /// The signature algorithms accepted.
    pub algorithms: Vec<String>,
    /// The claim holding the user's roles (a dotted path), for users who are not in the directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles_claim: Option<String>,
    /// The claim holding the user's tenant or tenants (a dotted path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_claim: Option<String>,
    /// The leeway on `exp`, `nbf` and `iat`, in seconds.
    pub clock_skew_seconds: u32,
    /// The `typ` header its tokens must carry, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_typ: Option<String>,
    /// `api` (stored) or `config` (from the configuration file, read-only).
    pub source: &'static str,
}

impl IssuerView {
    fn from_record(r: &IssuerRecord) -> Self {
        Self {
            id: r.id.clone(),
            issuer: r.issuer.clone(),
            jwks_url: r.jwks_url.clone(),
            discovery_url: r.discovery_url.clone(),
            audiences: r.audiences.clone(),
            algorithms: r.algorithms.clone(),
            roles_claim: r.roles_claim.clone(),
            tenant_claim: r.tenant_claim.clone(),
            clock_skew_seconds: r.clock_skew_seconds,
            required_typ: r.required_typ.clone(),
            source: "api",
        }
    }
}

impl Core {
    fn issuer_record(
        &self,
        id: String,
        input: &IssuerInput,
        created_at: Timestamp,
    ) -> Result<IssuerRecord, ServiceError> {
        let texts = [&input.issuer]
            .into_iter()
            .chain(&input.jwks_url)
            .chain(&input.discovery_url)
            .chain(&input.audiences)
            .chain(input.algorithms.iter().flatten())
            .chain(&input.roles_claim)
            .chain(&input.tenant_claim);
        if texts.flat_map(|t| t.chars()).any(char::is_control) {
            return Err(ServiceError::invalid(
                "invalid_issuer",
                "an issuer's settings must not contain control characters",
            ));
        }
        let record = IssuerRecord {
            id,
            issuer: input.issuer.clone(),
            jwks_url: input.jwks_url.clone(),
            discovery_url: input.discovery_url.clone(),
            audiences: input.audiences.clone(),
            algorithms: input
                .algorithms
                .clone()
                .unwrap_or_else(|| vec!["RS256".into(), "ES256".into(), "EdDSA".into()]),
            roles_claim: input.roles_claim.clone(),
            tenant_claim: input.tenant_claim.clone(),
            clock_skew_seconds: input.clock_skew_seconds.unwrap_or(60),
            required_typ: input.required_typ.clone(),
            created_at,
            updated_at: self.clock.now(),
        };
        IssuerSpec::from_record(&record, &self.settings)?;
        if self.inbound.is_config_issuer(&record.issuer) {
            return Err(ServiceError::Conflict {
                code: "already_exists",
                message: "this issuer is defined in the configuration file".into(),
            });
        }
        Ok(record)
    }

    /// Adds a trusted issuer.
    pub async fn create_issuer(&self, input: &IssuerInput) -> Result<IssuerView, ServiceError> {
        let now = self.clock.now();
        let record = self.issuer_record(ids::new_id("iss", now), input, now)?;
        self.stores.issuers.insert_issuer(&record).await?;
        Ok(IssuerView::from_record(&record))
    }

    /// Lists trusted issuers, by id: the configuration file's and the stored ones.
    pub async fn list_issuers(
        &self,
        params: &ListParams,
    ) -> Result<Page<IssuerView>, ServiceError> {
        let (page, limit) = params.page_request()?;
        let mut all = self.inbound.config_issuer_views();
        all.extend(
            self.stores
                .issuers
                .issuers()
                .await?
                .iter()
                .map(IssuerView::from_record),
        );
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let rows: Vec<IssuerView> = all
            .into_iter()
            .filter(|v| page.after.as_ref().is_none_or(|a| v.id > *a))
            .take(page.limit as usize)
            .collect();
        Ok(Page::from_rows(rows, limit, |v| v.id.clone()))
    }

    /// Reads a stored issuer.
    pub async fn get_issuer(&self, id: &str) -> Result<IssuerView, ServiceError> {
        let r = self
            .stores
            .issuers
            .issuer(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("issuer", id))?;
        Ok(IssuerView::from_record(&r))
    }

    /// Replaces a stored issuer.
    pub async fn update_issuer(
        &self,
        id: &str,
        input: &IssuerInput,
    ) -> Result<IssuerView, ServiceError> {
        let current = self
            .stores
            .issuers
            .issuer(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("issuer", id))?;
        let record = self.issuer_record(id.to_owned(), input, current.created_at)?;
        self.stores
            .issuers
            .update_issuer(&record)
            .await
            .map_err(|e| not_found(e, "issuer", id))?;
        Ok(IssuerView::from_record(&record))
    }

    /// Removes a stored issuer: its tokens are refused from the next request on.
    pub async fn delete_issuer(&self, id: &str) -> Result<(), ServiceError> {
        self.stores
            .issuers
            .delete_issuer(id)
            .await
            .map_err(|e| not_found(e, "issuer", id))
    }
}

impl crate::Inbound {
    pub(crate) fn config_issuer_views(&self) -> Vec<IssuerView> {
        self.config_specs()
            .iter()
            .map(|s| IssuerView {
                id: s.id.clone(),
                issuer: s.issuer.clone(),
                jwks_url: match &s.keys {
                    crate::KeySource::Jwks(u) => Some(u.clone()),
                    _ => None,
                },
                discovery_url: match &s.keys {
                    crate::KeySource::Discovery(u) => Some(u.clone()),
                    _ => None,
                },
                audiences: s.audiences.clone(),
                algorithms: s.algorithms.iter().map(|a| a.as_str().to_owned()).collect(),
                roles_claim: s.roles_claim.clone(),
                tenant_claim: s.tenant_claim.clone(),
                clock_skew_seconds: s.clock_skew_seconds,
                required_typ: s.required_typ.clone(),
                source: "config",
            })
            .collect()
    }
}

// ----- OAuth clients -------------------------------------------------------------------------

/// An OAuth client as written by the management API.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientInput {
    /// The `client_id` (a slug; generated when absent on create).
    #[serde(default)]
    pub id: Option<String>,
    /// The client's name, 1 to 128 characters.
    pub name: String,
    /// The outbound apps it may fetch tokens for by token exchange (all when absent).
    #[serde(default)]
    pub allowed_apps: Option<Vec<String>>,
}

/// An OAuth client as the management API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientView {
    /// The client's `client_id`.
    pub id: String,
    /// The client's name.
    pub name: String,
    /// Apps it may fetch tokens for (all when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_apps: Option<Vec<String>>,
    /// The grant types the client may use (token exchange).
    pub grant_types: Vec<String>,
    /// `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_methods: Vec<String>,
    /// When the client was registered.
    pub created_at: Timestamp,
    /// When the client was last changed.
    pub updated_at: Timestamp,
}

impl From<&ClientRecord> for ClientView {
    fn from(c: &ClientRecord) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            allowed_apps: c
                .metadata
                .get("allowedApps")
                .and_then(|v| serde_json::from_value(v.clone()).ok()),
            grant_types: c
                .metadata
                .get("grantTypes")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default(),
            token_endpoint_auth_methods: vec![
                "client_secret_basic".into(),
                "client_secret_post".into(),
            ],
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A client just registered: the secret is in this answer and nowhere else, ever.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewClient {
    /// The client.
    #[serde(flatten)]
    pub client: ClientView,
    /// The client secret. Store it now: only its hash is kept.
    #[serde(serialize_with = "expose")]
    pub client_secret: SecretString,
}

impl Core {
    fn client_metadata(&self, input: &ClientInput) -> Result<Map<String, Value>, ServiceError> {
        check_name("name", &input.name)?;
        let mut m = Map::new();
        m.insert(
            "grantTypes".into(),
            serde_json::json!([crate::TOKEN_EXCHANGE_GRANT]),
        );
        if let Some(apps) = &input.allowed_apps {
            if apps.len() > 1000 {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    "at most 1000 allowedApps",
                ));
            }
            for a in apps {
                check_slug("allowedApps", a)?;
            }
            m.insert("allowedApps".into(), serde_json::json!(sorted_unique(apps)));
        }
        Ok(m)
    }

    /// Registers a confidential client (for token exchange); returns its secret once.
    pub async fn create_client(&self, input: &ClientInput) -> Result<NewClient, ServiceError> {
        let now = self.clock.now();
        let id = match &input.id {
            Some(id) => {
                check_slug("id", id)?;
                id.clone()
            }
            None => ids::new_id("cli", now),
        };
        let metadata = self.client_metadata(input)?;
        let secret = SecretString::from(format!("pcs_{}", random_token(32)));
        let record = ClientRecord {
            id,
            name: input.name.trim().to_owned(),
            secret_hash: Some(sha256(secret.expose().as_bytes())),
            metadata,
            created_at: now,
            updated_at: now,
        };
        self.stores.clients.insert_client(&record).await?;
        Ok(NewClient {
            client: ClientView::from(&record),
            client_secret: secret,
        })
    }

    /// Reads a client.
    pub async fn get_client(&self, id: &str) -> Result<ClientView, ServiceError> {
        let c = self
            .stores
            .clients
            .client(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("client", id))?;
        Ok(ClientView::from(&c))
    }

    /// Lists clients.
    pub async fn list_clients(
        &self,
        params: &ListParams,
    ) -> Result<Page<ClientView>, ServiceError> {
        let (page, limit) = params.page_request()?;
        let rows = self.stores.clients.clients(&page).await?;
        Ok(Page::from_rows(rows, limit, |c| c.id.clone()).map(|c| ClientView::from(&c)))
    }

    /// Replaces a client's name and allowed apps (the secret is kept).
    pub async fn update_client(
        &self,
        id: &str,
        input: &ClientInput,
    ) -> Result<ClientView, ServiceError> {
        same_id(input.id.as_deref(), id)?;
        let metadata = self.client_metadata(input)?;
        let current = self
            .stores
            .clients
            .client(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("client", id))?;
        let record = ClientRecord {
            name: input.name.trim().to_owned(),
            metadata,
            updated_at: self.clock.now(),
            ..current
        };
        self.stores
            .clients
            .update_client(&record)
            .await
            .map_err(|e| not_found(e, "client", id))?;
        Ok(ClientView::from(&record))
    }

    /// Issues a new secret for a client (the old one stops working at once).
    pub async fn rotate_client_secret(&self, id: &str) -> Result<NewClient, ServiceError> {
        let current = self
            .stores
            .clients
            .client(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("client", id))?;
        let secret = SecretString::from(format!("pcs_{}", random_token(32)));
        let record = ClientRecord {
            secret_hash: Some(sha256(secret.expose().as_bytes())),
            updated_at: self.clock.now(),
            ..current
        };
        self.stores
            .clients
            .update_client(&record)
            .await
            .map_err(|e| not_found(e, "client", id))?;
        Ok(NewClient {
            client: ClientView::from(&record),
            client_secret: secret,
        })
    }

    /// Deletes a client.
    pub async fn delete_client(&self, id: &str) -> Result<(), ServiceError> {
        self.stores
            .clients
            .delete_client(id)
            .await
            .map_err(|e| not_found(e, "client", id))
    }
}

// ----- Simulator -----------------------------------------------------------------------------

/// A "what would this get?" question.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulateInput {
    /// An inbound token to evaluate (verified like a real request, scope included).
    #[serde(default)]
    pub token: Option<SecretString>,
    /// Or a subject described directly.
    #[serde(default, deserialize_with = "object_or_null")]
    pub subject: Option<SimulatedSubject>,
    /// The outbound app the request is for.
    pub app_id: String,
    /// The scopes asked for (empty: the app's default scopes).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The tenant the request names, if any (the user's roles in that tenant apply).
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// A JSON object (or `null`) only: serde would also read a struct from an array.
fn object_or_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error as _;
    Option::<Map<String, Value>>::deserialize(d)?
        .map(|m| serde_json::from_value(Value::Object(m)).map_err(D::Error::custom))
        .transpose()
}

/// A subject for the simulator.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulatedSubject {
    /// The user's id: their directory roles apply unless `roles` is given.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The roles to evaluate with, instead of the user's roles in the directory.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// The inbound token's claims, for `jwtClaims` conditions.
    #[serde(default)]
    pub claims: Map<String, Value>,
}

/// The simulator's answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulateOutput {
    /// The user the decision was evaluated for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The roles the decision was evaluated with.
    pub roles: Vec<String>,
    /// Where the roles came from: `directory`, `token` or `given`.
    pub roles_source: &'static str,
    /// The scopes evaluated (the app's default scopes when the question named none).
    pub requested_scopes: Vec<String>,
    /// The decision and its explanation.
    pub decision: Explanation,
}

impl Core {
    /// Evaluates a request without handing anything out.
    pub async fn simulate(&self, input: &SimulateInput) -> Result<SimulateOutput, ServiceError> {
        // An app id that is not a slug names no app: not looked up (PostgreSQL refuses NUL).
        if validate_slug(&input.app_id).is_err() {
            return Err(ServiceError::not_found("app", &input.app_id));
        }
        if let Some(user) = input.subject.as_ref().and_then(|s| s.user_id.as_deref()) {
            check_user_id(user)?;
        }
        // The tenant and scopes are held to a token request's rules.
        crate::plane::check_fields(&input.app_id, input.tenant_id.as_deref(), &input.scopes)
            .map_err(|r| match r {
                crate::Refusal::InvalidRequest { problem, message } => {
                    ServiceError::invalid(problem.as_str(), message)
                }
                other => ServiceError::Internal(format!("{other:?}")),
            })?;
        let snapshot = self
            .app_snapshot(&input.app_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("app", &input.app_id))?;
        let tenant = input.tenant_id.as_deref();
        let (user_id, roles, roles_source, claims) = match (&input.token, &input.subject) {
            (Some(token), None) => {
                let caller = self
                    .authenticate_caller(Some(token.expose()))
                    .await
                    .map_err(|r| match r {
                        crate::Refusal::InvalidToken { code, message } => ServiceError::Invalid {
                            code: "invalid_token",
                            message: format!("the token is not valid: {message}"),
                            details: Some(serde_json::json!({
                                "reason": code.unwrap_or(crate::refusal::MISSING_TOKEN)
                            })),
                        },
                        crate::Refusal::InsufficientScope { scope } => ServiceError::invalid(
                            "insufficient_scope",
                            format!(
                                "the token lacks the scope {scope} needed to fetch outbound tokens"
                            ),
                        ),
                        other => ServiceError::Internal(format!("{other:?}")),
                    })?;
                let source = if caller.user.is_some() {
                    "directory"
                } else {
                    "token"
                };
                (
                    Some(caller.id.clone()),
                    caller.roles(tenant),
                    source,
                    Arc::new(caller.token.claims.clone()),
                )
            }
            (None, Some(s)) => {
                let (roles, source) = match (&s.roles, &s.user_id) {
                    (Some(r), _) => (r.clone(), "given"),
                    (None, Some(u)) => match self.directory_user(u).await? {
                        Some(user) => (user.effective_roles(tenant), "directory"),
                        None => (Vec::new(), "directory"),
                    },
                    (None, None) => (Vec::new(), "given"),
                };
                (s.user_id.clone(), roles, source, Arc::new(s.claims.clone()))
            }
            _ => {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    "give exactly one of token and subject",
                ));
            }
        };
        let requested = if input.scopes.is_empty() && snapshot.app.kind == AppKind::OAuth {
            snapshot.app.settings.default_scopes.clone()
        } else {
            input.scopes.clone()
        };
        let explanation = {
            let subject = Subject::new(&roles, &claims);
            let refs: Vec<&str> = requested.iter().map(String::as_str).collect();
            let decision = snapshot.set.decide(&subject, &refs);
            snapshot.set.explain(&subject, &refs, &decision)
        };
        Ok(SimulateOutput {
            user_id,
            roles,
            roles_source,
            requested_scopes: requested,
            decision: explanation,
        })
    }
}

// ----- Audit ---------------------------------------------------------------------------------

/// Filters of the audit log.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditParams {
    /// Only this app.
    pub app_id: Option<String>,
    /// Only this user.
    pub user_id: Option<String>,
    /// Only this tenant.
    pub tenant_id: Option<String>,
    /// Only this client.
    pub client_id: Option<String>,
    /// Only this outcome (`allowed`, `denied`, `consent_required`, `not_connected`,
    /// `invalid_token`, `invalid_request`, `error`).
    pub outcome: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    pub since: Option<String>,
    /// Only events before this instant (RFC 3339).
    pub until: Option<String>,
    /// How many events (1–1000, default 100).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Which log: `decision` (the default: token decisions) or `management` (who changed what
    /// through this API).
    pub kind: Option<String>,
    /// Management events only: this actor (an admin key's id).
    pub actor: Option<String>,
    /// Management events only: this target or anything under it (`outbound-apps/cal`).
    pub target: Option<String>,
    /// Management events only: this action (`policy.update`, ...).
    pub action: Option<String>,
}

impl AuditParams {
    /// Whether these parameters ask for the management log (`kind=management`); an unknown kind
    /// is refused.
    pub fn is_management(&self) -> Result<bool, ServiceError> {
        match self.kind.as_deref() {
            None | Some("decision") => {
                if self.actor.is_some() || self.target.is_some() || self.action.is_some() {
                    return Err(ServiceError::invalid(
                        "invalid_request",
                        "actor, target and action filter management events (kind=management)",
                    ));
                }
                Ok(false)
            }
            Some("management") => {
                if self.app_id.is_some()
                    || self.user_id.is_some()
                    || self.tenant_id.is_some()
                    || self.client_id.is_some()
                    || self.outcome.is_some()
                {
                    return Err(ServiceError::invalid(
                        "invalid_request",
                        "appId, userId, tenantId, clientId and outcome filter decisions, not management events",
                    ));
                }
                Ok(true)
            }
            Some(other) => Err(ServiceError::invalid(
                "invalid_request",
                format!("unknown kind {other:?}: decision or management"),
            )),
        }
    }

    /// The management store query (reading one more row than asked) and the page size.
    pub fn management_query(
        &self,
    ) -> Result<(portcullis_domain::ManagementQuery, u32), ServiceError> {
        let (q, limit) = self.query()?;
        Ok((
            portcullis_domain::ManagementQuery {
                actor_id: self.actor.clone(),
                target: self.target.clone(),
                action: self.action.clone(),
                since: q.since,
                until: q.until,
                before_id: q.before_id,
                limit: q.limit,
            },
            limit,
        ))
    }
    /// The store query (reading one more row than asked) and the page size.
    pub fn query(&self) -> Result<(portcullis_domain::AuditQuery, u32), ServiceError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ServiceError::invalid(
                "invalid_request",
                "limit must be between 1 and 1000",
            ));
        }
        let time = |field: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| {
                    Timestamp::parse_rfc3339(t).ok_or_else(|| {
                        ServiceError::invalid(
                            "invalid_request",
                            format!("{field} must be an RFC 3339 date-time"),
                        )
                    })
                })
                .transpose()
        };
        let outcome = self
            .outcome
            .as_deref()
            .map(|o| {
                portcullis_domain::AuditOutcome::parse(o).ok_or_else(|| {
                    ServiceError::invalid("invalid_request", format!("unknown outcome {o:?}"))
                })
            })
            .transpose()?;
        Ok((
            portcullis_domain::AuditQuery {
                app_id: self.app_id.clone(),
                user_id: self.user_id.clone(),
                tenant_id: self.tenant_id.clone(),
                client_id: self.client_id.clone(),
                outcome,
                since: time("since", &self.since)?,
                until: time("until", &self.until)?,
                before_id: self.cursor.as_deref().map(decode_cursor).transpose()?,
                limit: limit + 1,
            },
            limit,
        ))
    }
}

impl Core {
    /// Reads the audit log, newest first.
    pub async fn list_audit(
        &self,
        params: &AuditParams,
    ) -> Result<Page<portcullis_domain::AuditEvent>, ServiceError> {
        let (query, limit) = params.query()?;
        let rows = self.stores.audit.audit(&query).await?;
        Ok(Page::from_rows(rows, limit, |e| e.id.clone()))
    }

    /// Reads one page of the audit log for an export (store query as given).
    pub async fn audit_page(
        &self,
        query: &portcullis_domain::AuditQuery,
    ) -> Result<Vec<portcullis_domain::AuditEvent>, ServiceError> {
        Ok(self.stores.audit.audit(query).await?)
    }
}

// ----- Keys ----------------------------------------------------------------------------------

/// A data key, as the management API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataKeyView {
    /// Its id (written in every ciphertext it seals).
    pub id: u32,
    /// Whether new secrets are sealed with it.
    pub active: bool,
    /// The master key that wraps it.
    pub master_key_id: String,
    /// When the key was created.
    pub created_at: Timestamp,
}

/// The state of the background re-encryption.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReencryptionStatus {
    /// `running`, `done` or `failed`.
    pub state: &'static str,
    /// The data key secrets are moved to.
    pub target_key_id: u32,
    /// What was re-sealed so far (when done).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<crate::ReencryptReport>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
}

/// The key ring's state.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyStatus {
    /// The key new secrets are sealed with.
    pub active_key_id: u32,
    /// Every data key.
    pub keys: Vec<DataKeyView>,
    /// The last re-encryption started on this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reencryption: Option<ReencryptionStatus>,
}

impl Core {
    /// The key ring's state.
    pub async fn key_status(&self) -> Result<KeyStatus, ServiceError> {
        let keys = self.stores.keys.data_keys().await?;
        Ok(KeyStatus {
            active_key_id: keys.iter().find(|k| k.active).map_or(0, |k| k.id),
            keys: keys
                .iter()
                .map(|k| DataKeyView {
                    id: k.id,
                    active: k.active,
                    master_key_id: k.master_key_id.clone(),
                    created_at: k.created_at,
                })
                .collect(),
            reencryption: self
                .reencryption
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        })
    }

    /// Adds a data key, makes it active, and re-encrypts existing rows in the background (rows
    /// under the old key stay readable until then).
    pub async fn rotate_keys(&self) -> Result<KeyStatus, ServiceError> {
        let target = self.sealer.rotate().await?;
        let started_at = self.clock.now();
        *self
            .reencryption
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ReencryptionStatus {
            state: "running",
            target_key_id: target,
            report: None,
            error: None,
            started_at,
            finished_at: None,
        });
        if let Some(core) = self.me.upgrade() {
            tokio::spawn(async move {
                let result = crate::reencrypt(&core.sealer, &core.stores).await;
                let finished_at = Some(core.clock.now());
                let status = match result {
                    Ok(report) => {
                        tracing::info!(?report, "re-encryption finished");
                        ReencryptionStatus {
                            state: "done",
                            target_key_id: target,
                            report: Some(report),
                            error: None,
                            started_at,
                            finished_at,
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "re-encryption failed");
                        ReencryptionStatus {
                            state: "failed",
                            target_key_id: target,
                            report: None,
                            error: Some(e.to_string()),
                            started_at,
                            finished_at,
                        }
                    }
                };
                *core
                    .reencryption
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(status);
            });
        }
        self.key_status().await
    }
}
