//! Single-use values: the first `consume` wins, on every replica.

use super::{Inner, StoreError, check_text};

/// The single-use values view of a [`Store`](super::Store):
/// `store.one_time()`.
#[derive(Clone, Copy)]
pub struct OneTimeStore<'a> {
    pub(super) inner: &'a Inner,
}

impl OneTimeStore<'_> {
    /// Records `(kind, id)` as used. `true` the first time, `false` for a
    /// replay. Kept until `expires_at`, after which the value is dead anyway.
    pub async fn consume(&self, kind: &str, id: &str, expires_at: i64) -> Result<bool, StoreError> {
        check_text("kind", kind)?;
        check_text("id", id)?;
        let done = sqlx::query(
            "INSERT INTO one_time (kind, id, expires_at) VALUES ($1, $2, $3) ON CONFLICT (kind, id) DO NOTHING",
        )
        .bind(kind)
        .bind(id)
        .bind(expires_at)
        .execute(&self.inner.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether `(kind, id)` was used and has not expired at `now`, without
    /// using it (for ids recorded under an older kind).
    pub async fn seen(&self, kind: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        check_text("kind", kind)?;
        check_text("id", id)?;
        let row =
            sqlx::query("SELECT 1 FROM one_time WHERE kind = $1 AND id = $2 AND expires_at > $3")
                .bind(kind)
                .bind(id)
                .bind(now)
                .fetch_optional(&self.inner.pool)
                .await?;
        Ok(row.is_some())
    }

    /// Forgets used values past their expiry.
    pub async fn delete_expired(&self, now: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM one_time WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.inner.pool)
            .await?
            .rows_affected())
    }
}
