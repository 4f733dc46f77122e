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
            Some(other) => Err(ServiceError::invalid_param(
                "invalid_request",
                "kind",
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
            return Err(ServiceError::invalid_param(
                "invalid_request",
                "limit",
                "limit must be between 1 and 1000",
            ));
        }
        let outcome = self
            .outcome
            .as_deref()
            .map(|o| {
                portcullis_domain::AuditOutcome::parse(o).ok_or_else(|| {
                    ServiceError::invalid_param(
                        "invalid_request",
                        "outcome",
                        format!("unknown outcome {o:?}"),
                    )
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
                since: time_param("since", self.since.as_deref())?,
                until: time_param("until", self.until.as_deref())?,
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

/// The most buckets one summary answers with: a day by the 5 minutes (288) or 20 days by the
/// hour fit; more would not make a readable chart, and would let one request build a large answer.
pub const MAX_SUMMARY_BUCKETS: i64 = 500;
/// The narrowest bucket, in seconds.
pub const MIN_SUMMARY_BUCKET_SECS: u64 = 60;
/// The widest bucket, in seconds (a year).
pub const MAX_SUMMARY_BUCKET_SECS: u64 = 31_622_400;

/// The window and bucket width of an audit summary.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditSummaryParams {
    /// The window's start (RFC 3339; default `until` minus 24 hours). Rounded down to a bucket
    /// boundary, counted from the Unix epoch.
    pub since: Option<String>,
    /// The window's end, excluded (RFC 3339; default now).
    pub until: Option<String>,
    /// The bucket width in seconds (60 to 31,622,400; default 3600).
    pub bucket: Option<u64>,
}

/// Decisions per outcome and per app over a window, for a dashboard.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditSummary {
    /// The window's start: the first bucket's.
    pub since: Timestamp,
    /// The window's end, excluded.
    pub until: Timestamp,
    /// The width of a bucket.
    pub bucket_seconds: u64,
    /// Every bucket of the window, oldest first, empty ones included.
    pub buckets: Vec<SummaryBucket>,
    /// Every app with a decision in the window, the most decisions first.
    pub apps: Vec<AppSummary>,
}

/// The decisions of one bucket.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryBucket {
    /// The bucket's start.
    pub start: Timestamp,
    /// How many decisions had each outcome (outcomes without one are absent).
    pub outcomes: BTreeMap<&'static str, u64>,
    /// How many decisions each app had (apps without one are absent; decisions refused before
    /// an app was known count in `outcomes` only).
    pub apps: BTreeMap<String, u64>,
}

/// One app's decisions over the window.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSummary {
    /// The app.
    pub app_id: String,
    /// How many decisions.
    pub decisions: u64,
    /// How many the policies denied (`denied` and `consent_required`).
    pub denied: u64,
    /// The mean decision latency, in microseconds.
    pub avg_latency_us: u64,
    /// The longest decision latency, in microseconds.
    pub max_latency_us: u64,
}

impl AuditSummaryParams {
    /// The window (its start rounded down to a bucket boundary) and the bucket width in
    /// milliseconds, checked: at most [`MAX_SUMMARY_BUCKETS`] buckets.
    pub fn window(&self, now: Timestamp) -> Result<(Timestamp, Timestamp, i64), ServiceError> {
        let bucket = self.bucket.unwrap_or(3600);
        if !(MIN_SUMMARY_BUCKET_SECS..=MAX_SUMMARY_BUCKET_SECS).contains(&bucket) {
            return Err(ServiceError::invalid_param(
                "invalid_request",
                "bucket",
                format!(
                    "bucket must be between {MIN_SUMMARY_BUCKET_SECS} and {MAX_SUMMARY_BUCKET_SECS} seconds"
                ),
            ));
        }
        let until = time_param("until", self.until.as_deref())?
            .unwrap_or(now)
            .as_millis();
        let since = time_param("since", self.since.as_deref())?
            .map_or(until.saturating_sub(86_400_000), Timestamp::as_millis);
        if since >= until {
            return Err(ServiceError::invalid_param(
                "invalid_request",
                "since",
                "since must be before until",
            ));
        }
        // INVARIANT: bucket ≤ MAX_SUMMARY_BUCKET_SECS, so its milliseconds fit an i64.
        let bucket_ms = i64::try_from(bucket * 1000).unwrap_or(i64::MAX);
        let start = since.div_euclid(bucket_ms) * bucket_ms;
        let buckets = (i128::from(until) - i128::from(start) + i128::from(bucket_ms) - 1)
            / i128::from(bucket_ms);
        if buckets > i128::from(MAX_SUMMARY_BUCKETS) {
            return Err(ServiceError::invalid_param(
                "invalid_request",
                "bucket",
                format!(
                    "bucket is too narrow for the window: it makes {buckets} buckets, at most {MAX_SUMMARY_BUCKETS} are answered (widen the bucket or narrow the window)"
                ),
            ));
        }
        Ok((
            Timestamp::from_millis(start),
            Timestamp::from_millis(until),
            bucket_ms,
        ))
    }
}

impl Core {
    /// Summarizes the decisions of a window per bucket, outcome and app (the store groups them).
    pub async fn audit_summary(
        &self,
        params: &AuditSummaryParams,
    ) -> Result<AuditSummary, ServiceError> {
        let (since, until, bucket_ms) = params.window(self.clock.now())?;
        let rows = self
            .stores
            .audit
            .audit_summary(since, until, bucket_ms)
            .await?;
        let n = (until.as_millis() - since.as_millis() + bucket_ms - 1) / bucket_ms;
        let mut buckets: Vec<SummaryBucket> = (0..n)
            .map(|i| SummaryBucket {
                start: Timestamp::from_millis(since.as_millis() + i * bucket_ms),
                outcomes: BTreeMap::new(),
                apps: BTreeMap::new(),
            })
            .collect();
        // Per app: decisions, denied, latency sum and max.
        let mut apps: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
        for r in rows {
            let Some(b) = buckets.get_mut(r.bucket as usize) else {
                continue;
            };
            *b.outcomes.entry(r.outcome.as_str()).or_default() += r.count;
            let Some(app) = r.app_id else { continue };
            *b.apps.entry(app.clone()).or_default() += r.count;
            let a = apps.entry(app).or_default();
            a.0 += r.count;
            if matches!(
                r.outcome,
                portcullis_domain::AuditOutcome::Denied
                    | portcullis_domain::AuditOutcome::ConsentRequired
            ) {
                a.1 += r.count;
            }
            a.2 = a.2.saturating_add(r.latency_sum_us);
            a.3 = a.3.max(r.latency_max_us);
        }
        let mut apps: Vec<AppSummary> = apps
            .into_iter()
            .map(|(app_id, (decisions, denied, sum, max))| AppSummary {
                app_id,
                decisions,
                denied,
                avg_latency_us: sum.checked_div(decisions).unwrap_or(0),
                max_latency_us: max,
            })
            .collect();
        apps.sort_by(|a, b| b.decisions.cmp(&a.decisions).then(a.app_id.cmp(&b.app_id)));
        Ok(AuditSummary {
            since,
            until,
            bucket_seconds: u64::try_from(bucket_ms / 1000).unwrap_or(0),
            buckets,
            apps,
        })
    }
}
