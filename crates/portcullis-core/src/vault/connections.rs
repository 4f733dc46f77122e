//! Connections as admins see them: connect links made for a user or tenant, reading and listing.

use super::*;

/// An admin's request for a connect link: a tenant's shared connection (or a named user's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminConnectRequest {
    /// The tenant whose shared connection this creates.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Or the user whose connection this creates (the link must be opened by that user).
    #[serde(default)]
    pub user_id: Option<String>,
    /// Scopes to ask for (default: the app's default scopes).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Where to send the browser afterwards.
    #[serde(default)]
    pub return_url: Option<String>,
}

impl Core {
    /// A connect link created by an admin (tenant connections are provisioned this way).
    pub async fn admin_connect(
        &self,
        app_id: &str,
        req: &AdminConnectRequest,
        admin: &crate::AdminIdentity,
    ) -> Result<String, ServiceError> {
        let app = self.require_app_of_kind(app_id, AppKind::OAuth).await?;
        let key = match (&req.user_id, &req.tenant_id) {
            (None, None) => {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    "name a tenantId (a tenant connection) or a userId",
                ));
            }
            (user, tenant) => ConnectionKey {
                app_id: app_id.to_owned(),
                user_id: user.clone(),
                tenant_id: tenant.clone(),
            },
        };
        self.check_owner("", key.user_id.as_deref(), key.tenant_id.as_deref())
            .await?;
        let mut scopes = req
            .scopes
            .clone()
            .unwrap_or_else(|| app.settings.default_scopes.clone());
        dedup(&mut scopes);
        check_scopes_offered(&app, &scopes)?;
        if let Some(r) = &req.return_url
            && !crate::urls::return_url_allowed(r, &self.settings)
        {
            return Err(ServiceError::invalid(
                "invalid_return_url",
                "returnUrl is not an allowed return URL (see allowed_return_urls in the configuration)",
            ));
        }
        self.consent_link(
            &app,
            key,
            scopes,
            req.return_url.clone(),
            &format!("admin:{}", admin.actor_id),
        )
        .await
    }

    /// One connection's metadata.
    pub async fn get_connection(&self, id: &str) -> Result<ConnectionInfo, ServiceError> {
        let c = self
            .stores
            .connections
            .connection_by_id(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("connection", id))?;
        Ok(ConnectionInfo::from(&c))
    }

    /// An app's connections.
    pub async fn list_app_connections(
        &self,
        app_id: &str,
        params: &crate::manage::ListParams,
    ) -> Result<crate::manage::Page<ConnectionInfo>, ServiceError> {
        self.require_app(app_id).await?;
        crate::manage::page_of(
            params,
            async |page| {
                self.stores
                    .connections
                    .connections_for_app(app_id, page)
                    .await
            },
            |c| c.id.clone(),
        )
        .await
    }

    /// A user's connections (the user need not be in the directory).
    pub async fn list_user_connections(
        &self,
        user_id: &str,
        params: &crate::manage::ListParams,
    ) -> Result<crate::manage::Page<ConnectionInfo>, ServiceError> {
        crate::manage::page_of(
            params,
            async |page| {
                self.stores
                    .connections
                    .connections_for_user(user_id, page)
                    .await
            },
            |c| c.id.clone(),
        )
        .await
    }
}
