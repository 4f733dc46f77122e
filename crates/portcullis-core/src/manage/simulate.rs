//! The decision simulator: what would happen, without handing anything out.

use super::*;

/// A "what would this get?" question.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulateInput {
    /// An inbound token to evaluate (verified like a real request, scope included).
    #[serde(default)]
    pub token: Option<SecretString>,
    /// Or a subject described directly.
    #[serde(default, deserialize_with = "object_or_null")]
    pub subject: Option<SimulatedSubject>,
    /// The outbound app the request is for.
    pub app_id: String,
    /// The scopes asked for (empty: the app's default scopes).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The tenant the request names, if any (the user's roles in that tenant apply).
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// A JSON object (or `null`) only: serde would also read a struct from an array.
fn object_or_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error as _;
    Option::<Map<String, Value>>::deserialize(d)?
        .map(|m| serde_json::from_value(Value::Object(m)).map_err(D::Error::custom))
        .transpose()
}

/// A subject for the simulator.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SimulatedSubject {
    /// The user's id: their directory roles apply unless `roles` is given.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The roles to evaluate with, instead of the user's roles in the directory.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// The inbound token's claims, for `jwtClaims` conditions.
    #[serde(default)]
    pub claims: Map<String, Value>,
}

/// The simulator's answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimulateOutput {
    /// The user the decision was evaluated for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The roles the decision was evaluated with.
    pub roles: Vec<String>,
    /// Where the roles came from: `directory`, `token` or `given`.
    pub roles_source: &'static str,
    /// The scopes evaluated (the app's default scopes when the question named none).
    pub requested_scopes: Vec<String>,
    /// The decision and its explanation.
    pub decision: Explanation,
}

impl Core {
    /// Evaluates a request without handing anything out.
    pub async fn simulate(&self, input: &SimulateInput) -> Result<SimulateOutput, ServiceError> {
        // An app id that is not a slug names no app: not looked up (PostgreSQL refuses NUL).
        if validate_slug(&input.app_id).is_err() {
            return Err(ServiceError::not_found("app", &input.app_id));
        }
        if let Some(user) = input.subject.as_ref().and_then(|s| s.user_id.as_deref()) {
            check_user_id("subject.userId", user)?;
        }
        // The tenant and scopes are held to a token request's rules: checked one at a time, so
        // that a refusal is placed at its field.
        let check = |tenant: Option<&str>, scopes: &[String], field: &str| {
            crate::plane::check_fields(&input.app_id, tenant, scopes).map_err(|r| match r {
                crate::Refusal::InvalidRequest { problem, message } => {
                    ServiceError::invalid_at(problem.as_str(), field, message)
                }
                other => ServiceError::Internal(format!("{other:?}")),
            })
        };
        check(input.tenant_id.as_deref(), &[], "tenantId")?;
        check(None, &input.scopes, "scopes")?;
        let snapshot = self
            .app_snapshot(&input.app_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("app", &input.app_id))?;
        let tenant = input.tenant_id.as_deref();
        let (user_id, roles, roles_source, claims) = match (&input.token, &input.subject) {
            (Some(token), None) => {
                let caller = self
                    .authenticate_caller(Some(token.expose()), None)
                    .await
                    .map_err(|r| match r {
                        crate::Refusal::InvalidToken { code, message } => ServiceError::Invalid {
                            code: "invalid_token",
                            message: format!("the token is not valid: {message}"),
                            details: Some(serde_json::json!({
                                "reason": code.unwrap_or(crate::refusal::MISSING_TOKEN)
                            })),
                        },
                        crate::Refusal::InsufficientScope { scope } => ServiceError::invalid(
                            "insufficient_scope",
                            format!(
                                "the token lacks the scope {scope} needed to fetch outbound tokens"
                            ),
                        ),
                        other => ServiceError::Internal(format!("{other:?}")),
                    })?;
                let source = if caller.user.is_some() {
                    "directory"
                } else {
                    "token"
                };
                (
                    Some(caller.id.clone()),
                    caller.roles(tenant),
                    source,
                    Arc::new(caller.token.claims.clone()),
                )
            }
            (None, Some(s)) => {
                let (roles, source) = match (&s.roles, &s.user_id) {
                    (Some(r), _) => (r.clone(), "given"),
                    (None, Some(u)) => match self.directory_user(u).await? {
                        Some(user) => (user.effective_roles(tenant), "directory"),
                        None => (Vec::new(), "directory"),
                    },
                    (None, None) => (Vec::new(), "given"),
                };
                (s.user_id.clone(), roles, source, Arc::new(s.claims.clone()))
            }
            _ => {
                return Err(ServiceError::invalid(
                    "invalid_request",
                    "give exactly one of token and subject",
                ));
            }
        };
        let requested = if input.scopes.is_empty() && snapshot.app.kind == AppKind::OAuth {
            snapshot.app.settings.default_scopes.clone()
        } else {
            input.scopes.clone()
        };
        let explanation = {
            let subject = Subject::new(&roles, &claims);
            let refs: Vec<&str> = requested.iter().map(String::as_str).collect();
            let decision = snapshot.set.decide(&subject, &refs);
            snapshot.set.explain(&subject, &refs, &decision)
        };
        Ok(SimulateOutput {
            user_id,
            roles,
            roles_source,
            requested_scopes: requested,
            decision: explanation,
        })
    }
}
