-- When a redeemed code was presented again: the tokens of its family are refused from then on,
-- even one its first redemption has not stored yet.
ALTER TABLE oauth_codes ADD COLUMN replayed_at INTEGER;
