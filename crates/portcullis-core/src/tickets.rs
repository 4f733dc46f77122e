//! Connect tickets: the connect link a refusal carries (`not_connected`, `consent_required`) is a
//! sealed, self-contained ticket, not a stored pending consent — so a client that asks again and
//! again for an app the user has not connected writes nothing. The pending consent is created when
//! the user opens the link (`GET /v1/outbound/connect/{ticket}`), which then sends the browser to
//! the provider. A ticket is a bearer capability for its flow until it expires (the consent TTL),
//! as the link it replaces was.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis_domain::{AppKind, Ciphertext, ConnectionKey, Timestamp};
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
    ) -> Result<String, ServiceError> {
        let now = self.clock.now();
        let ticket = Ticket {
            app_id: key.app_id.clone(),
            user_id: key.user_id.clone(),
            tenant_id: key.tenant_id.clone(),
            scopes,
            initiated_by: initiated_by.to_owned(),
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

    /// Opens a connect ticket: creates the pending consent and returns the provider's
    /// authorization URL to send the browser to.
    pub async fn open_connect_ticket(&self, ticket: &str) -> Result<String, ServiceError> {
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
            app_id: t.app_id,
            user_id: t.user_id,
            tenant_id: t.tenant_id,
        };
        // A link works once: not while its flow is pending (one flow per ticket, its state
        // derived from the ticket), nor once a connection was made after it was issued.
        if let Some(c) = self.stores.connections.connection(&key).await?
            && c.updated_at.as_millis() >= t.issued_at
        {
            return Err(used());
        }
        let mut h = b"portcullis:ticket-state:".to_vec();
        h.extend_from_slice(&raw);
        let state = B64.encode(portcullis_crypto::sha256(&h));
        self.consent_link_with_state(&snapshot.app, key, t.scopes, None, &t.initiated_by, state)
            .await
            .map_err(|e| match e {
                ServiceError::Conflict { .. } => used(),
                other => other,
            })
    }
}
