//! Users, roles and tenants.

use std::collections::BTreeMap;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use portcullis_domain::table::SimpleTable;
use portcullis_domain::{
    Change, DirectoryStore, Identity, PageRequest, Role, StoreError, TenantMembership,
    TenantRecord, UserRecord,
};
use tokio_postgres::Row;

use crate::error::{constraint, db, is_foreign_key_violation, is_unique_violation, write};
use crate::rows::{get, json, limit, to_json, ts};
use crate::{PostgresStore, begin, execute, query, query_opt, table};

/// A user's columns and, gathered by the same statement (so from the same snapshot), the user's
/// roles, tenants, roles within tenants, and identities (pairs of parallel arrays in one order).
const USER_SELECT: &str = "SELECT u.id, u.email, u.name, u.attributes, u.disabled, u.created_at, u.updated_at,
    ARRAY(SELECT r.role FROM user_roles r WHERE r.user_id = u.id ORDER BY r.role),
    ARRAY(SELECT t.tenant_id FROM user_tenants t WHERE t.user_id = u.id ORDER BY t.tenant_id),
    ARRAY(SELECT tr.tenant_id FROM user_tenant_roles tr WHERE tr.user_id = u.id ORDER BY tr.tenant_id, tr.role),
    ARRAY(SELECT tr.role FROM user_tenant_roles tr WHERE tr.user_id = u.id ORDER BY tr.tenant_id, tr.role),
    ARRAY(SELECT i.issuer FROM user_identities i WHERE i.user_id = u.id ORDER BY i.issuer, i.subject),
    ARRAY(SELECT i.subject FROM user_identities i WHERE i.user_id = u.id ORDER BY i.issuer, i.subject)
  FROM users u";

fn user_from_row(row: &Row) -> Result<UserRecord, StoreError> {
    let tenant_ids: Vec<String> = get(row, 8)?;
    let role_tenants: Vec<String> = get(row, 9)?;
    let tenant_roles: Vec<String> = get(row, 10)?;
    let mut tenants: BTreeMap<String, Vec<String>> =
        tenant_ids.into_iter().map(|t| (t, Vec::new())).collect();
    for (tenant, role) in role_tenants.into_iter().zip(tenant_roles) {
        tenants.entry(tenant).or_default().push(role);
    }
    let issuers: Vec<String> = get(row, 11)?;
    let subjects: Vec<String> = get(row, 12)?;
    Ok(UserRecord {
        id: get(row, 0)?,
        identities: issuers
            .into_iter()
            .zip(subjects)
            .map(|(issuer, subject)| Identity { issuer, subject })
            .collect(),
        email: get(row, 1)?,
        name: get(row, 2)?,
        roles: get(row, 7)?,
        tenants: tenants
            .into_iter()
            .map(|(tenant_id, roles)| TenantMembership { tenant_id, roles })
            .collect(),
        attributes: json(row, 3)?,
        disabled: get(row, 4)?,
        created_at: ts(row, 5)?,
        updated_at: ts(row, 6)?,
    })
}

/// The first of `ids` (in order) that `table` does not have in `column`.
async fn first_missing<C: GenericClient>(
    c: &C,
    table: &str,
    column: &str,
    ids: &[&String],
) -> Result<Option<String>, StoreError> {
    if ids.is_empty() {
        return Ok(None);
    }
    let row = query_opt(
        c,
        &format!(
            "SELECT w.id FROM unnest($1::text[]) WITH ORDINALITY AS w(id, n)
             WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.{column} = w.id)
             ORDER BY w.n LIMIT 1"
        ),
        &[&ids],
    )
    .await
    .map_err(db)?;
    row.map(|r| get(&r, 0)).transpose()
}

/// Checks that every role and tenant a user names exists, naming the first that does not.
async fn check_references<C: GenericClient>(c: &C, user: &UserRecord) -> Result<(), StoreError> {
    let roles: Vec<&String> = user
        .roles
        .iter()
        .chain(user.tenants.iter().flat_map(|m| m.roles.iter()))
        .collect();
    if let Some(id) = first_missing(c, "roles", "name", &roles).await? {
        return Err(StoreError::MissingReference { entity: "role", id });
    }
    let tenants: Vec<&String> = user.tenants.iter().map(|m| &m.tenant_id).collect();
    if let Some(id) = first_missing(c, "tenants", "id", &tenants).await? {
        return Err(StoreError::MissingReference {
            entity: "tenant",
            id,
        });
    }
    Ok(())
}

/// A reference that vanished between the check and the write (deleted meanwhile) is still named.
fn missing(entity: &'static str, id: &str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| {
        if is_foreign_key_violation(&e) {
            StoreError::MissingReference {
                entity,
                id: id.to_owned(),
            }
        } else {
            db(e)
        }
    }
}

async fn write_memberships<C: GenericClient>(c: &C, user: &UserRecord) -> Result<(), StoreError> {
    execute(
        c,
        "DELETE FROM user_identities WHERE user_id = $1",
        &[&user.id],
    )
    .await
    .map_err(db)?;
    for i in &user.identities {
        execute(
            c,
            "INSERT INTO user_identities (issuer, subject, user_id) VALUES ($1, $2, $3)",
            &[&i.issuer, &i.subject, &user.id],
        )
        .await
        .map_err(write("user identity"))?;
    }
    execute(c, "DELETE FROM user_roles WHERE user_id = $1", &[&user.id])
        .await
        .map_err(db)?;
    // Cascades to the roles held within the tenants.
    execute(
        c,
        "DELETE FROM user_tenants WHERE user_id = $1",
        &[&user.id],
    )
    .await
    .map_err(db)?;
    for role in &user.roles {
        execute(
            c,
            "INSERT INTO user_roles (user_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&user.id, role],
        )
        .await
        .map_err(missing("role", role))?;
    }
    for m in &user.tenants {
        execute(
            c,
            "INSERT INTO user_tenants (user_id, tenant_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&user.id, &m.tenant_id],
        )
        .await
        .map_err(missing("tenant", &m.tenant_id))?;
        for role in &m.roles {
            execute(
                c,
                "INSERT INTO user_tenant_roles (user_id, tenant_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&user.id, &m.tenant_id, role],
            )
            .await
            .map_err(missing("role", role))?;
        }
    }
    Ok(())
}

