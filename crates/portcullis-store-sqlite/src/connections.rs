//! Connections, the refresh lease, and pending consent flows.

use async_trait::async_trait;
use portcullis_domain::{
    Change, Ciphertext, ConnectionKey, ConnectionRecord, ConnectionStatus, ConnectionStore,
    ConsentState, ConsentStateStore, CredentialKind, PageRequest, RefreshFailure, Reseal,
    StoreError, Timestamp, TokenSet, sealed_key_id,
};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::rows::{
    json_col, key_part, limit, opt_key_part, opt_sealed, opt_ts, read_err, to_json, ts,
};
use crate::{SqliteStore, backend, write_error};

const COLUMNS: &str = "id, app_id, user_id, tenant_id, kind, status, scopes, token_type, access, refresh, key_id, expires_at, provider_subject, version, lease_owner, lease_until, last_refresh_at, last_refresh_error, last_used_at, granted_by, created_at, updated_at";

/// The connection of the user an identity is linked to, by app and tenant (`''` for none).
const BY_IDENTITY: &str = "WHERE app_id = ?1 AND tenant_id = ?4 AND user_id = \
     (SELECT user_id FROM user_identities WHERE issuer = ?2 AND subject = ?3)";

fn bad_enum(idx: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        rusqlite::types::Type::Text,
        format!("unknown {what}").into(),
    )
}

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ConnectionRecord> {
    let kind: String = row.get(4)?;
    let status: String = row.get(5)?;
    let key_id: u32 = row.get(10)?;
    let lease_owner: Option<String> = row.get(14)?;
    let lease_until = opt_ts(row, 15)?;
    Ok(ConnectionRecord {
        id: row.get(0)?,
        key: ConnectionKey {
            app_id: row.get(1)?,
            user_id: opt_key_part(row, 2)?,
            tenant_id: opt_key_part(row, 3)?,
        },
        kind: CredentialKind::parse(&kind).ok_or_else(|| bad_enum(4, "credential kind"))?,
        status: ConnectionStatus::parse(&status).ok_or_else(|| bad_enum(5, "status"))?,
        scopes: json_col(row, 6)?,
        token_type: row.get(7)?,
        access: Ciphertext {
            key_id,
            bytes: row.get(8)?,
        },
        refresh: row
            .get::<_, Option<Vec<u8>>>(9)?
            .map(|bytes| Ciphertext { key_id, bytes }),
        expires_at: opt_ts(row, 11)?,
        provider_subject: row.get(12)?,
        version: row.get(13)?,
        lease: lease_owner.zip(lease_until),
        last_refresh_at: opt_ts(row, 16)?,
        last_refresh_error: row.get(17)?,
        last_used_at: opt_ts(row, 18)?,
        granted_by: row.get(19)?,
        created_at: ts(row, 20)?,
        updated_at: ts(row, 21)?,
    })
}

fn by_id(c: &Connection, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM connections WHERE id = ?1"))
        .and_then(|mut s| s.query_row([id], from_row).optional())
        .map_err(read_err)
}

fn by_key(c: &Connection, key: &ConnectionKey) -> Result<Option<ConnectionRecord>, StoreError> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM connections WHERE app_id = ?1 AND user_id = ?2 AND tenant_id = ?3"
    ))
    .and_then(|mut s| {
        s.query_row(
            params![
                key.app_id,
                key_part(key.user_id.as_ref()),
                key_part(key.tenant_id.as_ref())
            ],
            from_row,
        )
        .optional()
    })
    .map_err(read_err)
}

fn put(tx: &Transaction<'_>, c: &ConnectionRecord) -> Result<ConnectionRecord, StoreError> {
    let key_id = c.sealed_key_id()?;
    tx.execute(
        &format!(
            "INSERT INTO connections ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1, NULL, NULL, ?14, ?15, ?16, ?17, ?18, ?19)
             ON CONFLICT (app_id, user_id, tenant_id) DO UPDATE SET
               kind = excluded.kind, status = excluded.status, scopes = excluded.scopes,
               token_type = excluded.token_type, access = excluded.access, refresh = excluded.refresh,
               key_id = excluded.key_id, expires_at = excluded.expires_at,
               provider_subject = COALESCE(excluded.provider_subject, connections.provider_subject),
               version = connections.version + 1, lease_owner = NULL, lease_until = NULL,
               last_refresh_at = excluded.last_refresh_at, last_refresh_error = excluded.last_refresh_error,
               granted_by = excluded.granted_by, updated_at = excluded.updated_at"
        ),
        params![
            c.id,
            c.key.app_id,
            key_part(c.key.user_id.as_ref()),
            key_part(c.key.tenant_id.as_ref()),
            c.kind.as_str(),
            c.status.as_str(),
            to_json(&c.scopes)?,
            c.token_type,
            c.access.bytes,
            c.refresh.as_ref().map(|r| &r.bytes),
            key_id,
            c.expires_at.map(Timestamp::as_millis),
            c.provider_subject,
            c.last_refresh_at.map(Timestamp::as_millis),
            c.last_refresh_error,
            c.last_used_at.map(Timestamp::as_millis),
            c.granted_by,
            c.created_at.as_millis(),
            c.updated_at.as_millis(),
        ],
    )
    .map_err(|e| match write_error("connection")(e) {
        StoreError::MissingReference { .. } => StoreError::MissingReference {
            entity: "app",
            id: c.key.app_id.clone(),
        },
        other => other,
    })?;
    by_key(tx, &c.key)?.ok_or_else(|| StoreError::Backend("a written connection vanished".into()))
}

