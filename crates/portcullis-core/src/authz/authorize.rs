//! The authorization endpoint (RFC 6749 §4.1, OAuth 2.1): the request is checked whole before
//! the user sees anything; what cannot be sent back to the client safely (an unknown client, a
//! redirect URI that is not the client's) is shown as an error page, everything else goes back to
//! the client's redirect URI with `state` and `iss` (RFC 9207). A valid request waits for the
//! user as a sealed value carried by the pages' forms: nothing is stored until a code is issued.

use portcullis_crypto::{random_token, sha256};
use portcullis_domain::{ClientRecord, CodeRecord, ConsentRecord, ScopeDef, Timestamp};
use serde::{Deserialize, Serialize};

use super::{
    AUTHORIZATION_TTL_SECS, CODE_TTL_SECS, GRANT_AUTHORIZATION_CODE, OAuthCode, Session,
    is_loopback_uri, scope_token_ok, split_scopes,
};
use crate::manage::{auth_method, canonical_resource_uri, metadata_list};
use crate::{Core, ServiceError};

const PENDING_AAD: &[u8] = b"portcullis:authorization-request:v1";

/// An authorization request's parameters, as sent (each at most once; `resource` repeatable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizeParams {
    /// `response_type`.
    pub response_type: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `code_challenge`.
    pub code_challenge: Option<String>,
    /// `code_challenge_method`.
    pub code_challenge_method: Option<String>,
    /// `resource` (RFC 8707).
    pub resources: Vec<String>,
    /// `nonce` (OpenID Connect Core §3.1.2.1), returned in the ID token.
    pub nonce: Option<String>,
}

/// The OpenID Connect scopes: asked beside a resource's own, for an ID token (`openid`) and the
/// claims it carries (`profile`: the name; `email`).
pub const OPENID_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// The longest `nonce` accepted, in characters.
pub const MAX_NONCE_CHARS: usize = 512;

/// A checked authorization request waiting for the user to sign in and consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAuthorization {
    /// The client.
    #[serde(rename = "c")]
    pub client_id: String,
    /// Where the answer goes.
    #[serde(rename = "r")]
    pub redirect_uri: String,
    /// Whether the request named the redirect URI (the token request must then repeat it).
    #[serde(rename = "rp")]
    pub redirect_uri_sent: bool,
    /// The resource's canonical URI: the audience of the tokens.
    #[serde(rename = "a")]
    pub resource: String,
    /// The scopes asked for.
    #[serde(rename = "s")]
    pub scopes: Vec<String>,
    /// The client's `state`, returned as given.
    #[serde(rename = "st", default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The PKCE S256 challenge.
    #[serde(rename = "p")]
    pub code_challenge: String,
    /// The OpenID Connect `nonce`, for the ID token.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// When the request stops being answerable, in milliseconds.
    #[serde(rename = "e")]
    pub expires_at: i64,
}

/// What the consent screen shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentScreen {
    /// The client's name.
    pub client_name: String,
    /// The client's id.
    pub client_id: String,
    /// The host the answer goes to.
    pub redirect_host: String,
    /// The resource's name.
    pub resource_name: String,
    /// The resource's URI.
    pub resource_uri: String,
    /// The scopes asked for, with their descriptions.
    pub scopes: Vec<ScopeDef>,
}

/// The outcome of checking an authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    /// The request cannot be answered at a redirect URI (unknown client, a redirect URI that is
    /// not the client's): show the user this message, never redirect.
    ErrorPage(String),
    /// Send the browser back to the client with an error (this URL).
    Redirect(String),
    /// Valid: the user must sign in and consent.
    Pending(PendingAuthorization),
}

/// Appends query parameters to a redirect URI (RFC 6749 §3.1.2: keeping its own query).
pub(crate) fn redirect_with(uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

/// Whether `presented` is the registered redirect URI `registered`: exactly, or for a loopback
/// `http` URI, exactly but for the port (RFC 8252 §7.3).
fn redirect_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(r), Ok(p)) = (url::Url::parse(registered), url::Url::parse(presented)) else {
        return false;
    };
    if r.scheme() != "http" || !is_loopback_uri(&r) || p.as_str() != presented {
        return false;
    }
    let mut p_any = p.clone();
    let mut r_any = r.clone();
    p_any.set_port(None).is_ok() && r_any.set_port(None).is_ok() && p_any == r_any
}

