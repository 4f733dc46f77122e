//! The error services return. The HTTP layer maps each variant to one status and keeps `code`
//! stable; `Internal` details are logged, never shown.

use portcullis_domain::StoreError;
use serde_json::Value;

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
        /// Structured details (e.g. policy validation errors with their paths).
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

    /// A 404 for an entity.
    pub fn not_found(entity: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound {
            entity,
            id: id.into(),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { entity } => Self::NotFound {
                entity,
                id: String::new(),
            },
            StoreError::AlreadyExists { entity } => Self::Conflict {
                code: "already_exists",
                message: format!("{entity} already exists"),
            },
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
