//! Connections, the refresh lease, and pending consent flows.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use portcullis_domain::{
    Change, Ciphertext, ConnectionKey, ConnectionRecord, ConnectionStatus, ConnectionStore,
    ConsentState, ConsentStateStore, CredentialKind, PageRequest, RefreshFailure, StoreError,
    Timestamp, TokenSet, sealed_key_id,
};
use tokio_postgres::Row;

use crate::error::{db, decode, is_foreign_key_violation, write};
use crate::rows::{
    get, json, key_part, limit, millis, opt_key_part, opt_sealed, opt_ts, to_json, ts, u32_col,
};
use crate::{PostgresStore, begin, execute, query, query_opt};

const COLUMNS: &str = "id, app_id, user_id, tenant_id, kind, status, scopes, token_type, access, refresh, key_id, expires_at, provider_subject, version, lease_owner, lease_until, last_refresh_at, last_refresh_error, last_used_at, granted_by, created_at, updated_at";

fn from_row(row: &Row) -> Result<ConnectionRecord, StoreError> {
    let kind: &str = get(row, 4)?;
    let status: &str = get(row, 5)?;
    let key_id = u32_col(row, 10)?;
    let lease_owner: Option<String> = get(row, 14)?;
    let lease_until = opt_ts(row, 15)?;
    Ok(ConnectionRecord {
        id: get(row, 0)?,
        key: ConnectionKey {
            app_id: get(row, 1)?,
            user_id: opt_key_part(row, 2)?,
            tenant_id: opt_key_part(row, 3)?,
        },
        kind: CredentialKind::parse(kind)
            .ok_or_else(|| decode("connection", format!("unknown credential kind {kind}")))?,
        status: ConnectionStatus::parse(status)
            .ok_or_else(|| decode("connection", format!("unknown status {status}")))?,
        scopes: json(row, 6)?,
        token_type: get(row, 7)?,
        access: Ciphertext {
            key_id,
            bytes: get(row, 8)?,
        },
        refresh: get::<Option<Vec<u8>>>(row, 9)?.map(|bytes| Ciphertext { key_id, bytes }),
        expires_at: opt_ts(row, 11)?,
        provider_subject: get(row, 12)?,
        version: get(row, 13)?,
        lease: lease_owner.zip(lease_until),
        last_refresh_at: opt_ts(row, 16)?,
        last_refresh_error: get(row, 17)?,
        last_used_at: opt_ts(row, 18)?,
        granted_by: get(row, 19)?,
        created_at: ts(row, 20)?,
        updated_at: ts(row, 21)?,
    })
}

fn rows(rows: &[Row]) -> Result<Vec<ConnectionRecord>, StoreError> {
    rows.iter().map(from_row).collect()
}

fn key_of(row: &Row) -> Result<ConnectionKey, StoreError> {
    Ok(ConnectionKey {
        app_id: get(row, 0)?,
        user_id: opt_key_part(row, 1)?,
        tenant_id: opt_key_part(row, 2)?,
    })
}

