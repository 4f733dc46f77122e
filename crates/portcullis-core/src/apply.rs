//! Policy as code, applied all or nothing: the desired state of roles, tenants, users, apps and
//! their policies is checked as a whole — every problem reported with its place (`apps[1].
//! policies[0].conditions[0].operator`) — planned against what is stored, and written in one
//! transaction with one management audit event. A dry run checks and plans the same way and
//! writes nothing.
//!
//! What a listed entity omits keeps its stored value for users (a user entry may only link
//! identities); apps, roles and tenants are replaced by their entry. An app's policies are the
//! ones its entry lists: others are deleted. An app's client secret is write-only: it is set on
//! create, or when the app has none.

use std::collections::HashSet;

use portcullis_domain::{
    AppRecord, ManagementEvent, PolicyRecord, StoreError, TenantRecord, UserRecord, Write,
};
use portcullis_policy::Limits;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::admin::AdminScope;
use crate::manage::{
    AppInput, AppView, RoleInput, RoleView, TenantInput, TenantView, UserInput, UserView,
};
use crate::{AdminIdentity, Core, ServiceError, ids};

/// The most entries of each kind one apply takes.
pub const MAX_ENTRIES: usize = 1000;

/// The desired state (`POST /v1/mgmt/apply`): what `portcullis apply -f` sends.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyInput {
    /// Check and plan only; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Roles, each as `POST /v1/mgmt/roles` takes it.
    #[serde(default)]
    pub roles: Vec<Value>,
    /// Tenants, each as `POST /v1/mgmt/tenants` takes it.
    #[serde(default)]
    pub tenants: Vec<Value>,
    /// Users, each as `POST /v1/mgmt/users` takes it; the fields an entry omits keep their stored
    /// values.
    #[serde(default)]
    pub users: Vec<Value>,
    /// Apps, each as `POST /v1/mgmt/outbound-apps` takes it, with its `policies` (each as
    /// `POST .../policies` takes it).
    #[serde(default)]
    pub apps: Vec<Value>,
}

/// One change of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedChange {
    /// `create`, `update` or `delete`.
    pub action: &'static str,
    /// `role`, `tenant`, `user`, `app` or `policy`.
    pub kind: &'static str,
    /// What: the id, or `app/policy name` for a policy.
    pub name: String,
    /// The fields that change (updates).
    pub fields: Vec<String>,
}

/// What an apply did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyOutcome {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Whether anything was written.
    pub applied: bool,
    /// The changes, in the order they are written; empty when the server already matches.
    pub changes: Vec<PlannedChange>,
}

/// One problem of a desired state.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyProblem {
    /// Where: `apps[1].policies[0].conditions[0].operator`, `users[2].identities[0].issuer`,
    /// `users[3]`, ...
    pub path: String,
    /// A stable code (`invalid_body`, `invalid_policy`, `duplicate`, ...).
    pub code: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Default)]
struct Plan {
    writes: Vec<Write>,
    changes: Vec<PlannedChange>,
    problems: Vec<ApplyProblem>,
}

impl Plan {
    fn problem(&mut self, path: String, code: &str, message: impl Into<String>) {
        self.problems.push(ApplyProblem {
            path,
            code: code.to_owned(),
            message: message.into(),
        });
    }

    /// Records a service error at `path`: a refusal that names its fields (a policy's problems,
    /// an app's second scope) has each problem placed under `path` (`apps[1].scopes[1].name`).
    fn error(&mut self, path: &str, e: ServiceError) {
        match e {
            ServiceError::Invalid {
                code,
                message,
                details: Some(Value::Array(items)),
            } => {
                for item in items {
                    let at = item["path"].as_str().unwrap_or_default();
                    self.problem(
                        under(path, at),
                        code,
                        item["message"].as_str().unwrap_or(&message),
                    );
                }
            }
            ServiceError::Invalid { code, message, .. } => {
                self.problem(path.to_owned(), code, message)
            }
            ServiceError::Conflict { code, message } => {
                self.problem(path.to_owned(), code, message)
            }
            e @ ServiceError::AlreadyExists { .. } => {
                self.problem(path.to_owned(), "already_exists", e.to_string())
            }
            ServiceError::NotFound { entity, id } => {
                self.problem(path.to_owned(), "not_found", format!("no {entity} {id}"))
            }
            e @ ServiceError::UnknownReference { .. } => {
                self.problem(path.to_owned(), "unknown_reference", e.to_string())
            }
            other => self.problem(path.to_owned(), "invalid", other.to_string()),
        }
    }

