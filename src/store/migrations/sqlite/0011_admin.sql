-- Tenants made through the admin API (file tenants are never here). `doc` is
-- the tenant as JSON without its connections, which are rows below.
CREATE TABLE tenants (
    id         TEXT    NOT NULL PRIMARY KEY,
    doc        TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- One connection as JSON, sealed whole (it may hold a client secret or a
-- private key). The primary key makes connection ids global.
CREATE TABLE tenant_connections (
    id         TEXT    NOT NULL PRIMARY KEY,
    tenant     TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    doc        TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX tenant_connections_tenant ON tenant_connections (tenant, position);

-- One row. Every tenant write bumps it first: the writers' lock, and what
-- replicas compare to know they are behind.
CREATE TABLE tenant_config_version (
    id      INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
) STRICT;
INSERT INTO tenant_config_version (id, version) VALUES (1, 0);

-- Operator tokens of the admin API: `key_id` finds the row, `secret_hash`
-- is the SHA-256 of the whole token.
CREATE TABLE admin_tokens (
    key_id       TEXT    NOT NULL PRIMARY KEY,
    name         TEXT    NOT NULL,
    secret_hash  TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;
CREATE UNIQUE INDEX admin_tokens_active_name ON admin_tokens (name) WHERE revoked_at IS NULL;

-- Setup links handed to a customer's IT admin; only the token's hash.
CREATE TABLE setup_links (
    id         TEXT    NOT NULL PRIMARY KEY,
    tenant     TEXT    NOT NULL,
    token_hash TEXT    NOT NULL,
    intents    TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER
) STRICT;
CREATE INDEX setup_links_tenant ON setup_links (tenant);

-- Every change made through the admin API or the CLI, written in the
-- change's own transaction; secrets redacted before they get here.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       INTEGER NOT NULL,
    tenant      TEXT,
    actor_kind  TEXT    NOT NULL
        CHECK (actor_kind IN ('operator_token', 'setup_link', 'tenant_admin', 'cli')),
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    before_json TEXT,
    after_json  TEXT,
    request_id  TEXT
) STRICT;
CREATE INDEX audit_events_tenant ON audit_events (tenant, id);