/// Inserts or replaces the connection with `c`'s key, returning the stored row.
async fn put<C: GenericClient>(
    c: &C,
    conn: &ConnectionRecord,
) -> Result<ConnectionRecord, StoreError> {
    let key_id = i64::from(conn.sealed_key_id()?);
    let scopes = to_json(&conn.scopes)?;
    let row = query_opt(
        c,
        &format!(
            "INSERT INTO connections ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, NULL, NULL, $14, $15, $16, $17, $18, $19)
             ON CONFLICT (app_id, user_id, tenant_id) DO UPDATE SET
               kind = excluded.kind, status = excluded.status, scopes = excluded.scopes,
               token_type = excluded.token_type, access = excluded.access, refresh = excluded.refresh,
               key_id = excluded.key_id, expires_at = excluded.expires_at,
               provider_subject = COALESCE(excluded.provider_subject, connections.provider_subject),
               version = connections.version + 1, lease_owner = NULL, lease_until = NULL,
               last_refresh_at = excluded.last_refresh_at, last_refresh_error = excluded.last_refresh_error,
               granted_by = excluded.granted_by, updated_at = excluded.updated_at
             RETURNING {COLUMNS}"
        ),
        &[
            &conn.id,
            &conn.key.app_id,
            &key_part(conn.key.user_id.as_ref()),
            &key_part(conn.key.tenant_id.as_ref()),
            &conn.kind.as_str(),
            &conn.status.as_str(),
            &scopes,
            &conn.token_type,
            &conn.access.bytes,
            &conn.refresh.as_ref().map(|r| r.bytes.as_slice()),
            &key_id,
            &millis(conn.expires_at),
            &conn.provider_subject,
            &millis(conn.last_refresh_at),
            &conn.last_refresh_error,
            &millis(conn.last_used_at),
            &conn.granted_by,
            &conn.created_at.as_millis(),
            &conn.updated_at.as_millis(),
        ],
    )
    .await
    .map_err(|e| {
        if is_foreign_key_violation(&e) {
            StoreError::MissingReference {
                entity: "app",
                id: conn.key.app_id.clone(),
            }
        } else {
            write("connection")(e)
        }
    })?;
    match row {
        Some(row) => from_row(&row),
        None => Err(StoreError::Backend("a written connection vanished".into())),
    }
}

/// Deletes the connections whose `column` (`user_id` or `tenant_id`) is `value`, returning the
/// changes to publish.
pub(crate) async fn delete_where<C: GenericClient>(
    c: &C,
    column: &str,
    value: &str,
) -> Result<Vec<Change>, StoreError> {
    query(
        c,
        &format!(
            "DELETE FROM connections WHERE {column} = $1 RETURNING app_id, user_id, tenant_id"
        ),
        &[&value],
    )
    .await
    .map_err(db)?
    .iter()
    .map(|row| key_of(row).map(Change::Connection))
    .collect()
}

