//! Why a token request got no token, typed from the policy engine to the wire.
//!
//! Every refusal is a [`Refusal`]; the codes inside it are enums here, each with its one wire
//! string (`as_str`, also its serde form and the audit record's reason) and, where the answer's
//! message is fixed, its message. The HTTP layer maps a refusal to its status and error shape
//! (the token endpoint's JSON errors, token exchange's OAuth errors); nothing matches on the
//! strings.

use portcullis_domain::AuditOutcome;
use portcullis_policy::Reason;
use serde::Serialize;
use serde_json::Value;

use crate::ServiceError;

/// Declares a code enum: its variants, their wire strings and messages, and `ALL`.
macro_rules! codes {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal, $message:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The wire string: the `reason` of answers and audit records.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $wire, )+
                }
            }

            /// What the answer says, for people.
            pub const fn message(self) -> &'static str {
                match self {
                    $( Self::$variant => $message, )+
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

codes! {
    /// Why the access control policies refused a request (`access_denied`, or
    /// `consent_required` when the app asks for re-consent).
    pub enum DenialReason {
        /// No enforcing policy of the app matches the caller.
        NoPolicyMatched => "no_policy_matched",
            "no access control policy of this app allows this user";
        /// Policies match, but together they do not grant every requested scope.
        ScopesNotAllowed => "scopes_not_allowed",
            "the access control policies do not allow every requested scope";
        /// The stored grant is broader than allowed and the provider cannot narrow a token.
        DownscopingUnsupported => "downscoping_unsupported",
            "the stored grant holds scopes the policies do not allow, and this provider cannot narrow a token; the user must connect again with fewer scopes";
    }
}

impl DenialReason {
    /// The reason of a policy decision that did not allow a request.
    pub fn of_decision(reason: Reason) -> Self {
        match reason {
            Reason::NoPolicyMatched => Self::NoPolicyMatched,
            // An allowing decision is never refused for its own sake; what can refuse it is the
            // scopes (a grant broader than allowed), so that is what it reports.
            Reason::ScopesNotAllowed | Reason::Open | Reason::Matched => Self::ScopesNotAllowed,
        }
    }
}

codes! {
    /// Why there is no usable connection (`not_connected`).
    pub enum NotConnectedReason {
        /// The user (or tenant) has not connected the app.
        NoConnection => "no_connection",
            "the user has not connected this app";
        /// The grant lacks a requested scope.
        MissingScopes => "missing_scopes",
            "the user's connection lacks a requested scope; connect again to grant it";
        /// The provider refused the grant (revoked, or consent withdrawn).
        ConsentRequiredByProvider => "consent_required_by_provider",
            "the provider no longer accepts the user's grant; the user must connect again";
        /// The access token expired and there is no refresh token.
        Expired => "expired",
            "the token expired and cannot be refreshed; the user must connect again";
    }
}

codes! {
    /// Why a request is outside the caller's rights (403, before any policy).
    pub enum ForbiddenReason {
        /// The directory user is disabled.
        UserDisabled => "user_disabled", "the user is disabled";
        /// The request names a tenant the caller is not a member of.
        NotATenantMember => "not_a_tenant_member", "the user is not a member of the tenant";
        /// Connecting for a tenant needs the app's tenant-admin role in it.
        NotATenantAdmin => "not_a_tenant_admin",
            "connecting an app for a tenant needs the app's tenant-admin role in it";
        /// A service refused the caller.
        Forbidden => "forbidden", "the request is not allowed";
    }
}

codes! {
    /// What is wrong with a malformed request (400).
    pub enum RequestProblem {
        /// A field is missing, too long or malformed.
        InvalidRequest => "invalid_request", "the request is malformed";
        /// A requested scope is not one the app offers (or an API-key app was asked for scopes).
        InvalidScope => "invalid_scope", "a requested scope is not offered by the app";
        /// A connect link was asked for an API-key app.
        NotAnOAuthApp => "not_an_oauth_app",
            "the app uses API keys: an admin stores them, no user connects it";
        /// A `returnUrl` the configuration does not allow.
        InvalidReturnUrl => "invalid_return_url",
            "returnUrl is not an allowed return URL";
    }
}

impl RequestProblem {
    /// The problem a service's validation error code names: one of the above, else a malformed
    /// request.
    pub fn of_code(code: &str) -> Self {
        Self::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == code)
            .unwrap_or(Self::InvalidRequest)
    }
}

/// Why a request did not get a token. Each variant is one distinct answer on the wire.
#[derive(Debug, Clone)]
pub enum Refusal {
    /// 401: the inbound token is missing or invalid.
    InvalidToken {
        /// `None` when no token was presented; else what failed, in the verifier's stable code
        /// (`expired`, `bad_signature`, ...).
        code: Option<&'static str>,
        /// Why, in words.
        message: String,
    },
    /// 403: the inbound token lacks the scope needed to fetch outbound tokens.
    InsufficientScope {
        /// The scope needed.
        scope: String,
    },
    /// 400: the request is malformed.
    InvalidRequest {
        /// What is wrong.
        problem: RequestProblem,
        /// Why, precisely.
        message: String,
    },
    /// 404: no such app.
    UnknownApp {
        /// The app asked for.
        app_id: String,
    },
    /// 403: the request is outside the user's rights (not a tenant member, disabled user).
    Forbidden {
        /// Why.
        reason: ForbiddenReason,
        /// Why, precisely.
        message: String,
    },
    /// 403 `access_denied`: the policies do not allow it.
    Denied {
        /// Why.
        reason: DenialReason,
        /// The story, as much of it as the app shows callers (its `denialDetail`).
        explanation: Box<Value>,
    },
    /// 403 `consent_required`: the policies do not allow it, and the app asks for re-consent.
    ConsentRequired {
        /// Why.
        reason: DenialReason,
        /// Where the user consents to what the policies allow.
        connect_url: String,
        /// The story, as much of it as the app shows callers.
        explanation: Box<Value>,
    },
    /// 404 `not_connected`: no usable connection, or the grant lacks a requested scope.
    NotConnected {
        /// Why.
        reason: NotConnectedReason,
        /// Where the user connects (absent for API-key apps: an admin provisions keys).
        connect_url: Option<String>,
        /// The requested scopes the grant lacks.
        missing_scopes: Vec<String>,
    },
    /// 429: the caller is over its rate limit.
    RateLimited {
        /// How long until a request would be allowed.
        retry_after: std::time::Duration,
    },
    /// 503: the provider or the database is unavailable.
    Unavailable {
        /// Why.
        message: String,
    },
    /// 500.
    Internal {
        /// Logged, not returned.
        message: String,
    },
}

