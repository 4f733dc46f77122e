//! The token endpoint's grants, and what reads tokens back: the authorization code (redeemed
//! once in the cluster, PKCE S256 checked), the refresh token (rotated on every use; a replayed
//! one revokes its family), client credentials (confidential clients, no user), RFC 9068 access
//! tokens, introspection (RFC 7662), revocation (RFC 7009) and userinfo.

use base64::Engine as _;
use portcullis_crypto::{SecretString, random_token, sha256};
use portcullis_domain::{Redemption, RefreshRecord, Rotation, Timestamp, UserRecord};
use serde::Serialize;
use serde_json::{Value, json};

use super::authorize::hex;
use super::{
    ACCESS_TOKEN_TYP, GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER,
    GRANT_REFRESH_TOKEN, ID_JAG_TYP, OAuthCode, OAuthError, scope_token_ok, split_scopes,
};
use crate::{ClientIdentity, Core};

/// The token request's parameters besides `grant_type` and the client's credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenParams {
    /// `code`.
    pub code: Option<SecretString>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `code_verifier`.
    pub code_verifier: Option<SecretString>,
    /// `refresh_token`.
    pub refresh_token: Option<SecretString>,
    /// `scope`.
    pub scope: Option<String>,
    /// `resource` (repeatable).
    pub resources: Vec<String>,
    /// `assertion` (the jwt-bearer grant).
    pub assertion: Option<SecretString>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    /// The access token (an RFC 9068 JWT).
    #[serde(serialize_with = "crate::manage::expose")]
    pub access_token: SecretString,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The scopes it carries.
    pub scope: String,
    /// A refresh token, for clients that may use them.
    #[serde(serialize_with = "expose_opt", skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<SecretString>,
    /// An OpenID Connect ID token, when the grant's scopes hold `openid`.
    #[serde(serialize_with = "expose_opt", skip_serializing_if = "Option::is_none")]
    pub id_token: Option<SecretString>,
}

fn expose_opt<S: serde::Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(v.expose()),
        None => s.serialize_none(),
    }
}

/// A required secret parameter of a grant (at most 256 bytes in the tokens Portcullis issues).
fn required<'a>(v: &'a Option<SecretString>, name: &str) -> Result<&'a str, OAuthError> {
    v.as_ref()
        .map(SecretString::expose)
        .filter(|c| !c.is_empty() && c.len() <= 256)
        .ok_or_else(|| OAuthError::new(OAuthCode::InvalidRequest, format!("{name} is required")))
}

fn grant_error(d: impl Into<String>) -> OAuthError {
    OAuthError::new(OAuthCode::InvalidGrant, d)
}

/// The family a refresh token names (`pcr_<family>.<secret>`): where its row is stored.
fn refresh_family(token: &str) -> Option<&str> {
    let (family, secret) = token.strip_prefix("pcr_")?.split_once('.')?;
    let ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 64
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (ok(family) && ok(secret)).then_some(family)
}

fn token_hash(token: &str) -> String {
    hex(&sha256(token.as_bytes()))
}

/// The scopes a token request may narrow to: a subset of those granted.
fn narrowed(granted: &[String], scope: Option<&str>) -> Result<Vec<String>, OAuthError> {
    let asked = split_scopes(scope);
    if asked.is_empty() {
        return Ok(granted.to_vec());
    }
    match asked.iter().find(|s| !granted.contains(s)) {
        Some(s) => Err(OAuthError::new(
            OAuthCode::InvalidScope,
            format!(
                "the scope {} was not granted",
                s.chars().take(64).collect::<String>()
            ),
        )),
        None => Ok(asked),
    }
}

/// A refresh token's presentation: who presents it, for which resource and scopes.
#[derive(Clone)]
struct Presentation {
    client_id: String,
    resources: Vec<String>,
    scope: Option<String>,
}

impl Presentation {
    /// The scopes the new tokens carry, or why the token may not be used so: it is bound to its
    /// client (another client's presentation learns nothing), its resource, and its scopes.
    fn admits(&self, r: &RefreshRecord) -> Result<Vec<String>, OAuthError> {
        if r.client_id != self.client_id {
            return Err(grant_error("the refresh token is not valid"));
        }
        same_resource(&self.resources, &r.resource)?;
        narrowed(&r.scopes, self.scope.as_deref())
    }
}

