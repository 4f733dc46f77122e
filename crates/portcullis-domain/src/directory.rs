//! The directory: users, roles and tenants.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Timestamp;

/// A user of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The user's id in the directory (chosen by the admin; never read from a token).
    pub id: String,
    /// The external identities that are this user: a token reaches the user only when its
    /// `(iss, sub)` is one of these. Each identity belongs to at most one user.
    pub identities: Vec<Identity>,
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

    /// What makes its email unique (emails are unique case-insensitively, and with no white space
    /// around them): what every backend stores under a unique index beside the email as given.
    pub fn email_key(&self) -> Option<String> {
        self.email.as_ref().map(|e| e.trim().to_lowercase())
    }

    /// Whether the user is a member of `tenant`.
    pub fn is_member_of(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|m| m.tenant_id == tenant)
    }
}

/// An identity at a trusted issuer: what a token names as `iss` and `sub`. A subject means
/// nothing without its issuer: two issuers may both have a subject `alice`, and they are two
/// different people.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Identity {
    /// The issuer's exact `iss` value.
    pub issuer: String,
    /// The subject's exact `sub` value at that issuer.
    pub subject: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_keyed_case_insensitively_without_surrounding_space() {
        let mut user = UserRecord {
            id: "u1".into(),
            identities: Vec::new(),
            email: Some("  Alice@Example.COM ".into()),
            name: None,
            roles: Vec::new(),
            tenants: Vec::new(),
            attributes: Map::new(),
            disabled: false,
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        };
        assert_eq!(user.email_key().as_deref(), Some("alice@example.com"));
        user.email = None;
        assert_eq!(user.email_key(), None);
    }
}