#[async_trait]
impl DirectoryStore for PostgresStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let changes = insert_user_tx(&tx, user).await?;
        self.commit(tx, changes).await
    }

    async fn user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let client = self.client().await?;
        query_opt(&client, &format!("{USER_SELECT} WHERE u.id = $1"), &[&id])
            .await
            .map_err(db)?
            .map(|row| user_from_row(&row))
            .transpose()
    }

    async fn user_by_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!(
                "{USER_SELECT} WHERE u.id = (SELECT user_id FROM user_identities WHERE issuer = $1 AND subject = $2)"
            ),
            &[&issuer, &subject],
        )
        .await
        .map_err(db)?
        .map(|row| user_from_row(&row))
        .transpose()
    }

    async fn users(&self, page: &PageRequest) -> Result<Vec<UserRecord>, StoreError> {
        let client = self.client().await?;
        let after = page.after.as_deref().unwrap_or_default();
        query(
            &client,
            &format!("{USER_SELECT} WHERE u.id > $1 ORDER BY u.id LIMIT $2"),
            &[&after, &limit(page.limit)],
        )
        .await
        .map_err(db)?
        .iter()
        .map(user_from_row)
        .collect()
    }

    async fn update_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let changes = update_user_tx(&tx, user).await?;
        self.commit(tx, changes).await
    }

    async fn delete_user(&self, id: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let n = execute(&tx, "DELETE FROM users WHERE id = $1", &[&id])
            .await
            .map_err(db)?;
        StoreError::found(n > 0, "user")?;
        let mut changes = vec![Change::User(id.to_owned())];
        changes.extend(crate::connections::delete_where(&tx, "user_id", id).await?);
        self.commit(tx, changes).await
    }

    async fn delete_role(&self, name: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let holders: i64 = get(
            &crate::query_one(
                &tx,
                "SELECT (SELECT COUNT(*) FROM user_roles WHERE role = $1) + (SELECT COUNT(*) FROM user_tenant_roles WHERE role = $1)",
                &[&name],
            )
            .await
            .map_err(db)?,
            0,
        )?;
        Role::check_unheld(name, holders)?;
        let changes = table::delete_tx(&tx, Role::TABLE, name, |e| {
            if is_foreign_key_violation(&e) {
                // A user was given the role after the count: it is in use after all.
                Role::held_meanwhile(name)
            } else {
                db(e)
            }
        })
        .await?;
        self.commit(tx, changes).await
    }

    async fn delete_tenant(&self, id: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        // Lock the tenant first: a membership being added waits (its foreign key check needs the
        // row), so the members read next are all the users whose roles this delete changes.
        let exists = query_opt(
            &tx,
            "SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(db)?;
        StoreError::found(exists.is_some(), TenantRecord::TABLE.entity)?;
        let members: Vec<String> = query(
            &tx,
            "SELECT user_id FROM user_tenants WHERE tenant_id = $1",
            &[&id],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| get(r, 0))
        .collect::<Result<_, _>>()?;
        table::delete_tx(&tx, TenantRecord::TABLE, id, db).await?;
        let connections = crate::connections::delete_where(&tx, "tenant_id", id).await?;
        self.commit(tx, TenantRecord::deleted(members, connections))
            .await
    }
}

/// `insert_user` within a transaction; the changes to publish after it commits.
pub(crate) async fn insert_user_tx(
    tx: &deadpool_postgres::Transaction<'_>,
    user: &UserRecord,
) -> Result<Vec<Change>, StoreError> {
    let attributes = to_json(&user.attributes)?;
    check_references(tx, user).await?;
    execute(
        tx,
        "INSERT INTO users (id, email, name, attributes, disabled, created_at, updated_at, email_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &user.id,
            &user.email,
            &user.name,
            &attributes,
            &user.disabled,
            &user.created_at.as_millis(),
            &user.updated_at.as_millis(),
            &user.email_key(),
        ],
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            // Tells a duplicate user id from a duplicate email.
            StoreError::AlreadyExists {
                entity: if constraint(&e) == Some("users_pkey") {
                    "user"
                } else {
                    "user email"
                },
            }
        } else {
            write("user")(e)
        }
    })?;
    write_memberships(tx, user).await?;
    Ok(vec![Change::User(user.id.clone())])
}

/// `update_user` within a transaction; the changes to publish after it commits.
pub(crate) async fn update_user_tx(
    tx: &deadpool_postgres::Transaction<'_>,
    user: &UserRecord,
) -> Result<Vec<Change>, StoreError> {
    let attributes = to_json(&user.attributes)?;
    check_references(tx, user).await?;
    let n = execute(
        tx,
        "UPDATE users SET email = $2, name = $3, attributes = $4, disabled = $5, updated_at = $6, email_key = $7 WHERE id = $1",
        &[
            &user.id,
            &user.email,
            &user.name,
            &attributes,
            &user.disabled,
            &user.updated_at.as_millis(),
            &user.email_key(),
        ],
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::AlreadyExists {
                entity: "user email",
            }
        } else {
            write("user")(e)
        }
    })?;
    StoreError::found(n > 0, "user")?;
    write_memberships(tx, user).await?;
    Ok(vec![Change::User(user.id.clone())])
}
