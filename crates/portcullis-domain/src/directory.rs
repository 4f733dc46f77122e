//! The directory: users, roles and tenants.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Timestamp;

/// A user of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The user's id: for users of an external issuer, their `sub`.
    pub id: String,
    /// Email address, unique (case-insensitive) when present.
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Roles held across the whole deployment.
    pub roles: Vec<String>,
    /// Tenants the user belongs to, with the roles they hold in each.
    pub tenants: Vec<TenantMembership>,
    /// Free-form attributes.
    pub attributes: Map<String, Value>,
    /// A disabled user gets no outbound token.
    pub disabled: bool,
    /// When the user was created.
    pub created_at: Timestamp,
    /// When the user last changed.
    pub updated_at: Timestamp,
}

impl UserRecord {
    /// The roles that count for a request: the user's own, plus those held in `tenant`.
    pub fn effective_roles(&self, tenant: Option<&str>) -> Vec<String> {
        let mut roles = self.roles.clone();
        if let Some(t) = tenant
            && let Some(m) = self.tenants.iter().find(|m| m.tenant_id == t)
        {
            for r in &m.roles {
                if !roles.contains(r) {
                    roles.push(r.clone());
                }
            }
        }
        roles
    }

    /// Whether the user is a member of `tenant`.
    pub fn is_member_of(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|m| m.tenant_id == tenant)
    }
}

/// A user's membership in a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantMembership {
    /// The tenant.
    pub tenant_id: String,
    /// Roles held within it.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// A role that users can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The role's name (its id).
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// When the role was created.
    pub created_at: Timestamp,
    /// When the role last changed.
    pub updated_at: Timestamp,
}

/// A tenant (an organization, a customer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    /// The tenant's id (a slug).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Free-form attributes.
    pub attributes: Map<String, Value>,
    /// When the tenant was created.
    pub created_at: Timestamp,
    /// When the tenant last changed.
    pub updated_at: Timestamp,
}
