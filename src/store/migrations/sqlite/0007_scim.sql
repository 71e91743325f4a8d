-- SCIM 2.0 (issue 6). A SCIM User is a `users` row (the identity SSO login
-- finds by tenant + email) plus its SCIM document here, sharing the id.
-- Groups and their memberships live only here; memberships have their own
-- table so a change to a 50,000-member group touches only the changed rows.

-- One bearer token per tenant: `key_id` finds the row, `secret_hash` is the
-- SHA-256 of the whole token (compared in constant time).
CREATE TABLE scim_tokens (
    tenant      TEXT    NOT NULL PRIMARY KEY,
    key_id      TEXT    NOT NULL UNIQUE,
    secret_hash TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

-- Per-tenant write sequence. Every SCIM write transaction starts by bumping
-- it: that serialises a tenant's writers (SQLite: takes the write lock at
-- once; PostgreSQL: row lock) and numbers changes for the webhook outbox.
CREATE TABLE scim_tenants (
    tenant TEXT    NOT NULL PRIMARY KEY,
    seq    INTEGER NOT NULL
) STRICT;

CREATE TABLE scim_users (
    id            TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    tenant        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    name_lower    TEXT    NOT NULL,
    external_id   TEXT,
    doc           TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    -- The tenant's write sequence number at creation: the stable listing order.
    seq           INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX scim_users_name_idx ON scim_users (tenant, name_lower);
CREATE INDEX scim_users_external_id_idx ON scim_users (tenant, external_id);
-- Stable listing order (pagination, keyset scans) without a sort.
CREATE INDEX scim_users_order_idx ON scim_users (tenant, seq, id);

CREATE TABLE scim_groups (
    id            TEXT    NOT NULL PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    name_lower    TEXT    NOT NULL,
    external_id   TEXT,
    doc           TEXT    NOT NULL,
    version       INTEGER NOT NULL,
    -- The tenant's write sequence number at creation: the stable listing order.
    seq           INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX scim_groups_name_idx ON scim_groups (tenant, name_lower);
CREATE INDEX scim_groups_external_id_idx ON scim_groups (tenant, external_id);
CREATE INDEX scim_groups_order_idx ON scim_groups (tenant, seq, id);

CREATE TABLE scim_members (
    group_id    TEXT NOT NULL REFERENCES scim_groups (id) ON DELETE CASCADE,
    member_id   TEXT NOT NULL,
    member_type TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX scim_members_member_idx ON scim_members (member_id);
