-- Admin keys carry scopes (space-separated: read, apps, policies, vault, directory, issuers,
-- clients, audit, keys, admin). Keys made before scopes existed could do everything: they keep
-- `admin`.
ALTER TABLE admin_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'admin';
