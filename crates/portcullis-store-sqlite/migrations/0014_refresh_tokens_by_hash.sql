-- Refresh tokens kept in one B-tree ordered by their hash (WITHOUT ROWID: no separate key index),
-- and no expiry index (the hourly purge reads the table): a rotation writes fewer pages.
CREATE TABLE refresh_tokens_by_hash (
    hash       TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    resource   TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    auth_time  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER,
    revoked_at INTEGER
) STRICT, WITHOUT ROWID;

INSERT INTO refresh_tokens_by_hash SELECT hash, family_id, client_id, user_id, resource, scopes,
    auth_time, created_at, expires_at, rotated_at, revoked_at FROM refresh_tokens;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_by_hash RENAME TO refresh_tokens;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id, client_id);
