//! Admin keys, OAuth clients, trusted issuers, data keys and the audit log.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use portcullis_domain::{
    AdminKeyRecord, AdminKeyStore, AuditEvent, AuditOutcome, AuditQuery, AuditStore,
    AuditSummaryRow, Change, ClientRecord, ClientStore, DataKeyRecord, IssuerRecord, IssuerStore,
    KeyStore, PageRequest, RecordedDecision, RejectedCount, StoreError, Timestamp,
};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::{db, decode, write};
use crate::rows::{get, hash, json, limit, millis, opt_hash, opt_ts, to_json, ts, u32_col};
use crate::{PostgresStore, begin, execute, query, query_opt};

const ADMIN_KEY_COLUMNS: &str = "id, name, secret_hash, created_at, expires_at, scopes";

fn admin_key_from_row(row: &Row) -> Result<AdminKeyRecord, StoreError> {
    Ok(AdminKeyRecord {
        id: get(row, 0)?,
        name: get(row, 1)?,
        secret_hash: hash(row, 2)?,
        created_at: ts(row, 3)?,
        expires_at: opt_ts(row, 4)?,
        scopes: get::<String>(row, 5)?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    })
}

async fn insert_admin_key<C: GenericClient>(c: &C, k: &AdminKeyRecord) -> Result<(), StoreError> {
    execute(
        c,
        &format!("INSERT INTO admin_keys ({ADMIN_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
        &[
            &k.id,
            &k.name,
            &k.secret_hash.as_slice(),
            &k.created_at.as_millis(),
            &millis(k.expires_at),
            &k.scopes.join(" "),
        ],
    )
    .await
    .map_err(write("admin key"))?;
    Ok(())
}

#[async_trait]
impl AdminKeyStore for PostgresStore {
    async fn insert_admin_key(&self, key: &AdminKeyRecord) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        insert_admin_key(&tx, key).await?;
        self.commit(tx, vec![Change::AdminKeys]).await
    }

    async fn insert_first_admin_key(&self, key: &AdminKeyRecord) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        // EXCLUSIVE lets readers through but makes every other writer of the table (another
        // node's bootstrap among them) wait until this transaction ends; it then sees the key.
        execute(&tx, "LOCK TABLE admin_keys IN EXCLUSIVE MODE", &[])
            .await
            .map_err(db)?;
        let any = query_opt(&tx, "SELECT 1 FROM admin_keys LIMIT 1", &[])
            .await
            .map_err(db)?;
        if any.is_some() {
            return Ok(false);
        }
        insert_admin_key(&tx, key).await?;
        self.commit(tx, vec![Change::AdminKeys]).await?;
        Ok(true)
    }

    async fn admin_key_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<AdminKeyRecord>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE secret_hash = $1"),
            &[&hash.as_slice()],
        )
        .await
        .map_err(db)?
        .map(|row| admin_key_from_row(&row))
        .transpose()
    }

    async fn admin_key_by_id(&self, id: &str) -> Result<Option<AdminKeyRecord>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!("SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(db)?
        .map(|row| admin_key_from_row(&row))
        .transpose()
    }

    async fn admin_keys(&self, page: &PageRequest) -> Result<Vec<AdminKeyRecord>, StoreError> {
        let client = self.client().await?;
        let after = page.after.as_deref().unwrap_or_default();
        query(
            &client,
            &format!(
                "SELECT {ADMIN_KEY_COLUMNS} FROM admin_keys WHERE id > $1 ORDER BY id LIMIT $2"
            ),
            &[&after, &limit(page.limit)],
        )
        .await
        .map_err(db)?
        .iter()
        .map(admin_key_from_row)
        .collect()
    }

    async fn delete_admin_key(&self, id: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let n = execute(&tx, "DELETE FROM admin_keys WHERE id = $1", &[&id])
            .await
            .map_err(db)?;
        StoreError::found(n > 0, "admin key")?;
        self.commit(tx, vec![Change::AdminKeys]).await
    }
}

const CLIENT_COLUMNS: &str = "id, name, secret_hash, metadata, created_at, updated_at";

