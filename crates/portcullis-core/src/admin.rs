//! Admin API keys: authentication of management calls, creation (the key is shown once), the
//! bootstrap key of a fresh deployment.

use portcullis_crypto::{SecretString, constant_time_eq, random_token, sha256};
use portcullis_domain::{AdminKeyRecord, PageRequest, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{Core, ServiceError, ids};

/// What an admin key may do. Each management operation needs one scope; `admin` holds them all
/// and is the only one that manages admin keys. Reading an area (a `GET`) needs `read` or that
/// area's own scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AdminScope {
    /// Every `GET` of the management API (no secret is ever readable).
    Read,
    /// Outbound apps: create, change, delete.
    Apps,
    /// Access control policies: create, change, delete; the simulator.
    Policies,
    /// Connections: API keys, token import, admin connect links, revoke, force refresh.
    Vault,
    /// Users, roles, tenants and identity links.
    Directory,
    /// Trusted inbound issuers.
    Issuers,
    /// OAuth clients and their secrets.
    Clients,
    /// The audit log and its export.
    Audit,
    /// Data-key rotation.
    Keys,
    /// Everything, and managing admin keys.
    Admin,
}

impl AdminScope {
    /// Every scope, in the order of the documentation.
    pub const ALL: [Self; 10] = [
        Self::Read,
        Self::Apps,
        Self::Policies,
        Self::Vault,
        Self::Directory,
        Self::Issuers,
        Self::Clients,
        Self::Audit,
        Self::Keys,
        Self::Admin,
    ];

    /// The wire and storage name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Apps => "apps",
            Self::Policies => "policies",
            Self::Vault => "vault",
            Self::Directory => "directory",
            Self::Issuers => "issuers",
            Self::Clients => "clients",
            Self::Audit => "audit",
            Self::Keys => "keys",
            Self::Admin => "admin",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The admin a management call runs as: an admin key, or a directory user signed in to the
/// console with an admin role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminIdentity {
    /// Who acts, as the management audit records it: the key's id (`ak_...`), or `user:{id}`
    /// for a user signed in to the console.
    pub actor_id: String,
    /// The key's name, or the user's name (their id when they have none).
    pub name: String,
    /// What the key or user may do.
    pub scopes: Vec<AdminScope>,
    /// The request this identity acts in (set by the HTTP layer), recorded with its changes.
    pub request_id: Option<String>,
}

impl AdminIdentity {
    /// Whether the key may do what `needed` covers (`admin` covers everything).
    pub fn allows(&self, needed: AdminScope) -> bool {
        self.scopes
            .iter()
            .any(|s| *s == needed || *s == AdminScope::Admin)
    }

    /// Refuses (403 `insufficient_scope`, naming the scope) unless the key holds `needed`.
    pub fn require(&self, needed: AdminScope) -> Result<(), ServiceError> {
        if self.allows(needed) {
            Ok(())
        } else {
            Err(ServiceError::MissingScope(needed.as_str()))
        }
    }

    /// Refuses unless the key may read `area`: `read`, or the area's own scope.
    pub fn require_read(&self, area: AdminScope) -> Result<(), ServiceError> {
        if self.allows(AdminScope::Read) || self.allows(area) {
            Ok(())
        } else {
            Err(ServiceError::MissingScope(AdminScope::Read.as_str()))
        }
    }
}

/// An admin key's metadata (never its secret).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdminKeyInfo {
    /// The key's id (not the key itself).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// When the key was created.
    pub created_at: Timestamp,
    /// When the key stops working (never, when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// What the key may do.
    pub scopes: Vec<AdminScope>,
}

/// The scopes of a stored key; a name this build does not know grants nothing (fail closed).
pub(crate) fn scopes_of(k: &AdminKeyRecord) -> Vec<AdminScope> {
    k.scopes
        .iter()
        .filter_map(|s| AdminScope::parse(s))
        .collect()
}

impl From<&AdminKeyRecord> for AdminKeyInfo {
    fn from(k: &AdminKeyRecord) -> Self {
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            created_at: k.created_at,
            expires_at: k.expires_at,
            scopes: scopes_of(k),
        }
    }
}

/// A key just created: the secret is in this answer and nowhere else, ever.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAdminKey {
    /// Its metadata.
    #[serde(flatten)]
    pub info: AdminKeyInfo,
    /// The key. Store it now: only its hash is kept.
    #[serde(serialize_with = "crate::manage::expose")]
    pub key: SecretString,
}

/// A request for a new admin key.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminKeyInput {
    /// What the key is for, 1 to 128 characters.
    pub name: String,
    /// What the key may do: one or more scopes (give each key the least it needs).
    pub scopes: Vec<AdminScope>,
    /// When it stops working (RFC 3339); never when absent.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
}

