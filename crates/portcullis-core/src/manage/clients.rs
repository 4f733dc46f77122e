//! OAuth clients registered by an admin: confidential (a secret, shown once) or public (PKCE
//! only); for token exchange, the authorization code flow, client credentials.

use super::*;
use crate::authz::{
    GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER, GRANT_REFRESH_TOKEN,
};

/// How a client authenticates at the token endpoint: `none` is a public client.
pub const CLIENT_AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];
/// The grant types a client may be given.
pub const CLIENT_GRANT_TYPES: [&str; 5] = [
    GRANT_AUTHORIZATION_CODE,
    GRANT_REFRESH_TOKEN,
    GRANT_CLIENT_CREDENTIALS,
    crate::TOKEN_EXCHANGE_GRANT,
    GRANT_JWT_BEARER,
];
/// The most redirect URIs a client may register.
pub const MAX_REDIRECT_URIS: usize = 20;

/// An OAuth client as written by the management API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientInput {
    /// The `client_id` (a slug; generated when absent on create).
    #[serde(default)]
    pub id: Option<String>,
    /// The client's name, 1 to 128 characters (shown on the consent screen).
    pub name: String,
    /// The outbound apps it may fetch tokens for by token exchange (all when absent).
    #[serde(default)]
    pub allowed_apps: Option<Vec<String>>,
    /// The grant types it may use. Default: the authorization code flow and refresh tokens when
    /// it has redirect URIs, token exchange otherwise.
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    /// Its redirect URIs, matched exactly (a loopback `http` URI matches on any port).
    #[serde(default)]
    pub redirect_uris: Option<Vec<String>>,
    /// `client_secret_basic` (default), `client_secret_post`, or `none` (a public client).
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
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
    /// The grant types the client may use.
    pub grant_types: Vec<String>,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
    /// How it authenticates: `client_secret_basic`, `client_secret_post`, or `none` (public).
    pub token_endpoint_auth_method: String,
    /// When the client was registered.
    pub created_at: Timestamp,
    /// When the client was last changed.
    pub updated_at: Timestamp,
}

/// A list of strings kept in a client's metadata.
pub(crate) fn metadata_list(c: &ClientRecord, key: &str) -> Vec<String> {
    c.metadata
        .get(key)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// How a stored client authenticates (`client_secret_basic` for those stored before the field).
pub(crate) fn auth_method(c: &ClientRecord) -> String {
    c.metadata
        .get("tokenEndpointAuthMethod")
        .and_then(Value::as_str)
        .unwrap_or("client_secret_basic")
        .to_owned()
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
            grant_types: metadata_list(c, "grantTypes"),
            redirect_uris: metadata_list(c, "redirectUris"),
            token_endpoint_auth_method: auth_method(c),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A client just registered: a confidential client's secret is in this answer and nowhere else,
/// ever.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewClient {
    /// The client.
    #[serde(flatten)]
    pub client: ClientView,
    /// The client secret (confidential clients). Store it now: only its hash is kept.
    #[serde(serialize_with = "expose_opt", skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretString>,
}

fn expose_opt<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => expose(v, s),
        None => s.serialize_none(),
    }
}

/// Checks a redirect URI (RFC 9700 §2.1, RFC 8252 §7): absolute, no fragment, and `https`, or
/// `http` on a loopback address, or a private-use scheme of a native app (`com.example.app:/cb`).
pub(crate) fn check_redirect_uri(uri: &str) -> Result<(), ServiceError> {
    let bad = |why: &str| {
        ServiceError::invalid(
            "invalid_redirect_uri",
            format!("redirect URI {}: {why}", shown(uri)),
        )
    };
    if uri.is_empty() || uri.len() > 2048 {
        return Err(bad("must be 1 to 2048 characters"));
    }
    let u = url::Url::parse(uri).map_err(|_| bad("is not an absolute URI"))?;
    if u.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    if u.as_str() != uri {
        return Err(bad("is not in canonical form"));
    }
    match u.scheme() {
        "https" if u.host_str().is_some() => Ok(()),
        "http" if crate::authz::is_loopback_uri(&u) => Ok(()),
        "http" => Err(bad(
            "http is allowed only on a loopback address (127.0.0.1, [::1], localhost)",
        )),
        scheme if scheme.contains('.') && !u.has_host() => Ok(()),
        _ => Err(bad(
            "must be https, loopback http, or a reverse-domain private-use scheme",
        )),
    }
}

fn shown(v: &str) -> String {
    v.chars().take(128).collect()
}

