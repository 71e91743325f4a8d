-- What a session knows beyond the principal's core: IdP claims selected for
-- headers and the assertion (a JSON object of string lists), and how the
-- IdP authenticated the user (step-up checks them). NULL on sessions made
-- before this version, read as "none".
ALTER TABLE sessions ADD COLUMN claims_json TEXT;
ALTER TABLE sessions ADD COLUMN acr TEXT;
ALTER TABLE sessions ADD COLUMN amr_json TEXT;
-- Unix seconds.
ALTER TABLE sessions ADD COLUMN auth_time BIGINT;