const KEY_PREFIX: &str = "pca_";

impl Core {
    /// Authenticates a management call by its admin key.
    pub async fn authenticate_admin(
        &self,
        bearer: Option<&str>,
    ) -> Result<AdminIdentity, ServiceError> {
        let Some(key) = bearer.filter(|k| !k.is_empty() && k.len() <= 512) else {
            return Err(ServiceError::Unauthorized(
                "an admin key is required (Authorization: Bearer <admin key>)".into(),
            ));
        };
        let hash = sha256(key.as_bytes());
        // While the change feed is down a revocation may not have been heard of: read the store.
        let live = self.stores.changes.is_live();
        let record = match self.admin_keys.get(&hash).filter(|_| live) {
            Some(r) => r,
            None => {
                let r = self.stores.admin_keys.admin_key_by_hash(&hash).await?;
                if live && r.is_some() {
                    self.admin_keys.insert(hash, r.clone());
                }
                r
            }
        };
        let wrong = || ServiceError::Unauthorized("the admin key is not valid".into());
        let record = record.ok_or_else(wrong)?;
        if !constant_time_eq(&record.secret_hash, &hash) {
            return Err(wrong());
        }
        if record.expires_at.is_some_and(|e| e <= self.clock.now()) {
            return Err(ServiceError::Unauthorized(
                "the admin key has expired".into(),
            ));
        }
        Ok(AdminIdentity {
            request_id: None,
            scopes: scopes_of(&record),
            actor_id: record.id,
            name: record.name,
        })
    }

    /// Creates an admin key.
    pub async fn create_admin_key(
        &self,
        input: &AdminKeyInput,
    ) -> Result<NewAdminKey, ServiceError> {
        crate::manage::check_name("name", &input.name)?;
        if input.scopes.is_empty() {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "scopes",
                "scopes must name at least one scope",
            ));
        }
        let mut scopes = input.scopes.clone();
        scopes.sort();
        scopes.dedup();
        let now = self.clock.now();
        if input.expires_at.is_some_and(|e| e <= now) {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "expiresAt",
                "expiresAt must be in the future",
            ));
        }
        let key = SecretString::from(format!("{KEY_PREFIX}{}", random_token(32)));
        let record = AdminKeyRecord {
            id: ids::new_id("ak", now),
            name: input.name.trim().to_owned(),
            secret_hash: sha256(key.expose().as_bytes()),
            created_at: now,
            expires_at: input.expires_at,
            scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
        };
        self.stores.admin_keys.insert_admin_key(&record).await?;
        Ok(NewAdminKey {
            info: AdminKeyInfo::from(&record),
            key,
        })
    }

    /// Lists admin keys.
    pub async fn list_admin_keys(
        &self,
        page: &PageRequest,
    ) -> Result<Vec<AdminKeyInfo>, ServiceError> {
        Ok(self
            .stores
            .admin_keys
            .admin_keys(page)
            .await?
            .iter()
            .map(AdminKeyInfo::from)
            .collect())
    }

    /// Deletes an admin key (it stops working on every node at once).
    pub async fn delete_admin_key(&self, id: &str) -> Result<(), ServiceError> {
        self.stores
            .admin_keys
            .delete_admin_key(id)
            .await
            .map_err(|e| crate::manage::not_found(e, "admin key", id))
    }

    /// On a database with no admin key, creates the bootstrap key: `preset` when given (automation),
    /// a random one otherwise. Returns the key when a random one was created (to print once).
    /// Several nodes starting at once create exactly one.
    pub async fn bootstrap_admin_key(
        &self,
        preset: Option<&SecretString>,
    ) -> Result<Option<SecretString>, ServiceError> {
        if let Some(p) = preset
            && p.len() < 32
        {
            return Err(ServiceError::invalid(
                "weak_bootstrap_key",
                "PORTCULLIS_BOOTSTRAP_ADMIN_KEY must be at least 32 characters",
            ));
        }
        let key = preset
            .cloned()
            .unwrap_or_else(|| SecretString::from(format!("{KEY_PREFIX}{}", random_token(32))));
        let now = self.clock.now();
        let record = AdminKeyRecord {
            id: ids::new_id("ak", now),
            name: "bootstrap".into(),
            secret_hash: sha256(key.expose().as_bytes()),
            created_at: now,
            expires_at: None,
            scopes: vec![AdminScope::Admin.as_str().to_owned()],
        };
        let created = self
            .stores
            .admin_keys
            .insert_first_admin_key(&record)
            .await?;
        Ok((created && preset.is_none()).then_some(key))
    }
}
