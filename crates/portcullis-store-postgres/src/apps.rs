//! Outbound apps and policies.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use portcullis_domain::{
    AppKind, AppRecord, AppStore, Change, PageRequest, PolicyRecord, StoreError,
};
use tokio_postgres::Row;

use crate::error::{constraint, db, decode, is_unique_violation, write};
use crate::rows::{get, json, limit, opt_sealed, to_json, ts};
use crate::{PostgresStore, begin, execute, query, query_opt};

const APP_COLUMNS: &str = "id, name, description, kind, settings, client_secret, client_secret_key, revision, created_at, updated_at";
const POLICY_COLUMNS: &str = "id, app_id, document, created_at, updated_at";

/// An app from the ten app columns starting at `base`.
fn app_from_row(row: &Row, base: usize) -> Result<AppRecord, StoreError> {
    let kind: &str = get(row, base + 3)?;
    Ok(AppRecord {
        id: get(row, base)?,
        name: get(row, base + 1)?,
        description: get(row, base + 2)?,
        kind: AppKind::parse(kind).ok_or_else(|| decode("app", format!("unknown kind {kind}")))?,
        settings: json(row, base + 4)?,
        client_secret: opt_sealed(row, base + 5, base + 6)?,
        revision: get(row, base + 7)?,
        created_at: ts(row, base + 8)?,
        updated_at: ts(row, base + 9)?,
    })
}

/// A policy from the five policy columns starting at `base`.
fn policy_from_row(row: &Row, base: usize) -> Result<PolicyRecord, StoreError> {
    Ok(PolicyRecord {
        id: get(row, base)?,
        app_id: get(row, base + 1)?,
        document: json(row, base + 2)?,
        created_at: ts(row, base + 3)?,
        updated_at: ts(row, base + 4)?,
    })
}

async fn get_app<C: GenericClient>(c: &C, id: &str) -> Result<Option<AppRecord>, StoreError> {
    query_opt(
        c,
        &format!("SELECT {APP_COLUMNS} FROM outbound_apps WHERE id = $1"),
        &[&id],
    )
    .await
    .map_err(db)?
    .map(|row| app_from_row(&row, 0))
    .transpose()
}

/// Locks an app's row for the rest of the transaction and reads its revision (None: no such app).
/// Every write that bumps the revision takes this lock first, so that concurrent writers check
/// the revision one after the other.
async fn lock_app<C: GenericClient>(c: &C, app_id: &str) -> Result<Option<i64>, StoreError> {
    query_opt(
        c,
        "SELECT revision FROM outbound_apps WHERE id = $1 FOR UPDATE",
        &[&app_id],
    )
    .await
    .map_err(db)?
    .map(|row| get(&row, 0))
    .transpose()
}