async fn list<C: GenericClient>(
    c: &C,
    column: &str,
    value: &str,
    page: &PageRequest,
) -> Result<Vec<ConnectionRecord>, StoreError> {
    let after = page.after.as_deref().unwrap_or_default();
    rows(
        &query(
            c,
            &format!(
                "SELECT {COLUMNS} FROM connections WHERE {column} = $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            &[&value, &after, &limit(page.limit)],
        )
        .await
        .map_err(db)?,
    )
}

fn changes_of(stored: &[ConnectionRecord]) -> Vec<Change> {
    stored
        .iter()
        .map(|c| Change::Connection(c.key.clone()))
        .collect()
}

#[async_trait]
impl ConnectionStore for PostgresStore {
    async fn connection(
        &self,
        key: &ConnectionKey,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!(
                "SELECT {COLUMNS} FROM connections WHERE app_id = $1 AND user_id = $2 AND tenant_id = $3"
            ),
            &[
                &key.app_id,
                &key_part(key.user_id.as_ref()),
                &key_part(key.tenant_id.as_ref()),
            ],
        )
        .await
        .map_err(db)?
        .map(|row| from_row(&row))
        .transpose()
    }

    async fn connection_by_identity(
        &self,
        app_id: &str,
        issuer: &str,
        subject: &str,
        tenant_id: Option<&str>,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!(
                "SELECT {COLUMNS} FROM connections WHERE app_id = $1 AND tenant_id = $4 AND user_id = \
                 (SELECT user_id FROM user_identities WHERE issuer = $2 AND subject = $3)"
            ),
            &[&app_id, &issuer, &subject, &tenant_id.unwrap_or("")],
        )
        .await
        .map_err(db)?
        .map(|row| from_row(&row))
        .transpose()
    }

    fn reads_overlap(&self) -> bool {
        true
    }

    async fn connection_by_id(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!("SELECT {COLUMNS} FROM connections WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(db)?
        .map(|row| from_row(&row))
        .transpose()
    }

    async fn put_connection(&self, c: &ConnectionRecord) -> Result<ConnectionRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let stored = put(&tx, c).await?;
        self.commit(tx, vec![Change::Connection(stored.key.clone())])
            .await?;
        Ok(stored)
    }

    async fn put_connections(
        &self,
        cs: &[ConnectionRecord],
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        // Written in key order, so that two batches touching the same keys never wait for each
        // other in opposite orders (a deadlock); returned in the caller's order.
        let mut order: Vec<usize> = (0..cs.len()).collect();
        order.sort_by(|&a, &b| cs[a].key.cmp(&cs[b].key));
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let mut stored: Vec<Option<ConnectionRecord>> = vec![None; cs.len()];
        for i in order {
            stored[i] = Some(put(&tx, &cs[i]).await?);
        }
        let stored: Vec<ConnectionRecord> = stored.into_iter().flatten().collect();
        self.commit(tx, changes_of(&stored)).await?;
        Ok(stored)
    }

    async fn connections_for_app(
        &self,
        app_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let client = self.client().await?;
        list(&client, "app_id", app_id, page).await
    }

    async fn connections_for_user(
        &self,
        user_id: &str,
        page: &PageRequest,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let client = self.client().await?;
        list(&client, "user_id", user_id, page).await
    }

    async fn delete_connection(&self, id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let gone = query_opt(
            &tx,
            &format!("DELETE FROM connections WHERE id = $1 RETURNING {COLUMNS}"),
            &[&id],
        )
        .await
        .map_err(db)?
        .map(|row| from_row(&row))
        .transpose()?;
        let changes = changes_of(gone.as_slice());
        self.commit(tx, changes).await?;
        Ok(gone)
    }

    async fn delete_user_connections(
        &self,
        user_id: &str,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let gone = rows(
            &query(
                &tx,
                &format!("DELETE FROM connections WHERE user_id = $1 RETURNING {COLUMNS}"),
                &[&user_id],
            )
            .await
            .map_err(db)?,
        )?;
        self.commit(tx, changes_of(&gone)).await?;
        Ok(gone)
    }

    async fn acquire_refresh_lease(
        &self,
        id: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        // One conditional UPDATE: a contender that finds the row locked waits, then re-checks the
        // condition against the winner's committed row and finds the lease live. One winner.
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let taken = query_opt(
            &tx,
            &format!(
                "UPDATE connections SET lease_owner = $2, lease_until = $3
                 WHERE id = $1 AND (lease_until IS NULL OR lease_until <= $4)
                 RETURNING {COLUMNS}"
            ),
            &[&id, &owner, &until.as_millis(), &now.as_millis()],
        )
        .await
        .map_err(db)?
        .map(|row| from_row(&row))
        .transpose()?;
        self.commit(tx, vec![]).await?;
        Ok(taken)
    }

    async fn complete_refresh(
        &self,
        id: &str,
        owner: &str,
        expected_version: i64,
        tokens: &TokenSet,
        now: Timestamp,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let key_id = i64::from(tokens.sealed_key_id()?);
        let scopes = to_json(&tokens.scopes)?;
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        // Fenced: only the lease holder, at the version it read.
        let stored = query_opt(
            &tx,
            &format!(
                "UPDATE connections SET
                   access = $4, refresh = $5, key_id = $6, token_type = $7,
                   expires_at = $8, scopes = $9, status = 'active', version = version + 1,
                   lease_owner = NULL, lease_until = NULL, last_refresh_at = $10,
                   last_refresh_error = NULL, updated_at = $10
                 WHERE id = $1 AND lease_owner = $2 AND version = $3
                 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &owner,
                &expected_version,
                &tokens.access.bytes,
                &tokens.refresh.as_ref().map(|r| r.bytes.as_slice()),
                &key_id,
                &tokens.token_type,
                &millis(tokens.expires_at),
                &scopes,
                &now.as_millis(),
            ],
        )
        .await
        .map_err(db)?
        .map(|row| from_row(&row))
        .transpose()?;
        let changes = changes_of(stored.as_slice());
        self.commit(tx, changes).await?;
        Ok(stored)
    }

    async fn fail_refresh(
        &self,
        id: &str,
        owner: &str,
        failure: &RefreshFailure,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let released = query_opt(
            &tx,
            "UPDATE connections SET lease_owner = NULL, lease_until = NULL,
               last_refresh_error = $3,
               status = CASE WHEN $4 THEN 'consentRequired' ELSE status END
             WHERE id = $1 AND lease_owner = $2
             RETURNING app_id, user_id, tenant_id",
            &[&id, &owner, &failure.error, &failure.consent_required],
        )
        .await
        .map_err(db)?;
        let Some(row) = released else {
            return Ok(false);
        };
        let key = key_of(&row)?;
        self.commit(tx, vec![Change::Connection(key)]).await?;
        Ok(true)
    }

    async fn release_refresh_lease(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let n = execute(
            &tx,
            "UPDATE connections SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2",
            &[&id, &owner],
        )
        .await
        .map_err(db)?;
        self.commit(tx, vec![]).await?;
        Ok(n == 1)
    }

    async fn touch_connections(&self, used: &[(String, Timestamp)]) -> Result<(), StoreError> {
        // In id order, so that two batches never wait for each other in opposite orders.
        let mut used: Vec<&(String, Timestamp)> = used.iter().collect();
        used.sort_by(|a, b| a.0.cmp(&b.0));
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        for (id, at) in used {
            execute(
                &tx,
                "UPDATE connections SET last_used_at = GREATEST(COALESCE(last_used_at, 0), $2) WHERE id = $1",
                &[id, &at.as_millis()],
            )
            .await
            .map_err(db)?;
        }
        self.commit(tx, vec![]).await
    }

    async fn connections_sealed_with_other_key(
        &self,
        key_id: u32,
        after: Option<&str>,
        limit_: u32,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let client = self.client().await?;
        let after = after.unwrap_or_default();
        rows(
            &query(
                &client,
                &format!(
                    "SELECT {COLUMNS} FROM connections WHERE id > $2 AND key_id <> $1 ORDER BY id LIMIT $3"
                ),
                &[&i64::from(key_id), &after, &limit(limit_)],
            )
            .await
            .map_err(db)?,
        )
    }

    async fn reseal_connection(
        &self,
        id: &str,
        expected_version: i64,
        access: &Ciphertext,
        refresh: Option<&Ciphertext>,
    ) -> Result<bool, StoreError> {
        let key_id = i64::from(sealed_key_id(access, refresh)?);
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let n = execute(
            &tx,
            "UPDATE connections SET access = $3, refresh = $4, key_id = $5 WHERE id = $1 AND version = $2",
            &[
                &id,
                &expected_version,
                &access.bytes,
                &refresh.map(|r| r.bytes.as_slice()),
                &key_id,
            ],
        )
        .await
        .map_err(db)?;
        self.commit(tx, vec![]).await?;
        Ok(n == 1)
    }
}

