//! Trusted issuers of inbound tokens.

use super::*;

/// A trusted issuer as written by the management API.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssuerInput {
    /// The exact `iss` of its tokens.
    pub issuer: String,
    /// The URL of the issuer's JSON Web Key Set.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Its OpenID Connect discovery URL (used when `jwksUrl` is absent).
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// Accepted audiences (at least one).
    pub audiences: Vec<String>,
    /// Accepted algorithms (default RS256, ES256, EdDSA).
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// Claim with the user's roles (dotted path).
    #[serde(default)]
    pub roles_claim: Option<String>,
    /// Claim with the user's tenant(s).
    #[serde(default)]
    pub tenant_claim: Option<String>,
    /// Leeway on `exp`/`nbf`/`iat` (default 60, at most 600).
    #[serde(default, deserialize_with = "whole_number")]
    pub clock_skew_seconds: Option<u32>,
    /// The `typ` header its tokens must carry, such as `at+jwt` (RFC 9068 access tokens):
    /// tokens without it (an ID token, say) are refused. Absent: any `typ`.
    #[serde(default)]
    pub required_typ: Option<String>,
}

/// A trusted issuer as the management API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuerView {
    /// The issuer's id: `config:<n>` for the configuration file's issuers, a generated id for those
    /// added through the API.
    pub id: String,
    /// The exact `iss` of the issuer's tokens.
    pub issuer: String,
    /// The URL of the issuer's JSON Web Key Set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// The issuer's OpenID Connect discovery URL (used when there is no JWKS URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_url: Option<String>,
    /// The audiences accepted: a token must name one of them in `aud`.
    pub audiences: Vec<String>,
    /// The signature algorithms accepted.
    pub algorithms: Vec<String>,
    /// The claim holding the user's roles (a dotted path), for users who are not in the directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles_claim: Option<String>,
    /// The claim holding the user's tenant or tenants (a dotted path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_claim: Option<String>,
    /// The leeway on `exp`, `nbf` and `iat`, in seconds.
    pub clock_skew_seconds: u32,
    /// The `typ` header its tokens must carry, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_typ: Option<String>,
    /// `api` (stored) or `config` (from the configuration file, read-only).
    pub source: &'static str,
}

impl IssuerView {
    fn from_record(r: &IssuerRecord) -> Self {
        Self {
            id: r.id.clone(),
            issuer: r.issuer.clone(),
            jwks_url: r.jwks_url.clone(),
            discovery_url: r.discovery_url.clone(),
            audiences: r.audiences.clone(),
            algorithms: r.algorithms.clone(),
            roles_claim: r.roles_claim.clone(),
            tenant_claim: r.tenant_claim.clone(),
            clock_skew_seconds: r.clock_skew_seconds,
            required_typ: r.required_typ.clone(),
            source: "api",
        }
    }
}

impl Core {
    fn issuer_record(
        &self,
        id: String,
        input: &IssuerInput,
        created_at: Timestamp,
    ) -> Result<IssuerRecord, ServiceError> {
        let control = |t: &String| t.chars().any(char::is_control);
        let fields = [
            ("issuer", Some(&input.issuer)),
            ("jwksUrl", input.jwks_url.as_ref()),
            ("discoveryUrl", input.discovery_url.as_ref()),
            ("rolesClaim", input.roles_claim.as_ref()),
            ("tenantClaim", input.tenant_claim.as_ref()),
        ];
        let lists = [
            ("audiences", &input.audiences[..]),
            (
                "algorithms",
                input.algorithms.as_deref().unwrap_or_default(),
            ),
        ];
        let with_control = fields
            .iter()
            .find(|(_, v)| v.is_some_and(control))
            .map(|(f, _)| (*f).to_owned())
            .or_else(|| {
                lists
                    .iter()
                    .find_map(|(f, v)| v.iter().position(control).map(|i| format!("{f}[{i}]")))
            });
        if let Some(path) = with_control {
            return Err(ServiceError::invalid_at(
                "invalid_issuer",
                path,
                "an issuer's settings must not contain control characters",
            ));
        }
        if let Some((field, _)) = [
            ("jwksUrl", &input.jwks_url),
            ("discoveryUrl", &input.discovery_url),
        ]
        .into_iter()
        .find(|(_, u)| u.as_ref().is_some_and(|u| u.chars().count() > 2048))
        {
            return Err(ServiceError::invalid_at(
                "invalid_issuer",
                field,
                "jwksUrl and discoveryUrl are at most 2048 characters",
            ));
        }
        let record = IssuerRecord {
            id,
            issuer: input.issuer.clone(),
            jwks_url: input.jwks_url.clone(),
            discovery_url: input.discovery_url.clone(),
            audiences: input.audiences.clone(),
            algorithms: input
                .algorithms
                .clone()
                .unwrap_or_else(|| vec!["RS256".into(), "ES256".into(), "EdDSA".into()]),
            roles_claim: input.roles_claim.clone(),
            tenant_claim: input.tenant_claim.clone(),
            clock_skew_seconds: input.clock_skew_seconds.unwrap_or(60),
            required_typ: input.required_typ.clone(),
            created_at,
            updated_at: self.clock.now(),
        };
        IssuerSpec::from_record(&record, &self.settings)?;
        if self.inbound.is_config_issuer(&record.issuer) {
            return Err(ServiceError::Conflict {
                code: "already_exists",
                message: "this issuer is defined in the configuration file".into(),
            });
        }
        Ok(record)
    }

