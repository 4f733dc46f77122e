-- Requests refused before a decision (unauthenticated, malformed, over a rate limit), counted per
-- minute, surface and reason rather than recorded one by one.
CREATE TABLE rejected_requests (
    minute  INTEGER NOT NULL,
    surface TEXT NOT NULL,
    reason  TEXT NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (minute, surface, reason)
) STRICT;