/// Pending consents kept per connection key (see `ConsentStateStore::insert_state`).
const MAX_PENDING_PER_KEY: i64 = portcullis_domain::MAX_PENDING_CONSENTS_PER_KEY as i64;

const STATE_COLUMNS: &str = "id, app_id, user_id, tenant_id, scopes, return_url, pkce_verifier, key_id, redirect_uri, initiated_by, created_at, expires_at";

fn state_from_row(row: &Row) -> Result<ConsentState, StoreError> {
    Ok(ConsentState {
        id: get(row, 0)?,
        key: ConnectionKey {
            app_id: get(row, 1)?,
            user_id: opt_key_part(row, 2)?,
            tenant_id: opt_key_part(row, 3)?,
        },
        scopes: json(row, 4)?,
        return_url: get(row, 5)?,
        pkce_verifier: opt_sealed(row, 6, 7)?,
        redirect_uri: get(row, 8)?,
        initiated_by: get(row, 9)?,
        created_at: ts(row, 10)?,
        expires_at: ts(row, 11)?,
    })
}

#[async_trait]
impl ConsentStateStore for PostgresStore {
    async fn insert_state(&self, state: &ConsentState) -> Result<(), StoreError> {
        let scopes = to_json(&state.scopes)?;
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        execute(
            &tx,
            &format!(
                "INSERT INTO consent_states ({STATE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ),
            &[
                &state.id,
                &state.key.app_id,
                &key_part(state.key.user_id.as_ref()),
                &key_part(state.key.tenant_id.as_ref()),
                &scopes,
                &state.return_url,
                &state.pkce_verifier.as_ref().map(|v| v.bytes.as_slice()),
                &state.pkce_verifier.as_ref().map(|v| i64::from(v.key_id)),
                &state.redirect_uri,
                &state.initiated_by,
                &state.created_at.as_millis(),
                &state.expires_at.as_millis(),
            ],
        )
        .await
        .map_err(|e| match write("consent state")(e) {
            StoreError::MissingReference { .. } => StoreError::MissingReference {
                entity: "app",
                id: state.key.app_id.clone(),
            },
            other => other,
        })?;
        execute(
            &tx,
            "DELETE FROM consent_states WHERE app_id = $1 AND user_id = $2 AND tenant_id = $3 AND id IN (
               SELECT id FROM consent_states WHERE app_id = $1 AND user_id = $2 AND tenant_id = $3
               ORDER BY created_at DESC, id DESC OFFSET $4)",
            &[
                &state.key.app_id,
                &key_part(state.key.user_id.as_ref()),
                &key_part(state.key.tenant_id.as_ref()),
                &MAX_PENDING_PER_KEY,
            ],
        )
        .await
        .map_err(db)?;
        self.commit(tx, vec![]).await
    }

