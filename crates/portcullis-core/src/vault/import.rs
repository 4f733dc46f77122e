//! Importing tokens obtained elsewhere, all or nothing.

use super::*;

impl Core {
    /// Imports OAuth tokens from another system, all or nothing.
    pub async fn import_tokens(
        &self,
        app_id: &str,
        items: &[ImportToken],
        granted_by: &str,
    ) -> Result<Vec<ConnectionInfo>, ServiceError> {
        let app = self.require_app_of_kind(app_id, AppKind::OAuth).await?;
        if items.is_empty() || items.len() > 1000 {
            return Err(ServiceError::invalid(
                "invalid_request",
                "an import holds 1 to 1000 tokens",
            ));
        }
        let now = self.clock.now();
        let mut records = Vec::with_capacity(items.len());
        let mut seen = std::collections::HashSet::new();
        for (i, item) in items.iter().enumerate() {
            if item.user_id.is_none() && item.tenant_id.is_none() {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    format!("tokens[{i}] needs a userId or a tenantId"),
                ));
            }
            for (field, v, max) in [
                ("tokenType", item.token_type.as_deref(), 64),
                ("providerSubject", item.provider_subject.as_deref(), 255),
            ] {
                if let Some(v) = v
                    && (v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control))
                {
                    return Err(ServiceError::invalid(
                        "invalid_request",
                        format!(
                            "tokens[{i}].{field} must be 1 to {max} characters without control characters"
                        ),
                    ));
                }
            }
            if item.access_token.is_empty() {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    format!("tokens[{i}].accessToken must not be empty"),
                ));
            }
            self.check_owner(
                &format!("tokens[{i}]."),
                item.user_id.as_deref(),
                item.tenant_id.as_deref(),
            )
            .await?;
            check_scopes_offered(&app, &item.scopes)?;
            let mut scopes = item.scopes.clone();
            dedup(&mut scopes);
            let key = ConnectionKey {
                app_id: app_id.to_owned(),
                user_id: item.user_id.clone(),
                tenant_id: item.tenant_id.clone(),
            };
            if !seen.insert(key.clone()) {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    format!("tokens[{i}] repeats the owner of an earlier token"),
                ));
            }
            let base = self.sealed_connection(
                ids::new_id("con", now),
                key,
                CredentialKind::OAuth,
                item.access_token.expose(),
                item.refresh_token.as_ref().map(SecretString::expose),
                granted_by,
                now,
            )?;
            records.push(ConnectionRecord {
                scopes,
                token_type: Some(item.token_type.clone().unwrap_or_else(|| "Bearer".into())),
                expires_at: item.expires_at,
                provider_subject: item.provider_subject.clone(),
                ..base
            });
        }
        let stored = self.stores.connections.put_connections(&records).await?;
        Ok(stored.iter().map(ConnectionInfo::from).collect())
    }
}
