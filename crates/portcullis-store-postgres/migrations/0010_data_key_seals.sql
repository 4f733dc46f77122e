-- How many secrets each data key sealed: a key is rotated well before AES-GCM's random-nonce limit.
ALTER TABLE data_keys ADD COLUMN seals BIGINT NOT NULL DEFAULT 0;
