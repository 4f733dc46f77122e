//! Secrets at rest: seals and opens every stored secret with the data keys, which the operator's
//! master key wraps; rotates data keys and re-encrypts existing rows in the background.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use portcullis_crypto::envelope::{DataKey, KeyRing, MasterKey, unwrap_data_key};
use portcullis_crypto::{CryptoError, SecretBytes};
use portcullis_domain::{Ciphertext, Clock, DataKeyRecord, KeyStore, StoreError, Stores};

use crate::ServiceError;

/// Seals per data key before it is rotated: AES-256-GCM with random 96-bit nonces must not seal
/// more than 2^32 messages under one key (NIST SP 800-38D §8.3); rotating at 2^30 keeps the
/// chance of a nonce collision negligible, with room for the count's flush delay across nodes.
pub const DEFAULT_SEAL_LIMIT: u64 = 1 << 30;

/// Seals and opens secrets; cheap to share.
pub struct Sealer {
    masters: Vec<MasterKey>,
    ring: RwLock<KeyRing>,
    keys: Arc<dyn KeyStore>,
    clock: Arc<dyn Clock>,
    /// Secrets sealed since the count was last written.
    unflushed: AtomicU64,
    /// Past this many seals a data key is rotated.
    seal_limit: AtomicU64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("active_key", &self.active_key_id())
            .finish_non_exhaustive()
    }
}

/// Why the sealer could not start.
#[derive(Debug, thiserror::Error)]
pub enum SealerError {
    /// The database failed.
    #[error("cannot read the data keys: {0}")]
    Store(#[from] StoreError),
    /// A data key cannot be unwrapped with the configured master keys.
    #[error("cannot unwrap data key {id}: {source}")]
    Unwrap {
        /// The data key.
        id: u32,
        /// Why.
        source: CryptoError,
    },
    /// No master key was given.
    #[error("no master key is configured")]
    NoMasterKey,
}

impl Sealer {
    /// Loads the data keys (creating the first one on an empty database), unwrapping them with
    /// `masters` (the first is the active master key). Data keys wrapped under an older master key
    /// are re-wrapped under the active one: that is how the master key rotates.
    pub async fn load(
        keys: Arc<dyn KeyStore>,
        masters: Vec<MasterKey>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SealerError> {
        let active_master = masters.first().ok_or(SealerError::NoMasterKey)?;
        let mut records = keys.data_keys().await?;
        if records.is_empty() {
            let first = DataKey::generate(1);
            let wrapped = active_master
                .wrap(&first)
                .map_err(|source| SealerError::Unwrap { id: 1, source })?;
            records = keys
                .insert_first_data_key(&DataKeyRecord {
                    id: 1,
                    master_key_id: active_master.id().to_owned(),
                    wrapped,
                    active: true,
                    created_at: clock.now(),
                })
                .await?;
        }
        for record in &records {
            if record.master_key_id != active_master.id() {
                let key =
                    unwrap_data_key(&masters, record.id, &record.wrapped).map_err(|source| {
                        SealerError::Unwrap {
                            id: record.id,
                            source,
                        }
                    })?;
                let wrapped = active_master
                    .wrap(&key)
                    .map_err(|source| SealerError::Unwrap {
                        id: record.id,
                        source,
                    })?;
                keys.rewrap_data_key(record.id, active_master.id(), &wrapped)
                    .await?;
                tracing::info!(
                    data_key = record.id,
                    master_key = active_master.id(),
                    "re-wrapped a data key under the active master key"
                );
            }
        }
        let ring = build_ring(&masters, &records)?;
        Ok(Self {
            masters,
            ring: RwLock::new(ring),
            keys,
            clock,
            unflushed: AtomicU64::new(0),
            seal_limit: AtomicU64::new(DEFAULT_SEAL_LIMIT),
        })
    }

    /// Rotates the active data key once it has sealed `limit` secrets.
    pub fn set_seal_limit(&self, limit: u64) {
        self.seal_limit.store(limit.max(1), Ordering::Relaxed);
    }

    /// Writes how many secrets were sealed since the last call (added to the active key's count,
    /// shared by every node), and rotates the data key when the count has reached the limit.
    /// Called every second by the services.
    pub async fn flush_seals(&self) -> Result<(), ServiceError> {
        let n = self.unflushed.swap(0, Ordering::Relaxed);
        if n == 0 {
            return Ok(());
        }
        let active = self.active_key_id();
        let total = match self.keys.add_seals(active, n).await {
            Ok(t) => t,
            Err(e) => {
                self.unflushed.fetch_add(n, Ordering::Relaxed);
                return Err(e.into());
            }
        };
        metrics::gauge!("portcullis_data_key_seals").set(total as f64);
        if total >= self.seal_limit.load(Ordering::Relaxed) && self.active_key_id() == active {
            tracing::info!(
                data_key = active,
                seals = total,
                "the data key sealed its share of secrets; rotating it"
            );
            self.rotate().await?;
        }
        Ok(())
    }

    /// The data key new secrets are sealed with.
    pub fn active_key_id(&self) -> u32 {
        self.read().active_id()
    }

    /// Seals `plaintext`, bound to `aad` (see [`portcullis_crypto::envelope::aad`]).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Ciphertext, ServiceError> {
        let sealed = self
            .read()
            .seal(plaintext, aad)
            .map_err(|e| ServiceError::Internal(format!("cannot seal a secret: {e}")))?;
        self.unflushed.fetch_add(1, Ordering::Relaxed);
        Ok(Ciphertext {
            key_id: sealed.key_id,
            bytes: sealed.bytes,
        })
    }