/// Deletes the connections matching `filter` (bound to `value`), returning them.
pub(crate) fn delete_where(
    tx: &Transaction<'_>,
    filter: &str,
    value: &str,
) -> Result<Vec<ConnectionRecord>, StoreError> {
    tx.prepare(&format!(
        "DELETE FROM connections WHERE {filter} RETURNING {COLUMNS}"
    ))
    .and_then(|mut s| s.query_map([value], from_row)?.collect())
    .map_err(backend)
}

/// The changes to publish for connections written or deleted.
pub(crate) fn changes_of(cs: &[ConnectionRecord]) -> Vec<Change> {
    cs.iter()
        .map(|c| Change::Connection(c.key.clone()))
        .collect()
}

fn list(
    c: &Connection,
    column: &str,
    value: &str,
    page: &PageRequest,
) -> Result<Vec<ConnectionRecord>, StoreError> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM connections WHERE {column} = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
    ))
    .and_then(|mut s| {
        s.query_map(
            params![
                value,
                page.after.clone().unwrap_or_default(),
                limit(page.limit)
            ],
            from_row,
        )?
        .collect()
    })
    .map_err(read_err)
}

#[async_trait]
impl ConnectionStore for SqliteStore {
    async fn connection(
        &self,
        key: &ConnectionKey,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let key = key.clone();
        self.read_point(move |c| by_key(c, &key)).await
    }

