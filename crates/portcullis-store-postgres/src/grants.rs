//! The authorization server's grants: codes, refresh tokens, consents, passwords. A code is
//! spent, and a refresh token rotated, by one conditional `UPDATE`: of two nodes presenting the
//! same one at once, exactly one sees it unspent.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use portcullis_domain::{
    CodeRecord, ConsentRecord, GrantStore, PasswordRecord, Redemption, RefreshRecord, Rotation,
    RotationCheck, StoreError, Timestamp,
};
use tokio_postgres::Row;

use crate::error::{db, write};
use crate::rows::{get, millis, opt_ts, ts, u32_col};
use crate::{PostgresStore, begin, execute, query, query_opt};

fn scopes(s: String) -> Vec<String> {
    s.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

const CODE_COLUMNS: &str = "hash, family_id, client_id, user_id, resource, scopes, redirect_uri, code_challenge, auth_time, created_at, expires_at, nonce";

fn code_row(row: &Row) -> Result<CodeRecord, StoreError> {
    Ok(CodeRecord {
        hash: get(row, 0)?,
        family_id: get(row, 1)?,
        client_id: get(row, 2)?,
        user_id: get(row, 3)?,
        resource: get(row, 4)?,
        scopes: scopes(get(row, 5)?),
        redirect_uri: get(row, 6)?,
        code_challenge: get(row, 7)?,
        auth_time: ts(row, 8)?,
        created_at: ts(row, 9)?,
        expires_at: ts(row, 10)?,
        nonce: get(row, 11)?,
    })
}

const REFRESH_COLUMNS: &str = "hash, family_id, client_id, user_id, resource, scopes, auth_time, created_at, expires_at, rotated_at, revoked_at";

fn refresh_row(row: &Row) -> Result<RefreshRecord, StoreError> {
    Ok(RefreshRecord {
        hash: get(row, 0)?,
        family_id: get(row, 1)?,
        client_id: get(row, 2)?,
        user_id: get(row, 3)?,
        resource: get(row, 4)?,
        scopes: scopes(get(row, 5)?),
        auth_time: ts(row, 6)?,
        created_at: ts(row, 7)?,
        expires_at: ts(row, 8)?,
        rotated_at: opt_ts(row, 9)?,
        revoked_at: opt_ts(row, 10)?,
    })
}

async fn insert_refresh<C: GenericClient>(c: &C, t: &RefreshRecord) -> Result<(), StoreError> {
    execute(
        c,
        &format!(
            "INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ),
        &[
            &t.hash,
            &t.family_id,
            &t.client_id,
            &t.user_id,
            &t.resource,
            &t.scopes.join(" "),
            &t.auth_time.as_millis(),
            &t.created_at.as_millis(),
            &t.expires_at.as_millis(),
            &millis(t.rotated_at),
            &millis(t.revoked_at),
        ],
    )
    .await
    .map_err(write("refresh token"))?;
    Ok(())
}

async fn refresh_by_key<C: GenericClient>(
    c: &C,
    family_id: &str,
    hash: &str,
) -> Result<Option<RefreshRecord>, StoreError> {
    query_opt(
        c,
        &format!("SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE family_id = $1 AND hash = $2"),
        &[&family_id, &hash],
    )
    .await
    .map_err(db)?
    .as_ref()
    .map(refresh_row)
    .transpose()
}

async fn revoke_family<C: GenericClient>(
    c: &C,
    family_id: &str,
    now: Timestamp,
) -> Result<u64, StoreError> {
    execute(
        c,
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
        &[&family_id, &now.as_millis()],
    )
    .await
    .map_err(db)
}

const CONSENT_COLUMNS: &str = "user_id, client_id, resource, scopes, created_at, updated_at";

fn consent_row(row: &Row) -> Result<ConsentRecord, StoreError> {
    Ok(ConsentRecord {
        user_id: get(row, 0)?,
        client_id: get(row, 1)?,
        resource: get(row, 2)?,
        scopes: scopes(get(row, 3)?),
        created_at: ts(row, 4)?,
        updated_at: ts(row, 5)?,
    })
}

fn password_row(row: &Row) -> Result<PasswordRecord, StoreError> {
    Ok(PasswordRecord {
        user_id: get(row, 0)?,
        hash: get(row, 1)?,
        failures: u32_col(row, 2)?,
        locked_until: opt_ts(row, 3)?,
        updated_at: ts(row, 4)?,
    })
}

const PASSWORD_COLUMNS: &str = "user_id, hash, failures::BIGINT, locked_until, updated_at";

#[async_trait]
impl GrantStore for PostgresStore {
    async fn insert_code(&self, c: &CodeRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        execute(
            &client,
            &format!(
                "INSERT INTO oauth_codes ({CODE_COLUMNS}, redeemed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)"
            ),
            &[
                &c.hash,
                &c.family_id,
                &c.client_id,
                &c.user_id,
                &c.resource,
                &c.scopes.join(" "),
                &c.redirect_uri,
                &c.code_challenge,
                &c.auth_time.as_millis(),
                &c.created_at.as_millis(),
                &c.expires_at.as_millis(),
                &c.nonce,
            ],
        )
        .await
        .map_err(write("authorization code"))?;
        Ok(())
    }

    async fn redeem_code(&self, hash: &str, now: Timestamp) -> Result<Redemption, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let spent = query_opt(
            &tx,
            &format!(
                "UPDATE oauth_codes SET redeemed_at = $2 WHERE hash = $1 AND redeemed_at IS NULL RETURNING {CODE_COLUMNS}"
            ),
            &[&hash, &now.as_millis()],
        )
        .await
        .map_err(db)?;
        let outcome = if let Some(row) = spent {
            Redemption::Redeemed(code_row(&row)?)
        } else {
            match query_opt(
                &tx,
                &format!("SELECT {CODE_COLUMNS} FROM oauth_codes WHERE hash = $1"),
                &[&hash],
            )
            .await
            .map_err(db)?
            {
                None => Redemption::Unknown,
                Some(row) => {
                    let code = code_row(&row)?;
                    // Waits for a first redemption still storing its token (it holds the row).
                    execute(
                        &tx,
                        "UPDATE oauth_codes SET replayed_at = $2 WHERE hash = $1 AND replayed_at IS NULL",
                        &[&hash, &now.as_millis()],
                    )
                    .await
                    .map_err(db)?;
                    revoke_family(&tx, &code.family_id, now).await?;
                    Redemption::Reused(code)
                }
            }
        };
        self.commit(tx, vec![]).await?;
        Ok(outcome)
    }

    async fn insert_refresh(&self, token: &RefreshRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        insert_refresh(&client, token).await
    }

    async fn refresh_token(
        &self,
        family_id: &str,
        hash: &str,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let client = self.client().await?;
        refresh_by_key(&client, family_id, hash).await
    }

    async fn insert_code_refresh(
        &self,
        code_hash: &str,
        token: &RefreshRecord,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        // The code's row, locked: a replay marks it only before this reads it or after this
        // commits (and then revokes what this stored).
        let replayed = query_opt(
            &tx,
            "SELECT replayed_at IS NOT NULL FROM oauth_codes WHERE hash = $1 FOR UPDATE",
            &[&code_hash],
        )
        .await
        .map_err(db)?
        .map(|r| get::<bool>(&r, 0))
        .transpose()?
        .unwrap_or(false);
        if replayed {
            self.commit(tx, vec![]).await?;
            return Ok(false);
        }
        insert_refresh(&tx, token).await?;
        self.commit(tx, vec![]).await?;
        Ok(true)
    }

    async fn rotate_refresh(
        &self,
        family_id: &str,
        hash: &str,
        next: &RefreshRecord,
        now: Timestamp,
        check: RotationCheck,
    ) -> Result<Rotation, StoreError> {
        let mut client = self.client().await?;
        let tx = begin(&mut client).await?;
        let spent = query_opt(
            &tx,
            &format!(
                "UPDATE refresh_tokens SET rotated_at = $3 WHERE family_id = $1 AND hash = $2 AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $3 RETURNING {REFRESH_COLUMNS}"
            ),
            &[&family_id, &hash, &now.as_millis()],
        )
        .await
        .map_err(db)?;
        let outcome = if let Some(row) = spent {
            let old = refresh_row(&row)?;
            if !check(&old) {
                // The spend is undone: a refused presentation changes nothing.
                tx.rollback().await.map_err(db)?;
                // The row as it was: the update matched only an unspent token.
                return Ok(Rotation::Refused(RefreshRecord {
                    rotated_at: None,
                    ..old
                }));
            }
            let successor = RefreshRecord {
                hash: next.hash.clone(),
                created_at: next.created_at,
                expires_at: next.expires_at,
                rotated_at: None,
                revoked_at: None,
                ..old
            };
            insert_refresh(&tx, &successor).await?;
            Rotation::Rotated(successor)
        } else {
            match refresh_by_key(&tx, family_id, hash).await? {
                None => Rotation::Unknown,
                Some(old) if !check(&old) => Rotation::Refused(old),
                Some(old) if old.revoked_at.is_some() || now >= old.expires_at => {
                    Rotation::Inactive(old)
                }
                Some(old) => {
                    revoke_family(&tx, &old.family_id, now).await?;
                    Rotation::Reused(old)
                }
            }
        };
        self.commit(tx, vec![]).await?;
        Ok(outcome)
    }

    async fn revoke_family(&self, family_id: &str, now: Timestamp) -> Result<u64, StoreError> {
        let client = self.client().await?;
        revoke_family(&client, family_id, now).await
    }

    async fn revoke_user_grants(
        &self,
        user_id: &str,
        client_id: Option<&str>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        execute(
            &client,
            "UPDATE refresh_tokens SET revoked_at = $3 WHERE user_id = $1 AND ($2::TEXT IS NULL OR client_id = $2) AND revoked_at IS NULL",
            &[&user_id, &client_id, &now.as_millis()],
        )
        .await
        .map_err(db)
    }

    async fn use_assertion(&self, key: &str, expires_at: Timestamp) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = execute(
            &client,
            "INSERT INTO used_assertions (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&key, &expires_at.as_millis()],
        )
        .await
        .map_err(db)?;
        Ok(n == 1)
    }

    async fn purge_grants(&self, before: Timestamp) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let at = before.as_millis();
        execute(
            &client,
            "DELETE FROM used_assertions WHERE expires_at < $1",
            &[&at],
        )
        .await
        .map_err(db)?;
        let codes = execute(
            &client,
            "DELETE FROM oauth_codes WHERE expires_at < $1",
            &[&at],
        )
        .await
        .map_err(db)?;
        let tokens = execute(
            &client,
            "DELETE FROM refresh_tokens WHERE expires_at < $1",
            &[&at],
        )
        .await
        .map_err(db)?;
        Ok(codes + tokens)
    }

    async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> Result<Option<ConsentRecord>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!(
                "SELECT {CONSENT_COLUMNS} FROM oauth_consents WHERE user_id = $1 AND client_id = $2 AND resource = $3"
            ),
            &[&user_id, &client_id, &resource],
        )
        .await
        .map_err(db)?
        .as_ref()
        .map(consent_row)
        .transpose()
    }

    async fn put_consent(&self, c: &ConsentRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        execute(
            &client,
            &format!(
                "INSERT INTO oauth_consents ({CONSENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (user_id, client_id, resource) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at"
            ),
            &[
                &c.user_id,
                &c.client_id,
                &c.resource,
                &c.scopes.join(" "),
                &c.created_at.as_millis(),
                &c.updated_at.as_millis(),
            ],
        )
        .await
        .map_err(write("consent"))?;
        Ok(())
    }

    async fn consents(&self, user_id: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        let client = self.client().await?;
        query(
            &client,
            &format!(
                "SELECT {CONSENT_COLUMNS} FROM oauth_consents WHERE user_id = $1 ORDER BY client_id, resource"
            ),
            &[&user_id],
        )
        .await
        .map_err(db)?
        .iter()
        .map(consent_row)
        .collect()
    }

    async fn delete_consents(
        &self,
        user_id: &str,
        client_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM oauth_consents WHERE user_id = $1 AND ($2::TEXT IS NULL OR client_id = $2)",
            &[&user_id, &client_id],
        )
        .await
        .map_err(db)
    }

    async fn password(&self, user_id: &str) -> Result<Option<PasswordRecord>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!("SELECT {PASSWORD_COLUMNS} FROM user_passwords WHERE user_id = $1"),
            &[&user_id],
        )
        .await
        .map_err(db)?
        .as_ref()
        .map(password_row)
        .transpose()
    }

    async fn set_password(
        &self,
        user_id: &str,
        hash: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let n = execute(
            &client,
            "INSERT INTO user_passwords (user_id, hash, failures, locked_until, updated_at) \
             SELECT id, $2, 0, NULL, $3 FROM users WHERE id = $1 \
             ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, failures = 0, locked_until = NULL, updated_at = excluded.updated_at",
            &[&user_id, &hash, &now.as_millis()],
        )
        .await
        .map_err(write("password"))?;
        StoreError::found(n > 0, "user")
    }

    async fn sign_in_failed(
        &self,
        user_id: &str,
        now: Timestamp,
        max_failures: u32,
        lock_secs: i64,
    ) -> Result<Option<PasswordRecord>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            &format!(
                "UPDATE user_passwords SET \
                   locked_until = CASE WHEN failures + 1 >= $2 THEN $3 ELSE locked_until END, \
                   failures = CASE WHEN failures + 1 >= $2 THEN 0 ELSE failures + 1 END \
                 WHERE user_id = $1 RETURNING {PASSWORD_COLUMNS}"
            ),
            &[
                &user_id,
                &i64::from(max_failures),
                &now.add_secs(lock_secs).as_millis(),
            ],
        )
        .await
        .map_err(db)?
        .as_ref()
        .map(password_row)
        .transpose()
    }

    async fn sign_in_succeeded(&self, user_id: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        execute(
            &client,
            "UPDATE user_passwords SET failures = 0 WHERE user_id = $1 AND failures <> 0",
            &[&user_id],
        )
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn user_id_by_email(&self, email_key: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT id FROM users WHERE email_key = $1",
            &[&email_key],
        )
        .await
        .map_err(db)?
        .as_ref()
        .map(|r| get(r, 0))
        .transpose()
    }
}
