//! The authorization server's grants: codes, refresh tokens, consents, passwords.

use async_trait::async_trait;
use portcullis_domain::{
    CodeRecord, ConsentRecord, GrantStore, PasswordRecord, Redemption, RefreshRecord, Rotation,
    RotationCheck, StoreError, Timestamp,
};
use rusqlite::{OptionalExtension, params};

use crate::rows::{opt_ts, read_err, ts};
use crate::{SqliteStore, backend, write_error};

fn scopes(s: String) -> Vec<String> {
    s.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

const CODE_COLUMNS: &str = "hash, family_id, client_id, user_id, resource, scopes, redirect_uri, code_challenge, auth_time, created_at, expires_at, nonce";

fn code_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(CodeRecord, bool)> {
    Ok((
        CodeRecord {
            hash: row.get(0)?,
            family_id: row.get(1)?,
            client_id: row.get(2)?,
            user_id: row.get(3)?,
            resource: row.get(4)?,
            scopes: scopes(row.get(5)?),
            redirect_uri: row.get(6)?,
            code_challenge: row.get(7)?,
            auth_time: ts(row, 8)?,
            created_at: ts(row, 9)?,
            expires_at: ts(row, 10)?,
            nonce: row.get(11)?,
        },
        row.get::<_, Option<i64>>(12)?.is_some(),
    ))
}

const REFRESH_COLUMNS: &str = "hash, family_id, client_id, user_id, resource, scopes, auth_time, created_at, expires_at, rotated_at, revoked_at";

fn refresh_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RefreshRecord> {
    Ok(RefreshRecord {
        hash: row.get(0)?,
        family_id: row.get(1)?,
        client_id: row.get(2)?,
        user_id: row.get(3)?,
        resource: row.get(4)?,
        scopes: scopes(row.get(5)?),
        auth_time: ts(row, 6)?,
        created_at: ts(row, 7)?,
        expires_at: ts(row, 8)?,
        rotated_at: opt_ts(row, 9)?,
        revoked_at: opt_ts(row, 10)?,
    })
}

/// Stores the first token of a family, and the family.
fn insert_family(tx: &rusqlite::Connection, t: &RefreshRecord) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO refresh_families (family_id, user_id, client_id) VALUES (?1, ?2, ?3) ON CONFLICT (family_id) DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![t.family_id, t.user_id, t.client_id]))
    .map_err(write_error("refresh token family"))?;
    insert_refresh(tx, t)
}

/// Stores a token of a family already stored (a successor copies its family's user and client).
fn insert_refresh(tx: &rusqlite::Connection, t: &RefreshRecord) -> Result<(), StoreError> {
    tx.prepare_cached(&format!(
        "INSERT INTO refresh_tokens ({REFRESH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            t.hash,
            t.family_id,
            t.client_id,
            t.user_id,
            t.resource,
            t.scopes.join(" "),
            t.auth_time.as_millis(),
            t.created_at.as_millis(),
            t.expires_at.as_millis(),
            t.rotated_at.map(Timestamp::as_millis),
            t.revoked_at.map(Timestamp::as_millis),
        ])
    })
    .map_err(write_error("refresh token"))?;
    Ok(())
}

fn refresh_by_key(
    c: &rusqlite::Connection,
    family_id: &str,
    hash: &str,
) -> Result<Option<RefreshRecord>, StoreError> {
    c.prepare_cached(&format!(
        "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE family_id = ?1 AND hash = ?2"
    ))
    .and_then(|mut s| s.query_row([family_id, hash], refresh_row).optional())
    .map_err(read_err)
}

fn revoke_family(
    c: &rusqlite::Connection,
    family_id: &str,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let n = c
        .execute(
            "UPDATE refresh_tokens SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at IS NULL",
            params![family_id, now.as_millis()],
        )
        .map_err(backend)?;
    Ok(n as u64)
}

