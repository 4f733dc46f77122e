//! Admin keys, OAuth clients, trusted issuers, data keys and the audit log.

use std::sync::Arc;

use async_trait::async_trait;
use portcullis_domain::{
    AdminKeyRecord, AdminKeyStore, AuditEvent, AuditQuery, AuditStore, AuditSummaryRow, Change,
    ClientRecord, ClientStore, DataKeyRecord, IssuerRecord, IssuerStore, KeyStore, PageRequest,
    RecordedDecision, RejectedCount, StoreError, Timestamp,
};
use rusqlite::{OptionalExtension, params};

use crate::rows::{hash, json_col, limit, opt_hash, opt_ts, read_err, to_json, ts};
use crate::{SqliteStore, backend, write_error};

fn admin_key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AdminKeyRecord> {
    Ok(AdminKeyRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        secret_hash: hash(row, 2)?,
        created_at: ts(row, 3)?,
        expires_at: opt_ts(row, 4)?,
        scopes: row
            .get::<_, String>(5)?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    })
}

const ADMIN_KEY_INSERT: &str = "INSERT INTO admin_keys (id, name, secret_hash, created_at, expires_at, scopes) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

fn insert_admin_key(tx: &rusqlite::Transaction<'_>, k: &AdminKeyRecord) -> Result<(), StoreError> {
    tx.execute(
        ADMIN_KEY_INSERT,
        params![
            k.id,
            k.name,
            k.secret_hash.as_slice(),
            k.created_at.as_millis(),
            k.expires_at.map(Timestamp::as_millis),
            k.scopes.join(" ")
        ],
    )
    .map_err(write_error("admin key"))?;
    Ok(())
}

#[async_trait]
impl AdminKeyStore for SqliteStore {
    async fn insert_admin_key(&self, key: &AdminKeyRecord) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |tx| {
            insert_admin_key(tx, &key)?;
            Ok(((), vec![Change::AdminKeys]))
        })
        .await
    }

    async fn insert_first_admin_key(&self, key: &AdminKeyRecord) -> Result<bool, StoreError> {
        let key = key.clone();
        self.write(move |tx| {
            let any: bool = tx
                .query_row("SELECT EXISTS (SELECT 1 FROM admin_keys)", [], |r| r.get(0))
                .map_err(backend)?;
            if any {
                return Ok((false, vec![]));
            }
            insert_admin_key(tx, &key)?;
            Ok((true, vec![Change::AdminKeys]))
        })
        .await
    }

    async fn admin_key_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<AdminKeyRecord>, StoreError> {
        let hash = *hash;
        self.read(move |c| {
            c.prepare_cached(
                "SELECT id, name, secret_hash, created_at, expires_at, scopes FROM admin_keys WHERE secret_hash = ?1",
            )
            .and_then(|mut s| s.query_row([hash.as_slice()], admin_key_from_row).optional())
            .map_err(read_err)
        })
        .await
    }

    async fn admin_key_by_id(&self, id: &str) -> Result<Option<AdminKeyRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT id, name, secret_hash, created_at, expires_at, scopes FROM admin_keys WHERE id = ?1",
            )
            .and_then(|mut s| s.query_row([&id], admin_key_from_row).optional())
            .map_err(read_err)
        })
        .await
    }

    async fn admin_keys(&self, page: &PageRequest) -> Result<Vec<AdminKeyRecord>, StoreError> {
        self.read_page("SELECT id, name, secret_hash, created_at, expires_at, scopes FROM admin_keys WHERE id > ?1 ORDER BY id LIMIT ?2".into(), page, admin_key_from_row)
            .await
    }

    async fn delete_admin_key(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            let n = tx
                .execute("DELETE FROM admin_keys WHERE id = ?1", [&id])
                .map_err(backend)?;
            StoreError::found(n > 0, "admin key")?;
            Ok(((), vec![Change::AdminKeys]))
        })
        .await
    }
}

