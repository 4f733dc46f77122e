//! Users, roles and tenants.

use std::collections::BTreeMap;

use async_trait::async_trait;
use portcullis_domain::table::SimpleTable;
use portcullis_domain::{
    Change, DirectoryStore, Identity, PageRequest, Role, StoreError, TenantMembership,
    TenantRecord, UserRecord,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::rows::{json_col, limit, read_err, to_json, ts};
use crate::{SqliteStore, backend, table, write_error};

const USER_COLUMNS: &str = "id, email, name, attributes, disabled, created_at, updated_at";

fn user_base(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: row.get(0)?,
        identities: Vec::new(),
        email: row.get(1)?,
        name: row.get(2)?,
        roles: Vec::new(),
        tenants: Vec::new(),
        attributes: json_col(row, 3)?,
        disabled: row.get(4)?,
        created_at: ts(row, 5)?,
        updated_at: ts(row, 6)?,
    })
}

/// Fills in a user's identities, roles and tenant memberships.
fn load_memberships(c: &Connection, user: &mut UserRecord) -> Result<(), StoreError> {
    user.identities = c
        .prepare_cached(
            "SELECT issuer, subject FROM user_identities WHERE user_id = ?1 ORDER BY issuer, subject",
        )
        .and_then(|mut s| {
            s.query_map([&user.id], |r| {
                Ok(Identity {
                    issuer: r.get(0)?,
                    subject: r.get(1)?,
                })
            })?
            .collect()
        })
        .map_err(read_err)?;
    user.roles = c
        .prepare_cached("SELECT role FROM user_roles WHERE user_id = ?1 ORDER BY role")
        .and_then(|mut s| {
            s.query_map([&user.id], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()
        })
        .map_err(read_err)?;
    let mut tenants: BTreeMap<String, Vec<String>> = c
        .prepare_cached("SELECT tenant_id FROM user_tenants WHERE user_id = ?1")
        .and_then(|mut s| {
            s.query_map([&user.id], |r| r.get::<_, String>(0))?
                .map(|t| t.map(|t| (t, Vec::new())))
                .collect()
        })
        .map_err(read_err)?;
    let rows: Vec<(String, String)> = c
        .prepare_cached(
            "SELECT tenant_id, role FROM user_tenant_roles WHERE user_id = ?1 ORDER BY tenant_id, role",
        )
        .and_then(|mut s| {
            s.query_map([&user.id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .map_err(read_err)?;
    for (tenant, role) in rows {
        tenants.entry(tenant).or_default().push(role);
    }
    user.tenants = tenants
        .into_iter()
        .map(|(tenant_id, roles)| TenantMembership { tenant_id, roles })
        .collect();
    Ok(())
}

fn get_user(c: &Connection, id: &str) -> Result<Option<UserRecord>, StoreError> {
    let user = c
        .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))
        .and_then(|mut s| s.query_row([id], user_base).optional())
        .map_err(read_err)?;
    match user {
        None => Ok(None),
        Some(mut u) => {
            load_memberships(c, &mut u)?;
            Ok(Some(u))
        }
    }
}

/// Checks that every role and tenant a user names exists, naming the first that does not.
fn check_references(tx: &Transaction<'_>, user: &UserRecord) -> Result<(), StoreError> {
    let roles = user
        .roles
        .iter()
        .chain(user.tenants.iter().flat_map(|m| m.roles.iter()));
    for role in roles {
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM roles WHERE name = ?1)",
                [role],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if !exists {
            return Err(StoreError::MissingReference {
                entity: "role",
                id: role.clone(),
            });
        }
    }
    for m in &user.tenants {
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM tenants WHERE id = ?1)",
                [&m.tenant_id],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if !exists {
            return Err(StoreError::MissingReference {
                entity: "tenant",
                id: m.tenant_id.clone(),
            });
        }
    }
    Ok(())
}

fn write_memberships(tx: &Transaction<'_>, user: &UserRecord) -> Result<(), StoreError> {
    tx.execute("DELETE FROM user_identities WHERE user_id = ?1", [&user.id])
        .map_err(backend)?;
    for i in &user.identities {
        tx.execute(
            "INSERT INTO user_identities (issuer, subject, user_id) VALUES (?1, ?2, ?3)",
            [&i.issuer, &i.subject, &user.id],
        )
        .map_err(write_error("user identity"))?;
    }
    tx.execute("DELETE FROM user_roles WHERE user_id = ?1", [&user.id])
        .map_err(backend)?;
    tx.execute("DELETE FROM user_tenants WHERE user_id = ?1", [&user.id])
        .map_err(backend)?;
    for role in &user.roles {
        tx.execute(
            "INSERT OR IGNORE INTO user_roles (user_id, role) VALUES (?1, ?2)",
            [&user.id, role],
        )
        .map_err(write_error("role"))?;
    }
    for m in &user.tenants {
        tx.execute(
            "INSERT OR IGNORE INTO user_tenants (user_id, tenant_id) VALUES (?1, ?2)",
            [&user.id, &m.tenant_id],
        )
        .map_err(write_error("tenant"))?;
        for role in &m.roles {
            tx.execute(
                "INSERT OR IGNORE INTO user_tenant_roles (user_id, tenant_id, role) VALUES (?1, ?2, ?3)",
                [&user.id, &m.tenant_id, role],
            )
            .map_err(write_error("role"))?;
        }
    }
    Ok(())
}

/// Tells a duplicate user id from a duplicate email.
fn duplicate_user(tx: &Transaction<'_>, user: &UserRecord) -> StoreError {
    let id_taken = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)",
            [&user.id],
            |r| r.get::<_, bool>(0),
        )
        .unwrap_or(false);
    StoreError::AlreadyExists {
        entity: if id_taken { "user" } else { "user email" },
    }
}

