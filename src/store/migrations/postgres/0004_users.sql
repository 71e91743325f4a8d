-- People who may sign in, per tenant. Rows come from just-in-time
-- provisioning at login, operator invitations, and (later) SCIM.
CREATE TABLE users (
    id            TEXT   NOT NULL PRIMARY KEY,
    tenant        TEXT   NOT NULL,
    email         TEXT   NOT NULL,
    email_lower   TEXT   NOT NULL,
    name          TEXT,
    role          TEXT,
    source        TEXT   NOT NULL,
    active        BIGINT NOT NULL,
    subject       TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    last_login_at BIGINT
);

CREATE UNIQUE INDEX users_tenant_email_idx ON users (tenant, email_lower);
