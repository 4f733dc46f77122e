//! The directory: users (with their identities and tenant memberships), roles, tenants.

use super::*;

/// A user as written by the management API.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserInput {
    /// The user's id in the directory (required on create).
    #[serde(default)]
    pub id: Option<String>,
    /// The identities that are this user: a token whose `iss` and `sub` match one of these is
    /// this user (at most 16; each identity belongs to one user).
    #[serde(default)]
    pub identities: Vec<Identity>,
    /// The user's email address, unique (case-insensitive).
    #[serde(default)]
    pub email: Option<String>,
    /// The user's display name, at most 256 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// The roles the user holds everywhere (each one must exist); policies' `userRoles` conditions
    /// read them.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The tenants the user belongs to, with the roles the user holds in each (each tenant and role
    /// must exist).
    #[serde(default)]
    pub tenants: Vec<TenantMembership>,
    /// Free-form attributes: a JSON object of at most 16 KiB.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// Whether the user is disabled: a disabled user gets no outbound token.
    #[serde(default)]
    pub disabled: bool,
}

/// A user as the management API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// The user's id in the directory.
    pub id: String,
    /// The identities that are this user (issuer and subject).
    pub identities: Vec<Identity>,
    /// The user's email address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The user's display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The roles the user holds everywhere.
    pub roles: Vec<String>,
    /// The tenants the user belongs to, with the user's roles in each.
    pub tenants: Vec<TenantMembership>,
    /// Free-form attributes.
    pub attributes: Map<String, Value>,
    /// Whether the user is disabled (a disabled user gets no outbound token).
    pub disabled: bool,
    /// When the user was added.
    pub created_at: Timestamp,
    /// When the user was last changed.
    pub updated_at: Timestamp,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id.clone(),
            identities: u.identities.clone(),
            email: u.email.clone(),
            name: u.name.clone(),
            roles: u.roles.clone(),
            tenants: u.tenants.clone(),
            attributes: u.attributes.clone(),
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

fn check_user_input(input: &UserInput) -> Result<(), ServiceError> {
    if let Some(e) = &input.email {
        let at = e.find('@');
        if e.chars().count() > 254
            || at.is_none_or(|i| i == 0 || i + 1 == e.len())
            || e.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "email",
                "email is not a valid address",
            ));
        }
    }
    if let Some(n) = &input.name
        && (n.chars().count() > 256 || n.chars().any(char::is_control))
    {
        return Err(ServiceError::invalid_at(
            "invalid_request",
            "name",
            "name must be at most 256 characters, without control characters",
        ));
    }
    if input.roles.len() > 256 || input.tenants.len() > 256 {
        return Err(ServiceError::invalid_at(
            "invalid_request",
            if input.roles.len() > 256 {
                "roles"
            } else {
                "tenants"
            },
            "at most 256 roles and 256 tenants",
        ));
    }
    let mut tenants = HashSet::new();
    for (i, m) in input.tenants.iter().enumerate() {
        if !tenants.insert(&m.tenant_id) {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                format!("tenants[{i}].tenantId"),
                format!("tenant {} is listed twice", m.tenant_id),
            ));
        }
    }
    // No role or tenant is named with a control character: answer as the store does for one that
    // does not exist, without asking it (PostgreSQL refuses NUL even in a lookup).
    let roles = input
        .roles
        .iter()
        .chain(input.tenants.iter().flat_map(|m| m.roles.iter()))
        .map(|r| ("role", r));
    let tenants = input.tenants.iter().map(|m| ("tenant", &m.tenant_id));
    if let Some((entity, id)) = roles
        .chain(tenants)
        .find(|(_, id)| id.chars().any(char::is_control))
    {
        return Err(StoreError::MissingReference {
            entity,
            id: id.clone(),
        }
        .into());
    }
    crate::identity::check_identities(&input.identities)?;
    check_attributes(&input.attributes)
}

impl Core {
    /// Creates a user.
    pub async fn create_user(&self, input: &UserInput) -> Result<UserView, ServiceError> {
        let id = input
            .id
            .clone()
            .ok_or_else(|| ServiceError::invalid_at("invalid_request", "id", "id is required"))?;
        check_user_id("id", &id)?;
        let user = self.user_record(id, input, None)?;
        self.stores.directory.insert_user(&user).await?;
        Ok(UserView::from(&user))
    }

    /// Reads a user.
    pub async fn get_user(&self, id: &str) -> Result<UserView, ServiceError> {
        view_of(self.stores.directory.user(id).await?, "user", id)
    }

