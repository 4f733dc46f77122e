//! Queries of the audit log: decisions and management changes.

use super::*;

/// Filters of the audit log.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditParams {
    /// Only this app.
    pub app_id: Option<String>,
    /// Only this user.
    pub user_id: Option<String>,
    /// Only this tenant.
    pub tenant_id: Option<String>,
    /// Only this client.
    pub client_id: Option<String>,
    /// Only this outcome (`allowed`, `denied`, `consent_required`, `not_connected`,
    /// `invalid_token`, `invalid_request`, `error`).
    pub outcome: Option<String>,
    /// Only events at or after this instant (RFC 3339).
    pub since: Option<String>,
    /// Only events before this instant (RFC 3339).
    pub until: Option<String>,
    /// How many events (1–1000, default 100).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Which log: `decision` (the default: token decisions) or `management` (who changed what
    /// through this API).
    pub kind: Option<String>,
    /// Management events only: this actor (an admin key's id).
    pub actor: Option<String>,
    /// Management events only: this target or anything under it (`outbound-apps/cal`).
    pub target: Option<String>,
    /// Management events only: this action (`policy.update`, ...).
    pub action: Option<String>,
}

impl AuditParams {
    /// Whether these parameters ask for the management log (`kind=management`); an unknown kind
    /// is refused.
    pub fn is_management(&self) -> Result<bool, ServiceError> {
        match self.kind.as_deref() {
            None | Some("decision") => {
                if self.actor.is_some() || self.target.is_some() || self.action.is_some() {
                    return Err(ServiceError::invalid(
                        "invalid_request",
                        "actor, target and action filter management events (kind=management)",
                    ));
                }
                Ok(false)
            }
            Some("management") => {
                if self.app_id.is_some()
                    || self.user_id.is_some()
                    || self.tenant_id.is_some()
                    || self.client_id.is_some()
                    || self.outcome.is_some()
                {
                    return Err(ServiceError::invalid(
                        "invalid_request",
                        "appId, userId, tenantId, clientId and outcome filter decisions, not management events",
                    ));
                }
                Ok(true)
            }
            Some(other) => Err(ServiceError::invalid(
                "invalid_request",
                format!("unknown kind {other:?}: decision or management"),
            )),
        }
    }

    /// The management store query (reading one more row than asked) and the page size.
    pub fn management_query(
        &self,
    ) -> Result<(portcullis_domain::ManagementQuery, u32), ServiceError> {
        let (q, limit) = self.query()?;
        Ok((
            portcullis_domain::ManagementQuery {
                actor_id: self.actor.clone(),
                target: self.target.clone(),
                action: self.action.clone(),
                since: q.since,
                until: q.until,
                before_id: q.before_id,
                limit: q.limit,
            },
            limit,
        ))
    }
    /// The store query (reading one more row than asked) and the page size.
    pub fn query(&self) -> Result<(portcullis_domain::AuditQuery, u32), ServiceError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ServiceError::invalid(
                "invalid_request",
                "limit must be between 1 and 1000",
            ));
        }
        let time = |field: &str, v: &Option<String>| {
            v.as_deref()
                .map(|t| {
                    Timestamp::parse_rfc3339(t).ok_or_else(|| {
                        ServiceError::invalid(
                            "invalid_request",
                            format!("{field} must be an RFC 3339 date-time"),
                        )
                    })
                })
                .transpose()
        };
        let outcome = self
            .outcome
            .as_deref()
            .map(|o| {
                portcullis_domain::AuditOutcome::parse(o).ok_or_else(|| {
                    ServiceError::invalid("invalid_request", format!("unknown outcome {o:?}"))
                })
            })
            .transpose()?;
        Ok((
            portcullis_domain::AuditQuery {
                app_id: self.app_id.clone(),
                user_id: self.user_id.clone(),
                tenant_id: self.tenant_id.clone(),
                client_id: self.client_id.clone(),
                outcome,
                since: time("since", &self.since)?,
                until: time("until", &self.until)?,
                before_id: self.cursor.as_deref().map(decode_cursor).transpose()?,
                limit: limit + 1,
            },
            limit,
        ))
    }
}

impl Core {
    /// Reads the audit log, newest first.
    pub async fn list_audit(
        &self,
        params: &AuditParams,
    ) -> Result<Page<portcullis_domain::AuditEvent>, ServiceError> {
        let (query, limit) = params.query()?;
        let rows = self.stores.audit.audit(&query).await?;
        Ok(Page::from_rows(rows, limit, |e| e.id.clone()))
    }

    /// Reads one page of the audit log for an export (store query as given).
    pub async fn audit_page(
        &self,
        query: &portcullis_domain::AuditQuery,
    ) -> Result<Vec<portcullis_domain::AuditEvent>, ServiceError> {
        Ok(self.stores.audit.audit(query).await?)
    }
}
