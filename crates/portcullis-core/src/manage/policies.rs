//! An app's access control policies: checked as documents, with every problem's JSON path.

use super::*;

/// A policy as the management API shows it: the document with its id and times.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    /// The policy's id.
    pub id: String,
    /// The app the policy belongs to.
    pub app_id: String,
    /// The document (`name`, `description`, `conditions`, `scopes`, `mode`).
    #[serde(flatten)]
    pub document: PolicyDocument,
    /// When the policy was created.
    pub created_at: Timestamp,
    /// When the policy was last changed.
    pub updated_at: Timestamp,
}

impl From<&PolicyRecord> for PolicyView {
    fn from(p: &PolicyRecord) -> Self {
        Self {
            id: p.id.clone(),
            app_id: p.app_id.clone(),
            document: p.document.clone(),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

impl Core {
    /// Parses and checks a policy document against its app. A document that does not parse is
    /// still checked against the app's scopes, so that one answer lists every problem.
    pub(crate) fn checked_policy(
        &self,
        app: &AppRecord,
        body: &Value,
    ) -> Result<PolicyDocument, ServiceError> {
        let invalid = |e: ValidationErrors| ServiceError::Invalid {
            code: "invalid_policy",
            message: e.to_string(),
            details: serde_json::to_value(&e).ok(),
        };
        let offered = app.settings.scope_names();
        let limits = Limits::default();
        let (doc, mut problems) = match PolicyDocument::from_json(body) {
            Ok(doc) => {
                let problems = validate_policy(&doc, &offered, &limits)
                    .err()
                    .map(|e| e.0)
                    .unwrap_or_default();
                (Some(doc), problems)
            }
            Err(e) => {
                let mut problems = e.0;
                // Past the cap of reported problems, nothing more is added.
                if !problems
                    .iter()
                    .any(|p| p.code == ErrorCode::LimitExceeded && p.path.is_empty())
                {
                    merge_problems(&mut problems, unoffered_scopes(body, &offered, &limits));
                }
                (None, problems)
            }
        };
        if let Some(name) = body.get("name").and_then(Value::as_str)
            && name.chars().any(char::is_control)
            && !problems.iter().any(|p| p.path == "name")
        {
            merge_problems(
                &mut problems,
                vec![ValidationError {
                    path: "name".into(),
                    code: ErrorCode::InvalidType,
                    message: "a policy name cannot contain control characters".into(),
                    policy_id: None,
                }],
            );
        }
        match doc {
            Some(doc) if problems.is_empty() => Ok(doc),
            _ => Err(invalid(ValidationErrors(problems))),
        }
    }

    /// Creates a policy on an app.
    pub async fn create_policy(
        &self,
        app_id: &str,
        body: &Value,
    ) -> Result<PolicyView, ServiceError> {
        let (app, policies) = self
            .stores
            .apps
            .app_with_policies(app_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("app", app_id))?;
        let doc = self.checked_policy(&app, body)?;
        if policies.len() >= Limits::default().max_policies {
            return Err(ServiceError::Conflict {
                code: "limit_exceeded",
                message: format!("app {app_id} already has the most policies an app may have"),
            });
        }
        let now = self.clock.now();
        let record = PolicyRecord {
            id: ids::new_id("pol", now),
            app_id: app_id.to_owned(),
            document: doc,
            created_at: now,
            updated_at: now,
        };
        self.stores
            .apps
            .insert_policy(&record, app.revision)
            .await
            .map_err(duplicate_policy_name)?;
        Ok(PolicyView::from(&record))
    }

    /// Reads a policy.
    pub async fn get_policy(&self, app_id: &str, id: &str) -> Result<PolicyView, ServiceError> {
        self.require_app(app_id).await?;
        view_of(self.stores.apps.policy(app_id, id).await?, "policy", id)
    }

    /// Lists an app's policies.
    pub async fn list_policies(
        &self,
        app_id: &str,
        params: &ListParams,
    ) -> Result<Page<PolicyView>, ServiceError> {
        self.require_app(app_id).await?;
        page_of(
            params,
            async |page| self.stores.apps.policies(app_id, page).await,
            |p| p.id.clone(),
        )
        .await
    }

    /// Replaces a policy.
    pub async fn update_policy(
        &self,
        app_id: &str,
        id: &str,
        body: &Value,
    ) -> Result<PolicyView, ServiceError> {
        let app = self.require_app(app_id).await?;
        let current = self
            .stores
            .apps
            .policy(app_id, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("policy", id))?;
        let doc = self.checked_policy(&app, body)?;
        let record = PolicyRecord {
            document: doc,
            updated_at: self.clock.now(),
            ..current
        };
        self.stores
            .apps
            .update_policy(&record, app.revision)
            .await
            .map_err(duplicate_policy_name)?;
        Ok(PolicyView::from(&record))
    }

    /// Deletes a policy.
    pub async fn delete_policy(&self, app_id: &str, id: &str) -> Result<(), ServiceError> {
        self.require_app(app_id).await?;
        self.stores
            .apps
            .delete_policy(app_id, id)
            .await
            .map_err(|e| not_found(e, "policy", id))
    }

    pub(crate) async fn require_app(&self, app_id: &str) -> Result<AppRecord, ServiceError> {
        self.stores
            .apps
            .app(app_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("app", app_id))
    }

    /// The app, which must be of `kind`: a 409 naming what it is otherwise (an API-key app's
    /// keys are stored by an admin; an OAuth app's users connect through consent).
    pub(crate) async fn require_app_of_kind(
        &self,
        app_id: &str,
        kind: AppKind,
    ) -> Result<AppRecord, ServiceError> {
        let app = self.require_app(app_id).await?;
        match (kind, app.kind) {
            (AppKind::OAuth, AppKind::ApiKey) => Err(ServiceError::Conflict {
                code: "not_an_oauth_app",
                message: format!("app {app_id} uses API keys; store them through /api-keys"),
            }),
            (AppKind::ApiKey, AppKind::OAuth) => Err(ServiceError::Conflict {
                code: "not_an_api_key_app",
                message: format!("app {app_id} is an OAuth app; its users connect through consent"),
            }),
            _ => Ok(app),
        }
    }
}

/// Where a problem sits in a policy document, in the order the parser reports them (fields it
/// does not know first).
fn policy_rank(p: &ValidationError) -> u8 {
    match p.path.split(['.', '[']).next().unwrap_or_default() {
        "name" => 1,
        "description" => 2,
        "conditions" => 3,
        "scopes" => 4,
        "mode" => 5,
        _ => 0,
    }
}

/// Adds problems found by another check, keeping the report in document order.
fn merge_problems(problems: &mut Vec<ValidationError>, extra: Vec<ValidationError>) {
    for p in extra {
        let rank = policy_rank(&p);
        let at = problems
            .iter()
            .position(|q| policy_rank(q) > rank)
            .unwrap_or(problems.len());
        problems.insert(at, p);
    }
}

/// The scopes a document lists that the app does not offer, found even when the rest of the
/// document does not parse: the checks `validate_policy` makes on the scope list alone.
fn unoffered_scopes(body: &Value, offered: &[String], limits: &Limits) -> Vec<ValidationError> {
    let Some(items) = body.get("scopes").and_then(Value::as_array) else {
        return Vec::new();
    };
    // Entries that are not strings are reported by the parser; as "" they are skipped here.
    let names = items
        .iter()
        .take(limits.max_scopes.min(portcullis_policy::MAX_OFFERED_SCOPES))
        .map(|i| i.as_str().unwrap_or_default().to_owned())
        .collect();
    let probe = PolicyDocument {
        name: "probe".into(),
        description: None,
        conditions: Vec::new(),
        scopes: Scopes::List(names),
        mode: Mode::Enforce,
    };
    validate_policy(&probe, offered, limits)
        .err()
        .map(|e| {
            e.0.into_iter()
                .filter(|p| p.code == ErrorCode::UnknownScope)
                .collect()
        })
        .unwrap_or_default()
}

fn duplicate_policy_name(e: StoreError) -> ServiceError {
    match e {
        StoreError::AlreadyExists {
            entity: "policy name",
        } => ServiceError::Conflict {
            code: "duplicate_policy_name",
            message: "the app already has a policy with this name".into(),
        },
        other => other.into(),
    }
}