fn client_from_row(row: &Row) -> Result<ClientRecord, StoreError> {
    Ok(ClientRecord {
        id: get(row, 0)?,
        name: get(row, 1)?,
        secret_hash: opt_hash(row, 2)?,
        metadata: json(row, 3)?,
        created_at: ts(row, 4)?,
        updated_at: ts(row, 5)?,
    })
}

#[async_trait]
impl ClientStore for PostgresStore {
    async fn insert_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let metadata = to_json(&c.metadata)?;
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        execute(
            &tx,
            &format!("INSERT INTO clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
            &[
                &c.id,
                &c.name,
                &c.secret_hash.as_ref().map(|h| h.as_slice()),
                &metadata,
                &c.created_at.as_millis(),
                &c.updated_at.as_millis(),
            ],
        )
        .await
        .map_err(write("client"))?;
        self.commit(tx, vec![Change::Client(c.id.clone())]).await
    }

    async fn client(&self, id: &str) -> Result<Option<ClientRecord>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(db)?
        .map(|row| client_from_row(&row))
        .transpose()
    }

    async fn clients(&self, page: &PageRequest) -> Result<Vec<ClientRecord>, StoreError> {
        let client = self.client().await?;
        let after = page.after.as_deref().unwrap_or_default();
        query(
            &client,
            &format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id > $1 ORDER BY id LIMIT $2"),
            &[&after, &limit(page.limit)],
        )
        .await
        .map_err(db)?
        .iter()
        .map(client_from_row)
        .collect()
    }

    async fn update_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        let metadata = to_json(&c.metadata)?;
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let n = execute(
            &tx,
            "UPDATE clients SET name = $2, secret_hash = $3, metadata = $4, updated_at = $5 WHERE id = $1",
            &[
                &c.id,
                &c.name,
                &c.secret_hash.as_ref().map(|h| h.as_slice()),
                &metadata,
                &c.updated_at.as_millis(),
            ],
        )
        .await
        .map_err(db)?;
        StoreError::found(n > 0, "client")?;
        self.commit(tx, vec![Change::Client(c.id.clone())]).await
    }

    async fn delete_client(&self, id: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let n = execute(&tx, "DELETE FROM clients WHERE id = $1", &[&id])
            .await
            .map_err(db)?;
        StoreError::found(n > 0, "client")?;
        self.commit(tx, vec![Change::Client(id.to_owned())]).await
    }
}

const ISSUER_COLUMNS: &str = "id, issuer, jwks_url, discovery_url, audiences, algorithms, roles_claim, tenant_claim, clock_skew_seconds, created_at, updated_at, required_typ";

fn issuer_from_row(row: &Row) -> Result<IssuerRecord, StoreError> {
    Ok(IssuerRecord {
        id: get(row, 0)?,
        issuer: get(row, 1)?,
        jwks_url: get(row, 2)?,
        discovery_url: get(row, 3)?,
        audiences: json(row, 4)?,
        algorithms: json(row, 5)?,
        roles_claim: get(row, 6)?,
        tenant_claim: get(row, 7)?,
        clock_skew_seconds: u32_col(row, 8)?,
        created_at: ts(row, 9)?,
        updated_at: ts(row, 10)?,
        required_typ: get(row, 11)?,
    })
}