/// A `resource` sent to the token endpoint must be the grant's (RFC 8707 §2.2).
fn same_resource(sent: &[String], granted: &str) -> Result<(), OAuthError> {
    match sent {
        [] => Ok(()),
        [one] if one == granted => Ok(()),
        _ => Err(OAuthError::new(
            OAuthCode::InvalidTarget,
            "the resource is not the one the grant was issued for",
        )),
    }
}

impl Core {
    fn require_grant(client: &ClientIdentity, grant: &str) -> Result<(), OAuthError> {
        if client.may(grant) {
            Ok(())
        } else {
            Err(OAuthError::new(
                OAuthCode::UnauthorizedClient,
                format!("the client may not use the {grant} grant"),
            ))
        }
    }

    /// An RFC 9068 access token for `sub` (a user, or the client itself).
    fn mint_access_token(
        &self,
        client_id: &str,
        user: Option<&UserRecord>,
        resource: &str,
        scopes: &[String],
        auth_time: Option<Timestamp>,
    ) -> Result<(SecretString, i64), OAuthError> {
        let now = self.clock.now().as_secs();
        let ttl = self.settings.access_token_ttl_secs;
        let mut claims = json!({
            "iss": self.settings.public_url,
            "sub": user.map_or(client_id, |u| u.id.as_str()),
            "aud": resource,
            "client_id": client_id,
            "scope": scopes.join(" "),
            "jti": random_token(16),
            "iat": now,
            "exp": now + ttl,
        });
        if let Some(u) = user {
            // Claims an SSO connection copied from the provider: never one set here.
            if let Some(Value::Object(copied)) =
                u.attributes.get(super::sso::COPIED_CLAIMS_ATTRIBUTE)
            {
                for (k, v) in copied {
                    if !crate::manage::RESERVED_CLAIMS.contains(&k.as_str()) {
                        claims[k] = v.clone();
                    }
                }
            }
            claims["roles"] = json!(u.roles);
            claims["tenants"] = json!(u.tenants.iter().map(|m| &m.tenant_id).collect::<Vec<_>>());
            if let Some(email) = &u.email {
                claims["email"] = json!(email);
            }
        }
        if let Some(t) = auth_time {
            claims["auth_time"] = json!(t.as_secs());
        }
        let jwt = self.sign_jwt(&claims, Some(ACCESS_TOKEN_TYP))?;
        Ok((SecretString::from(jwt), ttl))
    }

