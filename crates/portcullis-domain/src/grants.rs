//! What Portcullis's own authorization server keeps: authorization codes (redeemed once in the
//! whole cluster), refresh tokens (stored as hashes, rotated on every use; presenting a used one
//! again revokes its whole family), the consents users remembered, and local passwords.

use async_trait::async_trait;

use crate::{StoreError, Timestamp};

/// An authorization code, as issued after sign-in and consent. Only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    /// SHA-256 of the code, hex.
    pub hash: String,
    /// The refresh-token family the code starts (revoked when the code is presented twice).
    pub family_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The signed-in user (a directory user id).
    pub user_id: String,
    /// The resource (the tokens' audience).
    pub resource: String,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// The redirect URI the code was sent to (the token request must repeat it).
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// When the user authenticated.
    pub auth_time: Timestamp,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it stops being redeemable.
    pub expires_at: Timestamp,
    /// The OpenID Connect `nonce` of the authorization request, returned in the ID token.
    pub nonce: Option<String>,
}

/// What presenting a code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// The code's first presentation: it is now spent.
    Redeemed(CodeRecord),
    /// It was redeemed before (anywhere in the cluster); its family is now revoked.
    Reused(CodeRecord),
    /// No such code.
    Unknown,
}

/// A refresh token. Only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// Its family: every token rotated from one grant.
    pub family_id: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The user (a directory user id).
    pub user_id: String,
    /// The resource (the audience of the access tokens it gets).
    pub resource: String,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// When the user authenticated.
    pub auth_time: Timestamp,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
    /// When it was exchanged for its successor (a rotated token is spent).
    pub rotated_at: Option<Timestamp>,
    /// When its family was revoked.
    pub revoked_at: Option<Timestamp>,
}

impl RefreshRecord {
    /// Whether it can be used at `now`: neither spent, revoked nor expired.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.rotated_at.is_none() && self.revoked_at.is_none() && now < self.expires_at
    }
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It was active: it is now spent and its successor (returned) is stored.
    Rotated(RefreshRecord),
    /// It was spent before: a replay. Its whole family is now revoked.
    Reused(RefreshRecord),
    /// Revoked or expired (nothing changed).
    Inactive(RefreshRecord),
    /// The check refused it (nothing changed).
    Refused(RefreshRecord),
    /// No such token.
    Unknown,
}

/// What a token must satisfy, read inside the rotation's transaction, for it to be spent: a
/// token the presenter may not use (another client's, or asked for another resource or more
/// scopes) changes nothing, whatever its state.
pub type RotationCheck = Box<dyn FnOnce(&RefreshRecord) -> bool + Send>;

/// A consent a user gave a client for a resource, remembered so that the next authorization
/// asking for no more is not asked again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    /// The user.
    pub user_id: String,
    /// The client.
    pub client_id: String,
    /// The resource.
    pub resource: String,
    /// The scopes consented to.
    pub scopes: Vec<String>,
    /// When first given.
    pub created_at: Timestamp,
    /// When last widened.
    pub updated_at: Timestamp,
}

/// A local user's password (an argon2id PHC string) and sign-in failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordRecord {
    /// The user.
    pub user_id: String,
    /// The argon2id hash, PHC string format.
    pub hash: String,
    /// Consecutive failed sign-ins since the last success or lockout.
    pub failures: u32,
    /// Sign-in is refused until then.
    pub locked_until: Option<Timestamp>,
    /// When the password was set.
    pub updated_at: Timestamp,
}

/// The authorization server's grants.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a code.
    async fn insert_code(&self, code: &CodeRecord) -> Result<(), StoreError>;
    /// Spends a code, once in the whole cluster. A second presentation revokes the refresh
    /// tokens of the code's family (RFC 6749 §4.1.2) and answers `Reused`.
    async fn redeem_code(&self, hash: &str, now: Timestamp) -> Result<Redemption, StoreError>;
    /// Stores a refresh token (the first of its family).
    async fn insert_refresh(&self, token: &RefreshRecord) -> Result<(), StoreError>;
    /// Stores the first refresh token of the family a redeemed code started, unless the code
    /// was presented again meanwhile (then `false`, nothing stored): with the replay's
    /// revocation in [`GrantStore::redeem_code`], a replay racing the first redemption never
    /// leaves a token alive.
    async fn insert_code_refresh(
        &self,
        code_hash: &str,
        token: &RefreshRecord,
    ) -> Result<bool, StoreError>;
    /// Reads a refresh token of a family (a token names its family, so that a family's tokens
    /// are stored together).
    async fn refresh_token(
        &self,
        family_id: &str,
        hash: &str,
    ) -> Result<Option<RefreshRecord>, StoreError>;
    /// Presents a refresh token, in one transaction: a token `check` refuses changes nothing;
    /// otherwise an active token is spent and `next` (its hash, creation and expiry; everything
    /// else is copied from the spent token) stored as its successor, and a spent one revokes its
    /// family.
    async fn rotate_refresh(
        &self,
        family_id: &str,
        hash: &str,
        next: &RefreshRecord,
        now: Timestamp,
        check: RotationCheck,
    ) -> Result<Rotation, StoreError>;
    /// Revokes a family; returns how many tokens it revoked.
    async fn revoke_family(&self, family_id: &str, now: Timestamp) -> Result<u64, StoreError>;
    /// Revokes every refresh token of a user, or of one client of a user.
    async fn revoke_user_grants(
        &self,
        user_id: &str,
        client_id: Option<&str>,
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Records the use of a one-time assertion (its key: a hash of its issuer and `jti`), kept
    /// until it expires. `false` when it was used before, anywhere in the cluster.
    async fn use_assertion(&self, key: &str, expires_at: Timestamp) -> Result<bool, StoreError>;
    /// Deletes codes, refresh tokens and assertion records that expired before `before`.
    async fn purge_grants(&self, before: Timestamp) -> Result<u64, StoreError>;

    /// The consent a user gave a client for a resource.
    async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> Result<Option<ConsentRecord>, StoreError>;
    /// Stores a consent (replacing the one for the same user, client and resource).
    async fn put_consent(&self, consent: &ConsentRecord) -> Result<(), StoreError>;
    /// A user's consents, by client and resource.
    async fn consents(&self, user_id: &str) -> Result<Vec<ConsentRecord>, StoreError>;
    /// Forgets a user's consents to a client (every client when `None`); returns how many.
    async fn delete_consents(
        &self,
        user_id: &str,
        client_id: Option<&str>,
    ) -> Result<u64, StoreError>;

    /// A user's password.
    async fn password(&self, user_id: &str) -> Result<Option<PasswordRecord>, StoreError>;
    /// Sets a user's password (clearing failures and any lockout).
    async fn set_password(
        &self,
        user_id: &str,
        hash: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Counts a failed sign-in, atomically: at `max_failures` the user is locked until
    /// `now + lock_secs` and the count starts again. Returns the record after.
    async fn sign_in_failed(
        &self,
        user_id: &str,
        now: Timestamp,
        max_failures: u32,
        lock_secs: i64,
    ) -> Result<Option<PasswordRecord>, StoreError>;
    /// Clears the failures after a successful sign-in.
    async fn sign_in_succeeded(&self, user_id: &str) -> Result<(), StoreError>;
    /// The id of the user whose email key (trimmed, lower-case) this is.
    async fn user_id_by_email(&self, email_key: &str) -> Result<Option<String>, StoreError>;
}