#[async_trait]
impl IssuerStore for PostgresStore {
    async fn insert_issuer(&self, i: &IssuerRecord) -> Result<(), StoreError> {
        let (audiences, algorithms) = (to_json(&i.audiences)?, to_json(&i.algorithms)?);
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        execute(
            &tx,
            &format!(
                "INSERT INTO issuers ({ISSUER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            ),
            &[
                &i.id,
                &i.issuer,
                &i.jwks_url,
                &i.discovery_url,
                &audiences,
                &algorithms,
                &i.roles_claim,
                &i.tenant_claim,
                &i64::from(i.clock_skew_seconds),
                &i.created_at.as_millis(),
                &i.updated_at.as_millis(),
                &i.required_typ,
            ],
        )
        .await
        .map_err(write("issuer"))?;
        self.commit(tx, vec![Change::Issuers]).await
    }

    async fn issuer(&self, id: &str) -> Result<Option<IssuerRecord>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!("SELECT {ISSUER_COLUMNS} FROM issuers WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(db)?
        .map(|row| issuer_from_row(&row))
        .transpose()
    }

    async fn issuers(&self) -> Result<Vec<IssuerRecord>, StoreError> {
        let client = self.client().await?;
        query(
            &client,
            &format!("SELECT {ISSUER_COLUMNS} FROM issuers ORDER BY id"),
            &[],
        )
        .await
        .map_err(db)?
        .iter()
        .map(issuer_from_row)
        .collect()
    }

    async fn update_issuer(&self, i: &IssuerRecord) -> Result<(), StoreError> {
        let (audiences, algorithms) = (to_json(&i.audiences)?, to_json(&i.algorithms)?);
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let n = execute(
            &tx,
            "UPDATE issuers SET issuer = $2, jwks_url = $3, discovery_url = $4, audiences = $5, algorithms = $6, roles_claim = $7, tenant_claim = $8, clock_skew_seconds = $9, updated_at = $10, required_typ = $11 WHERE id = $1",
            &[
                &i.id,
                &i.issuer,
                &i.jwks_url,
                &i.discovery_url,
                &audiences,
                &algorithms,
                &i.roles_claim,
                &i.tenant_claim,
                &i64::from(i.clock_skew_seconds),
                &i.updated_at.as_millis(),
                &i.required_typ,
            ],
        )
        .await
        .map_err(write("issuer"))?;
        StoreError::found(n > 0, "issuer")?;
        self.commit(tx, vec![Change::Issuers]).await
    }

    async fn delete_issuer(&self, id: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let n = execute(&tx, "DELETE FROM issuers WHERE id = $1", &[&id])
            .await
            .map_err(db)?;
        StoreError::found(n > 0, "issuer")?;
        self.commit(tx, vec![Change::Issuers]).await
    }
}

fn data_key_from_row(row: &Row) -> Result<DataKeyRecord, StoreError> {
    Ok(DataKeyRecord {
        id: u32_col(row, 0)?,
        master_key_id: get(row, 1)?,
        wrapped: get(row, 2)?,
        active: get(row, 3)?,
        created_at: ts(row, 4)?,
    })
}

async fn all_data_keys<C: GenericClient>(c: &C) -> Result<Vec<DataKeyRecord>, StoreError> {
    query(
        c,
        "SELECT id, master_key_id, wrapped, active, created_at FROM data_keys ORDER BY id",
        &[],
    )
    .await
    .map_err(db)?
    .iter()
    .map(data_key_from_row)
    .collect()
}

async fn insert_data_key<C: GenericClient>(c: &C, k: &DataKeyRecord) -> Result<(), StoreError> {
    execute(
        c,
        "INSERT INTO data_keys (id, master_key_id, wrapped, active, created_at) VALUES ($1, $2, $3, $4, $5)",
        &[
            &i64::from(k.id),
            &k.master_key_id,
            &k.wrapped,
            &k.active,
            &k.created_at.as_millis(),
        ],
    )
    .await
    .map_err(write("data key"))?;
    Ok(())
}

/// Serializes the writers of `data_keys` for the rest of the transaction (readers still pass).
async fn lock_data_keys<C: GenericClient>(c: &C) -> Result<(), StoreError> {
    execute(c, "LOCK TABLE data_keys IN EXCLUSIVE MODE", &[])
        .await
        .map_err(db)?;
    Ok(())
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn data_keys(&self) -> Result<Vec<DataKeyRecord>, StoreError> {
        let client = self.client().await?;
        all_data_keys(&client).await
    }

    async fn insert_first_data_key(
        &self,
        key: &DataKeyRecord,
    ) -> Result<Vec<DataKeyRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        lock_data_keys(&tx).await?;
        let any = query_opt(&tx, "SELECT 1 FROM data_keys LIMIT 1", &[])
            .await
            .map_err(db)?;
        if any.is_none() {
            insert_data_key(&tx, key).await?;
        }
        let keys = all_data_keys(&tx).await?;
        self.commit(tx, vec![]).await?;
        Ok(keys)
    }

