//! Connect links, bound to the browser of the user they were made for.
//!
//! A connect link (what `POST /v1/outbound/apps/{appId}/connect` answers, and what a refusal's
//! `not_connected` or `consent_required` carries) is a sealed, self-contained ticket naming the
//! app, the user and the scopes: a client that asks again and again for an app the user has not
//! connected writes nothing. It opens a page of Portcullis, not the provider:
//!
//! - for a directory user Portcullis can sign in (a password, or an identity at an SSO
//!   connection's provider), the browser must be signed in as that user — signing in happens on
//!   the page — and a browser signed in as someone else is refused;
//! - for anyone else (a subject of an external issuer), the first browser that opens the link
//!   claims it (a sealed, one-time, `HttpOnly` cookie; the claim is recorded cluster-wide) and
//!   every other browser is refused.
//!
//! The page says who is connecting which app with which scopes, and only on "Continue" is the
//! flow started and the browser sent to the provider. The provider's `state` is the hash of a
//! random value only that browser holds (an `HttpOnly` cookie), so the callback completes only
//! there: an attacker who starts a flow and sends its link to a victim gets nothing, since the
//! victim's browser cannot open a link made for the attacker, nor complete the attacker's flow.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis_crypto::{constant_time_eq, random_token, sha256};
use portcullis_domain::{AppKind, AppRecord, Ciphertext, ConnectionKey, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{Core, ServiceError};

/// What a ticket's seal is bound to.
const TICKET_AAD: &[u8] = b"portcullis:connect-ticket:v1";
/// The longest ticket read, in characters.
pub const MAX_TICKET_LEN: usize = 4096;

#[derive(Serialize, Deserialize)]
struct Ticket {
    #[serde(rename = "a")]
    app_id: String,
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    #[serde(rename = "s")]
    scopes: Vec<String>,
    #[serde(rename = "i")]
    initiated_by: String,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    return_url: Option<String>,
    #[serde(rename = "n")]
    issued_at: i64,
    #[serde(rename = "e")]
    expires_at: i64,
}

fn used() -> ServiceError {
    ServiceError::invalid(
        "used_ticket",
        "this connect link was already used; start again from the application",
    )
}

fn invalid() -> ServiceError {
    ServiceError::invalid(
        "invalid_ticket",
        "this connect link is not valid; start again from the application",
    )
}

impl Core {
    /// A connect link for `key` and `scopes`: a sealed ticket, nothing stored.
    pub(crate) fn connect_ticket_url(
        &self,
        key: &ConnectionKey,
        scopes: Vec<String>,
        initiated_by: &str,
        return_url: Option<String>,
    ) -> Result<String, ServiceError> {
        let now = self.clock.now();
        let ticket = Ticket {
            app_id: key.app_id.clone(),
            user_id: key.user_id.clone(),
            tenant_id: key.tenant_id.clone(),
            scopes,
            initiated_by: initiated_by.to_owned(),
            return_url,
            issued_at: now.as_millis(),
            expires_at: now.add_secs(self.settings.consent_ttl_secs).as_millis(),
        };
        let json =
            serde_json::to_vec(&ticket).map_err(|e| ServiceError::Internal(e.to_string()))?;
        let sealed = self.sealer.seal(&json, TICKET_AAD)?;
        let mut raw = sealed.key_id.to_be_bytes().to_vec();
        raw.extend_from_slice(&sealed.bytes);
        Ok(format!(
            "{}/v1/outbound/connect/{}",
            self.settings.public_url,
            B64.encode(raw)
        ))
    }

    /// Reads a connect link: the page to show, or why the link cannot be used (not one
    /// Portcullis made, expired, its app gone or not OAuth, a connection made since).
    pub async fn read_connect_link(&self, ticket: &str) -> Result<ConnectLinkPage, ServiceError> {
        let (t, digest, app) = self.open_ticket(ticket).await?;
        let principal = t
            .user_id
            .clone()
            .or_else(|| t.initiated_by.strip_prefix("user:").map(str::to_owned));
        let mut who = principal.clone().unwrap_or_default();
        let mut sign_in_as = None;
        if let Some(p) = &principal
            && !p.starts_with(crate::EXTERNAL_PREFIX)
            && let Some(user) = self.stores.directory.user(p).await?
        {
            who = user
                .name
                .clone()
                .or_else(|| user.email.clone())
                .unwrap_or_else(|| user.id.clone());
            if self.can_sign_in_here(&user).await? {
                sign_in_as = Some(user.id.clone());
            }
        } else if let Some(p) = &principal
            && let Some(rest) = p.strip_prefix(crate::EXTERNAL_PREFIX)
        {
            // ext:<issuer tag>:<subject>: the subject is what a person recognises.
            who = rest.split_once(':').map_or(rest, |(_, sub)| sub).to_owned();
        }
        Ok(ConnectLinkPage {
            app_id: app.id.clone(),
            app_name: app.name.clone(),
            who,
            tenant_id: t.tenant_id.clone(),
            scopes: t.scopes.clone(),
            sign_in_as,
            digest,
            expires_at: t.expires_at,
        })
    }

    /// Whether Portcullis can sign this user in: a password, or an identity at the provider of an
    /// SSO connection.
    async fn can_sign_in_here(
        &self,
        user: &portcullis_domain::UserRecord,
    ) -> Result<bool, ServiceError> {
        if self.stores.grants.password(&user.id).await?.is_some() {
            return Ok(true);
        }
        if user.identities.is_empty() {
            return Ok(false);
        }
        let mut after = None;
        loop {
            let page = self
                .stores
                .sso
                .sso_connections(&portcullis_domain::PageRequest {
                    after: after.clone(),
                    limit: 200,
                })
                .await?;
            let Some(last) = page.last() else {
                return Ok(false);
            };
            after = Some(last.id.clone());
            if page
                .iter()
                .any(|c| user.identities.iter().any(|i| i.issuer == c.issuer))
            {
                return Ok(true);
            }
        }
    }

    /// Claims the link `page` shows for the browser opening it (a link made for someone
    /// Portcullis cannot sign in): the claim cookie's value. Once per link in the whole cluster:
    /// `claimed_ticket` after.
    pub async fn claim_connect_link(&self, page: &ConnectLinkPage) -> Result<String, ServiceError> {
        let until = Timestamp::from_millis(page.expires_at);
        let claim_key = format!("connect-claim:{}", page.digest);
        if !self.stores.grants.use_assertion(&claim_key, until).await? {
            return Err(ServiceError::invalid(
                "claimed_ticket",
                "this connect link was already opened in another browser; start again from the application",
            ));
        }
        self.seal_value(
            &Claim {
                ticket: page.digest.clone(),
                expires_at: page.expires_at,
            },
            CLAIM_AAD,
        )
    }

    /// Whether `cookie` is this browser's claim of the link `page` shows.
    pub async fn holds_connect_claim(&self, page: &ConnectLinkPage, cookie: Option<&str>) -> bool {
        let Some(cookie) = cookie else {
            return false;
        };
        match self.open_value::<Claim>(cookie, CLAIM_AAD).await {
            Some(c) => {
                constant_time_eq(c.ticket.as_bytes(), page.digest.as_bytes())
                    && self.clock.now().as_millis() <= c.expires_at
            }
            None => false,
        }
    }

    /// Starts the flow of a link (once per link): the provider's authorization URL, and the
    /// browser-binding cookie (its name and value) the callback will require.
    pub async fn continue_connect_link(&self, ticket: &str) -> Result<ConnectStart, ServiceError> {
        let (t, digest, app) = self.open_ticket(ticket).await?;
        let until = Timestamp::from_millis(t.expires_at);
        if !self
            .stores
            .grants
            .use_assertion(&format!("connect-flow:{digest}"), until)
            .await?
        {
            return Err(used());
        }
        let key = ConnectionKey {
            app_id: t.app_id,
            user_id: t.user_id,
            tenant_id: t.tenant_id,
        };
        let binding = random_token(32);
        let state = binding_state(&binding);
        let location = self
            .consent_link_with_state(
                &app,
                key,
                t.scopes,
                t.return_url,
                &t.initiated_by,
                state.clone(),
            )
            .await
            .map_err(|e| match e {
                ServiceError::Conflict { .. } | ServiceError::AlreadyExists { .. } => used(),
                other => other,
            })?;
        Ok(ConnectStart {
            location,
            cookie_name: binding_cookie_name(&state),
            cookie_value: binding.into(),
        })
    }

    /// Opens a ticket: its content, its digest (what claims are recorded under) and its app.
    async fn open_ticket(&self, ticket: &str) -> Result<(Ticket, String, AppRecord), ServiceError> {
        if ticket.is_empty() || ticket.len() > MAX_TICKET_LEN {
            return Err(invalid());
        }
        let raw = B64.decode(ticket).map_err(|_| invalid())?;
        if raw.len() < 5 {
            return Err(invalid());
        }
        let (id, bytes) = raw.split_at(4);
        let sealed = Ciphertext {
            key_id: u32::from_be_bytes([id[0], id[1], id[2], id[3]]),
            bytes: bytes.to_vec(),
        };
        let json = self
            .sealer
            .open(&sealed, TICKET_AAD)
            .await
            .map_err(|_| invalid())?;
        let t: Ticket = serde_json::from_slice(json.expose()).map_err(|_| invalid())?;
        if self.clock.now() > Timestamp::from_millis(t.expires_at) {
            return Err(ServiceError::invalid(
                "expired_ticket",
                "this connect link has expired; start again from the application",
            ));
        }
        let snapshot = self
            .app_snapshot(&t.app_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("app", &t.app_id))?;
        if snapshot.app.kind != AppKind::OAuth {
            return Err(invalid());
        }
        let key = ConnectionKey {
            app_id: t.app_id.clone(),
            user_id: t.user_id.clone(),
            tenant_id: t.tenant_id.clone(),
        };
        // A link works once: not once a connection was made after it was issued.
        if let Some(c) = self.stores.connections.connection(&key).await?
            && c.updated_at.as_millis() >= t.issued_at
        {
            return Err(used());
        }
        let mut h = b"portcullis:ticket:".to_vec();
        h.extend_from_slice(&raw);
        let digest = B64.encode(sha256(&h));
        Ok((t, digest, snapshot.app.clone()))
    }

    /// Whether the browser that reached the callback with `state` holds its binding `cookie`.
    pub fn holds_connect_binding(state: &str, cookie: Option<&str>) -> bool {
        cookie.is_some_and(|c| constant_time_eq(binding_state(c).as_bytes(), state.as_bytes()))
    }
}

/// What a claim cookie holds.
#[derive(Serialize, Deserialize)]
struct Claim {
    #[serde(rename = "t")]
    ticket: String,
    #[serde(rename = "e")]
    expires_at: i64,
}

const CLAIM_AAD: &[u8] = b"portcullis:connect-claim:v1";

/// The provider's `state` for a browser binding: the hash of the value only that browser holds.
fn binding_state(binding: &str) -> String {
    let mut h = b"portcullis:connect-binding:".to_vec();
    h.extend_from_slice(binding.as_bytes());
    B64.encode(sha256(&h))
}

/// The name of the cookie holding a browser's claim of the link `ticket`: several links may be
/// claimed in one browser at once.
pub fn claim_cookie_name(ticket: &str) -> String {
    let tag: String = B64
        .encode(sha256(ticket.as_bytes()))
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    format!("portcullis_claim_{tag}")
}

/// The name of the cookie holding the binding of the flow with `state`: several flows may run in
/// one browser at once.
pub fn binding_cookie_name(state: &str) -> String {
    let tag: String = state
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(12)
        .collect();
    format!("portcullis_connect_{tag}")
}

/// A connect link's page: who connects which app with which scopes, and whether the browser
/// must be signed in as that user.
#[derive(Debug, Clone)]
pub struct ConnectLinkPage {
    /// The app.
    pub app_id: String,
    /// Its name.
    pub app_name: String,
    /// Who the link was made for, for people (a name, email, or subject).
    pub who: String,
    /// The tenant, for a tenant's connection.
    pub tenant_id: Option<String>,
    /// The scopes asked of the provider.
    pub scopes: Vec<String>,
    /// The directory user the browser must be signed in as; `None`: the first browser claims it.
    pub sign_in_as: Option<String>,
    /// What the link's claims are recorded under.
    digest: String,
    /// When the link expires, in milliseconds.
    expires_at: i64,
}

/// A started connect flow.
#[derive(Debug)]
pub struct ConnectStart {
    /// The provider's authorization URL.
    pub location: String,
    /// The binding cookie's name.
    pub cookie_name: String,
    /// Its value (the browser's secret: redacted in `Debug`).
    pub cookie_value: portcullis_crypto::SecretString,
}
