-- Refresh tokens kept together by family: a token names its family, and the table is ordered by
-- (family, hash), so that a rotation (the spent token and its successor) rewrites one B-tree page
-- instead of two, and a family is revoked over one range of the key (no family index to write).
-- Tokens issued before name no family: their clients sign in again.
CREATE TABLE refresh_tokens_by_family (
    hash       TEXT NOT NULL,
    family_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    resource   TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    auth_time  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER,
    revoked_at INTEGER,
    PRIMARY KEY (family_id, hash)
) STRICT, WITHOUT ROWID;

DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_by_family RENAME TO refresh_tokens;
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id, client_id);