    async fn insert_active_data_key(&self, key: &DataKeyRecord) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        // Two rotations at once must not both leave their key active.
        lock_data_keys(&tx).await?;
        execute(&tx, "UPDATE data_keys SET active = FALSE", &[])
            .await
            .map_err(db)?;
        insert_data_key(
            &tx,
            &DataKeyRecord {
                active: true,
                ..key.clone()
            },
        )
        .await?;
        self.commit(tx, vec![Change::DataKeys]).await
    }

    async fn rewrap_data_key(
        &self,
        id: u32,
        master_key_id: &str,
        wrapped: &[u8],
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let n = execute(
            &tx,
            "UPDATE data_keys SET master_key_id = $2, wrapped = $3 WHERE id = $1",
            &[&i64::from(id), &master_key_id, &wrapped],
        )
        .await
        .map_err(db)?;
        StoreError::found(n > 0, "data key")?;
        self.commit(tx, vec![Change::DataKeys]).await
    }

    async fn add_seals(&self, id: u32, n: u64) -> Result<u64, StoreError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let row = query_opt(
            &client,
            "UPDATE data_keys SET seals = seals + $2 WHERE id = $1 RETURNING seals",
            &[&i64::from(id), &n],
        )
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound { entity: "data key" })?;
        let total: i64 = row.try_get(0).map_err(db)?;
        Ok(u64::try_from(total).unwrap_or(0))
    }
}

const AUDIT_COLUMNS: &str = "id, at, action, app_id, user_id, tenant_id, client_id, issuer, requested_scopes, granted_scopes, outcome, reason, deciding_policies, considered_policies, shadow_outcome, latency_us, inputs";

fn audit_from_row(row: &Row) -> Result<AuditEvent, StoreError> {
    let outcome: &str = get(row, 10)?;
    Ok(AuditEvent {
        id: get(row, 0)?,
        at: ts(row, 1)?,
        action: get(row, 2)?,
        app_id: get(row, 3)?,
        user_id: get(row, 4)?,
        tenant_id: get(row, 5)?,
        client_id: get(row, 6)?,
        issuer: get(row, 7)?,
        requested_scopes: json(row, 8)?,
        granted_scopes: json(row, 9)?,
        outcome: AuditOutcome::parse(outcome)
            .ok_or_else(|| decode("audit event", format!("unknown outcome {outcome}")))?,
        reason: get(row, 11)?,
        deciding_policies: json(row, 12)?,
        considered_policies: json(row, 13)?,
        shadow_outcome: get(row, 14)?,
        latency_us: u64::try_from(get::<i64>(row, 15)?).unwrap_or(0),
        inputs: opt_json(row, 16)?,
    })
}

/// A nullable JSON column.
fn opt_json<T: serde::de::DeserializeOwned>(
    row: &Row,
    idx: usize,
) -> Result<Option<T>, StoreError> {
    get::<Option<&str>>(row, idx)?
        .map(|text| serde_json::from_str(text).map_err(|e| decode("audit inputs", e)))
        .transpose()
}

/// A bind value of the audit query.
enum Arg {
    Text(String),
    Int(i64),
}

