//! Single sign-on through upstream OpenID Connect providers (OpenID Connect Core 1.0 §3.1, the
//! code flow): the browser is sent to the provider with PKCE S256, a `state` and a `nonce` held
//! in a sealed, short-lived cookie; the callback exchanges the code, validates the id_token
//! (signature with the provider's published keys, `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`),
//! finds the directory user linked to the provider's issuer and subject — creating one on a first
//! sign-in when the connection provisions — and applies the connection's claim mappings to the
//! user's roles and tenants. Mappings run at every sign-in, so a user removed from a group loses
//! its role at the next one, and the access control plane decides the next token request on the
//! directory as it then is.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis_crypto::jws::{Algorithm, JwkSet, KeySet, Unverified, Validation};
use portcullis_crypto::{SecretString, constant_time_eq, pkce, random_token};
use portcullis_domain::{
    ClientAuthMethod, Identity, SsoConnectionRecord, SsoSettings, StoreError, TenantMembership,
    UserRecord,
};
use portcullis_policy::ClaimPath;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Session;
use crate::{Core, ServiceError, TokenEndpoint};

const FLOW_AAD: &[u8] = b"portcullis:sso-flow:v1";
/// How long a browser has to come back from the provider, in seconds.
pub const SSO_FLOW_TTL_SECS: i64 = 600;
/// How long a provider's discovery document and keys are kept.
const UPSTREAM_TTL: Duration = Duration::from_secs(3600);
/// The least time between two fetches of a provider's keys for an unknown `kid`.
const MIN_REFETCH: Duration = Duration::from_secs(60);
/// Clock skew allowed on the id_token's times, in seconds.
const LEEWAY_SECS: u64 = 60;
/// The algorithms an id_token may be signed with: asymmetric ones only.
const ID_TOKEN_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Where the browser goes once signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SsoThen {
    /// Back to an authorization request (the sealed pending request its pages carry).
    #[serde(rename = "a")]
    Authorize(String),
    /// Back to a page of Portcullis (a path).
    #[serde(rename = "p")]
    Return(String),
}

impl SsoThen {
    /// A local path to return to: absolute, not protocol-relative, no backslash, at most 8 KiB.
    pub fn return_to(path: &str) -> Option<Self> {
        let ok = path.starts_with('/')
            && !path.starts_with("//")
            && !path.contains('\\')
            && path.len() <= 8192
            && !path.chars().any(char::is_control);
        ok.then(|| Self::Return(path.to_owned()))
    }
}

/// A sign-in in progress: what the callback checks (sealed in the browser's cookie).
#[derive(Serialize, Deserialize)]
struct Flow {
    #[serde(rename = "c")]
    connection: String,
    #[serde(rename = "s")]
    state: String,
    #[serde(rename = "n")]
    nonce: String,
    #[serde(rename = "v")]
    verifier: String,
    #[serde(rename = "t")]
    then: SsoThen,
    #[serde(rename = "e")]
    expires_at: i64,
}

/// Where to send the browser, and the sealed flow cookie to set.
#[derive(Debug)]
pub struct SsoStart {
    /// The provider's authorization URL.
    pub location: String,
    /// The flow cookie's value.
    pub cookie: String,
}