    /// Lists users.
    pub async fn list_users(&self, params: &ListParams) -> Result<Page<UserView>, ServiceError> {
        page_of(
            params,
            async |page| self.stores.directory.users(page).await,
            |u| u.id.clone(),
        )
        .await
    }

    /// Replaces a user (roles take effect on the very next token request).
    pub async fn update_user(&self, id: &str, input: &UserInput) -> Result<UserView, ServiceError> {
        same_id(input.id.as_deref(), id)?;
        check_user_input(input)?;
        let current = self
            .stores
            .directory
            .user(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("user", id))?;
        let user = self.user_record(id.to_owned(), input, Some(&current))?;
        self.stores
            .directory
            .update_user(&user)
            .await
            .map_err(|e| not_found(e, "user", id))?;
        Ok(UserView::from(&user))
    }

    /// The record of user `id` with `input`, checked (`current`: the user it replaces).
    pub(crate) fn user_record(
        &self,
        id: String,
        input: &UserInput,
        current: Option<&UserRecord>,
    ) -> Result<UserRecord, ServiceError> {
        if current.is_none() {
            check_user_id("id", &id)?;
        }
        check_user_input(input)?;
        let now = self.clock.now();
        Ok(UserRecord {
            id,
            identities: sorted_identities(&input.identities),
            email: input.email.clone(),
            name: input.name.clone(),
            roles: sorted_unique(&input.roles),
            tenants: input.tenants.clone(),
            attributes: input.attributes.clone(),
            disabled: input.disabled,
            created_at: current.map_or(now, |c| c.created_at),
            updated_at: now,
        })
    }

    /// Deletes a user and the user's connections.
    pub async fn delete_user(&self, id: &str) -> Result<(), ServiceError> {
        self.stores
            .directory
            .delete_user(id)
            .await
            .map_err(|e| not_found(e, "user", id))
    }
}

fn sorted_identities(v: &[Identity]) -> Vec<Identity> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// A role as written and shown by the management API.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleInput {
    /// The role's name (its id; required on create).
    #[serde(default)]
    pub name: Option<String>,
    /// What the role is for, at most 1,024 characters.
    #[serde(default)]
    pub description: Option<String>,
}

/// A role as the management API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleView {
    /// The role's name (its id).
    pub name: String,
    /// What the role is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When the role was added.
    pub created_at: Timestamp,
    /// When the role was last changed.
    pub updated_at: Timestamp,
}

impl From<&Role> for RoleView {
    fn from(r: &Role) -> Self {
        Self {
            name: r.name.clone(),
            description: r.description.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn check_role_name(name: &str) -> Result<(), ServiceError> {
    if name.trim() != name
        || name.is_empty()
        || name.chars().count() > 128
        || name.chars().any(char::is_control)
    {
        return Err(ServiceError::invalid_at(
            "invalid_id",
            "name",
            "a role name is 1 to 128 characters, without leading or trailing spaces",
        ));
    }
    Ok(())
}

impl Core {
    /// Creates a role.
    pub async fn create_role(&self, input: &RoleInput) -> Result<RoleView, ServiceError> {
        let name = input.name.clone().ok_or_else(|| {
            ServiceError::invalid_at("invalid_request", "name", "name is required")
        })?;
        let role = self.role_record(name, input, None)?;
        self.stores.directory.insert_role(&role).await?;
        Ok(RoleView::from(&role))
    }

    /// Reads a role.
    pub async fn get_role(&self, name: &str) -> Result<RoleView, ServiceError> {
        view_of(self.stores.directory.role(name).await?, "role", name)
    }

    /// Lists roles.
    pub async fn list_roles(&self, params: &ListParams) -> Result<Page<RoleView>, ServiceError> {
        page_of(
            params,
            async |page| self.stores.directory.roles(page).await,
            |r| r.name.clone(),
        )
        .await
    }

    /// Replaces a role's description.
    pub async fn update_role(
        &self,
        name: &str,
        input: &RoleInput,
    ) -> Result<RoleView, ServiceError> {
        if input.name.as_deref().is_some_and(|n| n != name) {
            return Err(ServiceError::invalid_at(
                "invalid_request",
                "name",
                "name is immutable",
            ));
        }
        check_description("description", input.description.as_deref())?;
        let current = self
            .stores
            .directory
            .role(name)
            .await?
            .ok_or_else(|| ServiceError::not_found("role", name))?;
        let role = self.role_record(name.to_owned(), input, Some(&current))?;
        self.stores
            .directory
            .update_role(&role)
            .await
            .map_err(|e| not_found(e, "role", name))?;
        Ok(RoleView::from(&role))
    }

    /// The record of role `name` with `input`, checked (`current`: the role it replaces).
    pub(crate) fn role_record(
        &self,
        name: String,
        input: &RoleInput,
        current: Option<&Role>,
    ) -> Result<Role, ServiceError> {
        check_role_name(&name)?;
        check_description("description", input.description.as_deref())?;
        let now = self.clock.now();
        Ok(Role {
            name,
            description: input.description.clone(),
            created_at: current.map_or(now, |c| c.created_at),
            updated_at: now,
        })
    }

    /// Deletes a role no user holds.
    pub async fn delete_role(&self, name: &str) -> Result<(), ServiceError> {
        self.stores
            .directory
            .delete_role(name)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(message) => ServiceError::Conflict {
                    code: "role_in_use",
                    message,
                },
                other => not_found(other, "role", name),
            })
    }
}

/// A tenant as written by the management API.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantInput {
    /// The tenant's id: a slug, immutable (required on create).
    #[serde(default)]
    pub id: Option<String>,
    /// The tenant's name, 1 to 128 characters.
    pub name: String,
    /// Free-form attributes: a JSON object of at most 16 KiB.
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// A tenant as the management API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    /// The tenant's id (a slug).
    pub id: String,
    /// The tenant's name.
    pub name: String,
    /// Free-form attributes.
    pub attributes: Map<String, Value>,
    /// When the tenant was added.
    pub created_at: Timestamp,
    /// When the tenant was last changed.
    pub updated_at: Timestamp,
}