impl Core {
    fn authorize_error(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        code: OAuthCode,
        description: &str,
    ) -> AuthorizeOutcome {
        let mut params = vec![("error", code.as_str()), ("error_description", description)];
        if let Some(s) = state {
            params.push(("state", s));
        }
        params.push(("iss", &self.settings.public_url));
        AuthorizeOutcome::Redirect(redirect_with(redirect_uri, &params))
    }

    /// Checks an authorization request (code flow, PKCE S256, exact redirect URI, one
    /// registered resource, its scopes).
    pub async fn check_authorization(
        &self,
        p: &AuthorizeParams,
    ) -> Result<AuthorizeOutcome, ServiceError> {
        let Some(client_id) = p.client_id.as_deref().filter(|c| !c.is_empty()) else {
            return Ok(AuthorizeOutcome::ErrorPage(
                "The request does not name a client (client_id is missing).".into(),
            ));
        };
        if super::is_metadata_document_id(client_id)
            && let Err(why) = self.metadata_client(client_id).await
        {
            return Ok(AuthorizeOutcome::ErrorPage(format!(
                "The application's client ID metadata document cannot be used: {why}."
            )));
        }
        let client = match self.client_record(client_id).await? {
            Some(c) => c,
            _ => {
                return Ok(AuthorizeOutcome::ErrorPage(
                    "The application asking for access is not registered here (unknown client_id)."
                        .into(),
                ));
            }
        };
        let registered = metadata_list(&client, "redirectUris");
        let redirect_uri = match p.redirect_uri.as_deref() {
            Some(r) => match registered.iter().find(|reg| redirect_matches(reg, r)) {
                Some(_) => r.to_owned(),
                None => {
                    return Ok(AuthorizeOutcome::ErrorPage(
                        "The redirect URI is not one the application registered; the request was not sent back to it."
                            .into(),
                    ));
                }
            },
            None if registered.len() == 1 => registered[0].clone(),
            None => {
                return Ok(AuthorizeOutcome::ErrorPage(
                    "The request must name its redirect_uri.".into(),
                ));
            }
        };
        let state = p.state.as_deref();
        if state.is_some_and(|s| s.len() > 1024) {
            return Ok(AuthorizeOutcome::ErrorPage(
                "The request's state is too long (at most 1024 characters).".into(),
            ));
        }
        let fail = |code, d: &str| Ok(self.authorize_error(&redirect_uri, state, code, d));
        if !metadata_list(&client, "grantTypes")
            .iter()
            .any(|g| g == GRANT_AUTHORIZATION_CODE)
        {
            return fail(
                OAuthCode::UnauthorizedClient,
                "the client may not use the authorization code flow",
            );
        }
        match p.response_type.as_deref() {
            Some("code") => {}
            None => return fail(OAuthCode::InvalidRequest, "response_type is required"),
            Some(_) => {
                return fail(
                    OAuthCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                );
            }
        }
        let challenge = match (
            p.code_challenge.as_deref(),
            p.code_challenge_method.as_deref(),
        ) {
            (Some(c), Some("S256"))
                if c.len() == 43 && portcullis_crypto::pkce::is_valid_verifier(c) =>
            {
                c.to_owned()
            }
            (Some(_), Some("S256")) => {
                return fail(
                    OAuthCode::InvalidRequest,
                    "code_challenge must be the 43-character base64url SHA-256 of the verifier",
                );
            }
            (None, _) => {
                return fail(
                    OAuthCode::InvalidRequest,
                    "PKCE is required: send code_challenge with code_challenge_method=S256",
                );
            }
            (Some(_), _) => {
                return fail(
                    OAuthCode::InvalidRequest,
                    "code_challenge_method must be S256 (plain is not supported)",
                );
            }
        };
        let resource = match p.resources.as_slice() {
            [one] => one,
            [] => {
                return fail(
                    OAuthCode::InvalidTarget,
                    "resource is required: name the MCP server's canonical URI (RFC 8707)",
                );
            }
            _ => return fail(OAuthCode::InvalidTarget, "name exactly one resource"),
        };
        let Some(resource) = self.resource_by_uri(resource).await? else {
            return fail(
                OAuthCode::InvalidTarget,
                "the resource is not a server registered here",
            );
        };
        let offered: Vec<&str> = resource.scopes.iter().map(|s| s.name.as_str()).collect();
        let requested = split_scopes(p.scope.as_deref());
        if requested.len() > 100 || !requested.iter().all(|s| scope_token_ok(s)) {
            return fail(OAuthCode::InvalidScope, "the scope is malformed");
        }
        if let Some(unknown) = requested
            .iter()
            .find(|s| !offered.contains(&s.as_str()) && !OPENID_SCOPES.contains(&s.as_str()))
        {
            let shown: String = unknown.chars().take(64).collect();
            return fail(
                OAuthCode::InvalidScope,
                &format!("the resource does not offer the scope {shown}"),
            );
        }
        if let Some(n) = &p.nonce
            && (n.chars().count() > MAX_NONCE_CHARS || n.chars().any(char::is_control))
        {
            return fail(
                OAuthCode::InvalidRequest,
                "nonce must be at most 512 characters, without control characters",
            );
        }
        // No scope asked: every scope the resource offers (the consent screen lists them).
        let scopes = if requested.is_empty() {
            offered.iter().map(|s| (*s).to_owned()).collect()
        } else {
            requested
        };
        Ok(AuthorizeOutcome::Pending(PendingAuthorization {
            client_id: client.id,
            redirect_uri_sent: p.redirect_uri.is_some(),
            redirect_uri,
            resource: resource.uri,
            scopes,
            state: p.state.clone(),
            code_challenge: challenge,
            nonce: p.nonce.clone(),
            expires_at: self
                .clock
                .now()
                .add_secs(AUTHORIZATION_TTL_SECS)
                .as_millis(),
        }))
    }

