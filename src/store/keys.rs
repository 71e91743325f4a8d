//! Long-lived secrets shared by all replicas, sealed at rest (`seal`).

use sqlx::Row;

use super::seal::Column;
use super::{Inner, StoreError, StoredKey, check_text, unix_now};

/// The shared keys view of a [`Store`](super::Store): `store.keys()`.
#[derive(Clone, Copy)]
pub struct KeyStore<'a> {
    pub(super) inner: &'a Inner,
}

impl KeyStore<'_> {
    /// Lets every replica generate a candidate key at startup and still end
    /// up agreeing on one: the first insert wins and everybody reads back the
    /// stored key. `INSERT .. ON CONFLICT DO NOTHING` waits for a concurrent
    /// inserter to commit, so the following `SELECT` always sees the winner.
    pub async fn get_or_insert(
        &self,
        purpose: &str,
        kid: &str,
        material: &[u8],
    ) -> Result<StoredKey, StoreError> {
        check_text("purpose", purpose)?;
        check_text("kid", kid)?;
        let keys = self.inner.keys()?;
        let sealed = keys.seal(Column::KeyMaterial, purpose, material)?;
        sqlx::query(
            "INSERT INTO keys (purpose, kid, material, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (purpose) DO NOTHING",
        )
        .bind(purpose)
        .bind(kid)
        .bind(sealed.into_bytes())
        .bind(unix_now())
        .execute(&self.inner.pool)
        .await?;
        let row = sqlx::query("SELECT kid, material, created_at FROM keys WHERE purpose = $1")
            .bind(purpose)
            .fetch_optional(&self.inner.pool)
            .await?
            .ok_or_else(|| StoreError::Corrupt("key vanished right after insert".into()))?;
        let stored: Vec<u8> = row.try_get("material")?;
        Ok(StoredKey {
            kid: row.try_get("kid")?,
            material: keys.open(Column::KeyMaterial, purpose, &stored)?,
            created_at: row.try_get("created_at")?,
        })
    }
}
