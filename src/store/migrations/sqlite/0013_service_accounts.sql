-- Service accounts: machine callers of one tenant. The account is the
-- principal (its id is the subject the app sees); its keys are the bearer
-- tokens, several at once only while a rotation overlaps.
CREATE TABLE service_accounts (
    id           TEXT    NOT NULL PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    role         TEXT,
    created_by   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER
) STRICT;
CREATE UNIQUE INDEX service_accounts_active_name
    ON service_accounts (tenant, name) WHERE revoked_at IS NULL;
CREATE INDEX service_accounts_tenant ON service_accounts (tenant, created_at);

-- One token of an account: `key_id` finds the row, `secret_hash` is the
-- SHA-256 of the whole token. `retires_at`: set by a rotation, the end of
-- the overlap during which the old token still works.
CREATE TABLE service_account_keys (
    key_id      TEXT    NOT NULL PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES service_accounts (id) ON DELETE CASCADE,
    secret_hash TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    retires_at  INTEGER
) STRICT;
CREATE INDEX service_account_keys_account ON service_account_keys (account_id);
