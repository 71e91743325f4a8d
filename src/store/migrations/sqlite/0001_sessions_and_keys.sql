-- Server-side session records. The primary key is the SHA-256 of the session
-- id, so a leaked database does not hand out usable cookies.
CREATE TABLE sessions (
    id_hash      TEXT    NOT NULL PRIMARY KEY,
    user_id      TEXT    NOT NULL,
    email        TEXT    NOT NULL,
    name         TEXT,
    tenant       TEXT,
    connection   TEXT,
    groups_json  TEXT    NOT NULL,
    roles_json   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) STRICT;

CREATE INDEX sessions_user_id_idx      ON sessions (user_id);
CREATE INDEX sessions_tenant_idx       ON sessions (tenant);
CREATE INDEX sessions_connection_idx   ON sessions (connection);
CREATE INDEX sessions_expires_at_idx   ON sessions (expires_at);
CREATE INDEX sessions_last_seen_at_idx ON sessions (last_seen_at);

-- Long-lived secrets every replica must agree on, one per purpose.
CREATE TABLE keys (
    purpose    TEXT    NOT NULL PRIMARY KEY,
    kid        TEXT    NOT NULL,
    material   BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