    fn change(
        &mut self,
        action: &'static str,
        kind: &'static str,
        name: String,
        fields: Vec<String>,
    ) {
        self.changes.push(PlannedChange {
            action,
            kind,
            name,
            fields,
        });
    }
}

/// The fields whose values differ between two views (timestamps and revisions aside).
fn differing<T: Serialize>(before: &T, after: &T) -> Vec<String> {
    let (Ok(Value::Object(b)), Ok(Value::Object(a))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return vec!["*".into()];
    };
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !matches!(k.as_str(), "createdAt" | "updatedAt" | "revision"))
        .filter(|k| b.get(*k) != a.get(*k))
        .cloned()
        .collect()
}

fn parse<T: serde::de::DeserializeOwned>(plan: &mut Plan, path: &str, v: Value) -> Option<T> {
    match crate::from_json(v) {
        Ok(t) => Some(t),
        Err((at, why)) => {
            plan.problem(under(path, &at), "invalid_body", why);
            None
        }
    }
}

/// The path `at` of a part of the entry at `path` (`users[1]` and `roles` → `users[1].roles`;
/// `[0]` → `users[1][0]`; nothing → the entry).
fn under(path: &str, at: &str) -> String {
    match at.chars().next() {
        None => path.to_owned(),
        Some('[') => format!("{path}{at}"),
        Some(_) => format!("{path}.{at}"),
    }
}

/// The key of an entry (its id or name): a string of 1 to 256 characters without control
/// characters, else a problem.
fn key_field<'a>(plan: &mut Plan, path: &str, v: &'a Value, field: &str) -> Option<&'a str> {
    match v.get(field).and_then(Value::as_str) {
        Some(k)
            if !k.is_empty() && k.chars().count() <= 256 && !k.chars().any(char::is_control) =>
        {
            Some(k)
        }
        Some(_) => {
            plan.problem(
                format!("{path}.{field}"),
                "invalid_id",
                format!("{field} must have 1 to 256 characters, none a control character"),
            );
            None
        }
        None => {
            plan.problem(
                path.to_owned(),
                "invalid_body",
                format!("{field} is required (a string)"),
            );
            None
        }
    }
}

fn first_time(plan: &mut Plan, seen: &mut HashSet<String>, path: &str, key: &str) -> bool {
    if seen.insert(key.to_owned()) {
        true
    } else {
        plan.problem(
            path.to_owned(),
            "duplicate",
            format!("{key} is listed twice"),
        );
        false
    }
}

