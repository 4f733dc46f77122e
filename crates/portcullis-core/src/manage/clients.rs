//! OAuth clients of token exchange: registered by an admin, the secret shown once.

use super::*;

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
