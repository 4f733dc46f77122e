-- The decisions of a time window, read by the summary a dashboard charts (GET
-- /v1/mgmt/audit/summary) and by retention: by time, holding the columns the summary groups and
-- sums, so that it reads the index alone, never the events' JSON.
CREATE INDEX audit_by_time ON audit_events (at, app_id, outcome, latency_us);