/// Bumps a locked app's revision, and its `updated_at` when `now` is given.
async fn bump<C: GenericClient>(c: &C, app_id: &str, now: Option<i64>) -> Result<(), StoreError> {
    execute(
        c,
        "UPDATE outbound_apps SET revision = revision + 1, updated_at = COALESCE($2, updated_at) WHERE id = $1",
        &[&app_id, &now],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// Bumps an app's revision if it is still `expected`; says why not otherwise.
async fn bump_revision<C: GenericClient>(
    c: &C,
    app_id: &str,
    expected: i64,
    now: i64,
) -> Result<(), StoreError> {
    match lock_app(c, app_id).await? {
        None => Err(StoreError::NotFound { entity: "app" }),
        Some(current) if current != expected => Err(conflict(current, expected)),
        Some(_) => bump(c, app_id, Some(now)).await,
    }
}

fn conflict(current: i64, expected: i64) -> StoreError {
    StoreError::Conflict(format!(
        "the app changed meanwhile (revision {current}, expected {expected}); read it again and retry"
    ))
}

fn name_key(policy: &PolicyRecord) -> String {
    policy.document.name.trim().to_lowercase()
}

fn secret_columns(app: &AppRecord) -> (Option<&[u8]>, Option<i64>) {
    match &app.client_secret {
        Some(c) => (Some(c.bytes.as_slice()), Some(i64::from(c.key_id))),
        None => (None, None),
    }
}

#[async_trait]
impl AppStore for PostgresStore {
    async fn insert_app(&self, app: &AppRecord) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let changes = insert_app_tx(&tx, app).await?;
        self.commit(tx, changes).await
    }

    async fn app(&self, id: &str) -> Result<Option<AppRecord>, StoreError> {
        let client = self.client().await?;
        get_app(&client, id).await
    }

    async fn apps(&self, page: &PageRequest) -> Result<Vec<AppRecord>, StoreError> {
        let client = self.client().await?;
        let after = page.after.as_deref().unwrap_or_default();
        query(
            &client,
            &format!("SELECT {APP_COLUMNS} FROM outbound_apps WHERE id > $1 ORDER BY id LIMIT $2"),
            &[&after, &limit(page.limit)],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|row| app_from_row(row, 0))
        .collect()
    }

    async fn app_with_policies(
        &self,
        id: &str,
    ) -> Result<Option<(AppRecord, Vec<PolicyRecord>)>, StoreError> {
        // One statement, so one snapshot: the app and its policies as they were together.
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT a.id, a.name, a.description, a.kind, a.settings, a.client_secret,
                    a.client_secret_key, a.revision, a.created_at, a.updated_at,
                    p.id, p.app_id, p.document, p.created_at, p.updated_at
             FROM outbound_apps a LEFT JOIN policies p ON p.app_id = a.id
             WHERE a.id = $1 ORDER BY p.id",
            &[&id],
        )
        .await
        .map_err(db)?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let app = app_from_row(first, 0)?;
        let mut policies = Vec::with_capacity(rows.len());
        for row in &rows {
            if get::<Option<&str>>(row, 10)?.is_some() {
                policies.push(policy_from_row(row, 10)?);
            }
        }
        Ok(Some((app, policies)))
    }

    async fn update_app(&self, app: &AppRecord, expected_revision: i64) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let changes = update_app_tx(&tx, app, expected_revision).await?;
        self.commit(tx, changes).await
    }

    async fn delete_app(&self, id: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let n = execute(&tx, "DELETE FROM outbound_apps WHERE id = $1", &[&id])
            .await
            .map_err(db)?;
        StoreError::found(n > 0, "app")?;
        self.commit(
            tx,
            vec![
                Change::App(id.to_owned()),
                Change::AppConnections(id.to_owned()),
            ],
        )
        .await
    }

    async fn insert_policy(
        &self,
        policy: &PolicyRecord,
        expected_app_revision: i64,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let changes = insert_policy_tx(&tx, policy, expected_app_revision).await?;
        self.commit(tx, changes).await
    }

    async fn policy(&self, app_id: &str, id: &str) -> Result<Option<PolicyRecord>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!("SELECT {POLICY_COLUMNS} FROM policies WHERE app_id = $1 AND id = $2"),
            &[&app_id, &id],
        )
        .await
        .map_err(db)?
        .map(|row| policy_from_row(&row, 0))
        .transpose()
    }

    async fn policies(
        &self,
        app_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<PolicyRecord>, StoreError> {
        let client = self.client().await?;
        let after = page.after.as_deref().unwrap_or_default();
        query(
            &client,
            &format!(
                "SELECT {POLICY_COLUMNS} FROM policies WHERE app_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            &[&app_id, &after, &limit(page.limit)],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|row| policy_from_row(row, 0))
        .collect()
    }

    async fn update_policy(
        &self,
        policy: &PolicyRecord,
        expected_app_revision: i64,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let changes = update_policy_tx(&tx, policy, expected_app_revision).await?;
        self.commit(tx, changes).await
    }

    async fn delete_policy(&self, app_id: &str, id: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let changes = delete_policy_tx(&tx, app_id, id).await?;
        self.commit(tx, changes).await
    }
}

/// `insert_app` within a transaction; the changes to publish after it commits.
pub(crate) async fn insert_app_tx(
    tx: &deadpool_postgres::Transaction<'_>,
    app: &AppRecord,
) -> Result<Vec<Change>, StoreError> {
    let settings = to_json(&app.settings)?;
    let (secret, secret_key) = secret_columns(app);
    execute(
        tx,
        &format!(
            "INSERT INTO outbound_apps ({APP_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ),
        &[
            &app.id,
            &app.name,
            &app.description,
            &app.kind.as_str(),
            &settings,
            &secret,
            &secret_key,
            &app.revision,
            &app.created_at.as_millis(),
            &app.updated_at.as_millis(),
        ],
    )
    .await
    .map_err(write("app"))?;
    Ok(vec![Change::App(app.id.clone())])
}

/// `update_app` within a transaction; the changes to publish after it commits.
pub(crate) async fn update_app_tx(
    tx: &deadpool_postgres::Transaction<'_>,
    app: &AppRecord,
    expected_revision: i64,
) -> Result<Vec<Change>, StoreError> {
    let settings = to_json(&app.settings)?;
    let (secret, secret_key) = secret_columns(app);
    // Under READ COMMITTED a concurrent update makes this one wait, then re-check the revision
    // against the row it committed: exactly one of two writers of the same revision wins.
    let n = execute(
        tx,
        "UPDATE outbound_apps SET name = $2, description = $3, kind = $4, settings = $5, client_secret = $6, client_secret_key = $7, revision = $8, updated_at = $9 WHERE id = $1 AND revision = $10",
        &[
            &app.id,
            &app.name,
            &app.description,
            &app.kind.as_str(),
            &settings,
            &secret,
            &secret_key,
            &app.revision,
            &app.updated_at.as_millis(),
            &expected_revision,
        ],
    )
    .await
    .map_err(write("app"))?;
    if n == 0 {
        return Err(match get_app(tx, &app.id).await? {
            None => StoreError::NotFound { entity: "app" },
            Some(current) => conflict(current.revision, expected_revision),
        });
    }
    Ok(vec![Change::App(app.id.clone())])
}

/// `insert_policy` within a transaction; the changes to publish after it commits.
pub(crate) async fn insert_policy_tx(
    tx: &deadpool_postgres::Transaction<'_>,
    policy: &PolicyRecord,
    expected_app_revision: i64,
) -> Result<Vec<Change>, StoreError> {
    let document = to_json(&policy.document)?;
    bump_revision(
        tx,
        &policy.app_id,
        expected_app_revision,
        policy.updated_at.as_millis(),
    )
    .await?;
    execute(
        tx,
        "INSERT INTO policies (id, app_id, name_key, document, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &policy.id,
            &policy.app_id,
            &name_key(policy),
            &document,
            &policy.created_at.as_millis(),
            &policy.updated_at.as_millis(),
        ],
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            // Tells a duplicate policy id from a duplicate name.
            StoreError::AlreadyExists {
                entity: if constraint(&e) == Some("policies_pkey") {
                    "policy"
                } else {
                    "policy name"
                },
            }
        } else {
            write("policy")(e)
        }
    })?;
    Ok(vec![Change::App(policy.app_id.clone())])
}

