//! Single sign-on connections: upstream OpenID providers, their client credentials (the secret
//! sealed, write-only) and the rules mapping their claims to roles and tenants.

use portcullis_domain::{ClaimMapping, SsoConnectionRecord, SsoSettings};
use portcullis_policy::ClaimPath;

use super::*;

/// The most claim-mapping rules a connection may have.
pub const MAX_SSO_MAPPINGS: usize = 256;
/// The most id_token claims a connection copies to its users.
pub const MAX_COPIED_CLAIMS: usize = 32;
/// The claims Portcullis sets in its own tokens: never copied from a provider.
pub const RESERVED_CLAIMS: [&str; 17] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "roles",
    "tenants",
    "email",
    "auth_time",
    "azp",
    "nonce",
    "at_hash",
    "name",
];
/// The scopes asked for when none are given.
const DEFAULT_SSO_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// An SSO connection as written by the management API.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SsoConnectionInput {
    /// Its id, a slug (required on create; on update, the path's).
    #[serde(default)]
    pub id: Option<String>,
    /// What the sign-in button says: "Sign in with {name}".
    pub name: String,
    /// The provider's exact issuer (`https://login.microsoftonline.com/{tenant}/v2.0`).
    pub issuer: String,
    /// Portcullis's client id at the provider.
    pub client_id: String,
    /// Portcullis's client secret at the provider: write-only, sealed at rest. On update, absent
    /// keeps the stored one.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// The scopes asked for; `openid` is added when absent. Default `openid email profile`.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Whether a first sign-in creates the user (default true).
    #[serde(default)]
    pub provision: Option<bool>,
    /// The rules mapping claims to roles and tenants, applied at every sign-in.
    #[serde(default)]
    pub mappings: Vec<ClaimMapping>,
    /// The id_token claims copied to the user at every sign-in, carried by access tokens (at most
    /// 32 top-level names; not a claim Portcullis sets itself).
    #[serde(default)]
    pub claims: Vec<String>,
}