impl Arg {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Self::Text(s) => s,
            Self::Int(n) => n,
        }
    }
}

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, events: Arc<[AuditEvent]>) -> Result<(), StoreError> {
        // One statement for the whole batch, its columns sent as arrays: a round trip per event
        // would bound the audit rate by the network latency to the database.
        let mut ids = Vec::with_capacity(events.len());
        let mut ats = Vec::with_capacity(events.len());
        let mut actions = Vec::with_capacity(events.len());
        let mut apps = Vec::with_capacity(events.len());
        let mut users = Vec::with_capacity(events.len());
        let mut tenants = Vec::with_capacity(events.len());
        let mut clients = Vec::with_capacity(events.len());
        let mut issuers = Vec::with_capacity(events.len());
        let mut requested = Vec::with_capacity(events.len());
        let mut granted = Vec::with_capacity(events.len());
        let mut outcomes = Vec::with_capacity(events.len());
        let mut reasons = Vec::with_capacity(events.len());
        let mut deciding = Vec::with_capacity(events.len());
        let mut considered = Vec::with_capacity(events.len());
        let mut shadows = Vec::with_capacity(events.len());
        let mut latencies = Vec::with_capacity(events.len());
        let mut inputs = Vec::with_capacity(events.len());
        for e in events.iter() {
            ids.push(e.id.as_str());
            ats.push(e.at.as_millis());
            actions.push(e.action.as_str());
            apps.push(e.app_id.as_deref());
            users.push(e.user_id.as_deref());
            tenants.push(e.tenant_id.as_deref());
            clients.push(e.client_id.as_deref());
            issuers.push(e.issuer.as_deref());
            requested.push(to_json(&e.requested_scopes)?);
            granted.push(to_json(&e.granted_scopes)?);
            outcomes.push(e.outcome.as_str());
            reasons.push(e.reason.as_deref());
            deciding.push(to_json(&e.deciding_policies)?);
            considered.push(to_json(&e.considered_policies)?);
            shadows.push(e.shadow_outcome.as_deref());
            latencies.push(i64::try_from(e.latency_us).unwrap_or(i64::MAX));
            inputs.push(e.inputs.as_ref().map(to_json).transpose()?);
        }
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        execute(
            &tx,
            &format!(
                "INSERT INTO audit_events ({AUDIT_COLUMNS}) SELECT * FROM UNNEST(\
                 $1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
                 $13::text[], $14::text[], $15::text[], $16::bigint[], $17::text[])"
            ),
            &[
                &ids,
                &ats,
                &actions,
                &apps,
                &users,
                &tenants,
                &clients,
                &issuers,
                &requested,
                &granted,
                &outcomes,
                &reasons,
                &deciding,
                &considered,
                &shadows,
                &latencies,
                &inputs,
            ],
        )
        .await
        .map_err(write("audit event"))?;
        self.commit(tx, vec![]).await
    }

    async fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE TRUE");
        let mut args: Vec<Arg> = Vec::new();
        let mut filter = |column: &str, op: &str, value: Arg| {
            args.push(value);
            sql.push_str(&format!(" AND {column} {op} ${}", args.len()));
        };
        if let Some(v) = &q.app_id {
            filter("app_id", "=", Arg::Text(v.clone()));
        }
        if let Some(v) = &q.user_id {
            filter("user_id", "=", Arg::Text(v.clone()));
        }
        if let Some(v) = &q.tenant_id {
            filter("tenant_id", "=", Arg::Text(v.clone()));
        }
        if let Some(v) = &q.client_id {
            filter("client_id", "=", Arg::Text(v.clone()));
        }
        if let Some(v) = q.outcome {
            filter("outcome", "=", Arg::Text(v.as_str().to_owned()));
        }
        if let Some(v) = q.since {
            filter("at", ">=", Arg::Int(v.as_millis()));
        }
        if let Some(v) = q.until {
            filter("at", "<", Arg::Int(v.as_millis()));
        }
        if let Some(v) = &q.before_id {
            filter("id", "<", Arg::Text(v.clone()));
        }
        args.push(Arg::Int(limit(q.limit)));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", args.len()));
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(Arg::as_sql).collect();
        // At most 2^8 shapes of this statement: each is prepared once per connection and cached.
        let client = self.client().await?;
        query(&client, &sql, &params)
            .await
            .map_err(db)?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    async fn recorded_decisions(
        &self,
        q: &AuditQuery,
    ) -> Result<Vec<RecordedDecision>, StoreError> {
        let since = q.since.map_or(i64::MIN, Timestamp::as_millis);
        let until = q.until.map_or(i64::MAX, Timestamp::as_millis);
        // A cursor above every id: ids are ASCII, compared in the "C" collation.
        let before = q.before_id.clone().unwrap_or_else(|| "\u{7f}".to_owned());
        let client = self.client().await?;
        query(
            &client,
            "SELECT id, user_id, requested_scopes, inputs FROM audit_events \
             WHERE app_id = $1 AND id < $2 AND at >= $3 AND at < $4 AND inputs IS NOT NULL \
             ORDER BY id DESC LIMIT $5",
            &[&q.app_id, &before, &since, &until, &limit(q.limit)],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| {
            Ok(RecordedDecision {
                id: get(r, 0)?,
                user_id: get(r, 1)?,
                requested_scopes: json(r, 2)?,
                inputs: json(r, 3)?,
            })
        })
        .collect()
    }

    async fn audit_summary(
        &self,
        since: Timestamp,
        until: Timestamp,
        bucket_ms: i64,
    ) -> Result<Vec<AuditSummaryRow>, StoreError> {
        let (since, until) = (since.as_millis(), until.as_millis());
        let bucket_ms = bucket_ms.max(1);
        let client = self.client().await?;
        // `at >= since`, so the integer division is a floor: the bucket's index. SUM of a bigint
        // is a numeric: cast back (a window's latencies sum far below 2^63 microseconds).
        query(
            &client,
            "SELECT (at - $1) / $3 AS bucket, app_id, outcome, COUNT(*), \
             SUM(latency_us)::bigint, MAX(latency_us) FROM audit_events \
             WHERE at >= $1 AND at < $2 GROUP BY bucket, app_id, outcome",
            &[&since, &until, &bucket_ms],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| {
            let outcome: &str = get(r, 2)?;
            let count = |i| get::<i64>(r, i).map(|n| u64::try_from(n).unwrap_or(0));
            Ok(AuditSummaryRow {
                bucket: u32::try_from(get::<i64>(r, 0)?).unwrap_or(u32::MAX),
                app_id: get(r, 1)?,
                outcome: AuditOutcome::parse(outcome)
                    .ok_or_else(|| decode("audit summary", format!("unknown outcome {outcome}")))?,
                count: count(3)?,
                latency_sum_us: count(4)?,
                latency_max_us: count(5)?,
            })
        })
        .collect()
    }

    async fn add_rejected(&self, counts: &[RejectedCount]) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let minutes: Vec<i64> = counts.iter().map(|c| c.minute.as_millis()).collect();
        let surfaces: Vec<&str> = counts.iter().map(|c| c.surface.as_str()).collect();
        let reasons: Vec<&str> = counts.iter().map(|c| c.reason.as_str()).collect();
        let ns: Vec<i64> = counts
            .iter()
            .map(|c| i64::try_from(c.count).unwrap_or(i64::MAX))
            .collect();
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        execute(
            &tx,
            "INSERT INTO rejected_requests (minute, surface, reason, count) \
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[]) \
             ON CONFLICT (minute, surface, reason) \
             DO UPDATE SET count = rejected_requests.count + EXCLUDED.count",
            &[&minutes, &surfaces, &reasons, &ns],
        )
        .await
        .map_err(write("rejected request count"))?;
        self.commit(tx, vec![]).await
    }

    async fn rejected(
        &self,
        since: Option<Timestamp>,
        until: Option<Timestamp>,
        limit_to: u32,
    ) -> Result<Vec<RejectedCount>, StoreError> {
        let since = since.map_or(i64::MIN, Timestamp::as_millis);
        let until = until.map_or(i64::MAX, Timestamp::as_millis);
        let client = self.client().await?;
        query(
            &client,
            "SELECT minute, surface, reason, count FROM rejected_requests \
             WHERE minute >= $1 AND minute < $2 ORDER BY minute DESC, surface, reason LIMIT $3",
            &[&since, &until, &limit(limit_to)],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| {
            Ok(RejectedCount {
                minute: Timestamp::from_millis(r.try_get(0).map_err(db)?),
                surface: r.try_get(1).map_err(db)?,
                reason: r.try_get(2).map_err(db)?,
                count: u64::try_from(r.try_get::<_, i64>(3).map_err(db)?).unwrap_or(0),
            })
        })
        .collect()
    }

    async fn prune_audit(&self, before: Timestamp, limit_to: u32) -> Result<u64, StoreError> {
        let before = before.as_millis();
        let n = i64::from(limit_to);
        let client = self.client().await?;
        let mut gone = 0;
        for sql in [
            "DELETE FROM audit_events WHERE id IN \
             (SELECT id FROM audit_events WHERE at < $1 ORDER BY id LIMIT $2)",
            "DELETE FROM management_events WHERE id IN \
             (SELECT id FROM management_events WHERE at < $1 ORDER BY id LIMIT $2)",
            "DELETE FROM rejected_requests WHERE (minute, surface, reason) IN \
             (SELECT minute, surface, reason FROM rejected_requests WHERE minute < $1 LIMIT $2)",
        ] {
            gone += client.execute(sql, &[&before, &n]).await.map_err(db)?;
        }
        Ok(gone)
    }
}