/// `update_policy` within a transaction; the changes to publish after it commits.
pub(crate) async fn update_policy_tx(
    tx: &deadpool_postgres::Transaction<'_>,
    policy: &PolicyRecord,
    expected_app_revision: i64,
) -> Result<Vec<Change>, StoreError> {
    let document = to_json(&policy.document)?;
    bump_revision(
        tx,
        &policy.app_id,
        expected_app_revision,
        policy.updated_at.as_millis(),
    )
    .await?;
    let n = execute(
        tx,
        "UPDATE policies SET name_key = $3, document = $4, updated_at = $5 WHERE app_id = $1 AND id = $2",
        &[
            &policy.app_id,
            &policy.id,
            &name_key(policy),
            &document,
            &policy.updated_at.as_millis(),
        ],
    )
    .await
    .map_err(write("policy name"))?;
    StoreError::found(n > 0, "policy")?;
    Ok(vec![Change::App(policy.app_id.clone())])
}

/// `delete_policy` within a transaction; the changes to publish after it commits.
pub(crate) async fn delete_policy_tx(
    tx: &deadpool_postgres::Transaction<'_>,
    app_id: &str,
    id: &str,
) -> Result<Vec<Change>, StoreError> {
    // The app's row first, as every other policy write does, so that two writers never wait
    // for each other in opposite orders.
    lock_app(tx, app_id).await?;
    let n = execute(
        tx,
        "DELETE FROM policies WHERE app_id = $1 AND id = $2",
        &[&app_id, &id],
    )
    .await
    .map_err(db)?;
    StoreError::found(n > 0, "policy")?;
    bump(tx, app_id, None).await?;
    Ok(vec![Change::App(app_id.to_owned())])
}
