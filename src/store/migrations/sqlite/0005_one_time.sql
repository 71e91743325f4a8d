-- Values that may be used once (test sign-in links now; SAML assertion ids
-- later), kept until they expire so a replay fails on every replica.
CREATE TABLE one_time (
    kind       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
) STRICT;

CREATE INDEX one_time_expires_at_idx ON one_time (expires_at);