    /// Opens a sealed secret with the keys in memory (the hot path).
    pub fn open_cached(&self, c: &Ciphertext, aad: &[u8]) -> Result<SecretBytes, CryptoError> {
        self.read().open(&c.bytes, aad)
    }

    /// Opens a sealed secret, loading the data keys again if it was sealed under one this node
    /// has not seen yet (another node rotated).
    pub async fn open(&self, c: &Ciphertext, aad: &[u8]) -> Result<SecretBytes, ServiceError> {
        match self.open_cached(c, aad) {
            Err(CryptoError::UnknownDataKey { .. }) => {
                self.reload().await?;
                self.open_cached(c, aad).map_err(open_error)
            }
            other => other.map_err(open_error),
        }
    }

    /// Opens a sealed secret and seals it again under the active key, bound to the same `aad`.
    pub async fn reseal(&self, c: &Ciphertext, aad: &[u8]) -> Result<Ciphertext, ServiceError> {
        let plain = self.open(c, aad).await?;
        self.seal(plain.expose(), aad)
    }

    /// Loads the data keys from the database again.
    pub async fn reload(&self) -> Result<(), ServiceError> {
        let records = self.keys.data_keys().await?;
        let ring = build_ring(&self.masters, &records)
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        *self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = ring;
        Ok(())
    }

