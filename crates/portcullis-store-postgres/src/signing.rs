//! Token-signing keys.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use portcullis_domain::{
    Change, Ciphertext, SigningKeyRecord, SigningKeyStore, StoreError, Timestamp,
};
use tokio_postgres::Row;

use crate::error::{db, write};
use crate::rows::{get, opt_ts, ts, u32_col};
use crate::{PostgresStore, begin, execute, query, query_opt};

fn from_row(row: &Row) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        kid: get(row, 0)?,
        alg: get(row, 1)?,
        private_key: Ciphertext {
            bytes: get(row, 2)?,
            key_id: u32_col(row, 3)?,
        },
        public_jwk: get(row, 4)?,
        created_at: ts(row, 5)?,
        retired_at: opt_ts(row, 6)?,
    })
}

async fn all<C: GenericClient>(c: &C) -> Result<Vec<SigningKeyRecord>, StoreError> {
    query(
        c,
        "SELECT kid, alg, private_key, private_key_sealed, public_jwk, created_at, retired_at FROM signing_keys ORDER BY created_at, retired_at IS NULL, kid",
        &[],
    )
    .await
    .map_err(db)?
    .iter()
    .map(from_row)
    .collect()
}

async fn insert<C: GenericClient>(c: &C, k: &SigningKeyRecord) -> Result<(), StoreError> {
    execute(
        c,
        "INSERT INTO signing_keys (kid, alg, private_key, private_key_sealed, public_jwk, created_at, retired_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        &[
            &k.kid,
            &k.alg,
            &k.private_key.bytes,
            &i64::from(k.private_key.key_id),
            &k.public_jwk,
            &k.created_at.as_millis(),
        ],
    )
    .await
    .map_err(write("signing key"))?;
    Ok(())
}

/// Serializes the writers of `signing_keys` for the rest of the transaction (readers still pass):
/// two first starts or two rotations at once leave one active key.
async fn lock<C: GenericClient>(c: &C) -> Result<(), StoreError> {
    execute(c, "LOCK TABLE signing_keys IN EXCLUSIVE MODE", &[])
        .await
        .map_err(db)?;
    Ok(())
}

#[async_trait]
impl SigningKeyStore for PostgresStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let client = self.client().await?;
        all(&client).await
    }

    async fn insert_first_signing_key(
        &self,
        key: &SigningKeyRecord,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        lock(&tx).await?;
        let active = query_opt(
            &tx,
            "SELECT 1 FROM signing_keys WHERE retired_at IS NULL",
            &[],
        )
        .await
        .map_err(db)?;
        let changes = if active.is_none() {
            insert(&tx, key).await?;
            vec![Change::SigningKeys]
        } else {
            vec![]
        };
        let keys = all(&tx).await?;
        self.commit(tx, changes).await?;
        Ok(keys)
    }

    async fn rotate_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        lock(&tx).await?;
        execute(
            &tx,
            "UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL",
            &[&key.created_at.as_millis()],
        )
        .await
        .map_err(db)?;
        insert(&tx, key).await?;
        self.commit(tx, vec![Change::SigningKeys]).await
    }

    async fn purge_signing_keys(&self, before: Timestamp) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let n = execute(
            &tx,
            "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1",
            &[&before.as_millis()],
        )
        .await
        .map_err(db)?;
        let changes = if n > 0 {
            vec![Change::SigningKeys]
        } else {
            vec![]
        };
        self.commit(tx, changes).await?;
        Ok(n)
    }
}