impl Core {
    fn client_metadata(&self, input: &ClientInput) -> Result<Map<String, Value>, ServiceError> {
        check_name("name", &input.name)?;
        let mut m = Map::new();
        let method = input
            .token_endpoint_auth_method
            .clone()
            .unwrap_or_else(|| "client_secret_basic".into());
        if !CLIENT_AUTH_METHODS.contains(&method.as_str()) {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "tokenEndpointAuthMethod",
                format!(
                    "tokenEndpointAuthMethod must be one of {}",
                    CLIENT_AUTH_METHODS.join(", ")
                ),
            ));
        }
        let redirects = input.redirect_uris.clone().unwrap_or_default();
        if redirects.len() > MAX_REDIRECT_URIS {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "redirectUris",
                format!("at most {MAX_REDIRECT_URIS} redirectUris"),
            ));
        }
        for (i, r) in redirects.iter().enumerate() {
            check_redirect_uri(r).map_err(|e| e.at(format!("redirectUris[{i}]")))?;
        }
        if input
            .grant_types
            .as_ref()
            .is_some_and(|g| g.len() > CLIENT_GRANT_TYPES.len())
        {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "grantTypes",
                format!("at most {} grantTypes", CLIENT_GRANT_TYPES.len()),
            ));
        }
        let grants = match &input.grant_types {
            Some(g) => sorted_unique(g),
            None if !redirects.is_empty() => vec![
                GRANT_AUTHORIZATION_CODE.to_owned(),
                GRANT_REFRESH_TOKEN.to_owned(),
            ],
            None => vec![crate::TOKEN_EXCHANGE_GRANT.to_owned()],
        };
        if grants.is_empty() {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "grantTypes",
                "grantTypes must name at least one grant type",
            ));
        }
        if let Some(g) = grants
            .iter()
            .find(|g| !CLIENT_GRANT_TYPES.contains(&g.as_str()))
        {
            // Only grant types given can be unsupported: the place of the first of them.
            let at = input
                .grant_types
                .iter()
                .flatten()
                .position(|x| x == g)
                .map_or_else(|| "grantTypes".to_owned(), |i| format!("grantTypes[{i}]"));
            return Err(ServiceError::invalid_at(
                "invalid_request",
                at,
                format!(
                    "grant type {} is not supported; use {}",
                    shown(g),
                    CLIENT_GRANT_TYPES.join(", ")
                ),
            ));
        }
        let has = |g: &str| grants.iter().any(|x| x == g);
        if has(GRANT_AUTHORIZATION_CODE) && redirects.is_empty() {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "redirectUris",
                "the authorization_code grant needs at least one redirect URI",
            ));
        }
        if method == "none"
            && (has(GRANT_CLIENT_CREDENTIALS)
                || has(crate::TOKEN_EXCHANGE_GRANT)
                || has(GRANT_JWT_BEARER))
        {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "grantTypes",
                "a public client (tokenEndpointAuthMethod none) cannot use client_credentials, token exchange or jwt-bearer",
            ));
        }
        m.insert("grantTypes".into(), serde_json::json!(grants));
        if !redirects.is_empty() {
            m.insert("redirectUris".into(), serde_json::json!(redirects));
        }
        m.insert("tokenEndpointAuthMethod".into(), Value::String(method));
        if let Some(apps) = &input.allowed_apps {
            if apps.len() > 1000 {
                return Err(ServiceError::invalid_at(
                    "invalid_request",
                    "allowedApps",
                    "at most 1000 allowedApps",
                ));
            }
            for (i, a) in apps.iter().enumerate() {
                validate_slug(a).map_err(|why| {
                    ServiceError::invalid_at(
                        "invalid_id",
                        format!("allowedApps[{i}]"),
                        format!("allowedApps {why}"),
                    )
                })?;
            }
            m.insert("allowedApps".into(), serde_json::json!(sorted_unique(apps)));
        }
        Ok(m)
    }

    /// Registers a client; returns a confidential client's secret once.
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
        let public = metadata.get("tokenEndpointAuthMethod") == Some(&Value::from("none"));
        let secret = (!public).then(|| SecretString::from(format!("pcs_{}", random_token(32))));
        let record = ClientRecord {
            id,
            name: input.name.trim().to_owned(),
            secret_hash: secret.as_ref().map(|s| sha256(s.expose().as_bytes())),
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
        view_of(self.stores.clients.client(id).await?, "client", id)
    }

    /// Lists clients.
    pub async fn list_clients(
        &self,
        params: &ListParams,
    ) -> Result<Page<ClientView>, ServiceError> {
        page_of(
            params,
            async |page| self.stores.clients.clients(page).await,
            |c| c.id.clone(),
        )
        .await
    }

    /// Replaces a client's settings (the secret is kept; a client does not change between public
    /// and confidential).
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
        if current.secret_hash.is_none()
            != (metadata.get("tokenEndpointAuthMethod") == Some(&Value::from("none")))
        {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "tokenEndpointAuthMethod",
                "a client cannot change between public and confidential; register a new one",
            ));
        }
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
        if current.secret_hash.is_none() {
            return Err(ServiceError::Conflict {
                code: "public_client",
                message: "a public client has no secret".into(),
            });
        }
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
            client_secret: Some(secret),
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