fn client_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ClientRecord> {
    Ok(ClientRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        secret_hash: opt_hash(row, 2)?,
        metadata: json_col(row, 3)?,
        created_at: ts(row, 4)?,
        updated_at: ts(row, 5)?,
    })
}

const CLIENT_COLUMNS: &str = "id, name, secret_hash, metadata, created_at, updated_at";

#[async_trait]
impl ClientStore for SqliteStore {
    async fn insert_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let c = client.clone();
        self.write(move |tx| {
            tx.execute(
                &format!("INSERT INTO clients ({CLIENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                params![
                    c.id,
                    c.name,
                    c.secret_hash.as_ref().map(|h| h.as_slice()),
                    to_json(&c.metadata)?,
                    c.created_at.as_millis(),
                    c.updated_at.as_millis()
                ],
            )
            .map_err(write_error("client"))?;
            Ok(((), vec![Change::Client(c.id.clone())]))
        })
        .await
    }

    async fn client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {CLIENT_COLUMNS} FROM clients WHERE id = ?1"
            ))
            .and_then(|mut s| s.query_row([&id], client_from_row).optional())
            .map_err(read_err)
        })
        .await
    }

    async fn clients(&self, page: &PageRequest) -> Result<Vec<ClientRecord>, StoreError> {
        self.read_page(
            format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id > ?1 ORDER BY id LIMIT ?2"),
            page,
            client_from_row,
        )
        .await
    }

    async fn update_client(&self, client: &ClientRecord) -> Result<(), StoreError> {
        let c = client.clone();
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE clients SET name = ?2, secret_hash = ?3, metadata = ?4, updated_at = ?5 WHERE id = ?1",
                    params![
                        c.id,
                        c.name,
                        c.secret_hash.as_ref().map(|h| h.as_slice()),
                        to_json(&c.metadata)?,
                        c.updated_at.as_millis()
                    ],
                )
                .map_err(backend)?;
            StoreError::found(n > 0, "client")?;
            Ok(((), vec![Change::Client(c.id.clone())]))
        })
        .await
    }

    async fn delete_client(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            let n = tx
                .execute("DELETE FROM clients WHERE id = ?1", [&id])
                .map_err(backend)?;
            StoreError::found(n > 0, "client")?;
            Ok(((), vec![Change::Client(id.clone())]))
        })
        .await
    }
}

const ISSUER_COLUMNS: &str = "id, issuer, jwks_url, discovery_url, audiences, algorithms, roles_claim, tenant_claim, clock_skew_seconds, created_at, updated_at, required_typ";

fn issuer_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<IssuerRecord> {
    Ok(IssuerRecord {
        id: row.get(0)?,
        issuer: row.get(1)?,
        jwks_url: row.get(2)?,
        discovery_url: row.get(3)?,
        audiences: json_col(row, 4)?,
        algorithms: json_col(row, 5)?,
        roles_claim: row.get(6)?,
        tenant_claim: row.get(7)?,
        clock_skew_seconds: row.get(8)?,
        created_at: ts(row, 9)?,
        updated_at: ts(row, 10)?,
        required_typ: row.get(11)?,
    })
}

