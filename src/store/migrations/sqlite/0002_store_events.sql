-- A short-lived log of revocation events. PostgreSQL replicas learn about
-- revocations through LISTEN/NOTIFY; SQLite has no such channel, so other
-- processes on the same file (the CLI's `sessions revoke`, a restarted
-- server) append here and every running Store polls it.
CREATE TABLE store_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
