//! Remembered consents, as admins see and revoke them: revoking a user's consent to a client also
//! revokes the refresh tokens that client holds for the user.

use portcullis_domain::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{Core, ServiceError};

/// A user's new password.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordInput {
    /// 8 to 256 characters.
    pub password: String,
}

/// A consent a user gave.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentView {
    /// The client.
    pub client_id: String,
    /// The resource's URI.
    pub resource: String,
    /// The scopes consented to.
    pub scopes: Vec<String>,
    /// When first given.
    pub created_at: Timestamp,
    /// When last widened.
    pub updated_at: Timestamp,
}

/// A user's consents.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentList {
    /// By client, then resource.
    pub items: Vec<ConsentView>,
}

impl Core {
    async fn existing_user(&self, user_id: &str) -> Result<(), ServiceError> {
        match self.stores.directory.user(user_id).await? {
            Some(_) => Ok(()),
            None => Err(ServiceError::not_found("user", user_id)),
        }
    }

    /// A user's remembered consents.
    pub async fn list_consents(&self, user_id: &str) -> Result<ConsentList, ServiceError> {
        self.existing_user(user_id).await?;
        let items = self
            .stores
            .grants
            .consents(user_id)
            .await?
            .into_iter()
            .map(|c| ConsentView {
                client_id: c.client_id,
                resource: c.resource,
                scopes: c.scopes,
                created_at: c.created_at,
                updated_at: c.updated_at,
            })
            .collect();
        Ok(ConsentList { items })
    }

    /// Forgets a user's consents to one client (or to all) and revokes the refresh tokens of
    /// those grants: the next authorization asks again.
    pub async fn revoke_consents(
        &self,
        user_id: &str,
        client_id: Option<&str>,
    ) -> Result<(), ServiceError> {
        self.existing_user(user_id).await?;
        self.stores
            .grants
            .delete_consents(user_id, client_id)
            .await?;
        self.stores
            .grants
            .revoke_user_grants(user_id, client_id, self.clock.now())
            .await?;
        Ok(())
    }
}