    /// An OpenID Connect ID token (Core §2, §3.1.3.6) for `user`, to `client_id`, when `scopes`
    /// hold `openid`: `at_hash` binds it to the access token; `profile` adds the name, `email`
    /// the email address.
    fn mint_id_token(
        &self,
        client_id: &str,
        user: &UserRecord,
        scopes: &[String],
        auth_time: Timestamp,
        nonce: Option<&str>,
        access_token: &SecretString,
    ) -> Result<Option<SecretString>, OAuthError> {
        if !scopes.iter().any(|s| s == "openid") {
            return Ok(None);
        }
        let now = self.clock.now().as_secs();
        // `at_hash` (optional in the code flow): the left half of the access token's hash with
        // the signature's hash function — given for the SHA-256 algorithms, left out otherwise.
        let at_hash = matches!(
            self.settings.signing_alg,
            portcullis_crypto::jws::Algorithm::ES256
                | portcullis_crypto::jws::Algorithm::RS256
                | portcullis_crypto::jws::Algorithm::PS256
        )
        .then(|| {
            let digest = portcullis_crypto::sha256(access_token.expose().as_bytes());
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
        });
        let mut claims = json!({
            "iss": self.settings.public_url,
            "sub": user.id,
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + self.settings.access_token_ttl_secs,
            "auth_time": auth_time.as_secs(),
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        if let Some(h) = at_hash {
            claims["at_hash"] = json!(h);
        }
        if scopes.iter().any(|s| s == "profile")
            && let Some(name) = &user.name
        {
            claims["name"] = json!(name);
        }
        if scopes.iter().any(|s| s == "email")
            && let Some(email) = &user.email
        {
            claims["email"] = json!(email);
        }
        let jwt = self.sign_jwt(&claims, Some("JWT"))?;
        Ok(Some(SecretString::from(jwt)))
    }

    /// Keeps a dynamically registered client from being removed as unused.
    async fn note_use(&self, client_id: &str) {
        if let Err(e) = self.touch_client(client_id).await {
            tracing::warn!(error = %e, client = %client_id, "recording a client's use failed");
        }
    }

    /// A directory user who may still get tokens.
    async fn active_user(&self, id: &str) -> Result<std::sync::Arc<UserRecord>, OAuthError> {
        match self.directory_user(id).await? {
            Some(u) if !u.disabled => Ok(u),
            _ => Err(grant_error("the user no longer exists or is disabled")),
        }
    }

    fn new_refresh(&self, family_id: &str) -> (SecretString, RefreshRecord) {
        // The token names its family, so that a family's tokens are stored (and rotated) together.
        let token = format!("pcr_{family_id}.{}", random_token(32));
        let now = self.clock.now();
        let record = RefreshRecord {
            hash: token_hash(&token),
            family_id: family_id.to_owned(),
            client_id: String::new(),
            user_id: String::new(),
            resource: String::new(),
            scopes: Vec::new(),
            auth_time: now,
            created_at: now,
            expires_at: now.add_secs(self.settings.refresh_token_ttl_secs),
            rotated_at: None,
            revoked_at: None,
        };
        (SecretString::from(token), record)
    }

    /// The `authorization_code` grant.
    pub async fn grant_authorization_code(
        &self,
        client: &ClientIdentity,
        p: &TokenParams,
    ) -> Result<TokenResponse, OAuthError> {
        Self::require_grant(client, GRANT_AUTHORIZATION_CODE)?;
        let code = required(&p.code, "code")?;
        let verifier = p
            .code_verifier
            .as_ref()
            .map(SecretString::expose)
            .ok_or_else(|| {
                OAuthError::new(
                    OAuthCode::InvalidRequest,
                    "code_verifier is required (PKCE)",
                )
            })?;
        if !portcullis_crypto::pkce::is_valid_verifier(verifier) {
            return Err(OAuthError::new(
                OAuthCode::InvalidRequest,
                "code_verifier must be 43 to 128 unreserved characters",
            ));
        }
        let now = self.clock.now();
        let record = match self
            .stores
            .grants
            .redeem_code(&token_hash(code), now)
            .await?
        {
            Redemption::Redeemed(r) => r,
            Redemption::Reused(r) => {
                tracing::warn!(client = %r.client_id, "an authorization code was presented twice; its tokens are revoked");
                return Err(grant_error("the code was already used"));
            }
            Redemption::Unknown => return Err(grant_error("the code is not valid")),
        };
        // Spent from here on, whatever the outcome: a code is tried once.
        if record.client_id != client.client_id {
            return Err(grant_error("the code was issued to another client"));
        }
        if now >= record.expires_at {
            return Err(grant_error("the code has expired"));
        }
        if !record.redirect_uri.is_empty()
            && p.redirect_uri.as_deref() != Some(record.redirect_uri.as_str())
        {
            return Err(grant_error(
                "redirect_uri must be the one the authorization request sent",
            ));
        }
        if !portcullis_crypto::pkce::verify_s256(verifier, &record.code_challenge) {
            return Err(grant_error(
                "the code_verifier does not match the code_challenge",
            ));
        }
        same_resource(&p.resources, &record.resource)?;
        let user = self.active_user(&record.user_id).await?;
        let (access_token, expires_in) = self.mint_access_token(
            &client.client_id,
            Some(&user),
            &record.resource,
            &record.scopes,
            Some(record.auth_time),
        )?;
        let refresh_token = if client.may(GRANT_REFRESH_TOKEN) {
            let (token, mut r) = self.new_refresh(&record.family_id);
            r.client_id = record.client_id.clone();
            r.user_id = record.user_id.clone();
            r.resource = record.resource.clone();
            r.scopes = record.scopes.clone();
            r.auth_time = record.auth_time;
            if !self
                .stores
                .grants
                .insert_code_refresh(&record.hash, &r)
                .await?
            {
                return Err(grant_error("the code was already used"));
            }
            Some(token)
        } else {
            None
        };
        let id_token = self.mint_id_token(
            &client.client_id,
            &user,
            &record.scopes,
            record.auth_time,
            record.nonce.as_deref(),
            &access_token,
        )?;
        self.note_use(&client.client_id).await;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in,
            scope: record.scopes.join(" "),
            refresh_token,
            id_token,
        })
    }