    /// Adds a trusted issuer.
    pub async fn create_issuer(&self, input: &IssuerInput) -> Result<IssuerView, ServiceError> {
        let now = self.clock.now();
        let record = self.issuer_record(ids::new_id("iss", now), input, now)?;
        self.stores.issuers.insert_issuer(&record).await?;
        Ok(IssuerView::from_record(&record))
    }

    /// Lists trusted issuers, by id: the configuration file's and the stored ones.
    pub async fn list_issuers(
        &self,
        params: &ListParams,
    ) -> Result<Page<IssuerView>, ServiceError> {
        let (page, limit) = params.page_request()?;
        let mut all = self.inbound.config_issuer_views();
        all.extend(
            self.stores
                .issuers
                .issuers()
                .await?
                .iter()
                .map(IssuerView::from_record),
        );
        all.sort_by(|a, b| a.id.cmp(&b.id));
        let rows: Vec<IssuerView> = all
            .into_iter()
            .filter(|v| page.after.as_ref().is_none_or(|a| v.id > *a))
            .take(page.limit as usize)
            .collect();
        Ok(Page::from_rows(rows, limit, |v| v.id.clone()))
    }

    /// Reads a stored issuer.
    pub async fn get_issuer(&self, id: &str) -> Result<IssuerView, ServiceError> {
        let r = self
            .stores
            .issuers
            .issuer(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("issuer", id))?;
        Ok(IssuerView::from_record(&r))
    }

    /// Replaces a stored issuer.
    pub async fn update_issuer(
        &self,
        id: &str,
        input: &IssuerInput,
    ) -> Result<IssuerView, ServiceError> {
        let current = self
            .stores
            .issuers
            .issuer(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("issuer", id))?;
        let record = self.issuer_record(id.to_owned(), input, current.created_at)?;
        self.stores
            .issuers
            .update_issuer(&record)
            .await
            .map_err(|e| not_found(e, "issuer", id))?;
        Ok(IssuerView::from_record(&record))
    }

    /// Removes a stored issuer: its tokens are refused from the next request on.
    pub async fn delete_issuer(&self, id: &str) -> Result<(), ServiceError> {
        self.stores
            .issuers
            .delete_issuer(id)
            .await
            .map_err(|e| not_found(e, "issuer", id))
    }
}

impl crate::Inbound {
    pub(crate) fn config_issuer_views(&self) -> Vec<IssuerView> {
        self.config_specs()
            .iter()
            .map(|s| IssuerView {
                id: s.id.clone(),
                issuer: s.issuer.clone(),
                jwks_url: match &s.keys {
                    crate::KeySource::Jwks(u) => Some(u.clone()),
                    _ => None,
                },
                discovery_url: match &s.keys {
                    crate::KeySource::Discovery(u) => Some(u.clone()),
                    _ => None,
                },
                audiences: s.audiences.clone(),
                algorithms: s.algorithms.iter().map(|a| a.as_str().to_owned()).collect(),
                roles_claim: s.roles_claim.clone(),
                tenant_claim: s.tenant_claim.clone(),
                clock_skew_seconds: s.clock_skew_seconds,
                required_typ: s.required_typ.clone(),
                source: "config",
            })
            .collect()
    }
}