impl From<&TenantRecord> for TenantView {
    fn from(t: &TenantRecord) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            attributes: t.attributes.clone(),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

impl Core {
    /// Creates a tenant.
    pub async fn create_tenant(&self, input: &TenantInput) -> Result<TenantView, ServiceError> {
        let id = input
            .id
            .clone()
            .ok_or_else(|| ServiceError::invalid_at("invalid_request", "id", "id is required"))?;
        let t = self.tenant_record(id, input, None)?;
        self.stores.directory.insert_tenant(&t).await?;
        Ok(TenantView::from(&t))
    }

    /// Reads a tenant.
    pub async fn get_tenant(&self, id: &str) -> Result<TenantView, ServiceError> {
        view_of(self.stores.directory.tenant(id).await?, "tenant", id)
    }

    /// Lists tenants.
    pub async fn list_tenants(
        &self,
        params: &ListParams,
    ) -> Result<Page<TenantView>, ServiceError> {
        page_of(
            params,
            async |page| self.stores.directory.tenants(page).await,
            |t| t.id.clone(),
        )
        .await
    }

    /// Replaces a tenant.
    pub async fn update_tenant(
        &self,
        id: &str,
        input: &TenantInput,
    ) -> Result<TenantView, ServiceError> {
        same_id(input.id.as_deref(), id)?;
        check_name("name", &input.name)?;
        check_attributes(&input.attributes)?;
        let current = self
            .stores
            .directory
            .tenant(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("tenant", id))?;
        let t = self.tenant_record(id.to_owned(), input, Some(&current))?;
        self.stores
            .directory
            .update_tenant(&t)
            .await
            .map_err(|e| not_found(e, "tenant", id))?;
        Ok(TenantView::from(&t))
    }

    /// The record of tenant `id` with `input`, checked (`current`: the tenant it replaces).
    pub(crate) fn tenant_record(
        &self,
        id: String,
        input: &TenantInput,
        current: Option<&TenantRecord>,
    ) -> Result<TenantRecord, ServiceError> {
        check_slug("id", &id)?;
        check_name("name", &input.name)?;
        check_attributes(&input.attributes)?;
        let now = self.clock.now();
        Ok(TenantRecord {
            id,
            name: input.name.trim().to_owned(),
            attributes: input.attributes.clone(),
            created_at: current.map_or(now, |c| c.created_at),
            updated_at: now,
        })
    }

    /// Deletes a tenant, its memberships and its connections.
    pub async fn delete_tenant(&self, id: &str) -> Result<(), ServiceError> {
        self.stores
            .directory
            .delete_tenant(id)
            .await
            .map_err(|e| not_found(e, "tenant", id))
    }
}