    /// The `refresh_token` grant: the token is rotated; a replayed one revokes its family.
    pub async fn grant_refresh_token(
        &self,
        client: &ClientIdentity,
        p: &TokenParams,
    ) -> Result<TokenResponse, OAuthError> {
        Self::require_grant(client, GRANT_REFRESH_TOKEN)?;
        let presented = required(&p.refresh_token, "refresh_token")?;
        let Some(family) = refresh_family(presented) else {
            return Err(grant_error("the refresh token is not valid"));
        };
        let hash = token_hash(presented);
        let (token, next) = self.new_refresh(family);
        // Checked inside the rotation's transaction: a presentation that would be refused (by
        // another client, for another resource, for more scopes) changes nothing.
        let presentation = Presentation {
            client_id: client.client_id.clone(),
            resources: p.resources.clone(),
            scope: p.scope.clone(),
        };
        let check = {
            let presentation = presentation.clone();
            Box::new(move |r: &RefreshRecord| presentation.admits(r).is_ok())
        };
        let now = self.clock.now();
        let rotation = self
            .stores
            .grants
            .rotate_refresh(family, &hash, &next, now, check)
            .await?;
        let rotated = match rotation {
            Rotation::Rotated(r) => r,
            Rotation::Refused(r) => {
                return Err(presentation
                    .admits(&r)
                    .err()
                    .unwrap_or_else(|| grant_error("the refresh token is not valid")));
            }
            Rotation::Reused(r) => {
                tracing::warn!(client = %r.client_id, user = %r.user_id, "a spent refresh token was presented again; its family is revoked");
                return Err(grant_error(
                    "the refresh token was already used; every token of this grant is revoked",
                ));
            }
            Rotation::Inactive(_) => {
                return Err(grant_error("the refresh token is revoked or expired"));
            }
            Rotation::Unknown => return Err(grant_error("the refresh token is not valid")),
        };
        let scopes = presentation.admits(&rotated)?;
        let user = self.active_user(&rotated.user_id).await?;
        let (access_token, expires_in) = self.mint_access_token(
            &client.client_id,
            Some(&user),
            &rotated.resource,
            &scopes,
            Some(rotated.auth_time),
        )?;
        // OpenID Connect Core §12.2: a refresh may return an ID token; its nonce is not repeated.
        let id_token = self.mint_id_token(
            &client.client_id,
            &user,
            &scopes,
            rotated.auth_time,
            None,
            &access_token,
        )?;
        self.note_use(&client.client_id).await;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in,
            scope: scopes.join(" "),
            refresh_token: Some(token),
            id_token,
        })
    }

    /// The `client_credentials` grant: a token for the client itself, for one resource; never
    /// the fetch scope (there is no user whose tokens it could fetch).
    pub async fn grant_client_credentials(
        &self,
        client: &ClientIdentity,
        p: &TokenParams,
    ) -> Result<TokenResponse, OAuthError> {
        Self::require_grant(client, GRANT_CLIENT_CREDENTIALS)?;
        if client.public {
            return Err(OAuthError::new(
                OAuthCode::UnauthorizedClient,
                "a public client cannot use client_credentials",
            ));
        }
        let resource = match p.resources.as_slice() {
            [one] => one,
            [] => {
                return Err(OAuthError::new(
                    OAuthCode::InvalidTarget,
                    "resource is required: name the server the token is for",
                ));
            }
            _ => {
                return Err(OAuthError::new(
                    OAuthCode::InvalidTarget,
                    "name exactly one resource",
                ));
            }
        };
        let resource = self.resource_by_uri(resource).await?.ok_or_else(|| {
            OAuthError::new(
                OAuthCode::InvalidTarget,
                "the resource is not a server registered here",
            )
        })?;
        let offered: Vec<String> = resource
            .scopes
            .iter()
            .map(|s| s.name.clone())
            .filter(|s| s != &self.settings.fetch_scope)
            .collect();
        let requested = split_scopes(p.scope.as_deref());
        if !requested.iter().all(|s| scope_token_ok(s)) {
            return Err(OAuthError::new(
                OAuthCode::InvalidScope,
                "the scope is malformed",
            ));
        }
        let scopes = narrowed(&offered, p.scope.as_deref())?;
        let (access_token, expires_in) =
            self.mint_access_token(&client.client_id, None, &resource.uri, &scopes, None)?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in,
            scope: scopes.join(" "),
            refresh_token: None,
            id_token: None,
        })
    }

    /// The `jwt-bearer` grant with an Identity Assertion JWT Authorization Grant (ID-JAG; the MCP
    /// enterprise-managed authorization extension): a trusted enterprise issuer vouches that its
    /// user may use this client with this resource and these scopes. The assertion is verified
    /// with the issuer's keys (`typ` `oauth-id-jag+jwt`, audience Portcullis's issuer, `client_id`
    /// the authenticated client, a `jti` used once); its subject must be linked to a directory
    /// user. The token's
    /// audience is the grant's `resource`; its scopes are those asked (all the grant's when none
    /// is) and the grant holds; no refresh token (the client asks its issuer for a new grant).
    pub async fn grant_jwt_bearer(
        &self,
        client: &ClientIdentity,
        p: &TokenParams,
    ) -> Result<TokenResponse, OAuthError> {
        Self::require_grant(client, GRANT_JWT_BEARER)?;
        let assertion = p
            .assertion
            .as_ref()
            .map(SecretString::expose)
            .ok_or_else(|| OAuthError::new(OAuthCode::InvalidRequest, "assertion is required"))?;
        let grant = self
            .inbound
            .verify_assertion(assertion, ID_JAG_TYP, &self.settings.public_url)
            .await
            .map_err(|e| grant_error(format!("the assertion is not valid: {e}")))?;
        if grant.client_id.as_deref() != Some(client.client_id.as_str()) {
            return Err(grant_error("the assertion was issued to another client"));
        }
        let resource_uri = grant
            .claims
            .get("resource")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| grant_error("the assertion names no resource"))?;
        same_resource(&p.resources, resource_uri)?;
        let resource = self.resource_by_uri(resource_uri).await?.ok_or_else(|| {
            OAuthError::new(
                OAuthCode::InvalidTarget,
                "the assertion's resource is not a server registered here",
            )
        })?;
        let offered: Vec<String> = resource.scopes.iter().map(|s| s.name.clone()).collect();
        let granted: Vec<String> = grant
            .scopes
            .iter()
            .filter(|s| offered.contains(s))
            .cloned()
            .collect();
        let scopes = narrowed(&granted, p.scope.as_deref())?;
        let user = self
            .stores
            .directory
            .user_by_identity(&grant.issuer, &grant.subject)
            .await?
            .ok_or_else(|| grant_error("the assertion's subject is not linked to a user here"))?;
        let user = self.active_user(&user.id).await?;
        // Once: a replayed grant is refused on every node until it has expired.
        let jti = grant
            .claims
            .get("jti")
            .and_then(serde_json::Value::as_str)
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| grant_error("the assertion has no jti"))?;
        let key = hex(&sha256(format!("{}\0{jti}", grant.issuer).as_bytes()));
        let until = Timestamp::from_secs(grant.expires_at + crate::signing::TOKEN_CLOCK_SKEW_SECS);
        if !self.stores.grants.use_assertion(&key, until).await? {
            return Err(grant_error("the assertion was already used"));
        }
        let (access_token, expires_in) =
            self.mint_access_token(&client.client_id, Some(&user), &resource.uri, &scopes, None)?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in,
            scope: scopes.join(" "),
            refresh_token: None,
            id_token: None,
        })
    }

    /// RFC 7662 introspection, for an authenticated client: Portcullis's own access tokens
    /// (verified, their user still enabled) and refresh tokens (active, not spent). Anything
    /// else is `{"active": false}`.
    pub async fn introspect(&self, token: &str) -> Result<Value, OAuthError> {
        let inactive = json!({ "active": false });
        if token.is_empty() || token.len() > self.settings.max_token_len {
            return Ok(inactive);
        }
        if token.starts_with("pcr_") {
            let Some(family) = refresh_family(token) else {
                return Ok(inactive);
            };
            let Some(r) = self
                .stores
                .grants
                .refresh_token(family, &token_hash(token))
                .await?
            else {
                return Ok(inactive);
            };
            if !r.is_active(self.clock.now()) || self.active_user(&r.user_id).await.is_err() {
                return Ok(inactive);
            }
            return Ok(json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": r.client_id,
                "sub": r.user_id,
                "aud": r.resource,
                "scope": r.scopes.join(" "),
                "iss": self.settings.public_url,
                "iat": r.created_at.as_secs(),
                "exp": r.expires_at.as_secs(),
            }));
        }
        let Ok(verified) = self.verify_inbound(token).await else {
            return Ok(inactive);
        };
        if !self.inbound.is_local_issuer(&verified.issuer) {
            return Ok(inactive);
        }
        let for_user = verified.client_id.as_deref() != Some(verified.subject.as_str());
        if for_user && self.active_user(&verified.subject).await.is_err() {
            return Ok(inactive);
        }
        let mut out = serde_json::Map::new();
        out.insert("active".into(), Value::Bool(true));
        out.insert("token_type".into(), Value::from("Bearer"));
        for (k, v) in &verified.claims {
            out.insert(k.clone(), v.clone());
        }
        Ok(Value::Object(out))
    }

    /// RFC 7009 revocation: a refresh token of this client revokes its whole family. Anything
    /// else (another client's token, an unknown token, an access token, which expires within
    /// minutes) changes nothing; the answer is the same.
    pub async fn revoke_token(
        &self,
        client: &ClientIdentity,
        token: &str,
    ) -> Result<(), OAuthError> {
        let Some(family) = refresh_family(token).filter(|_| token.len() <= 256) else {
            return Ok(());
        };
        if let Some(r) = self
            .stores
            .grants
            .refresh_token(family, &token_hash(token))
            .await?
            && r.client_id == client.client_id
        {
            self.stores
                .grants
                .revoke_family(&r.family_id, self.clock.now())
                .await?;
        }
        Ok(())
    }

    /// The OpenID Connect userinfo of an access token's user (`None`: not a valid access token
    /// of Portcullis for an enabled user).
    pub async fn userinfo(&self, token: &str) -> Result<Option<Value>, OAuthError> {
        let Ok(verified) = self.verify_inbound(token).await else {
            return Ok(None);
        };
        if !self.inbound.is_local_issuer(&verified.issuer)
            || verified.client_id.as_deref() == Some(verified.subject.as_str())
        {
            return Ok(None);
        }
        let Ok(user) = self.active_user(&verified.subject).await else {
            return Ok(None);
        };
        let mut out = json!({ "sub": user.id, "roles": user.roles });
        if let Some(e) = &user.email {
            out["email"] = json!(e);
        }
        if let Some(n) = &user.name {
            out["name"] = json!(n);
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn refresh_tokens_name_their_family() {
        assert_eq!(refresh_family("pcr_fam-1_A.s3cr3t_-x"), Some("fam-1_A"));
        for bad in [
            "pcr_nofamily",
            "pcr_.secret",
            "pcr_fam.",
            "pcx_fam.s",
            "pcr_fa.m.s",
            "pcr_f/m.s",
        ] {
            assert_eq!(refresh_family(bad), None, "{bad}");
        }
    }

    use super::*;

    #[test]
    fn a_token_request_narrows_within_the_grant_only() {
        let granted = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(narrowed(&granted, None).unwrap(), granted);
        assert_eq!(narrowed(&granted, Some("b")).unwrap(), vec!["b".to_owned()]);
        assert_eq!(
            narrowed(&granted, Some("b c")).unwrap_err().code,
            OAuthCode::InvalidScope
        );
    }

    #[test]
    fn a_resource_at_the_token_endpoint_must_be_the_grants() {
        assert!(same_resource(&[], "https://m/").is_ok());
        assert!(same_resource(&["https://m/".into()], "https://m/").is_ok());
        let e = same_resource(&["https://n/".into()], "https://m/").unwrap_err();
        assert_eq!(e.code, OAuthCode::InvalidTarget);
    }
}