fn consent_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ConsentRecord> {
    Ok(ConsentRecord {
        user_id: row.get(0)?,
        client_id: row.get(1)?,
        resource: row.get(2)?,
        scopes: scopes(row.get(3)?),
        created_at: ts(row, 4)?,
        updated_at: ts(row, 5)?,
    })
}

fn password_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<PasswordRecord> {
    Ok(PasswordRecord {
        user_id: row.get(0)?,
        hash: row.get(1)?,
        failures: row.get(2)?,
        locked_until: opt_ts(row, 3)?,
        updated_at: ts(row, 4)?,
    })
}

fn password(c: &rusqlite::Connection, user_id: &str) -> Result<Option<PasswordRecord>, StoreError> {
    c.prepare_cached(
        "SELECT user_id, hash, failures, locked_until, updated_at FROM user_passwords WHERE user_id = ?1",
    )
    .and_then(|mut s| s.query_row([user_id], password_row).optional())
    .map_err(read_err)
}

#[async_trait]
impl GrantStore for SqliteStore {
    async fn insert_code(&self, code: &CodeRecord) -> Result<(), StoreError> {
        let c = code.clone();
        self.write(move |tx| {
            tx.prepare_cached(&format!(
                "INSERT INTO oauth_codes ({CODE_COLUMNS}, redeemed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, NULL)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    c.hash,
                    c.family_id,
                    c.client_id,
                    c.user_id,
                    c.resource,
                    c.scopes.join(" "),
                    c.redirect_uri,
                    c.code_challenge,
                    c.auth_time.as_millis(),
                    c.created_at.as_millis(),
                    c.expires_at.as_millis(),
                    c.nonce,
                ])
            })
            .map_err(write_error("authorization code"))?;
            Ok(((), vec![]))
        })
        .await
    }

    async fn redeem_code(&self, hash: &str, now: Timestamp) -> Result<Redemption, StoreError> {
        let hash = hash.to_owned();
        self.write(move |tx| {
            let found = tx
                .prepare_cached(&format!(
                    "SELECT {CODE_COLUMNS}, redeemed_at FROM oauth_codes WHERE hash = ?1"
                ))
                .and_then(|mut s| s.query_row([&hash], code_row).optional())
                .map_err(read_err)?;
            let outcome = match found {
                None => Redemption::Unknown,
                Some((code, true)) => {
                    tx.execute(
                        "UPDATE oauth_codes SET replayed_at = ?2 WHERE hash = ?1 AND replayed_at IS NULL",
                        params![hash, now.as_millis()],
                    )
                    .map_err(backend)?;
                    revoke_family(tx, &code.family_id, now)?;
                    Redemption::Reused(code)
                }
                Some((code, false)) => {
                    tx.execute(
                        "UPDATE oauth_codes SET redeemed_at = ?2 WHERE hash = ?1",
                        params![hash, now.as_millis()],
                    )
                    .map_err(backend)?;
                    Redemption::Redeemed(code)
                }
            };
            Ok((outcome, vec![]))
        })
        .await
    }

    async fn insert_refresh(&self, token: &RefreshRecord) -> Result<(), StoreError> {
        let t = token.clone();
        self.write(move |tx| {
            insert_family(tx, &t)?;
            Ok(((), vec![]))
        })
        .await
    }

    async fn refresh_token(
        &self,
        family_id: &str,
        hash: &str,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let (family_id, hash) = (family_id.to_owned(), hash.to_owned());
        self.read(move |c| refresh_by_key(c, &family_id, &hash))
            .await
    }

    async fn insert_code_refresh(
        &self,
        code_hash: &str,
        token: &RefreshRecord,
    ) -> Result<bool, StoreError> {
        let (code_hash, t) = (code_hash.to_owned(), token.clone());
        self.write(move |tx| {
            let replayed: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM oauth_codes WHERE hash = ?1 AND replayed_at IS NOT NULL)",
                    [&code_hash],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if replayed {
                return Ok((false, vec![]));
            }
            insert_family(tx, &t)?;
            Ok((true, vec![]))
        })
        .await
    }

    async fn rotate_refresh(
        &self,
        family_id: &str,
        hash: &str,
        next: &RefreshRecord,
        now: Timestamp,
        check: RotationCheck,
    ) -> Result<Rotation, StoreError> {
        let (family_id, hash, next) = (family_id.to_owned(), hash.to_owned(), next.clone());
        self.write(move |tx| {
            let Some(old) = refresh_by_key(tx, &family_id, &hash)? else {
                return Ok((Rotation::Unknown, vec![]));
            };
            let outcome = if !check(&old) {
                Rotation::Refused(old)
            } else if old.revoked_at.is_some() || now >= old.expires_at {
                Rotation::Inactive(old)
            } else if old.rotated_at.is_some() {
                revoke_family(tx, &old.family_id, now)?;
                Rotation::Reused(old)
            } else {
                tx.prepare_cached(
                    "UPDATE refresh_tokens SET rotated_at = ?3 WHERE family_id = ?1 AND hash = ?2",
                )
                .and_then(|mut s| s.execute(params![family_id, hash, now.as_millis()]))
                .map_err(backend)?;
                let successor = RefreshRecord {
                    hash: next.hash,
                    created_at: next.created_at,
                    expires_at: next.expires_at,
                    rotated_at: None,
                    revoked_at: None,
                    ..old
                };
                insert_refresh(tx, &successor)?;
                Rotation::Rotated(successor)
            };
            Ok((outcome, vec![]))
        })
        .await
    }

    async fn revoke_family(&self, family_id: &str, now: Timestamp) -> Result<u64, StoreError> {
        let family_id = family_id.to_owned();
        self.write(move |tx| Ok((revoke_family(tx, &family_id, now)?, vec![])))
            .await
    }

    async fn revoke_user_grants(
        &self,
        user_id: &str,
        client_id: Option<&str>,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let (user_id, client_id) = (user_id.to_owned(), client_id.map(str::to_owned));
        self.write(move |tx| {
            let n = tx
                .execute(
                    "UPDATE refresh_tokens SET revoked_at = ?3 WHERE family_id IN (SELECT family_id FROM refresh_families WHERE user_id = ?1 AND (?2 IS NULL OR client_id = ?2)) AND revoked_at IS NULL",
                    params![user_id, client_id, now.as_millis()],
                )
                .map_err(backend)?;
            Ok((n as u64, vec![]))
        })
        .await
    }

    async fn use_assertion(&self, key: &str, expires_at: Timestamp) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.write(move |tx| {
            let n = tx
                .execute(
                    "INSERT INTO used_assertions (key, expires_at) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                    params![key, expires_at.as_millis()],
                )
                .map_err(backend)?;
            Ok((n == 1, vec![]))
        })
        .await
    }

    async fn purge_grants(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.write(move |tx| {
            let at = before.as_millis();
            tx.execute("DELETE FROM used_assertions WHERE expires_at < ?1", [at])
                .map_err(backend)?;
            let codes = tx
                .execute("DELETE FROM oauth_codes WHERE expires_at < ?1", [at])
                .map_err(backend)?;
            let tokens = tx
                .execute("DELETE FROM refresh_tokens WHERE expires_at < ?1", [at])
                .map_err(backend)?;
            tx.execute(
                "DELETE FROM refresh_families WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = refresh_families.family_id)",
                [],
            )
            .map_err(backend)?;
            Ok(((codes + tokens) as u64, vec![]))
        })
        .await
    }

    async fn consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> Result<Option<ConsentRecord>, StoreError> {
        let key = (
            user_id.to_owned(),
            client_id.to_owned(),
            resource.to_owned(),
        );
        self.read(move |c| {
            c.prepare_cached(
                "SELECT user_id, client_id, resource, scopes, created_at, updated_at FROM oauth_consents WHERE user_id = ?1 AND client_id = ?2 AND resource = ?3",
            )
            .and_then(|mut s| s.query_row(params![key.0, key.1, key.2], consent_row).optional())
            .map_err(read_err)
        })
        .await
    }

    async fn put_consent(&self, consent: &ConsentRecord) -> Result<(), StoreError> {
        let c = consent.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO oauth_consents (user_id, client_id, resource, scopes, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (user_id, client_id, resource) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at",
                params![
                    c.user_id,
                    c.client_id,
                    c.resource,
                    c.scopes.join(" "),
                    c.created_at.as_millis(),
                    c.updated_at.as_millis()
                ],
            )
            .map_err(write_error("consent"))?;
            Ok(((), vec![]))
        })
        .await
    }

    async fn consents(&self, user_id: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        let user_id = user_id.to_owned();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT user_id, client_id, resource, scopes, created_at, updated_at FROM oauth_consents WHERE user_id = ?1 ORDER BY client_id, resource",
            )
            .and_then(|mut s| s.query_map([user_id], consent_row)?.collect())
            .map_err(read_err)
        })
        .await
    }

    async fn delete_consents(
        &self,
        user_id: &str,
        client_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        let (user_id, client_id) = (user_id.to_owned(), client_id.map(str::to_owned));
        self.write(move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM oauth_consents WHERE user_id = ?1 AND (?2 IS NULL OR client_id = ?2)",
                    params![user_id, client_id],
                )
                .map_err(backend)?;
            Ok((n as u64, vec![]))
        })
        .await
    }

    async fn password(&self, user_id: &str) -> Result<Option<PasswordRecord>, StoreError> {
        let user_id = user_id.to_owned();
        self.read(move |c| password(c, &user_id)).await
    }

    async fn set_password(
        &self,
        user_id: &str,
        hash: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (user_id, hash) = (user_id.to_owned(), hash.to_owned());
        self.write(move |tx| {
            let exists: bool = tx
                .query_row("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)", [&user_id], |r| {
                    r.get(0)
                })
                .map_err(backend)?;
            StoreError::found(exists, "user")?;
            tx.execute(
                "INSERT INTO user_passwords (user_id, hash, failures, locked_until, updated_at) VALUES (?1, ?2, 0, NULL, ?3) \
                 ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, failures = 0, locked_until = NULL, updated_at = excluded.updated_at",
                params![user_id, hash, now.as_millis()],
            )
            .map_err(write_error("password"))?;
            Ok(((), vec![]))
        })
        .await
    }

    async fn sign_in_failed(
        &self,
        user_id: &str,
        now: Timestamp,
        max_failures: u32,
        lock_secs: i64,
    ) -> Result<Option<PasswordRecord>, StoreError> {
        let user_id = user_id.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE user_passwords SET \
                   locked_until = CASE WHEN failures + 1 >= ?2 THEN ?3 ELSE locked_until END, \
                   failures = CASE WHEN failures + 1 >= ?2 THEN 0 ELSE failures + 1 END \
                 WHERE user_id = ?1",
                params![user_id, max_failures, now.add_secs(lock_secs).as_millis()],
            )
            .map_err(backend)?;
            Ok((password(tx, &user_id)?, vec![]))
        })
        .await
    }

    async fn sign_in_succeeded(&self, user_id: &str) -> Result<(), StoreError> {
        let user_id = user_id.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE user_passwords SET failures = 0 WHERE user_id = ?1 AND failures <> 0",
                [user_id],
            )
            .map_err(backend)?;
            Ok(((), vec![]))
        })
        .await
    }

    async fn user_id_by_email(&self, email_key: &str) -> Result<Option<String>, StoreError> {
        let key = email_key.to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT id FROM users WHERE email_key = ?1")
                .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
                .map_err(read_err)
        })
        .await
    }
}
