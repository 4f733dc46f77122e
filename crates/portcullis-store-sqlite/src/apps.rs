//! Outbound apps and policies.

use async_trait::async_trait;
use portcullis_domain::{
    AppKind, AppRecord, AppStore, Change, PageRequest, PolicyRecord, StoreError,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::rows::{json_col, limit, opt_sealed, read_err, to_json, ts};
use crate::{SqliteStore, backend, write_error};

const APP_COLUMNS: &str = "id, name, description, kind, settings, client_secret, client_secret_key, revision, created_at, updated_at";
const POLICY_COLUMNS: &str = "id, app_id, document, created_at, updated_at";

fn app_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AppRecord> {
    let kind: String = row.get(3)?;
    Ok(AppRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        description: row.get(2)?,
        kind: AppKind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                3,
                rusqlite::types::Type::Text,
                format!("unknown app kind {kind}").into(),
            )
        })?,
        settings: json_col(row, 4)?,
        client_secret: opt_sealed(row, 5, 6)?,
        revision: row.get(7)?,
        created_at: ts(row, 8)?,
        updated_at: ts(row, 9)?,
    })
}

fn policy_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<PolicyRecord> {
    Ok(PolicyRecord {
        id: row.get(0)?,
        app_id: row.get(1)?,
        document: json_col(row, 2)?,
        created_at: ts(row, 3)?,
        updated_at: ts(row, 4)?,
    })
}

fn get_app(conn: &Connection, id: &str) -> Result<Option<AppRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {APP_COLUMNS} FROM outbound_apps WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row([id], app_from_row).optional())
    .map_err(read_err)
}

