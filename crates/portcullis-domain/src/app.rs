//! Outbound apps (third-party providers) and their access control policies.

use std::collections::BTreeMap;

use portcullis_policy::PolicyDocument;
use serde::{Deserialize, Serialize};

use crate::{Ciphertext, Timestamp};

/// How an outbound app hands out credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AppKind {
    /// An OAuth 2.0 provider: users connect through a consent flow; tokens are refreshed.
    #[serde(rename = "oauth")]
    OAuth,
    /// A static API key per user, per tenant, or for the whole app.
    ApiKey,
}

impl AppKind {
    /// The wire name (`oauth`, `apiKey`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OAuth => "oauth",
            Self::ApiKey => "apiKey",
        }
    }

    /// Parses the wire name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "oauth" => Some(Self::OAuth),
            "apiKey" => Some(Self::ApiKey),
            _ => None,
        }
    }
}

/// What a request that the policies do not allow gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnDeny {
    /// A 403 `access_denied` with the decision's explanation.
    #[default]
    Forbid,
    /// A 403 `consent_required` with a connect URL asking the provider for what the policies allow.
    Reconsent,
}

/// How much of a denial's explanation a caller (an MCP server, and through it the user) is shown.
/// Administrators always see everything in the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DenialDetail {
    /// The whole explanation: every policy, each failing condition with its expected value and
    /// what was seen.
    Full,
    /// The policies considered, and each failing condition's source, claim and operator, without
    /// the expected value or what was seen.
    #[default]
    Policies,
    /// Only the outcome, the reason, and the scopes asked for and refused.
    Reason,
}

/// How Portcullis authenticates to a provider's token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// HTTP Basic with the client id and secret.
    #[default]
    ClientSecretBasic,
    /// The client id and secret in the form body.
    ClientSecretPost,
    /// Only `client_id` in the body (public client, PKCE).
    None,
}

/// A scope an app offers, with a description shown on consent and in the console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScopeDef {
    /// The provider's scope string, e.g. `https://www.googleapis.com/auth/calendar.readonly`.
    pub name: String,
    /// What the scope grants, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The non-secret settings of an outbound app (stored as one JSON document).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OAuthSettings {
    /// The OAuth client id registered with the provider.
    pub client_id: Option<String>,
    /// The provider's authorization endpoint.
    pub authorization_url: Option<String>,
    /// The provider's token endpoint.
    pub token_url: Option<String>,
    /// The provider's token revocation endpoint (RFC 7009), when it has one.
    pub revocation_url: Option<String>,
    /// An OpenID Connect userinfo endpoint, read once at connect time for the provider's subject.
    pub userinfo_url: Option<String>,
    /// The scopes the app offers; policies may only name these.
    pub scopes: Vec<ScopeDef>,
    /// Scopes asked for when a connect request names none.
    pub default_scopes: Vec<String>,
    /// Whether the authorization request uses PKCE (S256).
    pub pkce: bool,
    /// Extra parameters added to the authorization request (e.g. `access_type=offline`).
    pub authorization_params: BTreeMap<String, String>,
    /// Whether the provider honours a narrower `scope` on a refresh request (RFC 6749 §6), which
    /// lets Portcullis hand out a token downscoped to what the policies allow.
    pub narrow_scopes_on_refresh: bool,
    /// How Portcullis authenticates at the token endpoint.
    pub token_endpoint_auth_method: ClientAuthMethod,
    /// What a denied request gets.
    pub on_deny: OnDeny,
    /// How much of a denial's explanation callers see.
    pub denial_detail: DenialDetail,
    /// The provider's issuer identifier (RFC 9207): when set, the provider's redirect back must
    /// carry it as `iss`.
    pub issuer: Option<String>,
    /// Whether the provider redirects to the shared callback (`/v1/outbound/callback`, apps made
    /// before each app had its own) rather than the app's `/v1/outbound/callback/{appId}`. A
    /// response is accepted only at the callback its connect link named (mix-up defence, RFC 9700
    /// §4.4).
    #[serde(default = "stored_before_per_app_callbacks")]
    pub shared_callback: bool,
}

/// Apps stored before per-app callbacks keep the shared one their providers know.
fn stored_before_per_app_callbacks() -> bool {
    true
}

impl OAuthSettings {
    /// The names of the scopes the app offers.
    pub fn scope_names(&self) -> Vec<String> {
        self.scopes.iter().map(|s| s.name.clone()).collect()
    }
}

/// An outbound app as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    /// Immutable slug, e.g. `google-calendar`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// OAuth or API key.
    pub kind: AppKind,
    /// Everything else that is not secret.
    pub settings: OAuthSettings,
    /// The OAuth client secret, sealed.
    pub client_secret: Option<Ciphertext>,
    /// Bumped by every change to the app or to one of its policies (optimistic concurrency).
    pub revision: i64,
    /// When the app was created.
    pub created_at: Timestamp,
    /// When the app or one of its policies last changed.
    pub updated_at: Timestamp,
}

/// An access control policy of one outbound app, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRecord {
    /// Server-assigned id (`pol_…`).
    pub id: String,
    /// The app the policy belongs to.
    pub app_id: String,
    /// The policy itself.
    pub document: PolicyDocument,
    /// When the policy was created.
    pub created_at: Timestamp,
    /// When the policy last changed.
    pub updated_at: Timestamp,
}

/// Checks an id chosen by a user (apps, tenants, roles...): 1–64 characters of `a-z`, `A-Z`,
/// `0-9`, `-`, `_`, `.`, starting with a letter or digit.
pub fn validate_slug(id: &str) -> Result<(), &'static str> {
    let mut chars = id.chars();
    match chars.next() {
        None => return Err("must not be empty"),
        Some(c) if !c.is_ascii_alphanumeric() => return Err("must start with a letter or digit"),
        Some(_) => {}
    }
    if id.len() > 64 {
        return Err("must be at most 64 characters");
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err("may only contain letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(validate_slug("google-calendar").is_ok());
        assert!(validate_slug("a").is_ok());
        assert!(validate_slug("").is_err());
        assert!(validate_slug("-x").is_err());
        assert!(validate_slug("a b").is_err());
        assert!(validate_slug("a/b").is_err());
        assert!(validate_slug(&"a".repeat(65)).is_err());
    }
}