    /// The registered resource whose canonical URI this is.
    pub(crate) async fn resource_by_uri(
        &self,
        uri: &str,
    ) -> Result<Option<portcullis_domain::ResourceRecord>, ServiceError> {
        let Ok(canonical) = canonical_resource_uri(uri, self.settings.production) else {
            return Ok(None);
        };
        if canonical != uri {
            return Ok(None);
        }
        self.resource_record_by_uri(uri).await
    }

    /// Seals a pending request for the pages' forms.
    pub fn seal_authorization(&self, p: &PendingAuthorization) -> Result<String, ServiceError> {
        self.seal_value(p, PENDING_AAD)
    }

    /// Opens a pending request from a form; refuses one that was tampered with or has expired.
    pub async fn open_authorization(
        &self,
        sealed: &str,
    ) -> Result<PendingAuthorization, ServiceError> {
        let p: PendingAuthorization =
            self.open_value(sealed, PENDING_AAD).await.ok_or_else(|| {
                ServiceError::invalid(
                    "invalid_authorization_request",
                    "this sign-in page is not valid; start again from the application",
                )
            })?;
        if self.clock.now() > Timestamp::from_millis(p.expires_at) {
            return Err(ServiceError::invalid(
                "expired_authorization_request",
                "this sign-in page has expired; start again from the application",
            ));
        }
        Ok(p)
    }