/// Bumps an app's revision if it is still `expected`; says why not otherwise.
fn bump_revision(
    tx: &Transaction<'_>,
    app_id: &str,
    expected: Option<i64>,
    now: Option<i64>,
) -> Result<(), StoreError> {
    let current: Option<i64> = tx
        .query_row(
            "SELECT revision FROM outbound_apps WHERE id = ?1",
            [app_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    match (current, expected) {
        (None, _) => Err(StoreError::NotFound { entity: "app" }),
        (Some(c), Some(e)) if c != e => Err(StoreError::Conflict(format!(
            "the app changed meanwhile (revision {c}, expected {e}); read it again and retry"
        ))),
        _ => {
            tx.execute(
                "UPDATE outbound_apps SET revision = revision + 1, updated_at = COALESCE(?2, updated_at) WHERE id = ?1",
                params![app_id, now],
            )
            .map_err(backend)?;
            Ok(())
        }
    }
}

fn name_key(policy: &PolicyRecord) -> String {
    policy.document.name.trim().to_lowercase()
}

#[async_trait]
impl AppStore for SqliteStore {
    async fn insert_app(&self, app: &AppRecord) -> Result<(), StoreError> {
        let app = app.clone();
        self.write(move |tx| Ok(((), insert_app_tx(tx, &app)?)))
            .await
    }

    async fn app(&self, id: &str) -> Result<Option<AppRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| get_app(c, &id)).await
    }

    async fn apps(&self, page: &PageRequest) -> Result<Vec<AppRecord>, StoreError> {
        self.read_page(
            format!("SELECT {APP_COLUMNS} FROM outbound_apps WHERE id > ?1 ORDER BY id LIMIT ?2"),
            page,
            app_from_row,
        )
        .await
    }

    async fn app_with_policies(
        &self,
        id: &str,
    ) -> Result<Option<(AppRecord, Vec<PolicyRecord>)>, StoreError> {
        let id = id.to_owned();
        // One read transaction (see `read_point`): the app and its policies from one snapshot.
        self.read_point(move |c| {
            let Some(app) = get_app(c, &id)? else {
                return Ok(None);
            };
            let policies = c
                .prepare_cached(&format!(
                    "SELECT {POLICY_COLUMNS} FROM policies WHERE app_id = ?1 ORDER BY id"
                ))
                .and_then(|mut stmt| stmt.query_map([&id], policy_from_row)?.collect())
                .map_err(read_err)?;
            Ok(Some((app, policies)))
        })
        .await
    }

    async fn update_app(&self, app: &AppRecord, expected_revision: i64) -> Result<(), StoreError> {
        let app = app.clone();
        self.write(move |tx| Ok(((), update_app_tx(tx, &app, expected_revision)?)))
            .await
    }

    async fn delete_app(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            let n = tx
                .execute("DELETE FROM outbound_apps WHERE id = ?1", [&id])
                .map_err(backend)?;
            StoreError::found(n > 0, "app")?;
            Ok((
                (),
                vec![Change::App(id.clone()), Change::AppConnections(id.clone())],
            ))
        })
        .await
    }

    async fn insert_policy(
        &self,
        policy: &PolicyRecord,
        expected_app_revision: i64,
    ) -> Result<(), StoreError> {
        let policy = policy.clone();
        self.write(move |tx| Ok(((), insert_policy_tx(tx, &policy, expected_app_revision)?)))
            .await
    }

    async fn policy(&self, app_id: &str, id: &str) -> Result<Option<PolicyRecord>, StoreError> {
        let (app_id, id) = (app_id.to_owned(), id.to_owned());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {POLICY_COLUMNS} FROM policies WHERE app_id = ?1 AND id = ?2"
            ))
            .and_then(|mut s| s.query_row([&app_id, &id], policy_from_row).optional())
            .map_err(read_err)
        })
        .await
    }

    async fn policies(
        &self,
        app_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<PolicyRecord>, StoreError> {
        let (app_id, page) = (app_id.to_owned(), page.clone());
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(&format!(
                    "SELECT {POLICY_COLUMNS} FROM policies WHERE app_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                ))
                .map_err(read_err)?;
            stmt.query_map(
                params![app_id, page.after.unwrap_or_default(), limit(page.limit)],
                policy_from_row,
            )
            .and_then(|rows| rows.collect())
            .map_err(read_err)
        })
        .await
    }

    async fn update_policy(
        &self,
        policy: &PolicyRecord,
        expected_app_revision: i64,
    ) -> Result<(), StoreError> {
        let policy = policy.clone();
        self.write(move |tx| Ok(((), update_policy_tx(tx, &policy, expected_app_revision)?)))
            .await
    }

    async fn delete_policy(&self, app_id: &str, id: &str) -> Result<(), StoreError> {
        let (app_id, id) = (app_id.to_owned(), id.to_owned());
        self.write(move |tx| Ok(((), delete_policy_tx(tx, &app_id, &id)?)))
            .await
    }
}

/// Tells a duplicate policy id from a duplicate name.
fn duplicate(tx: &Transaction<'_>, policy: &PolicyRecord) -> StoreError {
    let id_taken = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM policies WHERE id = ?1)",
            [&policy.id],
            |r| r.get::<_, bool>(0),
        )
        .unwrap_or(false);
    StoreError::AlreadyExists {
        entity: if id_taken { "policy" } else { "policy name" },
    }
}

