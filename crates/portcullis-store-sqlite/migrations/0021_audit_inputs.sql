-- What the policies read and allowed for each decision (roles, claims, the scopes the request
-- got), as JSON: a draft policy set is replayed against it. NULL for events recorded before, and
-- for requests refused before the policies ran.
ALTER TABLE audit_events ADD COLUMN inputs TEXT;
