//! The admin console's sessions: an admin pastes a key once, and the browser then holds a sealed
//! cookie naming the key's **id** (never the key) with an expiry and a CSRF token. Every request
//! looks the key up by id, so revoking or expiring the key ends its sessions at once.
//!
//! The cookie is sealed like the single sign-on flow cookie ([`Core::seal_value`]): encrypted and
//! authenticated with the current data key, so the browser can neither read nor forge it. The
//! CSRF token is random per session and kept inside the sealed value: a request proves it comes
//! from the console's page by echoing it in `X-CSRF-Token`, which a cross-site page cannot read.

use portcullis_crypto::{constant_time_eq, random_token};
use portcullis_domain::Timestamp;
use serde::{Deserialize, Serialize};

use crate::admin::scopes_of;
use crate::{AdminIdentity, Core, ServiceError};

/// The associated data the console's cookie is sealed with (a value sealed for another purpose
/// never opens as a console session).
const CONSOLE_AAD: &[u8] = b"portcullis:console-session:v1";

/// How long a console session lasts, in seconds: eight hours, then the admin signs in again.
pub const CONSOLE_SESSION_TTL_SECS: i64 = 8 * 3600;

/// What the console's cookie holds (sealed). Short field names keep the cookie small.
#[derive(Serialize, Deserialize)]
struct Sealed {
    /// The admin key's id.
    k: String,
    /// The CSRF token of this session.
    c: String,
    /// When the session ends, in seconds since the epoch.
    e: i64,
}

/// An open console session: whose key it acts as, its CSRF token and its end.
#[derive(Clone)]
pub struct ConsoleSession {
    /// The admin key's id.
    pub key_id: String,
    /// The token every changing request must echo in `X-CSRF-Token`.
    pub csrf_token: String,
    /// When the session ends.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("key_id", &self.key_id)
            .field("csrf_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl ConsoleSession {
    /// Whether `token` (the request's `X-CSRF-Token`) is this session's, compared in constant
    /// time.
    pub fn csrf_matches(&self, token: &str) -> bool {
        !token.is_empty() && constant_time_eq(self.csrf_token.as_bytes(), token.as_bytes())
    }
}

/// A session just started: the cookie's value, the session, and the admin it acts as.
#[derive(Debug, Clone)]
pub struct NewConsoleSession {
    /// The sealed cookie value.
    pub cookie: String,
    /// The session.
    pub session: ConsoleSession,
    /// The admin key it acts as.
    pub admin: AdminIdentity,
    /// How long the cookie lasts, in seconds (its `Max-Age`).
    pub max_age_secs: i64,
}

/// The refusal of a missing, tampered or expired console session.
fn signed_out(why: &str) -> ServiceError {
    ServiceError::Unauthorized(format!("{why}; sign in to the console again"))
}

impl Core {
    /// Starts a console session for the admin key `key`: verified exactly as a management call's
    /// bearer key is, then sealed by id into a cookie that lasts [`CONSOLE_SESSION_TTL_SECS`] (or
    /// until the key expires, if sooner).
    pub async fn start_console_session(
        &self,
        key: &str,
    ) -> Result<NewConsoleSession, ServiceError> {
        let admin = self.authenticate_admin(Some(key)).await?;
        let now = self.clock.now();
        let mut expires_at = now.add_secs(CONSOLE_SESSION_TTL_SECS);
        if let Some(key_end) = self.admin_key_expiry(&admin.key_id).await?
            && key_end < expires_at
        {
            expires_at = key_end;
        }
        let session = ConsoleSession {
            key_id: admin.key_id.clone(),
            csrf_token: random_token(32),
            expires_at,
        };
        let sealed = Sealed {
            k: session.key_id.clone(),
            c: session.csrf_token.clone(),
            e: expires_at.as_secs(),
        };
        Ok(NewConsoleSession {
            cookie: self.seal_value(&sealed, CONSOLE_AAD)?,
            session,
            admin,
            max_age_secs: expires_at.as_secs().saturating_sub(now.as_secs()).max(0),
        })
    }

    /// Opens a console cookie: 401 when it is not one this deployment sealed, or it has expired.
    /// It says nothing of the key yet: see [`Core::authenticate_admin_by_id`].
    pub async fn open_console_session(&self, cookie: &str) -> Result<ConsoleSession, ServiceError> {
        let sealed: Sealed = self
            .open_value(cookie, CONSOLE_AAD)
            .await
            .ok_or_else(|| signed_out("the console session is not valid"))?;
        let expires_at = Timestamp::from_secs(sealed.e);
        if expires_at <= self.clock.now() {
            return Err(signed_out("the console session has expired"));
        }
        Ok(ConsoleSession {
            key_id: sealed.k,
            csrf_token: sealed.c,
            expires_at,
        })
    }

    /// Authenticates as the admin key with id `id`, read from the store on every call so that a
    /// revoked or expired key stops working at once: 401 when it no longer exists or has expired.
    pub async fn authenticate_admin_by_id(&self, id: &str) -> Result<AdminIdentity, ServiceError> {
        let record = self
            .stores
            .admin_keys
            .admin_key_by_id(id)
            .await?
            .ok_or_else(|| signed_out("the admin key of this console session was revoked"))?;
        if record.expires_at.is_some_and(|e| e <= self.clock.now()) {
            return Err(signed_out(
                "the admin key of this console session has expired",
            ));
        }
        Ok(AdminIdentity {
            request_id: None,
            scopes: scopes_of(&record),
            key_id: record.id,
            name: record.name,
        })
    }

    /// When the key with id `id` expires (`None`: never, or no such key).
    async fn admin_key_expiry(&self, id: &str) -> Result<Option<Timestamp>, ServiceError> {
        Ok(self
            .stores
            .admin_keys
            .admin_key_by_id(id)
            .await?
            .and_then(|r| r.expires_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(token: &str) -> ConsoleSession {
        ConsoleSession {
            key_id: "ak_1".into(),
            csrf_token: token.into(),
            expires_at: Timestamp::from_secs(0),
        }
    }

    #[test]
    fn only_the_sessions_own_csrf_token_matches() {
        let s = session("abc123");
        assert!(s.csrf_matches("abc123"));
        assert!(!s.csrf_matches("abc124"));
        assert!(!s.csrf_matches("abc12"));
        assert!(!s.csrf_matches(""));
        assert!(!session("").csrf_matches(""));
    }

    #[test]
    fn debug_never_shows_the_csrf_token() {
        let shown = format!("{:?}", session("secret-token"));
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(shown.contains("ak_1"));
    }
}
