//! Resource servers (MCP servers) that Portcullis, as an authorization server, issues tokens for.

use async_trait::async_trait;

use crate::table::{self, TableStore};
use crate::{PageRequest, ScopeDef, StoreError, Timestamp};

/// A resource server registered by an admin: the audience of the tokens issued for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRecord {
    /// Its id (a slug).
    pub id: String,
    /// Its canonical URI (RFC 8707 / RFC 9728 `resource`): unique.
    pub uri: String,
    /// A display name.
    pub name: String,
    /// What it is, for people (the consent screen).
    pub description: Option<String>,
    /// The scopes it offers, with descriptions.
    pub scopes: Vec<ScopeDef>,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// The resource servers. Kept the same way by every backend (a simple table): written here once
/// over the backend's [`TableStore`].
#[async_trait]
pub trait ResourceStore: TableStore + Send + Sync {
    /// Inserts a resource. `AlreadyExists` when the id or the URI is taken.
    async fn insert_resource(&self, r: &ResourceRecord) -> Result<(), StoreError> {
        table::insert(self, r).await
    }
    /// Reads one resource.
    async fn resource(&self, id: &str) -> Result<Option<ResourceRecord>, StoreError> {
        table::get(self, id).await
    }
    /// Lists resources by id.
    async fn resources(&self, page: &PageRequest) -> Result<Vec<ResourceRecord>, StoreError> {
        table::list(self, page).await
    }
    /// Replaces a resource. `NotFound`; `AlreadyExists` when the URI is another's.
    async fn update_resource(&self, r: &ResourceRecord) -> Result<(), StoreError> {
        table::update(self, r).await
    }
    /// Deletes a resource. `NotFound`.
    async fn delete_resource(&self, id: &str) -> Result<(), StoreError> {
        self.delete_row(<ResourceRecord as table::SimpleTable>::TABLE, id)
            .await
    }
}
