//! The audit log: one event per decision.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// How a token request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// The token was handed out.
    Allowed,
    /// The policies denied the request.
    Denied,
    /// The policies denied it and the app asks for re-consent.
    ConsentRequired,
    /// The user has no usable connection (or the grant lacks a scope).
    NotConnected,
    /// The inbound token was missing or invalid.
    InvalidToken,
    /// The request was malformed or named something unknown.
    InvalidRequest,
    /// The provider or the server failed.
    Error,
}

impl AuditOutcome {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::ConsentRequired => "consent_required",
            Self::NotConnected => "not_connected",
            Self::InvalidToken => "invalid_token",
            Self::InvalidRequest => "invalid_request",
            Self::Error => "error",
        }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "allowed" => Self::Allowed,
            "denied" => Self::Denied,
            "consent_required" => Self::ConsentRequired,
            "not_connected" => Self::NotConnected,
            "invalid_token" => Self::InvalidToken,
            "invalid_request" => Self::InvalidRequest,
            "error" => Self::Error,
            _ => return None,
        })
    }
}

/// One policy's verdict in a recorded decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyVerdict {
    /// The policy's id.
    pub id: String,
    /// Whether all its conditions held.
    pub matched: bool,
    /// Whether it was a shadow policy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
}

/// A recorded decision. Never holds a token value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Time-ordered id (`evt_…`); newer events sort after older ones.
    pub id: String,
    /// When the decision was made.
    pub at: Timestamp,
    /// Which surface decided: `token` (the token endpoint) or `token_exchange` (RFC 8693).
    pub action: String,
    /// The outbound app asked for.
    pub app_id: Option<String>,
    /// The user the inbound token names.
    pub user_id: Option<String>,
    /// The tenant of the request.
    pub tenant_id: Option<String>,
    /// The OAuth client (token exchange) or the inbound token's client (`azp`/`client_id`).
    pub client_id: Option<String>,
    /// The inbound token's issuer.
    pub issuer: Option<String>,
    /// The scopes asked for.
    pub requested_scopes: Vec<String>,
    /// The scopes handed out (empty unless allowed).
    pub granted_scopes: Vec<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Why, in a stable code (`no_policy_matched`, `expired`, ...).
    pub reason: Option<String>,
    /// The enforcing policies that matched.
    pub deciding_policies: Vec<String>,
    /// Every policy considered.
    pub considered_policies: Vec<PolicyVerdict>,
    /// What the decision would have been with the shadow policies enforcing (`allowed`/`denied`).
    pub shadow_outcome: Option<String>,
    /// Time spent deciding, in microseconds.
    pub latency_us: u64,
}

/// Filters for reading the audit log, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this app.
    pub app_id: Option<String>,
    /// Only this user.
    pub user_id: Option<String>,
    /// Only this tenant.
    pub tenant_id: Option<String>,
    /// Only this client.
    pub client_id: Option<String>,
    /// Only this outcome.
    pub outcome: Option<AuditOutcome>,
    /// Only events at or after this instant.
    pub since: Option<Timestamp>,
    /// Only events before this instant.
    pub until: Option<Timestamp>,
    /// Cursor: only events with an id lower than this one.
    pub before_id: Option<String>,
    /// At most this many events.
    pub limit: u32,
}
