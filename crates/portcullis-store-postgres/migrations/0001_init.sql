-- Portcullis schema, PostgreSQL: the translation of the SQLite schema. Times are Unix
-- milliseconds (BIGINT); JSON documents are TEXT; secrets are BYTEA; key ids are BIGINT (they are
-- u32 in Rust, which INTEGER cannot hold).
-- "None" for a connection's user or tenant is the empty string, so that the unique key works.
-- Ids and names compare and sort bytewise (COLLATE "C"), as in SQLite, whatever the database's
-- collation: pagination cursors and list orders are the same on both backends.
-- Constraints are named: the store tells which unique value collided from the constraint's name.

CREATE TABLE outbound_apps (
    id                TEXT COLLATE "C" NOT NULL,
    name              TEXT NOT NULL,
    description       TEXT,
    kind              TEXT NOT NULL,
    settings          TEXT NOT NULL,
    client_secret     BYTEA,
    client_secret_key BIGINT,
    revision          BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    CONSTRAINT outbound_apps_pkey PRIMARY KEY (id)
);

CREATE TABLE policies (
    id         TEXT COLLATE "C" NOT NULL,
    app_id     TEXT COLLATE "C" NOT NULL,
    name_key   TEXT COLLATE "C" NOT NULL,
    document   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT policies_pkey PRIMARY KEY (id),
    CONSTRAINT policies_app_fkey FOREIGN KEY (app_id) REFERENCES outbound_apps (id) ON DELETE CASCADE,
    CONSTRAINT policies_name_key UNIQUE (app_id, name_key)
);
CREATE INDEX policies_by_app ON policies (app_id, id);

CREATE TABLE roles (
    name        TEXT COLLATE "C" NOT NULL,
    description TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT roles_pkey PRIMARY KEY (name)
);

CREATE TABLE tenants (
    id         TEXT COLLATE "C" NOT NULL,
    name       TEXT NOT NULL,
    attributes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT tenants_pkey PRIMARY KEY (id)
);

CREATE TABLE users (
    id         TEXT COLLATE "C" NOT NULL,
    email      TEXT,
    email_key  TEXT COLLATE "C",
    name       TEXT,
    attributes TEXT NOT NULL,
    disabled   BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_email_key UNIQUE (email_key)
);

CREATE TABLE user_roles (
    user_id TEXT COLLATE "C" NOT NULL,
    role    TEXT COLLATE "C" NOT NULL,
    CONSTRAINT user_roles_pkey PRIMARY KEY (user_id, role),
    CONSTRAINT user_roles_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT user_roles_role_fkey FOREIGN KEY (role) REFERENCES roles (name)
);
CREATE INDEX user_roles_by_role ON user_roles (role);

CREATE TABLE user_tenants (
    user_id   TEXT COLLATE "C" NOT NULL,
    tenant_id TEXT COLLATE "C" NOT NULL,
    CONSTRAINT user_tenants_pkey PRIMARY KEY (user_id, tenant_id),
    CONSTRAINT user_tenants_user_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT user_tenants_tenant_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
);
CREATE INDEX user_tenants_by_tenant ON user_tenants (tenant_id);

CREATE TABLE user_tenant_roles (
    user_id   TEXT COLLATE "C" NOT NULL,
    tenant_id TEXT COLLATE "C" NOT NULL,
    role      TEXT COLLATE "C" NOT NULL,
    CONSTRAINT user_tenant_roles_pkey PRIMARY KEY (user_id, tenant_id, role),
    CONSTRAINT user_tenant_roles_role_fkey FOREIGN KEY (role) REFERENCES roles (name),
    CONSTRAINT user_tenant_roles_membership_fkey FOREIGN KEY (user_id, tenant_id)
        REFERENCES user_tenants (user_id, tenant_id) ON DELETE CASCADE
);
CREATE INDEX user_tenant_roles_by_role ON user_tenant_roles (role);

