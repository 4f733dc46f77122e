-- The management audit: who changed what through the management API.
CREATE TABLE management_events (
    id         TEXT PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor_id   TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    change     TEXT NOT NULL,
    request_id TEXT
) STRICT;
CREATE INDEX management_events_by_target ON management_events (target, id);