    /// What the consent screen shows for a pending request.
    pub async fn consent_screen(
        &self,
        p: &PendingAuthorization,
    ) -> Result<ConsentScreen, ServiceError> {
        let client = self.pending_client(p).await?;
        let resource = self
            .resource_record_by_uri(&p.resource)
            .await?
            .ok_or_else(|| ServiceError::invalid("invalid_target", "the resource is gone"))?;
        let scopes = p
            .scopes
            .iter()
            .map(|name| {
                resource
                    .scopes
                    .iter()
                    .find(|s| &s.name == name)
                    .cloned()
                    .unwrap_or_else(|| ScopeDef {
                        name: name.clone(),
                        description: match name.as_str() {
                            "openid" => Some("Know who you are (your user id)".into()),
                            "profile" => Some("See your name".into()),
                            "email" => Some("See your email address".into()),
                            _ => None,
                        },
                    })
            })
            .collect();
        Ok(ConsentScreen {
            client_name: client.name,
            client_id: client.id,
            redirect_host: url::Url::parse(&p.redirect_uri)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| p.redirect_uri.clone()),
            resource_name: resource.name,
            resource_uri: resource.uri,
            scopes,
        })
    }

    async fn pending_client(&self, p: &PendingAuthorization) -> Result<ClientRecord, ServiceError> {
        self.client_record(&p.client_id)
            .await?
            .ok_or_else(|| ServiceError::invalid("invalid_client", "the client is gone"))
    }

    /// Whether the user already consented to everything the request asks.
    pub async fn consented(
        &self,
        user_id: &str,
        p: &PendingAuthorization,
    ) -> Result<bool, ServiceError> {
        Ok(self
            .stores
            .grants
            .consent(user_id, &p.client_id, &p.resource)
            .await?
            .is_some_and(|c| p.scopes.iter().all(|s| c.scopes.contains(s))))
    }

    /// The user allowed the request: a code is issued (stored as its hash) and the browser is
    /// sent back with it. With `remember`, the consent is kept for the next time.
    pub async fn approve_authorization(
        &self,
        session: &Session,
        p: &PendingAuthorization,
        remember: bool,
    ) -> Result<String, ServiceError> {
        let client = self.pending_client(p).await?;
        let now = self.clock.now();
        if remember {
            let previous = self
                .stores
                .grants
                .consent(&session.user_id, &client.id, &p.resource)
                .await?;
            let mut scopes = previous
                .as_ref()
                .map(|c| c.scopes.clone())
                .unwrap_or_default();
            for s in &p.scopes {
                if !scopes.contains(s) {
                    scopes.push(s.clone());
                }
            }
            self.stores
                .grants
                .put_consent(&ConsentRecord {
                    user_id: session.user_id.clone(),
                    client_id: client.id.clone(),
                    resource: p.resource.clone(),
                    scopes,
                    created_at: previous.map_or(now, |c| c.created_at),
                    updated_at: now,
                })
                .await?;
        }
        let code = format!("pcc_{}", random_token(32));
        self.stores
            .grants
            .insert_code(&CodeRecord {
                hash: hex(&sha256(code.as_bytes())),
                family_id: random_token(16),
                client_id: client.id.clone(),
                user_id: session.user_id.clone(),
                resource: p.resource.clone(),
                scopes: p.scopes.clone(),
                redirect_uri: if p.redirect_uri_sent {
                    p.redirect_uri.clone()
                } else {
                    String::new()
                },
                code_challenge: p.code_challenge.clone(),
                auth_time: Timestamp::from_secs(session.auth_time),
                created_at: now,
                expires_at: now.add_secs(CODE_TTL_SECS),
                nonce: p.nonce.clone(),
            })
            .await?;
        let mut params = vec![("code", code.as_str())];
        if let Some(s) = &p.state {
            params.push(("state", s));
        }
        params.push(("iss", &self.settings.public_url));
        tracing::debug!(client = %client.id, method = %auth_method(&client), "issued an authorization code");
        Ok(redirect_with(&p.redirect_uri, &params))
    }

    /// The user refused: the browser goes back with `access_denied`.
    pub fn deny_authorization(&self, p: &PendingAuthorization) -> String {
        match self.authorize_error(
            &p.redirect_uri,
            p.state.as_deref(),
            OAuthCode::AccessDenied,
            "the user did not allow the request",
        ) {
            AuthorizeOutcome::Redirect(url) => url,
            _ => p.redirect_uri.clone(),
        }
    }
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_match_exactly_or_on_any_loopback_port() {
        assert!(redirect_matches(
            "https://a.example/cb",
            "https://a.example/cb"
        ));
        assert!(!redirect_matches(
            "https://a.example/cb",
            "https://a.example/cb/x"
        ));
        assert!(!redirect_matches(
            "https://a.example/cb",
            "https://a.example/c"
        ));
        assert!(!redirect_matches(
            "https://a.example/cb",
            "https://a.example/cb?x=1"
        ));
        assert!(!redirect_matches(
            "https://a.example:443/cb",
            "https://a.example:8443/cb"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:51234/cb"
        ));
        assert!(redirect_matches("http://[::1]:80/cb", "http://[::1]:9/cb"));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:5/cb2"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.2:5/cb"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:5/CB"
        ));
    }

    #[test]
    fn answers_keep_the_redirect_uris_own_query() {
        assert_eq!(
            redirect_with(
                "https://a.example/cb?x=1",
                &[("code", "c d"), ("iss", "https://p")]
            ),
            "https://a.example/cb?x=1&code=c+d&iss=https%3A%2F%2Fp"
        );
    }
}
