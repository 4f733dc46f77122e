//! The admin console's sessions. An admin either pastes a key once, or signs in to Portcullis as a
//! directory user who holds an admin role (a global role named `portcullis.{scope}`, such as
//! `portcullis.admin` or `portcullis.read`: see [`ADMIN_ROLE_PREFIX`]). The browser then holds a
//! sealed cookie naming the key's **id** (never the key) or the user's id, with an expiry and a
//! CSRF token. Every request looks the key or the user up again, so revoking the key, disabling
//! the user or taking their admin role away ends their sessions at once.
//!
//! The cookie is sealed like the single sign-on flow cookie ([`Core::seal_value`]): encrypted and
//! authenticated with the current data key, so the browser can neither read nor forge it. The
//! CSRF token is random per session and kept inside the sealed value: a request proves it comes
//! from the console's page by echoing it in `X-CSRF-Token`, which a cross-site page cannot read.

use portcullis_crypto::{constant_time_eq, random_token};
use portcullis_domain::Timestamp;
use serde::{Deserialize, Serialize};

use crate::admin::{AdminScope, scopes_of};
use crate::{AdminIdentity, Core, ServiceError};

/// The prefix of the roles that make a directory user an admin of the console: a user holding
/// the global role `portcullis.{scope}` (`portcullis.admin`, `portcullis.read`,
/// `portcullis.policies`...) holds that admin scope. Roles held in a tenant do not count.
pub const ADMIN_ROLE_PREFIX: &str = "portcullis.";

/// The admin scopes `roles` grant (see [`ADMIN_ROLE_PREFIX`]), in the documentation's order.
pub fn admin_scopes_of_roles(roles: &[String]) -> Vec<AdminScope> {
    AdminScope::ALL
        .into_iter()
        .filter(|scope| {
            roles.iter().any(|r| {
                r.strip_prefix(ADMIN_ROLE_PREFIX)
                    .is_some_and(|name| name == scope.as_str())
            })
        })
        .collect()
}

/// The associated data the console's cookie is sealed with (a value sealed for another purpose
/// never opens as a console session).
const CONSOLE_AAD: &[u8] = b"portcullis:console-session:v1";

/// How long a console session lasts, in seconds: eight hours, then the admin signs in again.
pub const CONSOLE_SESSION_TTL_SECS: i64 = 8 * 3600;

/// What the console's cookie holds (sealed). Short field names keep the cookie small.
#[derive(Serialize, Deserialize)]
struct Sealed {
    /// The admin key's id (empty for a user's session).
    #[serde(default)]
    k: String,
    /// The directory user's id, for a user's session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
    /// The CSRF token of this session.
    c: String,
    /// When the session ends, in seconds since the epoch.
    e: i64,
}

/// Who a console session acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleActor {
    /// The admin key with this id.
    Key(String),
    /// The directory user with this id, by their admin roles.
    User(String),
}

