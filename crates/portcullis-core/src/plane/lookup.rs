//! What a request reads, from memory when nothing changed: the app with its compiled
//! policies, the connection, the sealed credential opened.

use super::*;

impl Core {
    /// The app and its compiled policies (from memory when nothing changed).
    pub async fn app_snapshot(&self, id: &str) -> Result<Option<Arc<AppSnapshot>>, ServiceError> {
        let apps = self.stores.apps.clone();
        self.caches
            .apps
            .get_or_load(
                id,
                || id.to_owned(),
                || async move {
                    match apps.app_with_policies(id).await? {
                        None => Ok::<_, ServiceError>(None),
                        Some((app, policies)) => {
                            Ok(Some(Arc::new(AppSnapshot::compile(app, policies)?)))
                        }
                    }
                },
            )
            .await
    }

    /// A connection by key, from memory when nothing changed.
    pub(super) async fn cached_connection(
        &self,
        key: crate::cache::ConnectionKeyRef<'_>,
    ) -> Result<Option<Arc<ConnectionRecord>>, ServiceError> {
        let store = self.stores.connections.clone();
        self.caches
            .connections
            .get_or_load(
                &key,
                || key.to_owned_key(),
                || async move {
                    Ok::<_, ServiceError>(
                        store.connection(&key.to_owned_key()).await?.map(Arc::new),
                    )
                },
            )
            .await
    }

    /// Finds the credential for a request: the user's (within the tenant if one is named), else
    /// the tenant's shared one; for API-key apps, the user's own outside the tenant and finally
    /// the app-wide key.
    pub(super) async fn find_credential(
        &self,
        app: &AppRecord,
        user: &str,
        tenant: Option<&str>,
    ) -> Result<Option<Arc<ConnectionRecord>>, Refusal> {
        use crate::cache::ConnectionKeyRef as K;
        let app_id = app.id.as_str();
        let api_key = app.kind == AppKind::ApiKey;
        let candidates = [
            Some(K {
                app_id,
                user_id: Some(user),
                tenant_id: tenant,
            }),
            (api_key && tenant.is_some()).then_some(K {
                app_id,
                user_id: Some(user),
                tenant_id: None,
            }),
            tenant.map(|t| K {
                app_id,
                user_id: None,
                tenant_id: Some(t),
            }),
            api_key.then_some(K {
                app_id,
                user_id: None,
                tenant_id: None,
            }),
        ];
        for key in candidates.into_iter().flatten() {
            if let Some(c) = self.cached_connection(key).await? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    pub(super) async fn open_secret(
        &self,
        conn: &ConnectionRecord,
        field: &str,
    ) -> Result<SecretString, Refusal> {
        let aad = crate::vault::connection_aad(&conn.key, field);
        let sealed = if field == "refresh" {
            conn.refresh.as_ref().ok_or_else(|| Refusal::Internal {
                message: "the connection has no refresh token".into(),
            })?
        } else {
            &conn.access
        };
        let bytes = match self.sealer.open_cached(sealed, &aad) {
            Ok(b) => b,
            Err(_) => self.sealer.open(sealed, &aad).await?,
        };
        String::from_utf8(bytes.expose().to_vec())
            .map(SecretString::from)
            .map_err(|_| Refusal::Internal {
                message: "a stored credential is not UTF-8".into(),
            })
    }
}
