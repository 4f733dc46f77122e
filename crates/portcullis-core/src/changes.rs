//! The management audit: every change made through the management API is recorded with who made
//! it (the admin key), what it did to what, and a summary — `before` and `after` where they
//! apply, built from the views the API shows, so that no secret is ever recorded.

use portcullis_domain::{ManagementEvent, ManagementQuery};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::manage::{AuditParams, Page};
use crate::{AdminIdentity, Core, ServiceError, ids};

/// The summary of a change: what it was before and after, each optional.
pub fn before_after<B: Serialize, A: Serialize>(before: Option<B>, after: Option<A>) -> Value {
    let mut m = Map::new();
    if let Some(b) = before {
        m.insert(
            "before".into(),
            serde_json::to_value(b).unwrap_or(Value::Null),
        );
    }
    if let Some(a) = after {
        m.insert(
            "after".into(),
            serde_json::to_value(a).unwrap_or(Value::Null),
        );
    }
    Value::Object(m)
}

impl Core {
    /// Records a management change made by `actor`. Called after the change succeeded; a failure
    /// to record is logged and counted (`portcullis_management_audit_failures_total`), and does
    /// not undo the change.
    pub async fn record_change(
        &self,
        actor: &AdminIdentity,
        action: &str,
        target: String,
        change: Value,
    ) {
        let at = self.clock.now();
        let event = ManagementEvent {
            id: ids::new_id("chg", at),
            at,
            actor_id: actor.actor_id.clone(),
            actor_name: actor.name.clone(),
            action: action.to_owned(),
            target,
            change: match change {
                Value::Object(m) => m,
                other => Map::from_iter([("value".to_owned(), other)]),
            },
            request_id: actor.request_id.clone(),
        };
        if let Err(e) = self.stores.management.append_management(&event).await {
            metrics::counter!("portcullis_management_audit_failures_total").increment(1);
            tracing::error!(error = %e, action, target = %event.target, actor = %event.actor_id, "a management change was made but could not be recorded");
        }
    }

    /// Reads the management audit, newest first.
    pub async fn list_management(
        &self,
        params: &AuditParams,
    ) -> Result<Page<ManagementEvent>, ServiceError> {
        let (query, limit) = params.management_query()?;
        let rows = self.stores.management.management_events(&query).await?;
        Ok(Page::from_rows(rows, limit, |e| e.id.clone()))
    }

    /// Reads one page of the management audit for an export (store query as given).
    pub async fn management_page(
        &self,
        query: &ManagementQuery,
    ) -> Result<Vec<ManagementEvent>, ServiceError> {
        Ok(self.stores.management.management_events(query).await?)
    }
}

impl Core {
    /// Counts of requests refused before a decision (unauthenticated, malformed, over a rate
    /// limit), per minute, surface and reason, newest first. `since`/`until` are RFC 3339.
    pub async fn list_rejected(
        &self,
        since: Option<&str>,
        until: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<portcullis_domain::RejectedCount>, ServiceError> {
        let limit = limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ServiceError::invalid_param(
                "invalid_request",
                "limit",
                "limit must be between 1 and 1000",
            ));
        }
        Ok(self
            .stores
            .audit
            .rejected(
                crate::manage::time_param("since", since)?,
                crate::manage::time_param("until", until)?,
                limit,
            )
            .await?)
    }
}