impl Core {
    /// Checks, plans and (unless `dry_run`) applies a desired state in one transaction. A state
    /// with problems is a 400 `invalid_apply` listing each with its place, and changes nothing.
    pub async fn apply(
        &self,
        actor: &AdminIdentity,
        input: ApplyInput,
    ) -> Result<ApplyOutcome, ServiceError> {
        let sections = [
            ("roles", input.roles.len()),
            ("tenants", input.tenants.len()),
            ("users", input.users.len()),
            ("apps", input.apps.len()),
        ];
        if let Some((name, _)) = sections.iter().find(|(_, n)| *n > MAX_ENTRIES) {
            return Err(ServiceError::invalid(
                "invalid_request",
                format!("{name}: at most {MAX_ENTRIES} entries"),
            ));
        }
        if !input.dry_run {
            if !input.apps.is_empty() {
                actor.require(AdminScope::Apps)?;
            }
            if input.apps.iter().any(|a| a.get("policies").is_some()) {
                actor.require(AdminScope::Policies)?;
            }
            if !(input.roles.is_empty() && input.tenants.is_empty() && input.users.is_empty()) {
                actor.require(AdminScope::Directory)?;
            }
        }
        let mut plan = Plan::default();
        self.plan_roles(&mut plan, input.roles).await?;
        self.plan_tenants(&mut plan, input.tenants).await?;
        self.plan_users(&mut plan, input.users).await?;
        let mut seen = HashSet::new();
        for (i, app) in input.apps.into_iter().enumerate() {
            let path = format!("apps[{i}]");
            if let Some(id) = key_field(&mut plan, &path, &app, "id").map(str::to_owned)
                && first_time(&mut plan, &mut seen, &path, &id)
            {
                self.plan_app(&mut plan, &path, id, app).await?;
            }
        }
        if !plan.problems.is_empty() {
            let n = plan.problems.len();
            return Err(ServiceError::Invalid {
                code: "invalid_apply",
                message: format!(
                    "the desired state has {n} problem{}; nothing was changed",
                    if n == 1 { "" } else { "s" }
                ),
                details: serde_json::to_value(&plan.problems).ok(),
            });
        }
        if input.dry_run || plan.changes.is_empty() {
            return Ok(ApplyOutcome {
                dry_run: input.dry_run,
                applied: false,
                changes: plan.changes,
            });
        }
        let at = self.clock.now();
        plan.writes.push(Write::Management(ManagementEvent {
            id: ids::new_id("chg", at),
            at,
            actor_id: actor.actor_id.clone(),
            actor_name: actor.name.clone(),
            action: "apply".into(),
            target: "apply".into(),
            change: Map::from_iter([("changes".to_owned(), json!(plan.changes))]),
            request_id: actor.request_id.clone(),
        }));
        self.stores
            .apply
            .apply_writes(&plan.writes)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(message) => ServiceError::Conflict {
                    code: "conflict",
                    message: format!("{message}; nothing was changed"),
                },
                StoreError::MissingReference { entity, id } => ServiceError::invalid(
                    "invalid_apply",
                    format!("{entity} {id} does not exist; nothing was changed"),
                ),
                StoreError::AlreadyExists { entity } => ServiceError::Conflict {
                    code: "conflict",
                    message: format!("{entity} already exists; nothing was changed"),
                },
                other => other.into(),
            })?;
        Ok(ApplyOutcome {
            dry_run: false,
            applied: true,
            changes: plan.changes,
        })
    }

    async fn plan_roles(&self, plan: &mut Plan, roles: Vec<Value>) -> Result<(), ServiceError> {
        let mut seen = HashSet::new();
        for (i, v) in roles.into_iter().enumerate() {
            let path = format!("roles[{i}]");
            let Some(name) = key_field(plan, &path, &v, "name").map(str::to_owned) else {
                continue;
            };
            if !first_time(plan, &mut seen, &path, &name) {
                continue;
            }
            let Some(input) = parse::<RoleInput>(plan, &path, v) else {
                continue;
            };
            let current = self.stores.directory.role(&name).await?;
            match self.role_record(name.clone(), &input, current.as_ref()) {
                Err(e) => plan.error(&path, e),
                Ok(next) => match current {
                    None => {
                        plan.change("create", "role", name, vec![]);
                        plan.writes.push(Write::InsertRole(next));
                    }
                    Some(cur) => {
                        let fields = differing(&RoleView::from(&cur), &RoleView::from(&next));
                        if !fields.is_empty() {
                            plan.change("update", "role", name, fields);
                            plan.writes.push(Write::UpdateRole(next));
                        }
                    }
                },
            }
        }
        Ok(())
    }

    async fn plan_tenants(&self, plan: &mut Plan, tenants: Vec<Value>) -> Result<(), ServiceError> {
        let mut seen = HashSet::new();
        for (i, v) in tenants.into_iter().enumerate() {
            let path = format!("tenants[{i}]");
            let Some(id) = key_field(plan, &path, &v, "id").map(str::to_owned) else {
                continue;
            };
            if !first_time(plan, &mut seen, &path, &id) {
                continue;
            }
            let Some(input) = parse::<TenantInput>(plan, &path, v) else {
                continue;
            };
            let current: Option<TenantRecord> = self.stores.directory.tenant(&id).await?;
            match self.tenant_record(id.clone(), &input, current.as_ref()) {
                Err(e) => plan.error(&path, e),
                Ok(next) => match current {
                    None => {
                        plan.change("create", "tenant", id, vec![]);
                        plan.writes.push(Write::InsertTenant(next));
                    }
                    Some(cur) => {
                        let fields = differing(&TenantView::from(&cur), &TenantView::from(&next));
                        if !fields.is_empty() {
                            plan.change("update", "tenant", id, fields);
                            plan.writes.push(Write::UpdateTenant(next));
                        }
                    }
                },
            }
        }
        Ok(())
    }

    async fn plan_users(&self, plan: &mut Plan, users: Vec<Value>) -> Result<(), ServiceError> {
        let mut seen = HashSet::new();
        for (i, v) in users.into_iter().enumerate() {
            let path = format!("users[{i}]");
            let Some(id) = key_field(plan, &path, &v, "id").map(str::to_owned) else {
                continue;
            };
            if !first_time(plan, &mut seen, &path, &id) {
                continue;
            }
            let current: Option<UserRecord> = self.stores.directory.user(&id).await?;
            // What the entry omits keeps its stored value.
            let merged = match (&current, v) {
                (Some(cur), Value::Object(entry)) => {
                    let mut base = match serde_json::to_value(UserView::from(cur)) {
                        Ok(Value::Object(m)) => m,
                        _ => Map::new(),
                    };
                    base.remove("createdAt");
                    base.remove("updatedAt");
                    base.extend(entry);
                    Value::Object(base)
                }
                (_, v) => v,
            };
            let Some(input) = parse::<UserInput>(plan, &path, merged) else {
                continue;
            };
            match self.user_record(id.clone(), &input, current.as_ref()) {
                Err(e) => plan.error(&path, e),
                Ok(next) => match current {
                    None => {
                        plan.change("create", "user", id, vec![]);
                        plan.writes.push(Write::InsertUser(next));
                    }
                    Some(cur) => {
                        let fields = differing(&UserView::from(&cur), &UserView::from(&next));
                        if !fields.is_empty() {
                            plan.change("update", "user", id, fields);
                            plan.writes.push(Write::UpdateUser(next));
                        }
                    }
                },
            }
        }
        Ok(())
    }

    async fn plan_app(
        &self,
        plan: &mut Plan,
        path: &str,
        id: String,
        v: Value,
    ) -> Result<(), ServiceError> {
        let Value::Object(mut entry) = v else {
            return Ok(());
        };
        let policies: Vec<Value> = match entry.remove("policies") {
            None => Vec::new(),
            Some(Value::Array(ps)) => ps,
            Some(_) => {
                plan.problem(
                    format!("{path}.policies"),
                    "invalid_body",
                    "policies must be a list",
                );
                return Ok(());
            }
        };
        if policies.len() > Limits::default().max_policies {
            plan.problem(
                format!("{path}.policies"),
                "limit_exceeded",
                format!(
                    "an app has at most {} policies",
                    Limits::default().max_policies
                ),
            );
            return Ok(());
        }
        let stored = self.stores.apps.app_with_policies(&id).await?;
        // The client secret is write-only: kept when the app has one.
        if stored
            .as_ref()
            .is_some_and(|(a, _)| a.client_secret.is_some())
        {
            entry.remove("clientSecret");
        }
        let Some(input) = parse::<AppInput>(plan, path, Value::Object(entry)) else {
            return Ok(());
        };
        let next = match &stored {
            None => self.new_app(&input),
            Some((cur, _)) => crate::manage::same_id(input.id.as_deref(), &id)
                .and_then(|()| self.app_settings(&input))
                .and_then(|settings| self.changed_app(cur, &input, settings)),
        };
        let next: AppRecord = match next {
            Ok(n) => n,
            Err(e) => {
                plan.error(path, e);
                return Ok(());
            }
        };
        let (current_policies, mut revision) = match &stored {
            None => {
                plan.change("create", "app", id.clone(), vec![]);
                plan.writes.push(Write::InsertApp(next.clone()));
                (Vec::new(), 1)
            }
            Some((cur, policies)) => {
                let mut fields = differing(&AppView::from(cur), &AppView::from(&next));
                if input.client_secret.is_some() {
                    fields.push("clientSecret".into());
                }
                if fields.is_empty() {
                    (policies.clone(), cur.revision)
                } else {
                    plan.change("update", "app", id.clone(), fields);
                    plan.writes.push(Write::UpdateApp {
                        app: next.clone(),
                        expected_revision: cur.revision,
                    });
                    (policies.clone(), next.revision)
                }
            }
        };
        // Check every listed policy against the app as it will be.
        let key = |n: &str| n.trim().to_lowercase();
        let mut wanted = Vec::new();
        let mut names = HashSet::new();
        for (j, body) in policies.into_iter().enumerate() {
            let ppath = format!("{path}.policies[{j}]");
            match self.checked_policy(&next, &body) {
                Err(e) => plan.error(&ppath, e),
                Ok(doc) => {
                    if names.insert(key(&doc.name)) {
                        wanted.push(doc);
                    } else {
                        plan.problem(
                            format!("{ppath}.name"),
                            "duplicate",
                            format!("app {id} lists the policy {} twice", doc.name),
                        );
                    }
                }
            }
        }
        let now = self.clock.now();
        let mut creates = Vec::new();
        let mut updates = Vec::new();
        for doc in wanted {
            match current_policies
                .iter()
                .find(|p| key(&p.document.name) == key(&doc.name))
            {
                None => creates.push(PolicyRecord {
                    id: ids::new_id("pol", now),
                    app_id: id.clone(),
                    document: doc,
                    created_at: now,
                    updated_at: now,
                }),
                Some(cur) => {
                    let fields = differing(&cur.document, &doc);
                    if !fields.is_empty() {
                        updates.push((
                            fields,
                            PolicyRecord {
                                document: doc,
                                updated_at: now,
                                ..cur.clone()
                            },
                        ));
                    }
                }
            }
        }
        // Deletes first (a policy may be replaced by one of the same name), then updates, then
        // creates; each bumps the app's revision.
        for cur in &current_policies {
            if !names.contains(&key(&cur.document.name)) {
                plan.change(
                    "delete",
                    "policy",
                    format!("{id}/{}", cur.document.name),
                    vec![],
                );
                plan.writes.push(Write::DeletePolicy {
                    app_id: id.clone(),
                    id: cur.id.clone(),
                });
                revision += 1;
            }
        }
        for (fields, policy) in updates {
            plan.change(
                "update",
                "policy",
                format!("{id}/{}", policy.document.name),
                fields,
            );
            plan.writes.push(Write::UpdatePolicy {
                policy,
                expected_app_revision: revision,
            });
            revision += 1;
        }
        for policy in creates {
            plan.change(
                "create",
                "policy",
                format!("{id}/{}", policy.document.name),
                vec![],
            );
            plan.writes.push(Write::InsertPolicy {
                policy,
                expected_app_revision: revision,
            });
            revision += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_ignores_times() {
        let a = json!({"name": "a", "updatedAt": 1, "x": [1]});
        let b = json!({"name": "b", "updatedAt": 2, "x": [1], "y": true});
        assert_eq!(differing(&a, &b), ["name", "y"]);
    }

    #[test]
    fn a_part_is_placed_under_its_entry() {
        assert_eq!(under("users[1]", "roles"), "users[1].roles");
        assert_eq!(under("apps[0]", "scopes[1].name"), "apps[0].scopes[1].name");
        assert_eq!(under("roles[2]", "[0]"), "roles[2][0]");
        assert_eq!(under("tenants[3]", ""), "tenants[3]");
    }
}
