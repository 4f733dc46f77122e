//! Local sign-in and the browser's session. Passwords are argon2id hashes; failed sign-ins are
//! counted in the database (so a lockout holds on every node) and limited per client address. A
//! session is a sealed cookie (nothing stored): who signed in, when, until when; it is refused
//! once the user is disabled or deleted.

use std::net::IpAddr;

use portcullis_crypto::password::{DECOY_HASH, hash_password, verify_password};
use portcullis_crypto::random_token;
use serde::{Deserialize, Serialize};

use crate::{Core, ServiceError};

const SESSION_AAD: &[u8] = b"portcullis:session:v1";
/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted, in characters.
pub const MAX_PASSWORD_CHARS: usize = 256;
/// The longest password read at sign-in, in bytes (four per character at most).
const MAX_PASSWORD_BYTES: usize = 4 * MAX_PASSWORD_CHARS;

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The directory user.
    #[serde(rename = "u")]
    pub user_id: String,
    /// When they signed in, in seconds.
    #[serde(rename = "a")]
    pub auth_time: i64,
    /// When the session ends, in seconds.
    #[serde(rename = "e")]
    pub expires_at: i64,
    /// A random id: what forms are bound to.
    #[serde(rename = "s")]
    pub sid: String,
}

/// Why a sign-in failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInError {
    /// Unknown user, wrong password, no password set, or a disabled user: one answer for all.
    Invalid,
    /// Too many failures: the user is locked out for a while.
    Locked,
    /// Too many attempts from this address; retry after this many seconds.
    RateLimited(u64),
    /// The database is unavailable.
    Unavailable(String),
}

impl From<ServiceError> for SignInError {
    fn from(e: ServiceError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl Core {
    /// Signs a user in with their id or email and password.
    pub async fn sign_in(
        &self,
        login: &str,
        password: &str,
        from: Option<IpAddr>,
    ) -> Result<Session, SignInError> {
        if let Some(ip) = from
            && let Err(wait) = self.sign_in_limit.check(&ip, std::time::Instant::now())
        {
            return Err(SignInError::RateLimited(crate::limits::retry_after_secs(
                wait,
            )));
        }
        let login = login.trim();
        if login.is_empty() || login.len() > 320 || password.len() > MAX_PASSWORD_BYTES {
            return Err(SignInError::Invalid);
        }
        let user_id = if login.contains('@') {
            self.stores
                .grants
                .user_id_by_email(&login.to_lowercase())
                .await
                .map_err(ServiceError::from)?
        } else {
            Some(login.to_owned())
        };
        let record = match &user_id {
            Some(id) => self
                .stores
                .grants
                .password(id)
                .await
                .map_err(ServiceError::from)?,
            None => None,
        };
        let now = self.clock.now();
        let stored = record.as_ref().map_or(DECOY_HASH, |r| r.hash.as_str());
        // An unknown user costs a hash too, so that timing does not tell who exists.
        let matches = self.verify_password(password, stored).await?;
        let Some(record) = record else {
            return Err(SignInError::Invalid);
        };
        if record.locked_until.is_some_and(|t| now < t) {
            return Err(SignInError::Locked);
        }
        if !matches {
            let after = self
                .stores
                .grants
                .sign_in_failed(
                    &record.user_id,
                    now,
                    self.settings.sign_in_max_failures,
                    self.settings.sign_in_lockout_secs,
                )
                .await
                .map_err(ServiceError::from)?;
            tracing::info!(user = %record.user_id, "a sign-in failed");
            return Err(match after {
                Some(r) if r.locked_until.is_some_and(|t| now < t) => SignInError::Locked,
                _ => SignInError::Invalid,
            });
        }
        if record.failures > 0 {
            self.stores
                .grants
                .sign_in_succeeded(&record.user_id)
                .await
                .map_err(ServiceError::from)?;
        }
        match self.directory_user(&record.user_id).await? {
            Some(u) if !u.disabled => {}
            _ => return Err(SignInError::Invalid),
        }
        Ok(Session {
            user_id: record.user_id,
            auth_time: now.as_secs(),
            expires_at: now.add_secs(self.settings.session_ttl_secs).as_secs(),
            sid: random_token(16),
        })
    }

    async fn verify_password(&self, password: &str, stored: &str) -> Result<bool, ServiceError> {
        let _permit = self
            .password_hashing
            .acquire()
            .await
            .map_err(|_| ServiceError::Unavailable("shutting down".into()))?;
        let (password, stored) = (password.to_owned(), stored.to_owned());
        tokio::task::spawn_blocking(move || verify_password(&password, &stored))
            .await
            .map_err(|e| ServiceError::Internal(format!("verifying a password: {e}")))
    }

    /// Sets a directory user's password (8 to 256 characters); clears any lockout.
    pub async fn set_password(&self, user_id: &str, password: &str) -> Result<(), ServiceError> {
        let chars = password.chars().count();
        if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
            return Err(ServiceError::invalid(
                "invalid_password",
                format!("a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
            ));
        }
        let _permit = self
            .password_hashing
            .acquire()
            .await
            .map_err(|_| ServiceError::Unavailable("shutting down".into()))?;
        let p = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&p))
            .await
            .map_err(|e| ServiceError::Internal(format!("hashing a password: {e}")))?
            .map_err(ServiceError::Internal)?;
        self.stores
            .grants
            .set_password(user_id, &hash, self.clock.now())
            .await
            .map_err(|e| crate::manage::not_found(e, "user", user_id))
    }

    /// Seals a session for its cookie.
    pub fn seal_session(&self, s: &Session) -> Result<String, ServiceError> {
        self.seal_value(s, SESSION_AAD)
    }

    /// The session a cookie holds, if it is valid, unexpired, and its user still exists and is
    /// enabled.
    pub async fn open_session(&self, cookie: &str) -> Result<Option<Session>, ServiceError> {
        let Some(s) = self.open_value::<Session>(cookie, SESSION_AAD).await else {
            return Ok(None);
        };
        if self.clock.now().as_secs() >= s.expires_at {
            return Ok(None);
        }
        Ok(match self.directory_user(&s.user_id).await? {
            Some(u) if !u.disabled => Some(s),
            _ => None,
        })
    }
}
