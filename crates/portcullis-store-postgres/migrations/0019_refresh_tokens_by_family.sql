-- Refresh tokens keyed by family: a token names its family, so a family's tokens are found (and
-- revoked) over one range of the key. Tokens issued before name no family: their clients sign in
-- again.
DELETE FROM refresh_tokens;
ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_pkey;
ALTER TABLE refresh_tokens ADD PRIMARY KEY (family_id, hash);
DROP INDEX refresh_tokens_family;