/// An open console session: who it acts as, its CSRF token and its end.
#[derive(Clone)]
pub struct ConsoleSession {
    /// The admin key or the user.
    pub actor: ConsoleActor,
    /// The token every changing request must echo in `X-CSRF-Token`.
    pub csrf_token: String,
    /// When the session ends.
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("actor", &self.actor)
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
    /// The admin it acts as.
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
        let key_end = self.admin_key_expiry(&admin.actor_id).await?;
        let actor = ConsoleActor::Key(admin.actor_id.clone());
        self.seal_console_session(actor, admin, key_end)
    }

    /// Starts a console session for the directory user `user_id`, signed in to Portcullis until
    /// `signed_in_until`: 403 unless they hold an admin role (see
    /// [`ADMIN_ROLE_PREFIX`]), 401 when they are disabled or gone. It lasts
    /// [`CONSOLE_SESSION_TTL_SECS`], or until their sign-in ends if sooner.
    pub async fn start_console_session_for_user(
        &self,
        user_id: &str,
        signed_in_until: Timestamp,
    ) -> Result<NewConsoleSession, ServiceError> {
        let admin = self.authenticate_console_user(user_id).await?;
        let actor = ConsoleActor::User(user_id.to_owned());
        self.seal_console_session(actor, admin, Some(signed_in_until))
    }

    /// Seals a new session for `actor` (authenticated as `admin`), ending at the sooner of
    /// [`CONSOLE_SESSION_TTL_SECS`] from now and `end`.
    fn seal_console_session(
        &self,
        actor: ConsoleActor,
        admin: AdminIdentity,
        end: Option<Timestamp>,
    ) -> Result<NewConsoleSession, ServiceError> {
        let now = self.clock.now();
        let mut expires_at = now.add_secs(CONSOLE_SESSION_TTL_SECS);
        if let Some(end) = end
            && end < expires_at
        {
            expires_at = end;
        }
        let session = ConsoleSession {
            actor,
            csrf_token: random_token(32),
            expires_at,
        };
        let (k, u) = match &session.actor {
            ConsoleActor::Key(id) => (id.clone(), None),
            ConsoleActor::User(id) => (String::new(), Some(id.clone())),
        };
        let sealed = Sealed {
            k,
            u,
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
    /// It says nothing of the key or the user yet: see [`Core::authenticate_console`].
    pub async fn open_console_session(&self, cookie: &str) -> Result<ConsoleSession, ServiceError> {
        let sealed: Sealed = self
            .open_value(cookie, CONSOLE_AAD)
            .await
            .ok_or_else(|| signed_out("the console session is not valid"))?;
        let expires_at = Timestamp::from_secs(sealed.e);
        if expires_at <= self.clock.now() {
            return Err(signed_out("the console session has expired"));
        }
        let actor = match sealed.u {
            Some(user) => ConsoleActor::User(user),
            None => ConsoleActor::Key(sealed.k),
        };
        Ok(ConsoleSession {
            actor,
            csrf_token: sealed.c,
            expires_at,
        })
    }

    /// Authenticates as the actor of an open console session: its key, or its user with the
    /// scopes their roles grant today.
    pub async fn authenticate_console(
        &self,
        session: &ConsoleSession,
    ) -> Result<AdminIdentity, ServiceError> {
        match &session.actor {
            ConsoleActor::Key(id) => self.authenticate_admin_by_id(id).await,
            // A user whose admin roles were taken away is signed out, as a revoked key is.
            ConsoleActor::User(id) => match self.authenticate_console_user(id).await {
                Err(ServiceError::Forbidden(_)) => Err(signed_out(
                    "the user of this console session no longer holds an admin role",
                )),
                other => other,
            },
        }
    }

    /// Authenticates as the directory user `user_id`, read from the store on every call: 401 when
    /// they no longer exist or are disabled, 403 when they hold no admin role.
    pub async fn authenticate_console_user(
        &self,
        user_id: &str,
    ) -> Result<AdminIdentity, ServiceError> {
        let user = self
            .stores
            .directory
            .user(user_id)
            .await?
            .ok_or_else(|| signed_out("the user of this console session no longer exists"))?;
        if user.disabled {
            return Err(signed_out("the user of this console session is disabled"));
        }
        let scopes = admin_scopes_of_roles(&user.roles);
        if scopes.is_empty() {
            return Err(ServiceError::Forbidden(format!(
                "user {} holds no Portcullis admin role (a global role named {ADMIN_ROLE_PREFIX}{{scope}}, such as {ADMIN_ROLE_PREFIX}admin or {ADMIN_ROLE_PREFIX}read)",
                user.id
            )));
        }
        Ok(AdminIdentity {
            request_id: None,
            scopes,
            actor_id: format!("user:{}", user.id),
            name: user.name.unwrap_or(user.id),
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
            actor_id: record.id,
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
            actor: ConsoleActor::Key("ak_1".into()),
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
    fn only_global_portcullis_roles_grant_admin_scopes() {
        let roles = |r: &[&str]| r.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            admin_scopes_of_roles(&roles(&["Viewer", "portcullis.audit", "portcullis.read"])),
            vec![AdminScope::Read, AdminScope::Audit]
        );
        assert_eq!(
            admin_scopes_of_roles(&roles(&["portcullis.admin"])),
            vec![AdminScope::Admin]
        );
        for none in [
            &["admin"][..],
            &["portcullis."],
            &["portcullis.Admin"],
            &["portcullis.admin "],
            &["xportcullis.admin"],
            &["portcullis.nothing"],
        ] {
            assert!(admin_scopes_of_roles(&roles(none)).is_empty(), "{none:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_csrf_token() {
        let shown = format!("{:?}", session("secret-token"));
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(shown.contains("ak_1"));
    }
}
