//! Who may call Portcullis: admin keys, OAuth clients, trusted inbound issuers — and the data keys
//! that seal secrets at rest.

use serde_json::{Map, Value};

use crate::Timestamp;

/// An admin API key. Only the SHA-256 of the key is stored; the key is shown once, at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminKeyRecord {
    /// Server-assigned id (`ak_…`), safe to show.
    pub id: String,
    /// What the key is for.
    pub name: String,
    /// SHA-256 of the whole key. Keys carry 256 bits of entropy, so a fast hash is enough.
    pub secret_hash: [u8; 32],
    /// When the key was created.
    pub created_at: Timestamp,
    /// When the key stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// What the key may do (`read`, `apps`, `policies`, `vault`, `directory`, `issuers`,
    /// `clients`, `audit`, `keys`, `admin`).
    pub scopes: Vec<String>,
}

/// An OAuth client registered by an admin (used for RFC 8693 token exchange).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// The `client_id`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// SHA-256 of the client secret (confidential clients).
    pub secret_hash: Option<[u8; 32]>,
    /// Further registration metadata (grant types, allowed outbound apps, redirect URIs...).
    pub metadata: Map<String, Value>,
    /// When the client was registered.
    pub created_at: Timestamp,
    /// When the client last changed.
    pub updated_at: Timestamp,
}

/// A trusted external token issuer (bring your own IdP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerRecord {
    /// Server-assigned id (`iss_…`).
    pub id: String,
    /// The exact `iss` value of its tokens.
    pub issuer: String,
    /// Where its signing keys are published.
    pub jwks_url: Option<String>,
    /// OpenID Connect discovery document, from which `jwks_uri` is read when `jwks_url` is absent.
    pub discovery_url: Option<String>,
    /// Accepted `aud` values (at least one).
    pub audiences: Vec<String>,
    /// Accepted signature algorithms.
    pub algorithms: Vec<String>,
    /// Claim (dotted path) holding the user's roles.
    pub roles_claim: Option<String>,
    /// Claim (dotted path) holding the user's tenant(s).
    pub tenant_claim: Option<String>,
    /// Leeway for `exp`/`nbf`/`iat`, in seconds.
    pub clock_skew_seconds: u32,
    /// The `typ` header its tokens must carry (for example `at+jwt`), if any.
    pub required_typ: Option<String>,
    /// When the issuer was added.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A data-encryption key, wrapped by the operator's master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyRecord {
    /// The key id written into every ciphertext it seals.
    pub id: u32,
    /// Which master key wrapped it.
    pub master_key_id: String,
    /// The wrapped key.
    pub wrapped: Vec<u8>,
    /// Whether new secrets are sealed with it (exactly one key is active).
    pub active: bool,
    /// When the key was created.
    pub created_at: Timestamp,
}
