//! Operator tokens of the admin API and setup links. Both are credentials
//! that are only ever compared, so only their SHA-256 is kept. Creating and
//! revoking a token is audited in the same transaction.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{AuditRow, insert_in};
use super::error::unique;
use super::write::WriteTx;
use super::{Inner, StoreError, check_text};

/// One operator token as stored (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTokenRow {
    pub key_id: String,
    pub name: String,
    pub secret_hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// The admin tokens view of a [`Store`](super::Store): `store.admin_tokens()`.
#[derive(Clone, Copy)]
pub struct AdminTokenStore<'a> {
    pub(super) inner: &'a Inner,
}

/// The column list, as a macro so queries stay `&'static str` literals.
macro_rules! select_tokens {
    ($rest:literal) => {
        concat!(
            "SELECT key_id, name, secret_hash, created_at, last_used_at, revoked_at \
             FROM admin_tokens ",
            $rest
        )
    };
}

impl AdminTokenStore<'_> {
    /// Stores a new token with its audit event. A name with an active token
    /// already is [`StoreError::Duplicate`].
    pub async fn create(&self, row: &AdminTokenRow, audit: &AuditRow) -> Result<(), StoreError> {
        for (f, v) in [
            ("key_id", &row.key_id),
            ("name", &row.name),
            ("secret_hash", &row.secret_hash),
        ] {
            check_text(f, v)?;
        }
        let mut tx = self.inner.pool.begin().await?;
        sqlx::query(
            "INSERT INTO admin_tokens (key_id, name, secret_hash, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(row.key_id.as_str())
        .bind(row.name.as_str())
        .bind(row.secret_hash.as_str())
        .bind(row.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique(e, &format!("an active admin token named `{}`", row.name)))?;
        insert_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes the active token called `name`, with its audit event;
    /// whether there was one.
    pub async fn revoke(&self, name: &str, now: i64, audit: &AuditRow) -> Result<bool, StoreError> {
        check_text("name", name)?;
        let mut tx = self.inner.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE admin_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
        )
        .bind(name)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        insert_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The token with this key id, revoked or not.
    pub async fn lookup(&self, key_id: &str) -> Result<Option<AdminTokenRow>, StoreError> {
        check_text("key_id", key_id)?;
        let row = sqlx::query(select_tokens!("WHERE key_id = $1"))
            .bind(key_id)
            .fetch_optional(&self.inner.pool)
            .await?;
        row.as_ref().map(decode_token).transpose()
    }

    /// Every token, oldest first.
    pub async fn list(&self) -> Result<Vec<AdminTokenRow>, StoreError> {
        let rows = sqlx::query(select_tokens!("ORDER BY created_at, key_id"))
            .fetch_all(&self.inner.pool)
            .await?;
        rows.iter().map(decode_token).collect()
    }

    /// Records use, at most once a minute per token.
    pub async fn touch(&self, key_id: &str, now: i64) -> Result<(), StoreError> {
        check_text("key_id", key_id)?;
        sqlx::query(
            "UPDATE admin_tokens SET last_used_at = $2 WHERE key_id = $1 \
             AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .bind(key_id)
        .bind(now)
        .bind(now - 60)
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }
}

fn decode_token(row: &AnyRow) -> Result<AdminTokenRow, StoreError> {
    Ok(AdminTokenRow {
        key_id: row.try_get("key_id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// One setup link as stored (never its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupLinkRow {
    pub id: String,
    pub tenant: String,
    pub token_hash: String,
    /// JSON list of intents (`domain`, `sso`, `scim`, `enforce`, `roles`).
    pub intents: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// The setup links view of a [`Store`](super::Store): `store.setup_links()`.
#[derive(Clone, Copy)]
pub struct SetupLinkStore<'a> {
    pub(super) inner: &'a Inner,
}

impl SetupLinkStore<'_> {
    /// One link by id.
    pub async fn get(&self, id: &str) -> Result<Option<SetupLinkRow>, StoreError> {
        check_text("id", id)?;
        let row = sqlx::query(
            "SELECT id, tenant, token_hash, intents, created_by, created_at, expires_at, \
             used_at, revoked_at FROM setup_links WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.inner.pool)
        .await?;
        row.as_ref().map(decode_link).transpose()
    }
}

/// The setup links view of a [`WriteTx`]: `tx.setup_links()`.
pub struct SetupLinkTx<'a> {
    pub(super) write: &'a mut WriteTx,
}

impl SetupLinkTx<'_> {
    pub async fn insert(&mut self, l: &SetupLinkRow) -> Result<(), StoreError> {
        for (f, v) in [
            ("id", &l.id),
            ("tenant", &l.tenant),
            ("token_hash", &l.token_hash),
            ("intents", &l.intents),
            ("created_by", &l.created_by),
        ] {
            check_text(f, v)?;
        }
        sqlx::query(
            "INSERT INTO setup_links (id, tenant, token_hash, intents, created_by, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(l.id.as_str())
        .bind(l.tenant.as_str())
        .bind(l.token_hash.as_str())
        .bind(l.intents.as_str())
        .bind(l.created_by.as_str())
        .bind(l.created_at)
        .bind(l.expires_at)
        .execute(&mut *self.write.tx)
        .await?;
        Ok(())
    }

    /// Marks the link used if it is still usable; whether it was.
    pub async fn redeem(&mut self, id: &str, now: i64) -> Result<bool, StoreError> {
        check_text("id", id)?;
        Ok(sqlx::query(
            "UPDATE setup_links SET used_at = $2 WHERE id = $1 AND used_at IS NULL \
             AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *self.write.tx)
        .await?
        .rows_affected()
            > 0)
    }

    /// Revokes every unused link of `tenant` (the tenant is deleted).
    pub async fn revoke_tenant(&mut self, tenant: &str, now: i64) -> Result<u64, StoreError> {
        check_text("tenant", tenant)?;
        Ok(sqlx::query(
            "UPDATE setup_links SET revoked_at = $2 WHERE tenant = $1 AND revoked_at IS NULL",
        )
        .bind(tenant)
        .bind(now)
        .execute(&mut *self.write.tx)
        .await?
        .rows_affected())
    }
}

fn decode_link(row: &AnyRow) -> Result<SetupLinkRow, StoreError> {
    Ok(SetupLinkRow {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        token_hash: row.try_get("token_hash")?,
        intents: row.try_get("intents")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        used_at: row.try_get("used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// Credentials replaced in a [`WriteTx`]: `tx.credentials()`.
pub struct CredentialTx<'a> {
    pub(super) write: &'a mut WriteTx,
}

impl CredentialTx<'_> {
    /// Replaces the tenant's SCIM token (only its hash), in the transaction
    /// that audits the rotation.
    pub async fn scim_token(
        &mut self,
        tenant: &str,
        key_id: &str,
        secret_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        super::scim::replace_token_in(&mut self.write.tx, tenant, key_id, secret_hash, now).await
    }

    /// Deletes the tenant's SCIM token (SCIM turned off, or a deleted
    /// tenant): it stops working at once, and a tenant made again with this
    /// id has none. Whether there was one.
    pub async fn delete_scim_token(&mut self, tenant: &str) -> Result<bool, StoreError> {
        super::scim::delete_token_in(&mut self.write.tx, tenant).await
    }
}
