-- One-time assertions (ID-JAG grants) already used: a hash of their issuer and jti, kept until
-- they expire, so that a replay is refused on every node.
CREATE TABLE used_assertions (
    key        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