/// An SSO connection as the management API shows it (never its secret).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SsoConnectionView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The provider's issuer.
    pub issuer: String,
    /// Portcullis's client id at the provider.
    pub client_id: String,
    /// Whether a client secret is stored.
    pub has_client_secret: bool,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// Whether a first sign-in creates the user.
    pub provision: bool,
    /// The claim-mapping rules.
    pub mappings: Vec<ClaimMapping>,
    /// The id_token claims copied to the user.
    pub claims: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl From<&SsoConnectionRecord> for SsoConnectionView {
    fn from(r: &SsoConnectionRecord) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            issuer: r.issuer.clone(),
            client_id: r.client_id.clone(),
            has_client_secret: r.client_secret.is_some(),
            scopes: r.settings.scopes.clone(),
            provision: r.settings.provision,
            mappings: r.settings.mappings.clone(),
            claims: r.settings.claims.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The associated data binding an SSO connection's client secret to it.
pub fn sso_secret_aad(id: &str) -> Vec<u8> {
    aad(&["sso", id, "client_secret"])
}

fn visible(v: &str, max: usize) -> bool {
    !v.is_empty() && v.chars().count() <= max && !v.chars().any(char::is_control)
}

impl Core {
    async fn sso_record(
        &self,
        id: String,
        input: &SsoConnectionInput,
        current: Option<&SsoConnectionRecord>,
    ) -> Result<SsoConnectionRecord, ServiceError> {
        check_slug("id", &id)?;
        check_name("name", &input.name)?;
        if input.issuer.chars().count() > super::MAX_RESOURCE_URI
            || !super::resources::uri_shape_ok(&input.issuer)
        {
            return Err(ServiceError::invalid_at(
                "invalid_url",
                "issuer",
                "issuer must be the provider's exact issuer: https:// and a DNS host name (or http:// on a loopback host outside production), a port, a path, no query",
            ));
        }
        check_body_url(&input.issuer, "issuer", &self.settings)?;
        let issuer = input.issuer.clone();
        if !visible(&input.client_id, 255) || input.client_id.contains(char::is_whitespace) {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "clientId",
                "clientId must be 1 to 255 characters without whitespace or control characters",
            ));
        }
        let asked: Vec<String> = match &input.scopes {
            Some(s) => s.clone(),
            None => DEFAULT_SSO_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        };
        if asked.len() > 32
            || asked.iter().any(|s| {
                s.is_empty() || s.len() > 128 || !s.chars().all(super::resources::scope_char)
            })
        {
            return Err(ServiceError::invalid_at(
                "invalid_scope",
                "scopes",
                "scopes lists at most 32 scopes of 1 to 128 printable ASCII characters, without spaces, quotes or backslashes",
            ));
        }
        let mut scopes = vec!["openid".to_owned()];
        for s in asked {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        if input.mappings.len() > MAX_SSO_MAPPINGS {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "mappings",
                format!("at most {MAX_SSO_MAPPINGS} mappings"),
            ));
        }
        for (n, m) in input.mappings.iter().enumerate() {
            ClaimPath::parse(&m.claim).map_err(|e| {
                ServiceError::invalid_at(
                    "invalid_mapping",
                    format!("mappings[{n}].claim"),
                    format!("mappings[{n}].claim: {e}"),
                )
            })?;
            if !visible(&m.value, 1024) {
                return Err(ServiceError::invalid_at(
                    "invalid_mapping",
                    format!("mappings[{n}].value"),
                    format!(
                        "mappings[{n}].value must be 1 to 1024 characters without control characters"
                    ),
                ));
            }
            if m.roles.len() > 64 {
                return Err(ServiceError::invalid_at(
                    "invalid_mapping",
                    format!("mappings[{n}].roles"),
                    format!("mappings[{n}] gives at most 64 roles"),
                ));
            }
            // A name with a control character names nothing: refused without asking the store
            // (PostgreSQL refuses NUL even in a lookup).
            for (k, r) in m.roles.iter().enumerate() {
                if !visible(r, 255) {
                    return Err(ServiceError::invalid_at(
                        "invalid_mapping",
                        format!("mappings[{n}].roles[{k}]"),
                        format!(
                            "mappings[{n}]: a role name has 1 to 255 characters, no control characters"
                        ),
                    ));
                }
                if self.stores.directory.role(r).await?.is_none() {
                    return Err(ServiceError::UnknownReference {
                        entity: "role",
                        id: r.clone(),
                    });
                }
            }
            if let Some(t) = &m.tenant {
                if !visible(t, 255) {
                    return Err(ServiceError::invalid_at(
                        "invalid_mapping",
                        format!("mappings[{n}].tenant"),
                        format!(
                            "mappings[{n}]: a tenant id has 1 to 255 characters, no control characters"
                        ),
                    ));
                }
                if self.stores.directory.tenant(t).await?.is_none() {
                    return Err(ServiceError::UnknownReference {
                        entity: "tenant",
                        id: t.clone(),
                    });
                }
            }
        }
        if input.claims.len() > MAX_COPIED_CLAIMS {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "claims",
                format!("claims lists at most {MAX_COPIED_CLAIMS} names"),
            ));
        }
        for (i, c) in input.claims.iter().enumerate() {
            let shape = !c.is_empty()
                && c.len() <= 64
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
            if !shape || RESERVED_CLAIMS.contains(&c.as_str()) {
                return Err(ServiceError::invalid_at(
                    "invalid_request",
                    format!("claims[{i}]"),
                    format!(
                        "claims: {c:?} is not a claim to copy (1 to 64 letters, digits, _ - . :; not one Portcullis sets itself)"
                    ),
                ));
            }
        }
        let mut claims: Vec<String> = Vec::new();
        for c in &input.claims {
            if !claims.contains(c) {
                claims.push(c.clone());
            }
        }
        let client_secret = match &input.client_secret {
            Some(s) if !visible(s.expose(), 1024) => {
                return Err(ServiceError::invalid_at(
                    "invalid_request",
                    "clientSecret",
                    "clientSecret must be 1 to 1024 characters without control characters",
                ));
            }
            Some(s) => Some(
                self.sealer
                    .seal(s.expose().as_bytes(), &sso_secret_aad(&id))?,
            ),
            None => current.and_then(|c| c.client_secret.clone()),
        };
        let now = self.clock.now();
        Ok(SsoConnectionRecord {
            id,
            name: input.name.clone(),
            issuer,
            client_id: input.client_id.clone(),
            client_secret,
            settings: SsoSettings {
                scopes,
                provision: input.provision.unwrap_or(true),
                mappings: input.mappings.clone(),
                claims,
            },
            created_at: current.map_or(now, |c| c.created_at),
            updated_at: now,
        })
    }

    /// Creates an SSO connection.
    pub async fn create_sso_connection(
        &self,
        input: &SsoConnectionInput,
    ) -> Result<SsoConnectionView, ServiceError> {
        let id = input
            .id
            .clone()
            .ok_or_else(|| ServiceError::invalid_at("invalid_request", "id", "id is required"))?;
        let record = self.sso_record(id, input, None).await?;
        self.stores.sso.insert_sso_connection(&record).await?;
        Ok(SsoConnectionView::from(&record))
    }

    /// Reads an SSO connection.
    pub async fn get_sso_connection(&self, id: &str) -> Result<SsoConnectionView, ServiceError> {
        view_of(
            self.stores.sso.sso_connection(id).await?,
            "SSO connection",
            id,
        )
    }

    /// Lists SSO connections.
    pub async fn list_sso_connections(
        &self,
        params: &ListParams,
    ) -> Result<Page<SsoConnectionView>, ServiceError> {
        page_of(
            params,
            async |page| self.stores.sso.sso_connections(page).await,
            |r| r.id.clone(),
        )
        .await
    }

    /// Replaces an SSO connection (its secret kept when none is given).
    pub async fn update_sso_connection(
        &self,
        id: &str,
        input: &SsoConnectionInput,
    ) -> Result<SsoConnectionView, ServiceError> {
        same_id(input.id.as_deref(), id)?;
        let current = self
            .stores
            .sso
            .sso_connection(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("SSO connection", id))?;
        let record = self
            .sso_record(id.to_owned(), input, Some(&current))
            .await?;
        self.stores
            .sso
            .update_sso_connection(&record)
            .await
            .map_err(|e| not_found(e, "SSO connection", id))?;
        Ok(SsoConnectionView::from(&record))
    }

    /// Deletes an SSO connection (its users stay, with their identity links).
    pub async fn delete_sso_connection(&self, id: &str) -> Result<(), ServiceError> {
        self.stores
            .sso
            .delete_sso_connection(id)
            .await
            .map_err(|e| not_found(e, "SSO connection", id))?;
        Ok(())
    }
}
