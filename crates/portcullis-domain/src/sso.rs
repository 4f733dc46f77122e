//! Single sign-on connections: upstream OpenID Connect providers (Entra ID, Okta, Google...)
//! that users sign in to Portcullis with, and the rules that turn their claims into Portcullis
//! roles and tenant memberships at every sign-in.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::table::{self, TableStore};
use crate::{Ciphertext, PageRequest, StoreError, Timestamp};

/// An upstream OpenID provider registered by an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoConnectionRecord {
    /// Its id (a slug).
    pub id: String,
    /// What the sign-in page's button says ("Sign in with {name}").
    pub name: String,
    /// The provider's exact issuer: discovery is read at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// Portcullis's client id at the provider.
    pub client_id: String,
    /// Portcullis's client secret at the provider, sealed (none: a public client with PKCE).
    pub client_secret: Option<Ciphertext>,
    /// How users are signed in and what their claims become.
    pub settings: SsoSettings,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// An SSO connection's settings (stored as one JSON document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SsoSettings {
    /// The scopes asked for (`openid` always among them).
    pub scopes: Vec<String>,
    /// Whether a first sign-in creates the directory user (just-in-time provisioning). Without
    /// it, only identities an admin linked to a user can sign in.
    pub provision: bool,
    /// The rules mapping the id_token's claims to roles and tenants.
    pub mappings: Vec<ClaimMapping>,
    /// The id_token claims copied to the user at every sign-in (`department`, `employee_id`...),
    /// which Portcullis's access tokens then carry for policies' `jwtClaims` conditions.
    #[serde(default)]
    pub claims: Vec<String>,
}

/// One rule: when the claim holds the value (equals it, or an array holding it), the user holds
/// the roles — across the deployment, or in the tenant (and is its member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimMapping {
    /// The claim: a top-level name (`groups`, `roles`) or a dotted path.
    pub claim: String,
    /// The value it must hold (a group's object id, a role's name).
    pub value: String,
    /// The roles it gives.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The tenant the roles are held in (and the user a member of); none: deployment-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl SsoSettings {
    /// The deployment-wide roles some rule names: the roles this connection manages.
    pub fn managed_roles(&self) -> impl Iterator<Item = &str> {
        self.mappings
            .iter()
            .filter(|m| m.tenant.is_none())
            .flat_map(|m| m.roles.iter().map(String::as_str))
    }

    /// The tenants some rule names: their memberships are this connection's to manage.
    pub fn managed_tenants(&self) -> impl Iterator<Item = &str> {
        self.mappings.iter().filter_map(|m| m.tenant.as_deref())
    }
}

/// The SSO connections. Kept the same way by every backend (a simple table).
#[async_trait]
pub trait SsoStore: TableStore + Send + Sync {
    /// Inserts a connection. `AlreadyExists`.
    async fn insert_sso_connection(&self, r: &SsoConnectionRecord) -> Result<(), StoreError> {
        table::insert(self, r).await
    }
    /// Reads one connection.
    async fn sso_connection(&self, id: &str) -> Result<Option<SsoConnectionRecord>, StoreError> {
        table::get(self, id).await
    }
    /// Lists connections by id.
    async fn sso_connections(
        &self,
        page: &PageRequest,
    ) -> Result<Vec<SsoConnectionRecord>, StoreError> {
        table::list(self, page).await
    }
    /// Replaces a connection. `NotFound`.
    async fn update_sso_connection(&self, r: &SsoConnectionRecord) -> Result<(), StoreError> {
        table::update(self, r).await
    }
    /// Deletes a connection. `NotFound`.
    async fn delete_sso_connection(&self, id: &str) -> Result<(), StoreError> {
        self.delete_row(<SsoConnectionRecord as table::SimpleTable>::TABLE, id)
            .await
    }
}
