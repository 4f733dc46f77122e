//! Portcullis's domain model: outbound apps and their policies, the directory (users, roles,
//! tenants), connections (users' third-party credentials), inbound issuers and clients, admin keys,
//! audit events — and the narrow storage traits that every backend (SQLite, PostgreSQL) implements.
//!
//! Nothing here does IO. Services in `portcullis-core` hold the stores as trait objects and never
//! branch on the backend; one conformance suite (`portcullis-store-conformance`) checks that every
//! backend keeps the contracts written on these traits.

mod app;
mod audit;
mod change;
mod clock;
mod connection;
mod directory;
mod grants;
mod management;
mod principal;
mod resource;
mod signing;
mod sso;
mod store;
pub mod table;
mod timestamp;

pub use app::{
    AppKind, AppRecord, ClientAuthMethod, DenialDetail, OAuthSettings, OnDeny, PolicyRecord,
    ScopeDef, validate_slug,
};
pub use audit::{
    AuditEvent, AuditOutcome, AuditQuery, AuditSummaryRow, DecisionInputs, MAX_AUDIT_FIELD,
    MAX_AUDIT_LIST, MAX_INPUT_CLAIMS_BYTES, PolicyVerdict, RecordedDecision, RejectedCount,
};
pub use change::{Change, ChangeEvent, ChangeFeed, Listener, LocalChangeFeed};
pub use clock::{Clock, ManualClock, SystemClock};
pub use connection::{
    Ciphertext, ConnectionKey, ConnectionRecord, ConnectionStatus, ConsentState, CredentialKind,
    RefreshFailure, TokenSet, sealed_key_id,
};
pub use directory::{Identity, Role, TenantMembership, TenantRecord, UserRecord};
pub use grants::{
    CodeRecord, ConsentRecord, GrantStore, PasswordRecord, Redemption, RefreshRecord, Rotation,
    RotationCheck,
};
pub use management::{ManagementAuditStore, ManagementEvent, ManagementQuery};
pub use principal::{AdminKeyRecord, ClientRecord, DataKeyRecord, IssuerRecord};
pub use resource::{ResourceRecord, ResourceStore};
pub use signing::{SigningKeyRecord, SigningKeyStore};
pub use sso::{ClaimMapping, SsoConnectionRecord, SsoSettings, SsoStore};
pub use store::{
    AdminKeyStore, AppStore, ApplyStore, AuditStore, ClientStore, ConnectionStore,
    ConsentStateStore, DirectoryStore, IssuerStore, KeyStore, MAX_PENDING_CONSENTS_PER_KEY,
    PageRequest, Reseal, StoreError, StoreHealth, Stores, Write,
};
pub use timestamp::Timestamp;
