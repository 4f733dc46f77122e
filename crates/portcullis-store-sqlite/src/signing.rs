//! Token-signing keys.

use async_trait::async_trait;
use portcullis_domain::{
    Change, Ciphertext, SigningKeyRecord, SigningKeyStore, StoreError, Timestamp,
};
use rusqlite::params;

use crate::rows::{opt_ts, read_err, ts};
use crate::{SqliteStore, backend, write_error};

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: row.get(0)?,
        alg: row.get(1)?,
        private_key: Ciphertext {
            bytes: row.get(2)?,
            key_id: row.get(3)?,
        },
        public_jwk: row.get(4)?,
        created_at: ts(row, 5)?,
        retired_at: opt_ts(row, 6)?,
    })
}

fn all(c: &rusqlite::Connection) -> Result<Vec<SigningKeyRecord>, StoreError> {
    c.prepare_cached(
        "SELECT kid, alg, private_key, private_key_sealed, public_jwk, created_at, retired_at FROM signing_keys ORDER BY created_at, retired_at IS NULL, kid",
    )
    .and_then(|mut s| s.query_map([], from_row)?.collect())
    .map_err(read_err)
}

fn insert(tx: &rusqlite::Transaction<'_>, k: &SigningKeyRecord) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO signing_keys (kid, alg, private_key, private_key_sealed, public_jwk, created_at, retired_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)",
        params![
            k.kid,
            k.alg,
            k.private_key.bytes,
            k.private_key.key_id,
            k.public_jwk,
            k.created_at.as_millis()
        ],
    )
    .map_err(write_error("signing key"))?;
    Ok(())
}

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.read(all).await
    }

    async fn insert_first_signing_key(
        &self,
        key: &SigningKeyRecord,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let key = key.clone();
        self.write(move |tx| {
            let active: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE retired_at IS NULL)",
                    [],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let changes = if active {
                vec![]
            } else {
                insert(tx, &key)?;
                vec![Change::SigningKeys]
            };
            Ok((all(tx)?, changes))
        })
        .await
    }

    async fn rotate_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |tx| {
            tx.execute(
                "UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL",
                params![key.created_at.as_millis()],
            )
            .map_err(backend)?;
            insert(tx, &key)?;
            Ok(((), vec![Change::SigningKeys]))
        })
        .await
    }

    async fn purge_signing_keys(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.write(move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < ?1",
                    params![before.as_millis()],
                )
                .map_err(backend)?;
            let changes = if n > 0 {
                vec![Change::SigningKeys]
            } else {
                vec![]
            };
            Ok((n as u64, changes))
        })
        .await
    }
}
