//! The subject of a decision: who is asking, as the engine sees them.

use serde_json::{Map, Value};

/// The user behind a request: their roles (a set; duplicates are harmless) and the claims of the
/// inbound token they presented.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The user's roles, live from Portcullis (or mapped from an external issuer's token).
    pub roles: &'a [String],
    /// The claims of the inbound token.
    pub claims: &'a Map<String, Value>,
}

impl<'a> Subject<'a> {
    /// A subject with these roles and claims.
    #[must_use]
    pub fn new(roles: &'a [String], claims: &'a Map<String, Value>) -> Self {
        Self { roles, claims }
    }
}