    /// Adds a new data key and makes it the active one; returns its id. Existing rows stay
    /// readable; [`reencrypt`] moves them to the new key.
    pub async fn rotate(&self) -> Result<u32, ServiceError> {
        let master = self
            .masters
            .first()
            .ok_or_else(|| ServiceError::Internal("no master key".into()))?;
        for _ in 0..5 {
            let next = self
                .keys
                .data_keys()
                .await?
                .iter()
                .map(|k| k.id)
                .max()
                .unwrap_or(0)
                + 1;
            let key = DataKey::generate(next);
            let wrapped = master
                .wrap(&key)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
            let record = DataKeyRecord {
                id: next,
                master_key_id: master.id().to_owned(),
                wrapped,
                active: true,
                created_at: self.clock.now(),
            };
            match self.keys.insert_active_data_key(&record).await {
                Ok(()) => {
                    self.reload().await?;
                    tracing::info!(data_key = next, "rotated the data key");
                    return Ok(next);
                }
                Err(StoreError::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ServiceError::Conflict {
            code: "rotation_contended",
            message: "another node is rotating keys at the same time; try again".into(),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn open_error(e: CryptoError) -> ServiceError {
    ServiceError::Internal(format!("cannot open a stored secret: {e}"))
}

fn build_ring(masters: &[MasterKey], records: &[DataKeyRecord]) -> Result<KeyRing, SealerError> {
    let active = records
        .iter()
        .find(|r| r.active)
        .or_else(|| records.iter().max_by_key(|r| r.id))
        .ok_or(SealerError::Store(StoreError::Backend(
            "no data key is stored".into(),
        )))?;
    let unwrap = |r: &DataKeyRecord| {
        unwrap_data_key(masters, r.id, &r.wrapped)
            .map_err(|source| SealerError::Unwrap { id: r.id, source })
    };
    let mut ring = KeyRing::new(unwrap(active)?);
    for r in records.iter().filter(|r| r.id != active.id) {
        ring.insert(unwrap(r)?);
    }
    Ok(ring)
}

/// How far a re-encryption got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReencryptReport {
    /// Connections re-sealed under the active key.
    pub connections: u64,
    /// App client secrets re-sealed.
    pub app_secrets: u64,
    /// Pending consents re-sealed.
    pub consent_states: u64,
    /// SSO connections' client secrets re-sealed.
    pub sso_secrets: u64,
}

/// Re-seals every stored secret that is not under the active data key. Safe to run while the
/// server serves: rows stay readable throughout, and a row whose tokens change meanwhile (a
/// refresh) is simply left to the next pass (its new tokens are sealed under the active key).
pub async fn reencrypt(sealer: &Sealer, stores: &Stores) -> Result<ReencryptReport, ServiceError> {
    const MAX_STALLED_PASSES: u32 = 50;
    let mut report = ReencryptReport::default();
    // Passes over the connections in id order, a batch at a time from a cursor (each batch reads
    // only its own rows). A pass that ends having found rows is followed by another from the
    // start: a row whose tokens changed under us (a refresh) was skipped, and is normally sealed
    // under the active key by now; the rotation is done when a pass finds nothing.
    let mut stalled = 0u32;
    let mut after: Option<String> = None;
    let mut found = false;
    let mut progressed = false;
    loop {
        let active = sealer.active_key_id();
        let batch = stores
            .connections
            .connections_sealed_with_other_key(active, after.as_deref(), 200)
            .await?;
        let Some(last) = batch.last() else {
            if !found {
                break;
            }
            if progressed {
                stalled = 0;
            } else {
                // Every row of the pass changed under us. Their new tokens are normally sealed
                // under the active key; a node that has not heard of the rotation yet may still
                // use the old one for a moment, so wait a little, and give up rather than spin
                // forever.
                stalled += 1;
                if stalled > MAX_STALLED_PASSES {
                    return Err(ServiceError::Conflict {
                        code: "reencryption_stalled",
                        message: "connections keep being written under an old data key; run the rotation again once every node runs the same version".into(),
                    });
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            (after, found, progressed) = (None, false, false);
            continue;
        };
        after = Some(last.id.clone());
        found = true;
        let mut resealed = Vec::with_capacity(batch.len());
        for c in batch {
            let access = sealer
                .reseal(&c.access, &crate::vault::connection_aad(&c.key, "access"))
                .await?;
            let refresh = match &c.refresh {
                Some(r) => Some(
                    sealer
                        .reseal(r, &crate::vault::connection_aad(&c.key, "refresh"))
                        .await?,
                ),
                None => None,
            };
            resealed.push(portcullis_domain::Reseal {
                id: c.id,
                expected_version: c.version,
                access,
                refresh,
            });
        }
        let done = stores.connections.reseal_connections(&resealed).await?;
        report.connections += done;
        progressed |= done > 0;
    }
    // Pending consents: one pass in id order (a flow is only ever taken, never re-sealed by
    // another writer).
    let mut after: Option<String> = None;
    loop {
        let active = sealer.active_key_id();
        let batch = stores
            .consent_states
            .states_sealed_with_other_key(active, after.as_deref(), 200)
            .await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.id.clone());
        for s in batch {
            if let Some(v) = &s.pkce_verifier {
                let fresh = sealer.reseal(v, &crate::vault::state_aad(&s.id)).await?;
                stores.consent_states.reseal_state(&s.id, &fresh).await?;
                report.consent_states += 1;
            }
        }
    }
    let mut after: Option<String> = None;
    loop {
        let apps = stores
            .apps
            .apps(&portcullis_domain::PageRequest {
                after: after.clone(),
                limit: 200,
            })
            .await?;
        let Some(last) = apps.last() else { break };
        after = Some(last.id.clone());
        for mut app in apps {
            let active = sealer.active_key_id();
            let Some(secret) = app.client_secret.clone() else {
                continue;
            };
            if secret.key_id == active {
                continue;
            }
            app.client_secret = Some(
                sealer
                    .reseal(&secret, &crate::manage::app_secret_aad(&app.id))
                    .await?,
            );
            let expected = app.revision;
            app.revision += 1;
            match stores.apps.update_app(&app, expected).await {
                Ok(()) => report.app_secrets += 1,
                // Changed meanwhile: the writer sealed under the active key.
                Err(StoreError::Conflict(_) | StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut after: Option<String> = None;
    loop {
        let rows = stores
            .sso
            .sso_connections(&portcullis_domain::PageRequest {
                after: after.clone(),
                limit: 200,
            })
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id.clone());
        for mut conn in rows {
            let Some(secret) = conn.client_secret.clone() else {
                continue;
            };
            if secret.key_id == sealer.active_key_id() {
                continue;
            }
            conn.client_secret = Some(
                sealer
                    .reseal(&secret, &crate::manage::sso_secret_aad(&conn.id))
                    .await?,
            );
            match stores.sso.update_sso_connection(&conn).await {
                Ok(()) => report.sso_secrets += 1,
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(report)
}
