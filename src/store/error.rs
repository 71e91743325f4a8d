//! The store's error type.
//!
//! Display strings never contain connection URLs, passwords or stored values:
//! they end up in logs and `/readyz` output, which operators share freely.

/// Everything that can go wrong talking to the session/key store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The configured store URL could not be understood. The message describes
    /// the problem without echoing the URL (it may embed a password).
    #[error("invalid store URL: {0}")]
    InvalidUrl(String),

    /// The database could not be reached or refused the connection within the
    /// acquire timeout.
    #[error("could not connect to the store database")]
    Connect(#[source] sqlx::Error),

    /// A schema migration failed; the database is left at the previous version
    /// because every migration runs in its own transaction.
    #[error("store migration {version} failed")]
    Migrate {
        /// The migration version that failed (0 is the bookkeeping table itself).
        version: i64,
        /// The underlying database error.
        #[source]
        source: sqlx::Error,
    },

    /// A query failed at runtime (connection lost, constraint violated, pool closed...).
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),

    /// A stored row could not be decoded into its Rust type.
    #[error("store data is corrupt: {0}")]
    Corrupt(String),

    /// A value was rejected before reaching the database because one of the
    /// backends cannot store it faithfully (e.g. NUL characters on PostgreSQL);
    /// rejecting it on both keeps the backends behaviourally identical.
    #[error("invalid value for the store: {0}")]
    InvalidInput(String),

    /// A uniquely owned row (e.g. a domain) already belongs to someone else.
    /// Names the owner (a tenant id, not a secret) so the operator knows
    /// whom to ask; the caller knows what it tried to insert.
    #[error("already owned by `{owner}`")]
    Conflict {
        /// The id of the current owner.
        owner: String,
    },

    /// A unique value (e.g. a user's email within a tenant) already exists.
    #[error("already exists: {0}")]
    Duplicate(String),

    /// A secret could not be sealed or opened: no key, a wrong key, or a
    /// value altered or moved between rows. The message names the column,
    /// the row and the key id, never the secret.
    #[error("store encryption: {0}")]
    Sealing(String),

    /// A SQLite file or its directory is open to group or others; the
    /// store holds session and signing secrets, so we refuse to use it.
    #[error(
        "{path} is readable or writable by group or others (mode {mode:04o}); \
         the store holds secrets: run `chmod go-rwx {path}` (or `chmod {fix:o} {path}`)"
    )]
    Permissions {
        /// The directory or file.
        path: String,
        /// Its permission bits.
        mode: u32,
        /// The mode it should have (0700 for the directory, 0600 for files).
        fix: u32,
    },

    /// The SQLite file or its directory could not be created or inspected.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Unique-index violations become `Duplicate` (a 409 for SCIM).
pub(super) fn unique(e: sqlx::Error, what: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Duplicate(what.into()),
        _ => StoreError::Query(e),
    }
}