/// `insert_app` within a transaction; the changes to publish after it commits.
pub(crate) fn insert_app_tx(
    tx: &Transaction<'_>,
    app: &AppRecord,
) -> Result<Vec<Change>, StoreError> {
    let settings = to_json(&app.settings)?;
    let (secret, secret_key) = match &app.client_secret {
        Some(c) => (Some(c.bytes.clone()), Some(c.key_id)),
        None => (None, None),
    };
    tx.execute(
            &format!("INSERT INTO outbound_apps ({APP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
            params![
                app.id,
                app.name,
                app.description,
                app.kind.as_str(),
                settings,
                secret,
                secret_key,
                app.revision,
                app.created_at.as_millis(),
                app.updated_at.as_millis()
            ],
        )
        .map_err(write_error("app"))?;
    Ok(vec![Change::App(app.id.clone())])
}

/// `update_app` within a transaction; the changes to publish after it commits.
pub(crate) fn update_app_tx(
    tx: &Transaction<'_>,
    app: &AppRecord,
    expected_revision: i64,
) -> Result<Vec<Change>, StoreError> {
    let settings = to_json(&app.settings)?;
    let (secret, secret_key) = match &app.client_secret {
        Some(c) => (Some(c.bytes.clone()), Some(c.key_id)),
        None => (None, None),
    };
    let n = tx
            .execute(
                "UPDATE outbound_apps SET name = ?2, description = ?3, kind = ?4, settings = ?5, client_secret = ?6, client_secret_key = ?7, revision = ?8, updated_at = ?9 WHERE id = ?1 AND revision = ?10",
                params![
                    app.id,
                    app.name,
                    app.description,
                    app.kind.as_str(),
                    settings,
                    secret,
                    secret_key,
                    app.revision,
                    app.updated_at.as_millis(),
                    expected_revision
                ],
            )
            .map_err(write_error("app"))?;
    if n == 0 {
        return Err(match get_app(tx, &app.id)? {
            None => StoreError::NotFound { entity: "app" },
            Some(current) => StoreError::Conflict(format!(
                "the app changed meanwhile (revision {}, expected {expected_revision}); read it again and retry",
                current.revision
            )),
        });
    }
    Ok(vec![Change::App(app.id.clone())])
}

/// `insert_policy` within a transaction; the changes to publish after it commits.
pub(crate) fn insert_policy_tx(
    tx: &Transaction<'_>,
    policy: &PolicyRecord,
    expected_app_revision: i64,
) -> Result<Vec<Change>, StoreError> {
    bump_revision(
        tx,
        &policy.app_id,
        Some(expected_app_revision),
        Some(policy.updated_at.as_millis()),
    )?;
    tx.execute(
            "INSERT INTO policies (id, app_id, name_key, document, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                policy.id,
                policy.app_id,
                name_key(policy),
                to_json(&policy.document)?,
                policy.created_at.as_millis(),
                policy.updated_at.as_millis()
            ],
        )
        .map_err(|e| match write_error("policy")(e) {
            StoreError::AlreadyExists { .. } => duplicate(tx, policy),
            other => other,
        })?;
    Ok(vec![Change::App(policy.app_id.clone())])
}

/// `update_policy` within a transaction; the changes to publish after it commits.
pub(crate) fn update_policy_tx(
    tx: &Transaction<'_>,
    policy: &PolicyRecord,
    expected_app_revision: i64,
) -> Result<Vec<Change>, StoreError> {
    bump_revision(
        tx,
        &policy.app_id,
        Some(expected_app_revision),
        Some(policy.updated_at.as_millis()),
    )?;
    let n = tx
            .execute(
                "UPDATE policies SET name_key = ?3, document = ?4, updated_at = ?5 WHERE app_id = ?1 AND id = ?2",
                params![
                    policy.app_id,
                    policy.id,
                    name_key(policy),
                    to_json(&policy.document)?,
                    policy.updated_at.as_millis()
                ],
            )
            .map_err(write_error("policy name"))?;
    StoreError::found(n > 0, "policy")?;
    Ok(vec![Change::App(policy.app_id.clone())])
}

/// `delete_policy` within a transaction; the changes to publish after it commits.
pub(crate) fn delete_policy_tx(
    tx: &Transaction<'_>,
    app_id: &str,
    id: &str,
) -> Result<Vec<Change>, StoreError> {
    let n = tx
        .execute(
            "DELETE FROM policies WHERE app_id = ?1 AND id = ?2",
            [&app_id, &id],
        )
        .map_err(backend)?;
    StoreError::found(n > 0, "policy")?;
    bump_revision(tx, app_id, None, None)?;
    Ok(vec![Change::App(app_id.to_owned())])
}