#[async_trait]
impl IssuerStore for SqliteStore {
    async fn insert_issuer(&self, issuer: &IssuerRecord) -> Result<(), StoreError> {
        let i = issuer.clone();
        self.write(move |tx| {
            tx.execute(
                &format!("INSERT INTO issuers ({ISSUER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
                params![
                    i.id,
                    i.issuer,
                    i.jwks_url,
                    i.discovery_url,
                    to_json(&i.audiences)?,
                    to_json(&i.algorithms)?,
                    i.roles_claim,
                    i.tenant_claim,
                    i.clock_skew_seconds,
                    i.created_at.as_millis(),
                    i.updated_at.as_millis(),
                    i.required_typ
                ],
            )
            .map_err(write_error("issuer"))?;
            Ok(((), vec![Change::Issuers]))
        })
        .await
    }

    async fn issuer(&self, id: &str) -> Result<Option<IssuerRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {ISSUER_COLUMNS} FROM issuers WHERE id = ?1"
            ))
            .and_then(|mut s| s.query_row([&id], issuer_from_row).optional())
            .map_err(read_err)
        })
        .await
    }

    async fn issuers(&self) -> Result<Vec<IssuerRecord>, StoreError> {
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {ISSUER_COLUMNS} FROM issuers ORDER BY id"))
                .and_then(|mut s| s.query_map([], issuer_from_row)?.collect())
                .map_err(read_err)
        })
        .await
    }

    async fn update_issuer(&self, issuer: &IssuerRecord) -> Result<(), StoreError> {
        let i = issuer.clone();
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE issuers SET issuer = ?2, jwks_url = ?3, discovery_url = ?4, audiences = ?5, algorithms = ?6, roles_claim = ?7, tenant_claim = ?8, clock_skew_seconds = ?9, updated_at = ?10, required_typ = ?11 WHERE id = ?1",
                    params![
                        i.id,
                        i.issuer,
                        i.jwks_url,
                        i.discovery_url,
                        to_json(&i.audiences)?,
                        to_json(&i.algorithms)?,
                        i.roles_claim,
                        i.tenant_claim,
                        i.clock_skew_seconds,
                        i.updated_at.as_millis(),
                        i.required_typ
                    ],
                )
                .map_err(write_error("issuer"))?;
            StoreError::found(n > 0, "issuer")?;
            Ok(((), vec![Change::Issuers]))
        })
        .await
    }

    async fn delete_issuer(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            let n = tx
                .execute("DELETE FROM issuers WHERE id = ?1", [&id])
                .map_err(backend)?;
            StoreError::found(n > 0, "issuer")?;
            Ok(((), vec![Change::Issuers]))
        })
        .await
    }
}

fn data_key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DataKeyRecord> {
    Ok(DataKeyRecord {
        id: row.get(0)?,
        master_key_id: row.get(1)?,
        wrapped: row.get(2)?,
        active: row.get(3)?,
        created_at: ts(row, 4)?,
    })
}

fn all_data_keys(c: &rusqlite::Connection) -> Result<Vec<DataKeyRecord>, StoreError> {
    c.prepare_cached(
        "SELECT id, master_key_id, wrapped, active, created_at FROM data_keys ORDER BY id",
    )
    .and_then(|mut s| s.query_map([], data_key_from_row)?.collect())
    .map_err(read_err)
}

