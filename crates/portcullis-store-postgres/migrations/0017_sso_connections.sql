-- Single sign-on connections: upstream OpenID providers users sign in with, and the rules
-- mapping their claims to roles and tenants (settings, JSON). The client secret is sealed.
CREATE TABLE sso_connections (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    issuer        TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    client_secret TEXT,
    settings      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