    async fn connection_by_identity(
        &self,
        app_id: &str,
        issuer: &str,
        subject: &str,
        tenant_id: Option<&str>,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let args = [app_id, issuer, subject, tenant_id.unwrap_or("")].map(str::to_owned);
        self.read_point(move |c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM connections {BY_IDENTITY}"))
                .and_then(|mut s| {
                    s.query_row(rusqlite::params_from_iter(&args), from_row)
                        .optional()
                })
                .map_err(read_err)
        })
        .await
    }

    async fn connection_by_id(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| by_id(c, &id)).await
    }

    async fn put_connection(&self, c: &ConnectionRecord) -> Result<ConnectionRecord, StoreError> {
        let c = c.clone();
        self.write(move |tx| {
            let stored = put(tx, &c)?;
            let change = Change::Connection(stored.key.clone());
            Ok((stored, vec![change]))
        })
        .await
    }

    async fn put_connections(
        &self,
        cs: &[ConnectionRecord],
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let cs = cs.to_vec();
        self.write(move |tx| {
            let stored = cs
                .iter()
                .map(|c| put(tx, c))
                .collect::<Result<Vec<_>, _>>()?;
            let changes = changes_of(&stored);
            Ok((stored, changes))
        })
        .await
    }

    async fn connections_for_app(
        &self,
        app_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let (app_id, page) = (app_id.to_owned(), page.clone());
        self.read(move |c| list(c, "app_id", &app_id, &page)).await
    }

    async fn connections_for_user(
        &self,
        user_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let (user_id, page) = (user_id.to_owned(), page.clone());
        self.read(move |c| list(c, "user_id", &user_id, &page))
            .await
    }

    async fn delete_connection(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            let gone = tx
                .prepare(&format!(
                    "DELETE FROM connections WHERE id = ?1 RETURNING {COLUMNS}"
                ))
                .and_then(|mut s| s.query_row([&id], from_row).optional())
                .map_err(backend)?;
            let changes = changes_of(gone.as_slice());
            Ok((gone, changes))
        })
        .await
    }

    async fn delete_user_connections(
        &self,
        user_id: &str,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let user_id = user_id.to_owned();
        self.write(move |tx| {
            let gone = delete_where(tx, "user_id = ?1", &user_id)?;
            let changes = changes_of(&gone);
            Ok((gone, changes))
        })
        .await
    }

    async fn acquire_refresh_lease(
        &self,
        id: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE connections SET lease_owner = ?2, lease_until = ?3
                     WHERE id = ?1 AND (lease_until IS NULL OR lease_until <= ?4)",
                    params![id, owner, until.as_millis(), now.as_millis()],
                )
                .map_err(backend)?;
            if n == 0 {
                return Ok((None, vec![]));
            }
            Ok((by_id(tx, &id)?, vec![]))
        })
        .await
    }

    async fn complete_refresh(
        &self,
        id: &str,
        owner: &str,
        expected_version: i64,
        tokens: &TokenSet,
        now: Timestamp,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let (id, owner, tokens) = (id.to_owned(), owner.to_owned(), tokens.clone());
        self.write(move |tx| {
            let key_id = tokens.sealed_key_id()?;
            let n = tx
                .execute(
                    "UPDATE connections SET
                       access = ?4, refresh = ?5, key_id = ?6, token_type = ?7,
                       expires_at = ?8, scopes = ?9, status = 'active', version = version + 1,
                       lease_owner = NULL, lease_until = NULL, last_refresh_at = ?10,
                       last_refresh_error = NULL, updated_at = ?10
                     WHERE id = ?1 AND lease_owner = ?2 AND version = ?3",
                    params![
                        id,
                        owner,
                        expected_version,
                        tokens.access.bytes,
                        tokens.refresh.as_ref().map(|r| &r.bytes),
                        key_id,
                        tokens.token_type,
                        tokens.expires_at.map(Timestamp::as_millis),
                        to_json(&tokens.scopes)?,
                        now.as_millis(),
                    ],
                )
                .map_err(backend)?;
            if n == 0 {
                return Ok((None, vec![]));
            }
            let stored = by_id(tx, &id)?;
            let changes = changes_of(stored.as_slice());
            Ok((stored, changes))
        })
        .await
    }

    async fn fail_refresh(
        &self,
        id: &str,
        owner: &str,
        failure: &RefreshFailure,
    ) -> Result<bool, StoreError> {
        let (id, owner, failure) = (id.to_owned(), owner.to_owned(), failure.clone());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE connections SET lease_owner = NULL, lease_until = NULL,
                       last_refresh_error = ?3,
                       status = CASE WHEN ?4 THEN 'consentRequired' ELSE status END
                     WHERE id = ?1 AND lease_owner = ?2",
                    params![id, owner, failure.error, failure.consent_required],
                )
                .map_err(backend)?;
            if n == 0 {
                return Ok((false, vec![]));
            }
            let changes = by_id(tx, &id)?
                .map(|c| Change::Connection(c.key))
                .into_iter()
                .collect();
            Ok((true, changes))
        })
        .await
    }

    async fn release_refresh_lease(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let (id, owner) = (id.to_owned(), owner.to_owned());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE connections SET lease_owner = NULL, lease_until = NULL WHERE id = ?1 AND lease_owner = ?2",
                    params![id, owner],
                )
                .map_err(backend)?;
            Ok((n == 1, vec![]))
        })
        .await
    }

    async fn touch_connections(&self, used: &[(String, Timestamp)]) -> Result<(), StoreError> {
        let used = used.to_vec();
        self.write(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE connections SET last_used_at = MAX(COALESCE(last_used_at, 0), ?2) WHERE id = ?1",
                )
                .map_err(backend)?;
            for (id, at) in &used {
                stmt.execute(params![id, at.as_millis()]).map_err(backend)?;
            }
            Ok(((), vec![]))
        })
        .await
    }

    async fn connections_sealed_with_other_key(
        &self,
        key_id: u32,
        after: Option<&str>,
        limit_: u32,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let after = after.unwrap_or_default().to_owned();
        self.read(move |c| {
            // From the cursor on, by the primary key: each batch reads only its own rows (without
            // it every batch walked past all the rows already re-sealed: quadratic).
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM connections WHERE id > ?2 AND key_id <> ?1 ORDER BY id LIMIT ?3"
            ))
            .and_then(|mut s| {
                s.query_map(params![key_id, after, limit(limit_)], from_row)?
                    .collect()
            })
            .map_err(read_err)
        })
        .await
    }

    async fn reseal_connection(
        &self,
        id: &str,
        expected_version: i64,
        access: &Ciphertext,
        refresh: Option<&Ciphertext>,
    ) -> Result<bool, StoreError> {
        let (id, access, refresh) = (id.to_owned(), access.clone(), refresh.cloned());
        self.write(move |tx| {
            let key_id = sealed_key_id(&access, refresh.as_ref())?;
            let n = tx
                .execute(
                    "UPDATE connections SET access = ?3, refresh = ?4, key_id = ?5 WHERE id = ?1 AND version = ?2",
                    params![
                        id,
                        expected_version,
                        access.bytes,
                        refresh.as_ref().map(|r| &r.bytes),
                        key_id
                    ],
                )
                .map_err(backend)?;
            Ok((n == 1, vec![]))
        })
        .await
    }

    async fn reseal_connections(&self, rows: &[Reseal]) -> Result<u64, StoreError> {
        // One transaction for the batch: a rotation's commits (and the checkpoints they start)
        // are a batch's, not a row's.
        let rows = rows.to_vec();
        self.write(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE connections SET access = ?3, refresh = ?4, key_id = ?5 WHERE id = ?1 AND version = ?2",
                )
                .map_err(backend)?;
            let mut done = 0u64;
            for r in &rows {
                let key_id = sealed_key_id(&r.access, r.refresh.as_ref())?;
                let n = stmt
                    .execute(params![
                        r.id,
                        r.expected_version,
                        r.access.bytes,
                        r.refresh.as_ref().map(|c| &c.bytes),
                        key_id
                    ])
                    .map_err(backend)?;
                done += n as u64;
            }
            Ok((done, vec![]))
        })
        .await
    }
}

