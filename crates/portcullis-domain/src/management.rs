//! The management audit: who changed what, through the management API.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{StoreError, Timestamp};

/// One management change. Never holds a secret: summaries are built from the views the API shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagementEvent {
    /// Time-ordered id (`chg_…`).
    pub id: String,
    /// When the change was made.
    pub at: Timestamp,
    /// Who made it: the admin key's id (`ak_…`).
    pub actor_id: String,
    /// The admin key's name.
    pub actor_name: String,
    /// What was done (`policy.update`, `app.create`, `connection.revoke`, ...).
    pub action: String,
    /// What it was done to (`outbound-apps/cal/policies/pol_…`, `users/alice`, ...).
    pub target: String,
    /// The change: `before` and `after` where they apply, or what was done.
    pub change: Map<String, Value>,
    /// The request that made it (the `X-Request-Id` of its answer).
    pub request_id: Option<String>,
}

/// Filters for reading the management audit, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagementQuery {
    /// Only this actor (admin key id).
    pub actor_id: Option<String>,
    /// Only this target, or targets under it (`outbound-apps/cal` also finds its policies).
    pub target: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only events at or after this instant.
    pub since: Option<Timestamp>,
    /// Only events before this instant.
    pub until: Option<Timestamp>,
    /// Cursor: only events with an id lower than this one.
    pub before_id: Option<String>,
    /// At most this many events.
    pub limit: u32,
}

/// The management audit's storage.
#[async_trait]
pub trait ManagementAuditStore: Send + Sync {
    /// Appends one event. `AlreadyExists` for a duplicate id.
    async fn append_management(&self, event: &ManagementEvent) -> Result<(), StoreError>;
    /// Reads events matching `query`, newest first.
    async fn management_events(
        &self,
        query: &ManagementQuery,
    ) -> Result<Vec<ManagementEvent>, StoreError>;
}
