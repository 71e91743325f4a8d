-- What the IdP knows the session by, so an IdP-initiated logout (SAML
-- LogoutRequest, OIDC back-channel logout) can find the sessions it means,
-- and an SP/RP-initiated logout can name the user to the IdP. NULL for
-- sessions not made by an SSO login (CLI-minted ones, for instance).
ALTER TABLE sessions ADD COLUMN idp_subject TEXT;
ALTER TABLE sessions ADD COLUMN idp_session TEXT;
-- Protocol-private data for starting a logout at the IdP later (OIDC: the
-- ID token for id_token_hint; SAML: the NameID and its qualifiers).
ALTER TABLE sessions ADD COLUMN logout_hint TEXT;

CREATE INDEX sessions_idp_subject_idx ON sessions (connection, idp_subject);
CREATE INDEX sessions_idp_session_idx ON sessions (connection, idp_session);