/// A connection as the sign-in page offers it.
#[derive(Debug, Clone)]
pub struct SsoButton {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// Why a single sign-on did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsoError {
    /// No such connection.
    #[error("this single sign-on connection does not exist")]
    UnknownConnection,
    /// The callback does not belong to a sign-in this browser started (or it expired).
    #[error("{0}")]
    Flow(&'static str),
    /// The provider refused, failed or answered something unusable.
    #[error("the identity provider: {0}")]
    Provider(String),
    /// The id_token is not valid for this sign-in.
    #[error("the identity provider's id_token is not valid: {0}")]
    IdToken(String),
    /// The identity is linked to no user, and the connection does not create users.
    #[error("no account here is linked to this identity; ask an administrator for access")]
    NoAccount,
    /// The user is disabled.
    #[error("this account is disabled")]
    Disabled,
    /// A mapping names a role or tenant that no longer exists.
    #[error("the connection's mappings name {0}, which no longer exists; ask an administrator")]
    Mapping(String),
    /// The database is unavailable.
    #[error("sign-in is unavailable right now: {0}")]
    Unavailable(String),
}

impl From<ServiceError> for SsoError {
    fn from(e: ServiceError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<StoreError> for SsoError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// A provider's discovery document (the endpoints used) and its keys.
#[derive(Debug)]
pub(crate) struct Upstream {
    authorization_endpoint: String,
    token_endpoint: String,
    keys: KeySet,
    fetched: Instant,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// Whether the claim at `path` holds `value`: equals it, or is an array holding it (numbers and
/// booleans compared as their JSON text).
fn holds(claims: &Map<String, Value>, path: &ClaimPath, value: &str) -> bool {
    let same = |v: &Value| match v {
        Value::String(s) => s == value,
        Value::Number(n) => n.to_string() == value,
        Value::Bool(b) => value == if *b { "true" } else { "false" },
        _ => false,
    };
    match path.resolve(claims) {
        Some(Value::Array(items)) => items.iter().any(same),
        Some(v) => same(v),
        None => false,
    }
}

/// Applies a connection's mappings to a user: the deployment-wide roles any rule names follow the
/// rules (others are left as they are), and so do the memberships of the tenants any rule names.
/// Whether anything changed.
pub(crate) fn apply_mappings(
    settings: &SsoSettings,
    claims: &Map<String, Value>,
    user: &mut UserRecord,
) -> bool {
    let managed: BTreeSet<&str> = settings.managed_roles().collect();
    let mut roles: BTreeSet<String> = user
        .roles
        .iter()
        .filter(|r| !managed.contains(r.as_str()))
        .cloned()
        .collect();
    let mut tenants: std::collections::BTreeMap<&str, Option<BTreeSet<String>>> =
        settings.managed_tenants().map(|t| (t, None)).collect();
    for m in &settings.mappings {
        let Ok(path) = ClaimPath::parse(&m.claim) else {
            continue;
        };
        if !holds(claims, &path, &m.value) {
            continue;
        }
        match &m.tenant {
            None => roles.extend(m.roles.iter().cloned()),
            Some(t) => tenants
                .entry(t.as_str())
                .or_insert(None)
                .get_or_insert_with(BTreeSet::new)
                .extend(m.roles.iter().cloned()),
        }
    }
    let roles: Vec<String> = roles.into_iter().collect();
    let mut memberships: Vec<TenantMembership> = user
        .tenants
        .iter()
        .filter(|m| !tenants.contains_key(m.tenant_id.as_str()))
        .cloned()
        .collect();
    for (t, held) in tenants {
        if let Some(held) = held {
            memberships.push(TenantMembership {
                tenant_id: t.to_owned(),
                roles: held.into_iter().collect(),
            });
        }
    }
    memberships.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    let mut before = user.tenants.clone();
    before.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    let mut roles_before = user.roles.clone();
    roles_before.sort();
    let changed = roles != roles_before || memberships != before;
    user.roles = roles;
    user.tenants = memberships;
    changed
}

/// The user attribute holding the id_token claims a connection copies (see
/// [`SsoSettings::claims`]); Portcullis's access tokens carry them.
pub const COPIED_CLAIMS_ATTRIBUTE: &str = "upstreamClaims";
/// The largest copied claim, and all of them together, as JSON.
const MAX_COPIED_CLAIM_BYTES: usize = 1024;
const MAX_COPIED_BYTES: usize = 8 * 1024;

/// Copies the connection's claims from the id_token to the user (those absent, larger than 1 KiB
/// as JSON, or past 8 KiB in all are left out: the set is what the last sign-in said). Whether
/// anything changed.
pub(crate) fn copy_claims(
    settings: &SsoSettings,
    claims: &Map<String, Value>,
    user: &mut UserRecord,
) -> bool {
    if settings.claims.is_empty() {
        return false;
    }
    let mut total = 0;
    let copied: Map<String, Value> = settings
        .claims
        .iter()
        .filter_map(|name| {
            let v = claims.get(name)?;
            let size = serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
            if size > MAX_COPIED_CLAIM_BYTES || total + size > MAX_COPIED_BYTES {
                return None;
            }
            total += size;
            Some((name.clone(), v.clone()))
        })
        .collect();
    let copied = Value::Object(copied);
    if user.attributes.get(COPIED_CLAIMS_ATTRIBUTE) == Some(&copied) {
        return false;
    }
    user.attributes
        .insert(COPIED_CLAIMS_ATTRIBUTE.to_owned(), copied);
    true
}

/// The directory id of a user provisioned by a connection: stable for the provider's subject, so
/// that two first sign-ins racing on two nodes make one user.
fn provisioned_id(connection: &str, issuer: &str, subject: &str) -> String {
    let digest = portcullis_crypto::sha256(format!("{issuer}\n{subject}").as_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("sso-{connection}-{hex}")
}

impl Core {
    /// The redirect URI registered at every upstream provider.
    pub fn sso_redirect_uri(&self) -> String {
        format!(
            "{}/oauth2/sso/callback",
            self.settings.public_url.trim_end_matches('/')
        )
    }

    /// The connections the sign-in page offers (the first 20, by id).
    pub async fn sso_buttons(&self) -> Result<Vec<SsoButton>, ServiceError> {
        let rows = self
            .stores
            .sso
            .sso_connections(&portcullis_domain::PageRequest {
                after: None,
                limit: 20,
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| SsoButton {
                id: r.id,
                name: r.name,
            })
            .collect())
    }

    /// Starts a sign-in at connection `id`: the provider's authorization URL and the flow cookie.
    pub async fn start_sso(&self, id: &str, then: SsoThen) -> Result<SsoStart, SsoError> {
        if id.is_empty() || id.len() > 64 {
            return Err(SsoError::UnknownConnection);
        }
        let conn = self
            .stores
            .sso
            .sso_connection(id)
            .await?
            .ok_or(SsoError::UnknownConnection)?;
        let upstream = self.upstream(&conn.issuer, false).await?;
        let state = random_token(32);
        let nonce = random_token(32);
        let verifier = pkce::new_verifier();
        let mut url = url::Url::parse(&upstream.authorization_endpoint)
            .map_err(|e| SsoError::Provider(format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &conn.client_id)
            .append_pair("redirect_uri", &self.sso_redirect_uri())
            .append_pair("scope", &conn.settings.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &pkce::challenge_s256(verifier.expose()))
            .append_pair("code_challenge_method", "S256");
        let flow = Flow {
            connection: conn.id,
            state,
            nonce,
            verifier: verifier.expose().to_owned(),
            then,
            expires_at: self.clock.now().as_secs() + SSO_FLOW_TTL_SECS,
        };
        Ok(SsoStart {
            location: url.to_string(),
            cookie: self.seal_value(&flow, FLOW_AAD)?,
        })
    }

    /// Completes a sign-in at the callback: the flow cookie this browser carries, and the
    /// callback's `state`, `code` and `iss` (RFC 9207, when the provider sends it). The session,
    /// and where to go next.
    pub async fn finish_sso(
        &self,
        cookie: Option<&str>,
        state: &str,
        code: &str,
        iss: Option<&str>,
    ) -> Result<(Session, SsoThen), SsoError> {
        let flow: Flow = match cookie {
            Some(c) => self.open_value(c, FLOW_AAD).await,
            None => None,
        }
        .ok_or(SsoError::Flow(
            "no single sign-on was started in this browser (or it was tampered with); start again",
        ))?;
        let now = self.clock.now();
        if now.as_secs() > flow.expires_at {
            return Err(SsoError::Flow(
                "this single sign-on took too long and expired; start again",
            ));
        }
        if !constant_time_eq(state.as_bytes(), flow.state.as_bytes()) {
            return Err(SsoError::Flow(
                "the answer's state is not the one this browser's sign-in sent",
            ));
        }
        if code.is_empty() || code.len() > 4096 {
            return Err(SsoError::Provider("the callback carries no code".into()));
        }
        let conn = self
            .stores
            .sso
            .sso_connection(&flow.connection)
            .await?
            .ok_or(SsoError::UnknownConnection)?;
        // A provider that names itself must be the one this sign-in went to (mix-up defence).
        if iss.is_some_and(|i| i != conn.issuer) {
            return Err(SsoError::Flow(
                "the answer comes from another identity provider than the one this sign-in went to",
            ));
        }
        let upstream = self.upstream(&conn.issuer, false).await?;
        let secret = match &conn.client_secret {
            Some(c) => {
                let bytes = self
                    .sealer
                    .open(c, &crate::manage::sso_secret_aad(&conn.id))
                    .await?;
                Some(SecretString::from(
                    String::from_utf8_lossy(bytes.expose()).into_owned(),
                ))
            }
            None => None,
        };
        let endpoint = TokenEndpoint {
            url: &upstream.token_endpoint,
            client_id: &conn.client_id,
            auth: ClientAuthMethod::ClientSecretBasic,
        };
        let tokens = self
            .provider
            .exchange_code_at(
                &endpoint,
                secret.as_ref(),
                code,
                &self.sso_redirect_uri(),
                &flow.verifier,
            )
            .await
            .map_err(|e| SsoError::Provider(e.to_string()))?;
        let id_token = tokens
            .id_token
            .ok_or_else(|| SsoError::IdToken("the token response has no id_token".into()))?;
        let claims = self
            .verify_id_token(&conn, upstream, id_token.expose(), &flow.nonce)
            .await?;
        let user = self.sso_user(&conn, &claims).await?;
        tracing::info!(connection = %conn.id, user = %user.id, "signed in through single sign-on");
        Ok((
            Session {
                user_id: user.id,
                auth_time: now.as_secs(),
                expires_at: now.add_secs(self.settings.session_ttl_secs).as_secs(),
                sid: random_token(16),
            },
            flow.then,
        ))
    }

    /// Validates an id_token (OpenID Connect Core §3.1.3.7) with the provider's keys (fetched
    /// again when the token names a key not held); its claims.
    async fn verify_id_token(
        &self,
        conn: &SsoConnectionRecord,
        mut upstream: Arc<Upstream>,
        token: &str,
        nonce: &str,
    ) -> Result<Map<String, Value>, SsoError> {
        let bad = |e: &dyn std::fmt::Display| SsoError::IdToken(e.to_string());
        let unverified =
            Unverified::parse(token, self.settings.max_token_len).map_err(|e| bad(&e))?;
        let audiences = [conn.client_id.clone()];
        unverified
            .validate(&Validation {
                issuer: &conn.issuer,
                audiences: &audiences,
                algorithms: &ID_TOKEN_ALGORITHMS,
                leeway_secs: LEEWAY_SECS,
                now: self.clock.now().as_secs(),
                require_sub: true,
            })
            .map_err(|e| bad(&e))?;
        let (kid, alg) = (unverified.header().kid(), unverified.header().alg());
        if upstream.keys.find(kid, alg).is_none() {
            upstream = self.upstream(&conn.issuer, true).await?;
        }
        unverified
            .verify_with(&upstream.keys)
            .map_err(|e| bad(&e))?;
        let claims = unverified.into_claims();
        // Several audiences: the authorized party must be Portcullis (§3.1.3.7 items 4 and 5).
        let azp = claims.get("azp").and_then(Value::as_str);
        let several = matches!(claims.get("aud"), Some(Value::Array(a)) if a.len() > 1);
        if azp.is_some_and(|a| a != conn.client_id) || (several && azp.is_none()) {
            return Err(SsoError::IdToken(
                "its authorized party (azp) is not Portcullis".into(),
            ));
        }
        let sent = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !constant_time_eq(sent.as_bytes(), nonce.as_bytes()) {
            return Err(SsoError::IdToken(
                "its nonce is not the one this sign-in sent".into(),
            ));
        }
        Ok(claims)
    }

    /// The directory user of a verified identity: linked, or provisioned; mappings applied.
    async fn sso_user(
        &self,
        conn: &SsoConnectionRecord,
        claims: &Map<String, Value>,
    ) -> Result<UserRecord, SsoError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let directory = &self.stores.directory;
        let mut user = match directory.user_by_identity(&conn.issuer, &subject).await? {
            Some(u) => u,
            None if !conn.settings.provision => return Err(SsoError::NoAccount),
            None => self.provision(conn, &subject, claims).await?,
        };
        if user.disabled {
            return Err(SsoError::Disabled);
        }
        let copied = copy_claims(&conn.settings, claims, &mut user);
        if apply_mappings(&conn.settings, claims, &mut user) | copied {
            user.updated_at = self.clock.now();
            match directory.update_user(&user).await {
                Ok(()) => {}
                Err(StoreError::MissingReference { entity, id }) => {
                    return Err(SsoError::Mapping(format!("{entity} {id}")));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(user)
    }

    /// Creates the user of a first sign-in, linked to the identity. Two first sign-ins racing
    /// make one user: the loser reads the winner's.
    async fn provision(
        &self,
        conn: &SsoConnectionRecord,
        subject: &str,
        claims: &Map<String, Value>,
    ) -> Result<UserRecord, SsoError> {
        let text = |k: &str, max: usize| {
            claims
                .get(k)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty() && v.chars().count() <= max)
                .filter(|v| !v.chars().any(char::is_control))
                .map(str::to_owned)
        };
        let email = text("email", 254).filter(|e| {
            e.contains('@')
                && !e.contains(char::is_whitespace)
                && claims.get("email_verified") != Some(&Value::Bool(false))
        });
        let now = self.clock.now();
        let mut user = UserRecord {
            id: provisioned_id(&conn.id, &conn.issuer, subject),
            identities: vec![Identity {
                issuer: conn.issuer.clone(),
                subject: subject.to_owned(),
            }],
            email,
            name: text("name", 256),
            roles: Vec::new(),
            tenants: Vec::new(),
            attributes: Map::new(),
            disabled: false,
            created_at: now,
            updated_at: now,
        };
        crate::identity::check_identities(&user.identities)
            .map_err(|e| SsoError::IdToken(e.to_string()))?;
        for attempt in 0..2 {
            match self.stores.directory.insert_user(&user).await {
                Ok(()) => {
                    tracing::info!(connection = %conn.id, user = %user.id, "provisioned a user at first sign-in");
                    return Ok(user);
                }
                Err(StoreError::AlreadyExists { .. }) => {
                    if let Some(u) = self
                        .stores
                        .directory
                        .user_by_identity(&conn.issuer, subject)
                        .await?
                    {
                        return Ok(u);
                    }
                    // Another user holds the email (or, unlikely, the id): no email, then.
                    if attempt == 0 && user.email.is_some() {
                        user.email = None;
                        continue;
                    }
                    return Err(SsoError::Unavailable(
                        "the provisioned user's id is taken".into(),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(SsoError::Unavailable("provisioning failed".into()))
    }

    /// A provider's discovery document and keys: cached for an hour; `refetch` fetches again (at
    /// most once a minute) when a token names a key not held.
    async fn upstream(&self, issuer: &str, refetch: bool) -> Result<Arc<Upstream>, SsoError> {
        if let Some(u) = self.upstreams.get(issuer) {
            let age = u.fetched.elapsed();
            if age < UPSTREAM_TTL && !(refetch && age >= MIN_REFETCH) {
                return Ok(u);
            }
        }
        let http = self.provider.http();
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc: Discovery = crate::urls::get_json(http, &url)
            .await
            .map_err(|e| SsoError::Provider(format!("reading its discovery document: {e}")))?;
        if doc.issuer != issuer {
            return Err(SsoError::Provider(format!(
                "its discovery document names the issuer {:?}, not {issuer:?}",
                doc.issuer
            )));
        }
        let check = |u: &str, field: &str| {
            crate::urls::check_url(u, field, &self.settings)
                .map_err(|e| SsoError::Provider(e.to_string()))
        };
        let authorization_endpoint = check(&doc.authorization_endpoint, "authorization_endpoint")?;
        let token_endpoint = check(&doc.token_endpoint, "token_endpoint")?;
        let jwks_uri = check(&doc.jwks_uri, "jwks_uri")?;
        let set: JwkSet = crate::urls::get_json(http, &jwks_uri)
            .await
            .map_err(|e| SsoError::Provider(format!("reading its keys: {e}")))?;
        let (keys, _skipped) = KeySet::from_jwks(&set);
        let upstream = Arc::new(Upstream {
            authorization_endpoint,
            token_endpoint,
            keys,
            fetched: Instant::now(),
        });
        self.upstreams.insert(issuer.to_owned(), upstream.clone());
        Ok(upstream)
    }
}

#[cfg(test)]
mod tests {
    use portcullis_domain::{ClaimMapping, Timestamp};
    use serde_json::json;

    use super::*;

    fn user(roles: &[&str], tenants: &[(&str, &[&str])]) -> UserRecord {
        UserRecord {
            id: "u".into(),
            identities: Vec::new(),
            email: None,
            name: None,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            tenants: tenants
                .iter()
                .map(|(t, r)| TenantMembership {
                    tenant_id: (*t).to_owned(),
                    roles: r.iter().map(|x| (*x).to_owned()).collect(),
                })
                .collect(),
            attributes: Map::new(),
            disabled: false,
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        }
    }

    fn rule(claim: &str, value: &str, roles: &[&str], tenant: Option<&str>) -> ClaimMapping {
        ClaimMapping {
            claim: claim.into(),
            value: value.into(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            tenant: tenant.map(str::to_owned),
        }
    }

    #[test]
    fn mappings_grant_and_take_back_only_the_roles_they_manage() {
        let settings = SsoSettings {
            scopes: vec!["openid".into()],
            provision: true,
            claims: Vec::new(),
            mappings: vec![
                rule("groups", "g-viewers", &["Viewer"], None),
                rule("groups", "g-editors", &["Editor"], None),
                rule("tid", "acme-tid", &["Member"], Some("acme")),
                rule("org.admin", "true", &["Admin"], Some("acme")),
            ],
        };
        let claims = |v: Value| v.as_object().unwrap().clone();
        // An admin-given role stays; a managed one follows the groups.
        let mut u = user(&["Auditor", "Editor"], &[("other", &["x"])]);
        let c = claims(json!({"groups": ["g-viewers", "unrelated"], "tid": "acme-tid"}));
        assert!(apply_mappings(&settings, &c, &mut u));
        assert_eq!(u.roles, vec!["Auditor", "Viewer"]);
        assert_eq!(u.tenants.len(), 2);
        assert_eq!(u.tenants[0].tenant_id, "acme");
        assert_eq!(u.tenants[0].roles, vec!["Member"]);
        assert_eq!(u.tenants[1].tenant_id, "other");
        // Nothing new: no change.
        assert!(!apply_mappings(&settings, &c, &mut u));
        // Out of every group, out of the tenant; booleans compare as their JSON text.
        let c = claims(json!({"groups": "g-editors", "org": {"admin": true}}));
        assert!(apply_mappings(&settings, &c, &mut u));
        assert_eq!(u.roles, vec!["Auditor", "Editor"]);
        assert_eq!(u.tenants[0].tenant_id, "acme");
        assert_eq!(u.tenants[0].roles, vec!["Admin"]);
        let c = claims(json!({}));
        assert!(apply_mappings(&settings, &c, &mut u));
        assert_eq!(u.roles, vec!["Auditor"]);
        assert_eq!(u.tenants.len(), 1);
        assert_eq!(u.tenants[0].tenant_id, "other");
    }

    #[test]
    fn provisioned_ids_are_stable_per_issuer_and_subject() {
        let a = provisioned_id("entra", "https://login.example/t/v2.0", "abc");
        assert_eq!(
            a,
            provisioned_id("entra", "https://login.example/t/v2.0", "abc")
        );
        assert_ne!(a, provisioned_id("entra", "https://other.example", "abc"));
        assert!(a.starts_with("sso-entra-") && a.len() == "sso-entra-".len() + 20);
    }

    #[test]
    fn return_paths_stay_on_portcullis() {
        assert!(SsoThen::return_to("/connect/abc?x=1").is_some());
        for bad in ["//evil.example/", "https://evil.example/", "/\\evil", "x"] {
            assert!(SsoThen::return_to(bad).is_none(), "{bad}");
        }
    }
}
