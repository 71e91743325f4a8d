-- Same table as on SQLite so both schemas stay version-aligned; PostgreSQL
-- replicas use LISTEN/NOTIFY instead and leave it empty.
CREATE TABLE store_events (
    id BIGSERIAL PRIMARY KEY,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
