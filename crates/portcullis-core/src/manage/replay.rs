//! What-if replay: a draft of an app's policy set re-decides the app's recorded decisions, from
//! the inputs each one recorded (the user's roles, the token's claims), and the answer says what
//! would change — how many decisions, and which users would lose or gain which scopes — before
//! the change is saved. Shadow mode tries a policy on live traffic; replay answers at once from
//! history.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use portcullis_domain::{AuditQuery, RecordedDecision};
use portcullis_policy::PolicySet;

use super::*;

/// How many recorded decisions a replay reads per page.
const PAGE: u32 = 5_000;
/// The most decisions one replay re-decides; past it the answer says it is incomplete.
pub const MAX_REPLAYED: u64 = 10_000_000;
/// The default window: the last seven days.
const DEFAULT_WINDOW_SECS: i64 = 7 * 24 * 3600;
/// The most users an answer lists per group, and the default.
const MAX_LISTED: usize = 1_000;
const DEFAULT_LISTED: usize = 20;

/// A replay question.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayInput {
    /// The app's whole policy set as it would be after the change: policy documents (`name`,
    /// `description`, `conditions`, `scopes`, `mode`).
    pub policies: Vec<Value>,
    /// The start of the window (default: seven days before `until`).
    #[serde(default)]
    pub since: Option<Timestamp>,
    /// The end of the window, exclusive (default: now).
    #[serde(default)]
    pub until: Option<Timestamp>,
    /// How many users each list shows (default 20, at most 1,000).
    #[serde(default, deserialize_with = "super::whole_number")]
    pub limit: Option<u32>,
}

/// What a draft would change.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayOutput {
    /// The app.
    pub app_id: String,
    /// The window replayed.
    pub since: Timestamp,
    /// Its end, exclusive.
    pub until: Timestamp,
    /// The decisions re-decided (those recorded with their inputs).
    pub replayed: u64,
    /// Those whose outcome or scopes would differ.
    pub changed: u64,
    /// Allowed then, denied with the draft.
    pub newly_denied: u64,
    /// Denied then, allowed with the draft.
    pub newly_allowed: u64,
    /// Decisions whose claims were cut for size when recorded: their replay may be inexact.
    pub inexact: u64,
    /// Whether the whole window was replayed (false past the most one replay reads).
    pub complete: bool,
    /// The users who would lose scopes they got, with the scopes.
    pub losing: Impact,
    /// The users who would get scopes they did not.
    pub gaining: Impact,
    /// Per scope, how many users would lose and gain it.
    pub scopes: BTreeMap<String, ScopeImpact>,
}

/// Users affected one way.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Impact {
    /// How many users.
    pub users: u64,
    /// The first of them: the most affected decisions first, then by id.
    pub first: Vec<UserImpact>,
}

/// One user's change.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserImpact {
    /// The user.
    pub user_id: String,
    /// The scopes they would lose (or gain).
    pub scopes: Vec<String>,
    /// How many of their recorded decisions would change that way.
    pub decisions: u64,
}

/// How many users would lose and gain one scope.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeImpact {
    /// Users who would lose it.
    pub losing: u64,
    /// Users who would gain it.
    pub gaining: u64,
}

/// Per user, the scopes and the number of decisions.
#[derive(Default)]
struct Tally(HashMap<String, (BTreeSet<String>, u64)>);

impl Tally {
    fn add(&mut self, user: &str, scopes: impl Iterator<Item = String>) {
        let entry = self.0.entry(user.to_owned()).or_default();
        entry.0.extend(scopes);
        entry.1 += 1;
    }

    fn impact(self, listed: usize) -> (Impact, Vec<(String, BTreeSet<String>)>) {
        let users = u64::try_from(self.0.len()).unwrap_or(u64::MAX);
        let mut all: Vec<(String, (BTreeSet<String>, u64))> = self.0.into_iter().collect();
        all.sort_by(|a, b| b.1.1.cmp(&a.1.1).then_with(|| a.0.cmp(&b.0)));
        let per_user = all
            .iter()
            .map(|(u, (scopes, _))| (u.clone(), scopes.clone()))
            .collect();
        let first = all
            .into_iter()
            .take(listed)
            .map(|(user_id, (scopes, decisions))| UserImpact {
                user_id,
                scopes: scopes.into_iter().collect(),
                decisions,
            })
            .collect();
        (Impact { users, first }, per_user)
    }
}

