-- Tenant email domains and their DNS TXT ownership proof. The primary key
-- is the lower-cased domain, so a domain has exactly one owner; subdomains
-- are separate rows. Times are unix seconds.
CREATE TABLE domains (
    domain TEXT NOT NULL PRIMARY KEY,
    tenant TEXT NOT NULL,
    token TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'verified', 'failed', 'lapsed')),
    created_at BIGINT NOT NULL,
    last_checked_at BIGINT,
    verified_at BIGINT,
    last_seen_at BIGINT,
    detail TEXT
);
CREATE INDEX domains_tenant ON domains (tenant);
