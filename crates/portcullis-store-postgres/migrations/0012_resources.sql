-- Resource servers (MCP servers) Portcullis issues tokens for: the canonical URI is unique.
CREATE TABLE resources (
    id          TEXT PRIMARY KEY,
    uri         TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    description TEXT,
    scopes      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
