-- Identities: a token reaches a directory user only through an explicit link from its issuer and
-- subject. Before this migration a token's `sub` was taken as a directory user id, whatever its
-- issuer; existing users keep no link until an admin adds one (see the README).
CREATE TABLE user_identities (
    issuer  TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (issuer, subject)
) STRICT;
CREATE INDEX user_identities_by_user ON user_identities (user_id);
