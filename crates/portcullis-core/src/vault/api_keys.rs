//! API keys, stored sealed by an admin for a user, a tenant or the app.

use super::*;

impl Core {
    /// Stores an API key for a user, a tenant, or (neither) the whole app.
    pub async fn put_api_key(
        &self,
        app_id: &str,
        api_key: &SecretString,
        user_id: Option<String>,
        tenant_id: Option<String>,
        granted_by: &str,
    ) -> Result<ConnectionInfo, ServiceError> {
        self.require_app_of_kind(app_id, AppKind::ApiKey).await?;
        if api_key.is_empty() || api_key.len() > 8192 {
            return Err(ServiceError::invalid_at(
                "invalid_api_key",
                "apiKey",
                "apiKey must be 1 to 8192 characters",
            ));
        }
        self.check_owner("", user_id.as_deref(), tenant_id.as_deref())
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
    pub(super) fn sealed_connection(
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

    /// Checks the owner of a connection: its `userId` and `tenantId`, fields of the request body
    /// under `at` (`""`, or `tokens[2].` in an import).
    pub(super) async fn check_owner(
        &self,
        at: &str,
        user: Option<&str>,
        tenant: Option<&str>,
    ) -> Result<(), ServiceError> {
        for (field, v) in [("userId", user), ("tenantId", tenant)] {
            if let Some(v) = v
                && (v.is_empty()
                    || v.chars().count() > 256
                    || v.chars().any(|c| c.is_control() || c.is_whitespace()))
            {
                return Err(ServiceError::invalid_at(
                    "invalid_request",
                    format!("{at}{field}"),
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
}
