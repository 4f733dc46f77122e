-- Portcullis's own token-signing keys: the private key sealed (bound to its kid), the public JWK
-- as published. Exactly one key has no retired_at: the active one.
CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY,
    alg                TEXT NOT NULL,
    private_key        BLOB NOT NULL,
    private_key_sealed INTEGER NOT NULL,
    public_jwk         TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    retired_at         INTEGER
) STRICT;

CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((retired_at IS NULL)) WHERE retired_at IS NULL;
