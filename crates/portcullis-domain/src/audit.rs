//! The audit log: one event per decision.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// What the policies read and allowed, when they decided: what a draft policy set is
    /// replayed against. `None` when the request was refused before the policies ran.
    pub inputs: Option<DecisionInputs>,
}

/// What the policies read for one decision — the user's roles and the inbound token's claims —
/// and what they allowed of the requested scopes. Claims configured never to be stored are left
/// out; past [`MAX_INPUT_CLAIMS_BYTES`] the remaining claims are too, and `truncated` says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionInputs {
    /// The user's roles the policies saw (in the request's tenant, if any).
    pub roles: Vec<String>,
    /// The inbound token's claims, as kept.
    pub claims: Map<String, Value>,
    /// Whether claims were left out for size: replaying this decision may be inexact.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// Whether the policies allowed the request.
    pub allowed: bool,
    /// The requested scopes the request got (none when denied).
    pub scopes: Vec<String>,
}

/// The most bytes of claims (as JSON) an event keeps.
pub const MAX_INPUT_CLAIMS_BYTES: usize = 4096;

impl DecisionInputs {
    /// Captures the inputs of a decision: `roles` and `claims` minus `never_store`, claims kept
    /// in name order while their JSON fits [`MAX_INPUT_CLAIMS_BYTES`].
    pub fn capture(
        roles: &[String],
        claims: &Map<String, Value>,
        never_store: &[String],
        allowed: bool,
        scopes: Vec<String>,
    ) -> Self {
        let mut kept = Map::new();
        let mut size = 2usize;
        let mut truncated = false;
        for (name, value) in claims {
            if never_store.iter().any(|n| n == name) {
                continue;
            }
            // `"name":value,` — the value's JSON length, without building it twice.
            let weight =
                name.len() + 4 + serde_json::to_string(value).map_or(usize::MAX, |v| v.len());
            if size.saturating_add(weight) > MAX_INPUT_CLAIMS_BYTES {
                truncated = true;
                continue;
            }
            size += weight;
            kept.insert(name.clone(), value.clone());
        }
        let mut roles = roles.to_vec();
        cap_list(&mut roles);
        Self {
            roles,
            claims: kept,
            truncated,
            allowed,
            scopes,
        }
    }
}

/// A recorded decision as a replay reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedDecision {
    /// The event's id.
    pub id: String,
    /// The user.
    pub user_id: Option<String>,
    /// The scopes asked for.
    pub requested_scopes: Vec<String>,
    /// What the policies read and allowed.
    pub inputs: DecisionInputs,
}

/// The longest string an audit field keeps, in characters; longer values are cut.
pub const MAX_AUDIT_FIELD: usize = 256;
/// The most scopes (or policies) an audit list keeps.
pub const MAX_AUDIT_LIST: usize = 256;

fn cap_string(s: &mut String) {
    if let Some((cut, _)) = s.char_indices().nth(MAX_AUDIT_FIELD) {
        s.truncate(cut);
    }
}

fn cap_list(v: &mut Vec<String>) {
    v.truncate(MAX_AUDIT_LIST);
    v.iter_mut().for_each(cap_string);
}

impl AuditEvent {
    /// Cuts every field to its bound ([`MAX_AUDIT_FIELD`] characters, [`MAX_AUDIT_LIST`] entries),
    /// so that no event is larger than a known size whatever a request carried.
    pub fn cap(&mut self) {
        cap_string(&mut self.action);
        for f in [
            &mut self.app_id,
            &mut self.user_id,
            &mut self.tenant_id,
            &mut self.client_id,
            &mut self.issuer,
            &mut self.reason,
            &mut self.shadow_outcome,
        ]
        .into_iter()
        .flatten()
        {
            cap_string(f);
        }
        cap_list(&mut self.requested_scopes);
        cap_list(&mut self.granted_scopes);
        cap_list(&mut self.deciding_policies);
        self.considered_policies.truncate(MAX_AUDIT_LIST);
        for v in &mut self.considered_policies {
            cap_string(&mut v.id);
        }
        if let Some(i) = &mut self.inputs {
            cap_list(&mut i.roles);
            cap_list(&mut i.scopes);
        }
    }
}