const STATE_COLUMNS: &str = "id, app_id, user_id, tenant_id, scopes, return_url, pkce_verifier, key_id, redirect_uri, initiated_by, created_at, expires_at";

fn state_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ConsentState> {
    Ok(ConsentState {
        id: row.get(0)?,
        key: ConnectionKey {
            app_id: row.get(1)?,
            user_id: opt_key_part(row, 2)?,
            tenant_id: opt_key_part(row, 3)?,
        },
        scopes: json_col(row, 4)?,
        return_url: row.get(5)?,
        pkce_verifier: opt_sealed(row, 6, 7)?,
        redirect_uri: row.get(8)?,
        initiated_by: row.get(9)?,
        created_at: ts(row, 10)?,
        expires_at: ts(row, 11)?,
    })
}

#[async_trait]
impl ConsentStateStore for SqliteStore {
    async fn insert_state(&self, state: &ConsentState) -> Result<(), StoreError> {
        let s = state.clone();
        self.write(move |tx| {
            tx.execute(
                &format!("INSERT INTO consent_states ({STATE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
                params![
                    s.id,
                    s.key.app_id,
                    key_part(s.key.user_id.as_ref()),
                    key_part(s.key.tenant_id.as_ref()),
                    to_json(&s.scopes)?,
                    s.return_url,
                    s.pkce_verifier.as_ref().map(|v| &v.bytes),
                    s.pkce_verifier.as_ref().map(|v| v.key_id),
                    s.redirect_uri,
                    s.initiated_by,
                    s.created_at.as_millis(),
                    s.expires_at.as_millis()
                ],
            )
            .map_err(|e| match write_error("consent state")(e) {
                StoreError::MissingReference { .. } => StoreError::MissingReference {
                    entity: "app",
                    id: s.key.app_id.clone(),
                },
                other => other,
            })?;
            tx.execute(
                "DELETE FROM consent_states WHERE app_id = ?1 AND user_id = ?2 AND tenant_id = ?3 AND id IN (
                   SELECT id FROM consent_states WHERE app_id = ?1 AND user_id = ?2 AND tenant_id = ?3
                   ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?4)",
                params![
                    s.key.app_id,
                    key_part(s.key.user_id.as_ref()),
                    key_part(s.key.tenant_id.as_ref()),
                    portcullis_domain::MAX_PENDING_CONSENTS_PER_KEY
                ],
            )
            .map_err(backend)?;
            Ok(((), vec![]))
        })
        .await
    }

    async fn take_state(&self, id: &str) -> Result<Option<ConsentState>, StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            let state = tx
                .prepare(&format!(
                    "DELETE FROM consent_states WHERE id = ?1 RETURNING {STATE_COLUMNS}"
                ))
                .and_then(|mut s| s.query_row([&id], state_from_row).optional())
                .map_err(backend)?;
            Ok((state, vec![]))
        })
        .await
    }

    async fn purge_expired_states(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.write(move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM consent_states WHERE expires_at < ?1",
                    [now.as_millis()],
                )
                .map_err(backend)?;
            Ok((n as u64, vec![]))
        })
        .await
    }

    async fn states_sealed_with_other_key(
        &self,
        key_id: u32,
        after: Option<&str>,
        limit_: u32,
    ) -> Result<Vec<ConsentState>, StoreError> {
        let after = after.unwrap_or_default().to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {STATE_COLUMNS} FROM consent_states WHERE id > ?2 AND key_id <> ?1 ORDER BY id LIMIT ?3"
            ))
            .and_then(|mut s| {
                s.query_map(params![key_id, after, limit(limit_)], state_from_row)?
                    .collect()
            })
            .map_err(read_err)
        })
        .await
    }

    async fn reseal_state(&self, id: &str, verifier: &Ciphertext) -> Result<bool, StoreError> {
        let (id, v) = (id.to_owned(), verifier.clone());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE consent_states SET pkce_verifier = ?2, key_id = ?3 WHERE id = ?1",
                    params![id, v.bytes, v.key_id],
                )
                .map_err(backend)?;
            Ok((n == 1, vec![]))
        })
        .await
    }
}
