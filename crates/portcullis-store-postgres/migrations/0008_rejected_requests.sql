-- Requests refused before a decision (unauthenticated, malformed, over a rate limit), counted per
-- minute, surface and reason rather than recorded one by one.
CREATE TABLE rejected_requests (
    minute  BIGINT NOT NULL,
    surface TEXT NOT NULL,
    reason  TEXT NOT NULL,
    count   BIGINT NOT NULL,
    PRIMARY KEY (minute, surface, reason)
);