    async fn take_state(&self, id: &str) -> Result<Option<ConsentState>, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let state = query_opt(
            &tx,
            &format!("DELETE FROM consent_states WHERE id = $1 RETURNING {STATE_COLUMNS}"),
            &[&id],
        )
        .await
        .map_err(db)?
        .map(|row| state_from_row(&row))
        .transpose()?;
        self.commit(tx, vec![]).await?;
        Ok(state)
    }

    async fn purge_expired_states(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let n = execute(
            &tx,
            "DELETE FROM consent_states WHERE expires_at < $1",
            &[&now.as_millis()],
        )
        .await
        .map_err(db)?;
        self.commit(tx, vec![]).await?;
        Ok(n)
    }

    async fn states_sealed_with_other_key(
        &self,
        key_id: u32,
        after: Option<&str>,
        limit_: u32,
    ) -> Result<Vec<ConsentState>, StoreError> {
        let client = self.client().await?;
        let after = after.unwrap_or_default();
        query(
            &client,
            &format!(
                "SELECT {STATE_COLUMNS} FROM consent_states WHERE id > $2 AND key_id <> $1 ORDER BY id LIMIT $3"
            ),
            &[&i64::from(key_id), &after, &limit(limit_)],
        )
        .await
        .map_err(db)?
        .iter()
        .map(state_from_row)
        .collect()
    }

    async fn reseal_state(&self, id: &str, verifier: &Ciphertext) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let n = execute(
            &tx,
            "UPDATE consent_states SET pkce_verifier = $2, key_id = $3 WHERE id = $1",
            &[&id, &verifier.bytes, &i64::from(verifier.key_id)],
        )
        .await
        .map_err(db)?;
        self.commit(tx, vec![]).await?;
        Ok(n == 1)
    }
}