fn insert_data_key(tx: &rusqlite::Transaction<'_>, k: &DataKeyRecord) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO data_keys (id, master_key_id, wrapped, active, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![k.id, k.master_key_id, k.wrapped, k.active, k.created_at.as_millis()],
    )
    .map_err(write_error("data key"))?;
    Ok(())
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn data_keys(&self) -> Result<Vec<DataKeyRecord>, StoreError> {
        self.read(all_data_keys).await
    }

    async fn insert_first_data_key(
        &self,
        key: &DataKeyRecord,
    ) -> Result<Vec<DataKeyRecord>, StoreError> {
        let key = key.clone();
        self.write(move |tx| {
            let any: bool = tx
                .query_row("SELECT EXISTS (SELECT 1 FROM data_keys)", [], |r| r.get(0))
                .map_err(backend)?;
            if !any {
                insert_data_key(tx, &key)?;
            }
            Ok((all_data_keys(tx)?, vec![]))
        })
        .await
    }

    async fn insert_active_data_key(&self, key: &DataKeyRecord) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |tx| {
            tx.execute("UPDATE data_keys SET active = 0", [])
                .map_err(backend)?;
            insert_data_key(
                tx,
                &DataKeyRecord {
                    active: true,
                    ..key
                },
            )?;
            Ok(((), vec![Change::DataKeys]))
        })
        .await
    }

    async fn rewrap_data_key(
        &self,
        id: u32,
        master_key_id: &str,
        wrapped: &[u8],
    ) -> Result<(), StoreError> {
        let (master_key_id, wrapped) = (master_key_id.to_owned(), wrapped.to_vec());
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE data_keys SET master_key_id = ?2, wrapped = ?3 WHERE id = ?1",
                    params![id, master_key_id, wrapped],
                )
                .map_err(backend)?;
            StoreError::found(n > 0, "data key")?;
            Ok(((), vec![Change::DataKeys]))
        })
        .await
    }

    async fn add_seals(&self, id: u32, n: u64) -> Result<u64, StoreError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.write(move |tx| {
            let total: Option<i64> = tx
                .query_row(
                    "UPDATE data_keys SET seals = seals + ?2 WHERE id = ?1 RETURNING seals",
                    params![id, n],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            let total = total.ok_or(StoreError::NotFound { entity: "data key" })?;
            Ok((u64::try_from(total).unwrap_or(0), vec![]))
        })
        .await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, events: Arc<[AuditEvent]>) -> Result<(), StoreError> {
        self.audit_log().append(events).await
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        self.audit_log().events(query).await
    }

    async fn recorded_decisions(
        &self,
        query: &AuditQuery,
    ) -> Result<Vec<RecordedDecision>, StoreError> {
        self.audit_log().recorded(query).await
    }

    async fn audit_summary(
        &self,
        since: Timestamp,
        until: Timestamp,
        bucket_ms: i64,
    ) -> Result<Vec<AuditSummaryRow>, StoreError> {
        self.audit_log().summary(since, until, bucket_ms).await
    }

    async fn add_rejected(&self, counts: &[RejectedCount]) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let counts = counts.to_vec();
        self.write(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO rejected_requests (minute, surface, reason, count) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (minute, surface, reason) DO UPDATE SET count = count + excluded.count",
                )
                .map_err(backend)?;
            for c in &counts {
                stmt.execute(params![
                    c.minute.as_millis(),
                    c.surface,
                    c.reason,
                    i64::try_from(c.count).unwrap_or(i64::MAX)
                ])
                .map_err(write_error("rejected request count"))?;
            }
            Ok(((), vec![]))
        })
        .await
    }

    async fn rejected(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        limit_to: u32,
    ) -> Result<Vec<RejectedCount>, StoreError> {
        let since = since.map_or(i64::MIN, Timestamp::as_millis);
        let until = until.map_or(i64::MAX, Timestamp::as_millis);
        self.read(move |c| {
            c.prepare_cached(
                "SELECT minute, surface, reason, count FROM rejected_requests \
                 WHERE minute >= ?1 AND minute < ?2 ORDER BY minute DESC, surface, reason LIMIT ?3",
            )
            .and_then(|mut s| {
                s.query_map(params![since, until, limit(limit_to)], |r| {
                    Ok(RejectedCount {
                        minute: ts(r, 0)?,
                        surface: r.get(1)?,
                        reason: r.get(2)?,
                        count: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    })
                })?
                .collect()
            })
            .map_err(read_err)
        })
        .await
    }

    async fn prune_audit(&self, before: Timestamp, limit_to: u32) -> Result<u64, StoreError> {
        let events = self.audit_log().prune(before, limit_to).await?;
        let before = before.as_millis();
        let n = i64::from(limit_to);
        let others = self
            .write(move |tx| {
                let mut gone = 0;
                for sql in [
                    "DELETE FROM management_events WHERE id IN \
                     (SELECT id FROM management_events WHERE at < ?1 ORDER BY id LIMIT ?2)",
                    "DELETE FROM rejected_requests WHERE rowid IN \
                     (SELECT rowid FROM rejected_requests WHERE minute < ?1 LIMIT ?2)",
                ] {
                    gone += tx.execute(sql, params![before, n]).map_err(backend)? as u64;
                }
                Ok((gone, vec![]))
            })
            .await?;
        Ok(events + others)
    }
}
