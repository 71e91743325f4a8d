-- Webhook outbox (issue 7). A change and the row announcing it commit in
-- one transaction, so an acknowledged write always has its event and a
-- rolled-back one never does. `seq` numbers a tenant's events gap-free in
-- commit order (allocated from webhook_sequences inside the transaction,
-- whose row lock serialises a tenant's writers).
CREATE TABLE webhook_sequences (
    tenant   TEXT    NOT NULL PRIMARY KEY,
    last_seq INTEGER NOT NULL
) STRICT;

CREATE TABLE webhook_outbox (
    tenant          TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    -- The Standard Webhooks message id (`webhook-id`), stable across
    -- retries and replays so receivers can deduplicate.
    id              TEXT    NOT NULL UNIQUE,
    event_type      TEXT    NOT NULL,
    -- The exact JSON body sent, so retries are byte-identical.
    payload         TEXT    NOT NULL,
    -- Unix milliseconds.
    created_at      INTEGER NOT NULL,
    -- pending | delivered | dead
    state           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    delivered_at    INTEGER,
    PRIMARY KEY (tenant, seq)
) STRICT;

CREATE INDEX webhook_outbox_state_idx ON webhook_outbox (state, tenant, seq);

-- One deliverer per tenant at a time across replicas: a lease with an
-- owner and an expiry, taken over only once it has lapsed.
CREATE TABLE webhook_leases (
    tenant     TEXT    NOT NULL PRIMARY KEY,
    owner      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