CREATE TABLE connections (
    id                 TEXT COLLATE "C" NOT NULL,
    app_id             TEXT COLLATE "C" NOT NULL,
    user_id            TEXT COLLATE "C" NOT NULL,
    tenant_id          TEXT COLLATE "C" NOT NULL,
    kind               TEXT NOT NULL,
    status             TEXT NOT NULL,
    scopes             TEXT NOT NULL,
    token_type         TEXT,
    access             BYTEA NOT NULL,
    refresh            BYTEA,
    key_id             BIGINT NOT NULL,
    expires_at         BIGINT,
    provider_subject   TEXT,
    version            BIGINT NOT NULL,
    lease_owner        TEXT,
    lease_until        BIGINT,
    last_refresh_at    BIGINT,
    last_refresh_error TEXT,
    last_used_at       BIGINT,
    granted_by         TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    CONSTRAINT connections_pkey PRIMARY KEY (id),
    CONSTRAINT connections_app_fkey FOREIGN KEY (app_id) REFERENCES outbound_apps (id) ON DELETE CASCADE,
    CONSTRAINT connections_key UNIQUE (app_id, user_id, tenant_id)
);
CREATE INDEX connections_by_user ON connections (user_id, id);
CREATE INDEX connections_by_tenant ON connections (tenant_id);
CREATE INDEX connections_by_key ON connections (key_id);

CREATE TABLE consent_states (
    id            TEXT COLLATE "C" NOT NULL,
    app_id        TEXT COLLATE "C" NOT NULL,
    user_id       TEXT COLLATE "C" NOT NULL,
    tenant_id     TEXT COLLATE "C" NOT NULL,
    scopes        TEXT NOT NULL,
    return_url    TEXT,
    pkce_verifier BYTEA,
    key_id        BIGINT,
    redirect_uri  TEXT NOT NULL,
    initiated_by  TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    CONSTRAINT consent_states_pkey PRIMARY KEY (id),
    CONSTRAINT consent_states_app_fkey FOREIGN KEY (app_id) REFERENCES outbound_apps (id) ON DELETE CASCADE
);
CREATE INDEX consent_states_by_expiry ON consent_states (expires_at);
CREATE INDEX consent_states_by_app ON consent_states (app_id);

CREATE TABLE admin_keys (
    id          TEXT COLLATE "C" NOT NULL,
    name        TEXT NOT NULL,
    secret_hash BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    CONSTRAINT admin_keys_pkey PRIMARY KEY (id),
    CONSTRAINT admin_keys_secret_hash_key UNIQUE (secret_hash)
);

CREATE TABLE clients (
    id          TEXT COLLATE "C" NOT NULL,
    name        TEXT NOT NULL,
    secret_hash BYTEA,
    metadata    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT clients_pkey PRIMARY KEY (id)
);

CREATE TABLE issuers (
    id                 TEXT COLLATE "C" NOT NULL,
    issuer             TEXT COLLATE "C" NOT NULL,
    jwks_url           TEXT,
    discovery_url      TEXT,
    audiences          TEXT NOT NULL,
    algorithms         TEXT NOT NULL,
    roles_claim        TEXT,
    tenant_claim       TEXT,
    clock_skew_seconds BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    CONSTRAINT issuers_pkey PRIMARY KEY (id),
    CONSTRAINT issuers_issuer_key UNIQUE (issuer)
);

CREATE TABLE data_keys (
    id            BIGINT NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped       BYTEA NOT NULL,
    active        BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL,
    CONSTRAINT data_keys_pkey PRIMARY KEY (id)
);

CREATE TABLE audit_events (
    id                  TEXT COLLATE "C" NOT NULL,
    at                  BIGINT NOT NULL,
    action              TEXT NOT NULL,
    app_id              TEXT COLLATE "C",
    user_id             TEXT COLLATE "C",
    tenant_id           TEXT COLLATE "C",
    client_id           TEXT COLLATE "C",
    issuer              TEXT,
    requested_scopes    TEXT NOT NULL,
    granted_scopes      TEXT NOT NULL,
    outcome             TEXT NOT NULL,
    reason              TEXT,
    deciding_policies   TEXT NOT NULL,
    considered_policies TEXT NOT NULL,
    shadow_outcome      TEXT,
    latency_us          BIGINT NOT NULL,
    CONSTRAINT audit_events_pkey PRIMARY KEY (id)
);
CREATE INDEX audit_by_app ON audit_events (app_id, id);
CREATE INDEX audit_by_user ON audit_events (user_id, id);