impl Core {
    /// Compiles a draft policy set for `app`: each document checked as a policy of the app.
    fn draft_set(&self, app: &AppRecord, drafts: &[Value]) -> Result<PolicySet, ServiceError> {
        let limits = Limits::default();
        if drafts.len() > limits.max_policies {
            return Err(ServiceError::invalid(
                "invalid_request",
                format!("a policy set has at most {} policies", limits.max_policies),
            ));
        }
        let mut documents = Vec::with_capacity(drafts.len());
        for (i, draft) in drafts.iter().enumerate() {
            if !draft.is_object() {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    format!("policies[{i}] must be a policy document (an object)"),
                ));
            }
            let doc = self.checked_policy(app, draft).map_err(|e| match e {
                ServiceError::Invalid {
                    code,
                    message,
                    details,
                } => ServiceError::Invalid {
                    code,
                    message: format!("policies[{i}]: {message}"),
                    details,
                },
                other => other,
            })?;
            documents.push((format!("draft-{i}"), doc));
        }
        PolicySet::compile(&app.settings.scope_names(), documents, &limits).map_err(|e| {
            ServiceError::Invalid {
                code: "invalid_policy",
                message: e.to_string(),
                details: serde_json::to_value(&e).ok(),
            }
        })
    }

    /// Re-decides the app's recorded decisions in the window with a draft policy set.
    pub async fn replay_policies(
        &self,
        app_id: &str,
        input: &ReplayInput,
    ) -> Result<ReplayOutput, ServiceError> {
        let app = self.require_app(app_id).await?;
        let set = self.draft_set(&app, &input.policies)?;
        let until = input.until.unwrap_or_else(|| self.clock.now());
        let since = input
            .since
            .unwrap_or_else(|| until.add_secs(-DEFAULT_WINDOW_SECS));
        if since > until {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "since",
                "since must not be after until",
            ));
        }
        let listed = input
            .limit
            .map_or(DEFAULT_LISTED, |l| usize::try_from(l).unwrap_or(usize::MAX));
        if listed == 0 || listed > MAX_LISTED {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "limit",
                format!("limit must be between 1 and {MAX_LISTED}"),
            ));
        }
        let mut out = ReplayOutput {
            app_id: app.id.clone(),
            since,
            until,
            replayed: 0,
            changed: 0,
            newly_denied: 0,
            newly_allowed: 0,
            inexact: 0,
            complete: true,
            losing: Impact::default(),
            gaining: Impact::default(),
            scopes: BTreeMap::new(),
        };
        let (mut losing, mut gaining) = (Tally::default(), Tally::default());
        let mut query = AuditQuery {
            app_id: Some(app.id.clone()),
            since: Some(since),
            until: Some(until),
            limit: PAGE,
            ..AuditQuery::default()
        };
        // The next page is read while this one is re-decided: reading is most of the cost.
        let mut page = self.stores.audit.recorded_decisions(&query).await?;
        loop {
            let next = if page.len() < PAGE as usize {
                None
            } else if out.replayed + u64::from(PAGE) > MAX_REPLAYED {
                out.complete = false;
                None
            } else {
                query.before_id = page.last().map(|d| d.id.clone());
                let (audit, query) = (self.stores.audit.clone(), query.clone());
                Some(tokio::spawn(async move {
                    audit.recorded_decisions(&query).await
                }))
            };
            for d in &page {
                replay_one(&set, d, &mut out, &mut losing, &mut gaining);
            }
            match next {
                Some(read) => {
                    page = read
                        .await
                        .map_err(|e| ServiceError::Internal(format!("reading decisions: {e}")))??;
                }
                None => break,
            }
        }
        let (lose, losers) = losing.impact(listed);
        let (gain, gainers) = gaining.impact(listed);
        for (_, scopes) in &losers {
            for s in scopes {
                out.scopes.entry(s.clone()).or_default().losing += 1;
            }
        }
        for (_, scopes) in &gainers {
            for s in scopes {
                out.scopes.entry(s.clone()).or_default().gaining += 1;
            }
        }
        out.losing = lose;
        out.gaining = gain;
        Ok(out)
    }
}

/// Re-decides one recorded decision and counts what changed.
fn replay_one(
    set: &PolicySet,
    d: &RecordedDecision,
    out: &mut ReplayOutput,
    losing: &mut Tally,
    gaining: &mut Tally,
) {
    out.replayed += 1;
    if d.inputs.truncated {
        out.inexact += 1;
    }
    let subject = Subject::new(&d.inputs.roles, &d.inputs.claims);
    let requested: Vec<&str> = d.requested_scopes.iter().map(String::as_str).collect();
    let decision = set.decide(&subject, &requested);
    let now = crate::plane::effective_scopes(set, &decision, &d.requested_scopes);
    let then = &d.inputs.scopes;
    if decision.allowed() == d.inputs.allowed && &now == then {
        return;
    }
    out.changed += 1;
    match (d.inputs.allowed, decision.allowed()) {
        (true, false) => out.newly_denied += 1,
        (false, true) => out.newly_allowed += 1,
        _ => {}
    }
    let user = d.user_id.as_deref().unwrap_or("(unknown)");
    let lost: Vec<String> = then.iter().filter(|s| !now.contains(s)).cloned().collect();
    let gained: Vec<String> = now.iter().filter(|s| !then.contains(s)).cloned().collect();
    if !lost.is_empty() || (d.inputs.allowed && !decision.allowed()) {
        losing.add(user, lost.into_iter());
    }
    if !gained.is_empty() || (!d.inputs.allowed && decision.allowed()) {
        gaining.add(user, gained.into_iter());
    }
}