/// The users of a tenant, whose effective roles change with it.
fn users_of_tenant(tx: &Transaction<'_>, tenant: &str) -> Result<Vec<String>, StoreError> {
    tx.prepare_cached("SELECT user_id FROM user_tenants WHERE tenant_id = ?1")
        .and_then(|mut s| s.query_map([tenant], |r| r.get(0))?.collect())
        .map_err(backend)
}

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(move |tx| Ok(((), insert_user_tx(tx, &user)?)))
            .await
    }

    async fn user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let id = id.to_owned();
        self.read_point(move |c| get_user(c, &id)).await
    }

    async fn user_by_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let (issuer, subject) = (issuer.to_owned(), subject.to_owned());
        self.read_point(move |c| {
            let id: Option<String> = c
                .prepare_cached(
                    "SELECT user_id FROM user_identities WHERE issuer = ?1 AND subject = ?2",
                )
                .and_then(|mut s| s.query_row([&issuer, &subject], |r| r.get(0)).optional())
                .map_err(read_err)?;
            match id {
                Some(id) => get_user(c, &id),
                None => Ok(None),
            }
        })
        .await
    }

    async fn users(&self, page: &PageRequest) -> Result<Vec<UserRecord>, StoreError> {
        let page = page.clone();
        self.read(move |c| {
            let mut users: Vec<UserRecord> = c
                .prepare_cached(&format!(
                    "SELECT {USER_COLUMNS} FROM users WHERE id > ?1 ORDER BY id LIMIT ?2"
                ))
                .and_then(|mut s| {
                    s.query_map(
                        params![page.after.unwrap_or_default(), limit(page.limit)],
                        user_base,
                    )?
                    .collect()
                })
                .map_err(read_err)?;
            for u in &mut users {
                load_memberships(c, u)?;
            }
            Ok(users)
        })
        .await
    }

    async fn update_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(move |tx| Ok(((), update_user_tx(tx, &user)?)))
            .await
    }

    async fn delete_user(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            let n = tx
                .execute("DELETE FROM users WHERE id = ?1", [&id])
                .map_err(backend)?;
            StoreError::found(n > 0, "user")?;
            let mut changes = vec![Change::User(id.clone())];
            changes.extend(crate::connections::changes_of(
                &crate::connections::delete_where(tx, "user_id = ?1", &id)?,
            ));
            Ok(((), changes))
        })
        .await
    }

    async fn delete_role(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |tx| {
            let holders: i64 = tx
                .query_row(
                    "SELECT (SELECT COUNT(*) FROM user_roles WHERE role = ?1) + (SELECT COUNT(*) FROM user_tenant_roles WHERE role = ?1)",
                    [&name],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            Role::check_unheld(&name, holders)?;
            Ok(((), table::delete_tx(tx, Role::TABLE, &name)?))
        })
        .await
    }

    async fn delete_tenant(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            let members = users_of_tenant(tx, &id)?;
            table::delete_tx(tx, TenantRecord::TABLE, &id)?;
            let connections = crate::connections::changes_of(&crate::connections::delete_where(
                tx,
                "tenant_id = ?1",
                &id,
            )?);
            Ok(((), TenantRecord::deleted(members, connections)))
        })
        .await
    }
}

/// `insert_user` within a transaction; the changes to publish after it commits.
pub(crate) fn insert_user_tx(
    tx: &Transaction<'_>,
    user: &UserRecord,
) -> Result<Vec<Change>, StoreError> {
    check_references(tx, user)?;
    tx.execute(
        &format!(
            "INSERT INTO users ({USER_COLUMNS}, email_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ),
        params![
            user.id,
            user.email,
            user.name,
            to_json(&user.attributes)?,
            user.disabled,
            user.created_at.as_millis(),
            user.updated_at.as_millis(),
            user.email_key()
        ],
    )
    .map_err(|e| match write_error("user")(e) {
        StoreError::AlreadyExists { .. } => duplicate_user(tx, user),
        other => other,
    })?;
    write_memberships(tx, user)?;
    Ok(vec![Change::User(user.id.clone())])
}

/// `update_user` within a transaction; the changes to publish after it commits.
pub(crate) fn update_user_tx(
    tx: &Transaction<'_>,
    user: &UserRecord,
) -> Result<Vec<Change>, StoreError> {
    check_references(tx, user)?;
    let n = tx
            .execute(
                "UPDATE users SET email = ?2, name = ?3, attributes = ?4, disabled = ?5, updated_at = ?6, email_key = ?7 WHERE id = ?1",
                params![
                    user.id,
                    user.email,
                    user.name,
                    to_json(&user.attributes)?,
                    user.disabled,
                    user.updated_at.as_millis(),
                    user.email_key()
                ],
            )
            .map_err(|e| match write_error("user")(e) {
                StoreError::AlreadyExists { .. } => StoreError::AlreadyExists {
                    entity: "user email",
                },
                other => other,
            })?;
    StoreError::found(n > 0, "user")?;
    write_memberships(tx, user)?;
    Ok(vec![Change::User(user.id.clone())])
}
