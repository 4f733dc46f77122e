-- The OpenID Connect nonce of an authorization request, returned in the code's ID token.
ALTER TABLE oauth_codes ADD COLUMN nonce TEXT;
