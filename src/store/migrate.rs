//! A tiny embedded migration runner.
//!
//! sqlx's own migrator wants one SQL dialect per directory and a `migrate`
//! feature we do not enable; we need the *same* versions in two dialects, so
//! each [`Migration`] carries both texts and the runner picks one.

use std::collections::HashSet;

use sqlx::{AnyPool, Row};

use super::{Backend, StoreError, unix_now};

/// One schema step, in both dialects.
struct Migration {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

impl Migration {
    /// Picks the dialect so callers cannot run SQLite DDL on PostgreSQL.
    fn sql(&self, backend: Backend) -> &'static str {
        match backend {
            Backend::Sqlite => self.sqlite,
            Backend::Postgres => self.postgres,
        }
    }
}

/// Every migration, oldest first. Later features (users, tenants, SCIM,
/// webhook outbox) append versions 2, 3, ...; never edit a shipped entry.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "sessions and keys",
        sqlite: include_str!("migrations/sqlite/0001_sessions_and_keys.sql"),
        postgres: include_str!("migrations/postgres/0001_sessions_and_keys.sql"),
    },
    Migration {
        version: 2,
        description: "store events (SQLite cross-process invalidation)",
        sqlite: include_str!("migrations/sqlite/0002_store_events.sql"),
        postgres: include_str!("migrations/postgres/0002_store_events.sql"),
    },
    Migration {
        version: 3,
        description: "tenant domains (DNS ownership proof)",
        sqlite: include_str!("migrations/sqlite/0003_domains.sql"),
        postgres: include_str!("migrations/postgres/0003_domains.sql"),
    },
    Migration {
        version: 4,
        description: "users",
        sqlite: include_str!("migrations/sqlite/0004_users.sql"),
        postgres: include_str!("migrations/postgres/0004_users.sql"),
    },
    Migration {
        version: 5,
        description: "one-time values",
        sqlite: include_str!("migrations/sqlite/0005_one_time.sql"),
        postgres: include_str!("migrations/postgres/0005_one_time.sql"),
    },
    Migration {
        version: 6,
        description: "session IdP binding (subject, IdP session, logout hint)",
        sqlite: include_str!("migrations/sqlite/0006_session_idp.sql"),
        postgres: include_str!("migrations/postgres/0006_session_idp.sql"),
    },
    Migration {
        version: 7,
        description: "SCIM tokens, users, groups, memberships",
        sqlite: include_str!("migrations/sqlite/0007_scim.sql"),
        postgres: include_str!("migrations/postgres/0007_scim.sql"),
    },
    Migration {
        version: 10,
        description: "webhook outbox, sequences and delivery leases",
        sqlite: include_str!("migrations/sqlite/0010_webhooks.sql"),
        postgres: include_str!("migrations/postgres/0010_webhooks.sql"),
    },
    Migration {
        version: 11,
        description: "tenants and connections in the store, admin tokens, setup links, audit log",
        sqlite: include_str!("migrations/sqlite/0011_admin.sql"),
        postgres: include_str!("migrations/postgres/0011_admin.sql"),
    },
    Migration {
        version: 12,
        description: "session claims and authentication facts",
        sqlite: include_str!("migrations/sqlite/0012_session_identity.sql"),
        postgres: include_str!("migrations/postgres/0012_session_identity.sql"),
    },
    Migration {
        version: 13,
        description: "service accounts and their keys",
        sqlite: include_str!("migrations/sqlite/0013_service_accounts.sql"),
        postgres: include_str!("migrations/postgres/0013_service_accounts.sql"),
    },
];

/// Same text for both backends: BIGINT has INTEGER affinity in SQLite.
const BOOTSTRAP: &str = "CREATE TABLE IF NOT EXISTS portcullis_migrations (\
     version BIGINT NOT NULL PRIMARY KEY, \
     description TEXT NOT NULL, \
     applied_at BIGINT NOT NULL)";

/// Claiming the version *first* makes the transaction a writer from its first
/// statement: on SQLite that takes the write lock through the busy handler
/// (instead of failing a read-to-write upgrade), and a racing process that
/// lost sees zero rows affected and skips the migration.
const CLAIM: &str = "INSERT INTO portcullis_migrations (version, description, applied_at) \
     VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING";

/// Transaction-scoped so a cancelled `open` can never leave a session-level
/// lock stuck on a pooled connection. The key spells "portcull" in ASCII.
const PG_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
const PG_LOCK_KEY: i64 = 0x706f_7274_6375_6c6c;

/// Brings the schema up to date before the store serves a single query, so
/// code never runs against tables it does not know. Safe to call from many
/// replicas at once: PostgreSQL serialises them with an advisory lock, SQLite
/// with its write lock.
pub(super) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), StoreError> {
    bootstrap(pool, backend)
        .await
        .map_err(|source| StoreError::Migrate { version: 0, source })?;

    let applied: HashSet<i64> = sqlx::query("SELECT version FROM portcullis_migrations")
        .fetch_all(pool)
        .await
        .map_err(|source| StoreError::Migrate { version: 0, source })?
        .iter()
        .map(|row| row.try_get::<i64, _>("version"))
        .collect::<Result<_, _>>()
        .map_err(|source| StoreError::Migrate { version: 0, source })?;

    for migration in MIGRATIONS {
        if applied.contains(&migration.version) {
            continue;
        }
        apply(pool, backend, migration)
            .await
            .map_err(|source| StoreError::Migrate {
                version: migration.version,
                source,
            })?;
    }
    Ok(())
}

/// Creates the bookkeeping table under the lock because concurrent
/// `CREATE TABLE IF NOT EXISTS` can still collide on PostgreSQL's catalogs.
async fn bootstrap(pool: &AnyPool, backend: Backend) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    if backend == Backend::Postgres {
        sqlx::query(PG_LOCK)
            .bind(PG_LOCK_KEY)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::raw_sql(BOOTSTRAP).execute(&mut *tx).await?;
    tx.commit().await
}

/// Applies one migration atomically with its bookkeeping row, so a crash
/// mid-way leaves neither half behind.
async fn apply(pool: &AnyPool, backend: Backend, m: &Migration) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    if backend == Backend::Postgres {
        sqlx::query(PG_LOCK)
            .bind(PG_LOCK_KEY)
            .execute(&mut *tx)
            .await?;
    }
    let claimed = sqlx::query(CLAIM)
        .bind(m.version)
        .bind(m.description)
        .bind(unix_now())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if claimed == 0 {
        // Another process applied it between our read and our claim.
        return tx.rollback().await;
    }
    sqlx::raw_sql(m.sql(backend)).execute(&mut *tx).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[test]
    fn versions_are_strictly_increasing_from_one() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(versions.first(), Some(&1));
        // Strictly increasing; a gap is allowed only for a version reserved
        // by work on another branch (8, 9, 11, 13): numbers are unique and
        // never reused, whatever order branches merge in.
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    }
}