/// The audit reason of a request without a token.
pub const MISSING_TOKEN: &str = "missing_token";

impl Refusal {
    /// A malformed request.
    pub fn invalid(problem: RequestProblem, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            problem,
            message: message.into(),
        }
    }

    /// How the audit log records it: its outcome and reason.
    pub fn audit_outcome(&self) -> (AuditOutcome, &'static str) {
        match self {
            Self::InvalidToken { code, .. } => {
                (AuditOutcome::InvalidToken, code.unwrap_or(MISSING_TOKEN))
            }
            Self::InsufficientScope { .. } => (AuditOutcome::InvalidToken, "insufficient_scope"),
            Self::InvalidRequest { problem, .. } => {
                (AuditOutcome::InvalidRequest, problem.as_str())
            }
            Self::UnknownApp { .. } => (AuditOutcome::InvalidRequest, "unknown_app"),
            Self::Forbidden { reason, .. } => (AuditOutcome::Denied, reason.as_str()),
            Self::Denied { reason, .. } => (AuditOutcome::Denied, reason.as_str()),
            Self::ConsentRequired { reason, .. } => {
                (AuditOutcome::ConsentRequired, reason.as_str())
            }
            Self::NotConnected { reason, .. } => (AuditOutcome::NotConnected, reason.as_str()),
            Self::RateLimited { .. } => (AuditOutcome::InvalidRequest, "rate_limited"),
            Self::Unavailable { .. } => (AuditOutcome::Error, "unavailable"),
            Self::Internal { .. } => (AuditOutcome::Error, "internal"),
        }
    }
}

impl From<ServiceError> for Refusal {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unavailable(message) => Self::Unavailable { message },
            ServiceError::NotFound { entity: "app", id } => Self::UnknownApp { app_id: id },
            ServiceError::Invalid { code, message, .. } => Self::InvalidRequest {
                problem: RequestProblem::of_code(code),
                message,
            },
            ServiceError::Forbidden(message) => Self::Forbidden {
                reason: ForbiddenReason::Forbidden,
                message,
            },
            other => Self::Internal {
                message: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn check<T: Copy + Serialize>(
        all: &[T],
        wire: fn(T) -> &'static str,
        text: fn(T) -> &'static str,
    ) {
        let mut seen = HashSet::new();
        for &v in all {
            let w = wire(v);
            assert!(
                !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{w} is not a snake_case code"
            );
            assert!(seen.insert(w), "{w} is used twice");
            assert_eq!(serde_json::to_value(v).unwrap(), Value::String(w.into()));
            let m = text(v);
            assert!(!m.is_empty() && !m.ends_with('.'), "{w}: {m:?}");
        }
    }

    /// Every code has its one wire string (its serde form too) and a message.
    #[test]
    fn every_code_has_its_wire_string_and_message() {
        check(
            DenialReason::ALL,
            DenialReason::as_str,
            DenialReason::message,
        );
        check(
            NotConnectedReason::ALL,
            NotConnectedReason::as_str,
            NotConnectedReason::message,
        );
        check(
            ForbiddenReason::ALL,
            ForbiddenReason::as_str,
            ForbiddenReason::message,
        );
        check(
            RequestProblem::ALL,
            RequestProblem::as_str,
            RequestProblem::message,
        );
        let wires: Vec<_> = DenialReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            wires,
            [
                "no_policy_matched",
                "scopes_not_allowed",
                "downscoping_unsupported"
            ]
        );
        let wires: Vec<_> = NotConnectedReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            wires,
            [
                "no_connection",
                "missing_scopes",
                "consent_required_by_provider",
                "expired"
            ]
        );
    }

    /// The policy engine's reasons map onto the denial reasons.
    #[test]
    fn policy_reasons_become_denial_reasons() {
        assert_eq!(
            DenialReason::of_decision(Reason::NoPolicyMatched),
            DenialReason::NoPolicyMatched
        );
        assert_eq!(
            DenialReason::of_decision(Reason::ScopesNotAllowed),
            DenialReason::ScopesNotAllowed
        );
    }

    /// A service's validation code is kept when it is a request problem.
    #[test]
    fn service_codes_become_request_problems() {
        for &p in RequestProblem::ALL {
            assert_eq!(RequestProblem::of_code(p.as_str()), p);
        }
        assert_eq!(
            RequestProblem::of_code("bad_name"),
            RequestProblem::InvalidRequest
        );
    }
}
