ALTER TABLE issuers ADD COLUMN required_typ TEXT;
