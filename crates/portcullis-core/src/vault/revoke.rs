//! Revoking connections: at the provider when it can, and here always.

use super::*;

impl Core {
    /// Revokes one connection: at the provider when the app has a revocation endpoint (best
    /// effort), and here (always).
    pub async fn revoke_connection(&self, id: &str) -> Result<RevokeReport, ServiceError> {
        let conn = self
            .stores
            .connections
            .connection_by_id(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("connection", id))?;
        let (provider_revoked, provider_error) = self.revoke_at_provider(&conn).await;
        let gone = self
            .stores
            .connections
            .delete_connection(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("connection", id))?;
        self.forget_narrowed(&gone.id);
        Ok(RevokeReport {
            connection: ConnectionInfo::from(&gone),
            provider_revoked,
            provider_error,
        })
    }

    /// Revokes every connection of a user.
    pub async fn revoke_user_connections(
        &self,
        user_id: &str,
    ) -> Result<Vec<RevokeReport>, ServiceError> {
        let mut after = None;
        let mut all = Vec::new();
        loop {
            let page = self
                .stores
                .connections
                .connections_for_user(
                    user_id,
                    &portcullis_domain::PageRequest {
                        after: after.clone(),
                        limit: 200,
                    },
                )
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            all.extend(page);
        }
        let mut revoked = HashMap::new();
        for c in &all {
            revoked.insert(c.id.clone(), self.revoke_at_provider(c).await);
        }
        let gone = self
            .stores
            .connections
            .delete_user_connections(user_id)
            .await?;
        Ok(gone
            .iter()
            .map(|c| {
                self.forget_narrowed(&c.id);
                let (provider_revoked, provider_error) =
                    revoked.remove(&c.id).unwrap_or((false, None));
                RevokeReport {
                    connection: ConnectionInfo::from(c),
                    provider_revoked,
                    provider_error,
                }
            })
            .collect())
    }

    pub(super) async fn revoke_at_provider(
        &self,
        conn: &ConnectionRecord,
    ) -> (bool, Option<String>) {
        if conn.kind != CredentialKind::OAuth {
            return (false, None);
        }
        let Ok(Some(app)) = self.stores.apps.app(&conn.key.app_id).await else {
            return (false, Some("the app could not be read".into()));
        };
        if app.settings.revocation_url.is_none() {
            return (false, None);
        }
        let (field, hint, sealed) = match &conn.refresh {
            Some(r) => ("refresh", "refresh_token", r),
            None => ("access", "access_token", &conn.access),
        };
        let result = async {
            let token = self
                .sealer
                .open(sealed, &connection_aad(&conn.key, field))
                .await?;
            let secret = self.app_client_secret(&app).await?;
            self.provider
                .revoke(
                    &app,
                    secret.as_ref(),
                    &String::from_utf8_lossy(token.expose()),
                    hint,
                )
                .await
                .map_err(provider_service_error)
        }
        .await;
        match result {
            Ok(()) => (true, None),
            Err(e) => {
                tracing::warn!(connection = %conn.id, error = %e, "the provider did not confirm a revocation");
                (false, Some(e.to_string()))
            }
        }
    }

    pub(super) fn forget_narrowed(&self, connection_id: &str) {
        // Narrowed tokens are keyed by (connection, scopes); drop all of this connection's.
        let stale: Vec<(String, String)> = self
            .narrowed
            .iter()
            .filter(|(k, _)| k.0 == connection_id)
            .map(|(k, _)| k)
            .collect();
        for k in stale {
            self.narrowed.remove(&k);
        }
    }
}