/// Requests refused before a decision — the caller unauthenticated, the request malformed, or
/// over a rate limit — counted per minute, surface and reason instead of recorded one by one, so
/// that nobody can grow the audit log without holding a valid token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedCount {
    /// The start of the minute.
    pub minute: Timestamp,
    /// Where: `token`, `token_exchange`, `connect`, `oauth`.
    pub surface: String,
    /// Why, in a stable code (`missing_token`, `expired`, `invalid_request`, `rate_limited`...).
    pub reason: String,
    /// How many requests.
    pub count: u64,
}

/// One group of an audit summary: how many decisions one app (or none: refused before an app
/// was known) had with one outcome in one time bucket, and their latency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSummaryRow {
    /// The bucket: its index from the window's start (`(at - since) / bucket`).
    pub bucket: u32,
    /// The app, when the decision named one.
    pub app_id: Option<String>,
    /// The outcome.
    pub outcome: AuditOutcome,
    /// How many decisions.
    pub count: u64,
    /// The sum of their latencies, in microseconds.
    pub latency_sum_us: u64,
    /// The longest of their latencies, in microseconds.
    pub latency_max_us: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_bounds_every_field() {
        let long = "é".repeat(10_000);
        let mut e = AuditEvent {
            id: "evt_1".into(),
            at: Timestamp::from_millis(0),
            action: long.clone(),
            app_id: Some(long.clone()),
            user_id: Some(long.clone()),
            tenant_id: Some(long.clone()),
            client_id: Some(long.clone()),
            issuer: Some(long.clone()),
            requested_scopes: vec![long.clone(); 1000],
            granted_scopes: vec![long.clone(); 1000],
            outcome: AuditOutcome::Denied,
            reason: Some(long.clone()),
            deciding_policies: vec![long.clone(); 1000],
            considered_policies: vec![
                PolicyVerdict {
                    id: long.clone(),
                    matched: false,
                    shadow: false
                };
                1000
            ],
            shadow_outcome: Some(long.clone()),
            latency_us: 0,
            inputs: Some(DecisionInputs {
                roles: vec![long.clone(); 1000],
                claims: Map::new(),
                truncated: false,
                allowed: false,
                scopes: vec![long; 1000],
            }),
        };
        e.cap();
        let size = serde_json::to_vec(&e).unwrap().len();
        assert_eq!(e.tenant_id.as_deref().map(|s| s.chars().count()), Some(256));
        assert_eq!(e.requested_scopes.len(), 256);
        assert!(size < 4 * 1024 * 1024, "{size}");
    }

    #[test]
    fn inputs_keep_claims_within_their_bound_and_never_the_excluded_ones() {
        let mut claims = Map::new();
        claims.insert("email".into(), Value::from("vera@example.com"));
        claims.insert("a_small".into(), Value::from(1));
        claims.insert(
            "b_big".into(),
            Value::from("x".repeat(MAX_INPUT_CLAIMS_BYTES)),
        );
        claims.insert("c_after".into(), Value::from(["eng", "ops"].as_slice()));
        let roles = ["Viewer".to_owned()];
        let i = DecisionInputs::capture(&roles, &claims, &["email".to_owned()], true, vec![]);
        assert_eq!(i.roles, roles);
        assert!(i.truncated);
        // Past the one that does not fit, the others are still kept.
        assert_eq!(
            i.claims.keys().map(String::as_str).collect::<Vec<_>>(),
            ["a_small", "c_after"]
        );
        assert!(serde_json::to_vec(&i.claims).unwrap().len() <= MAX_INPUT_CLAIMS_BYTES);
        claims.remove("b_big");
        let i = DecisionInputs::capture(&roles, &claims, &[], true, vec![]);
        assert!(!i.truncated);
        assert_eq!(i.claims, claims);
    }
}
