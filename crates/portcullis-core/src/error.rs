//! The error services return. The HTTP layer maps each variant to one status and keeps `code`
//! stable; `Internal` details are logged, never shown.

use portcullis_domain::StoreError;
use serde_json::{Value, json};

/// Why a service call failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is malformed or breaks a rule (400).
    #[error("{message}")]
    Invalid {
        /// Stable machine-readable code.
        code: &'static str,
        /// What is wrong, in a sentence.
        message: String,
        /// Structured details: a list of `{path, message}` problems when the error is about a
        /// part of the request body (policy validation errors add a `code` to each).
        details: Option<Value>,
    },
    /// The thing named does not exist (404).
    #[error("{entity} {id} not found")]
    NotFound {
        /// What was looked for.
        entity: &'static str,
        /// Its id.
        id: String,
    },
    /// An id or a unique value is taken (409 `already_exists`; `details.entity` says which:
    /// `user`, `user email`, `user identity`, `app`...).
    #[error("{entity} already exists")]
    AlreadyExists {
        /// What collided.
        entity: &'static str,
    },
    /// The request conflicts with the current state (409).
    #[error("{message}")]
    Conflict {
        /// Stable machine-readable code.
        code: &'static str,
        /// What conflicts.
        message: String,
    },
    /// The request names an entity that does not exist — a role, a tenant, an app (409: the same
    /// request succeeds once it exists).
    #[error("{entity} {id} does not exist")]
    UnknownReference {
        /// What kind of entity.
        entity: &'static str,
        /// Its id (empty when the store cannot tell which).
        id: String,
    },
    /// Missing or invalid credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials that do not allow this (403).
    #[error("{0}")]
    Forbidden(String),
    /// An admin key without the scope the operation needs (403 `insufficient_scope`).
    #[error("this operation needs an admin key with the scope {0}")]
    MissingScope(&'static str),
    /// A dependency (database, provider) is unavailable (503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure (500); the message is logged, not returned.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// A 400 with a code and a message.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// A 400 about one part of the request body: `details` lists the one problem as
    /// `[{"path": path, "message": message}]`, the shape of the policy validation errors, so that
    /// a client can tell which field to fix without reading the message. `path` is the JSON path
    /// of the offending part as it is written on the wire: camelCase field names, list indexes in
    /// brackets (`scopes[3].name`, `redirectUris[0]`, `mappings[2].claim`).
    pub fn invalid_at(
        code: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let message = message.into();
        Self::Invalid {
            code,
            details: Some(json!([{"path": path.into(), "message": message}])),
            message,
        }
    }

    /// A 400 about one query parameter: `details` lists the one problem as
    /// `[{"parameter": name, "message": message}]` (`limit`, `cursor`, `since`, `outcome`...), the
    /// way [`ServiceError::invalid_at`] names a field of the body.
    pub fn invalid_param(
        code: &'static str,
        name: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let message = message.into();
        Self::Invalid {
            code,
            details: Some(json!([{"parameter": name.into(), "message": message}])),
            message,
        }
    }

    /// This error placed at `path` of the request body: a 400 without details becomes
    /// [`ServiceError::invalid_at`] with the same code and message; any other error (or a 400
    /// that already has its details) is returned as it is. For checks shared with callers that
    /// have no request body, such as URL checks, placed by the management call that makes them.
    #[must_use]
    pub fn at(self, path: impl Into<String>) -> Self {
        match self {
            Self::Invalid {
                code,
                message,
                details: None,
            } => Self::invalid_at(code, path, message),
            other => other,
        }
    }

    /// A 404 for an entity.
    pub fn not_found(entity: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            entity,
            id: id.into(),
        }
    }
}

/// Reads a `T` from JSON, and on failure says where: the JSON path of the part that does not fit
/// (`scopes[1].name`; empty for the document itself) and why, in serde's words.
pub fn from_json<'de, T, D>(json: D) -> Result<T, (String, String)>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de, Error = serde_json::Error>,
{
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, e.into_inner().to_string())
    })
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity } => Self::NotFound {
                entity,
                id: String::new(),
            },
            StoreError::AlreadyExists { entity } => Self::AlreadyExists { entity },
            StoreError::MissingReference { entity, id } => Self::UnknownReference { entity, id },
            StoreError::Conflict(message) => Self::Conflict {
                code: "conflict",
                message,
            },
            StoreError::Unavailable(message) => Self::Unavailable(message),
            StoreError::Backend(message) => Self::Internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_400_at_a_path_lists_it_with_the_message() {
        let e = ServiceError::invalid_at("invalid_app", "scopes[1].name", "scopes[1].name is bad");
        let ServiceError::Invalid {
            code,
            message,
            details,
        } = e
        else {
            panic!("a 400");
        };
        assert_eq!(
            (code, message.as_str()),
            ("invalid_app", "scopes[1].name is bad")
        );
        assert_eq!(
            details,
            Some(json!([{"path": "scopes[1].name", "message": "scopes[1].name is bad"}]))
        );
    }

    #[test]
    fn placing_an_error_keeps_its_code_and_message_and_leaves_other_errors_alone() {
        let e = ServiceError::invalid("invalid_url", "tokenUrl must name a host").at("tokenUrl");
        assert!(matches!(
            e,
            ServiceError::Invalid { code: "invalid_url", ref message, details: Some(ref d) }
                if message == "tokenUrl must name a host"
                    && *d == json!([{"path": "tokenUrl", "message": "tokenUrl must name a host"}])
        ));
        // A 400 already placed keeps its place; other errors are not 400s.
        let placed = ServiceError::invalid_at("c", "a", "m").at("b");
        assert!(
            matches!(placed, ServiceError::Invalid { details: Some(ref d), .. } if d[0]["path"] == "a")
        );
        assert!(matches!(
            ServiceError::not_found("app", "x").at("id"),
            ServiceError::NotFound { .. }
        ));
    }
}
