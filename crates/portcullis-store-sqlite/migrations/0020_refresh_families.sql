-- A refresh-token family's user and client, written once when the family starts: revoking a
-- user's grants finds the families here, so that a rotation writes the token table alone and
-- updates no index (measured: one B-tree page fewer per rotation in the log).
CREATE TABLE refresh_families (
    family_id TEXT PRIMARY KEY,
    user_id   TEXT NOT NULL,
    client_id TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX refresh_families_user ON refresh_families (user_id, client_id);

INSERT OR IGNORE INTO refresh_families (family_id, user_id, client_id)
    SELECT family_id, user_id, client_id FROM refresh_tokens;
DROP INDEX refresh_tokens_user;
