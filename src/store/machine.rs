//! Service accounts: a tenant's machine callers and their bearer tokens.
//! Only a token's SHA-256 is kept (it is only ever compared). Every change
//! is made in a [`WriteTx`] with its audit event, and a change that could
//! make a cached token wrong (rotation, revocation) is announced to every
//! process and replica in the same transaction, so their caches drop the
//! account before the next request.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::error::unique;
use super::write::WriteTx;
use super::{Inner, StoreError, StoreEvent, check_text, events};

/// One service account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountRow {
    /// `sa_<16 hex>`: the subject the app sees.
    pub id: String,
    pub tenant: String,
    /// Unique among the tenant's active accounts.
    pub name: String,
    pub role: Option<String>,
    /// `<actor kind>:<actor>` of the creation.
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// One token of an account as stored (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccountKeyRow {
    pub key_id: String,
    pub account_id: String,
    pub secret_hash: String,
    pub created_at: i64,
    /// Set by a rotation: the old token works until then.
    pub retires_at: Option<i64>,
}

/// The service accounts view of a [`Store`](super::Store):
/// `store.service_accounts()`.
#[derive(Clone, Copy)]
pub struct ServiceAccountStore<'a> {
    pub(super) inner: &'a Inner,
}

macro_rules! select_accounts {
    ($rest:literal) => {
        concat!(
            "SELECT id, tenant, name, role, created_by, created_at, expires_at, revoked_at, \
             last_used_at FROM service_accounts ",
            $rest
        )
    };
}

impl ServiceAccountStore<'_> {
    /// The key with this id and its account, whatever their state (the
    /// caller decides what a revoked, expired or retired one means).
    pub async fn lookup(
        &self,
        key_id: &str,
    ) -> Result<Option<(ServiceAccountRow, ServiceAccountKeyRow)>, StoreError> {
        check_text("key_id", key_id)?;
        let row = sqlx::query(
            "SELECT a.id, a.tenant, a.name, a.role, a.created_by, a.created_at, a.expires_at, \
             a.revoked_at, a.last_used_at, k.key_id, k.account_id, k.secret_hash, \
             k.created_at AS key_created_at, k.retires_at \
             FROM service_account_keys k JOIN service_accounts a ON a.id = k.account_id \
             WHERE k.key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(&self.inner.pool)
        .await?;
        row.as_ref()
            .map(|r| Ok((decode_account(r)?, decode_key(r, "key_created_at")?)))
            .transpose()
    }

    /// A tenant's accounts, revoked ones included, oldest first, each with
    /// its keys (oldest first).
    pub async fn list(
        &self,
        tenant: &str,
    ) -> Result<Vec<(ServiceAccountRow, Vec<ServiceAccountKeyRow>)>, StoreError> {
        check_text("tenant", tenant)?;
        let accounts = sqlx::query(select_accounts!(
            "WHERE tenant = $1 ORDER BY created_at, id"
        ))
        .bind(tenant)
        .fetch_all(&self.inner.pool)
        .await?;
        let keys = sqlx::query(
            "SELECT k.key_id, k.account_id, k.secret_hash, k.created_at, k.retires_at \
             FROM service_account_keys k JOIN service_accounts a ON a.id = k.account_id \
             WHERE a.tenant = $1 ORDER BY k.created_at, k.key_id",
        )
        .bind(tenant)
        .fetch_all(&self.inner.pool)
        .await?;
        let keys = keys
            .iter()
            .map(|r| decode_key(r, "created_at"))
            .collect::<Result<Vec<_>, _>>()?;
        accounts
            .iter()
            .map(|r| {
                let a = decode_account(r)?;
                let own = keys
                    .iter()
                    .filter(|k| k.account_id == a.id)
                    .cloned()
                    .collect();
                Ok((a, own))
            })
            .collect()
    }

    /// Records use, at most once a minute per account.
    pub async fn touch(&self, account_id: &str, now: i64) -> Result<(), StoreError> {
        check_text("account_id", account_id)?;
        sqlx::query(
            "UPDATE service_accounts SET last_used_at = $2 WHERE id = $1 \
             AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .bind(account_id)
        .bind(now)
        .bind(now - 60)
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }
}

/// The service accounts view of a [`WriteTx`]: `tx.service_accounts()`.
pub struct ServiceAccountTx<'a> {
    pub(super) write: &'a mut WriteTx,
}

impl ServiceAccountTx<'_> {
    /// The tenant's active (not revoked) account called `name`.
    pub async fn active(
        &mut self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<ServiceAccountRow>, StoreError> {
        check_text("tenant", tenant)?;
        check_text("name", name)?;
        let row = sqlx::query(select_accounts!(
            "WHERE tenant = $1 AND name = $2 AND revoked_at IS NULL"
        ))
        .bind(tenant)
        .bind(name)
        .fetch_optional(&mut *self.write.tx)
        .await?;
        row.as_ref().map(decode_account).transpose()
    }

    /// Creates an account with its first key. An active account of the
    /// same name in the tenant is [`StoreError::Duplicate`].
    pub async fn create(
        &mut self,
        account: &ServiceAccountRow,
        key: &ServiceAccountKeyRow,
    ) -> Result<(), StoreError> {
        for (f, v) in [
            ("id", &account.id),
            ("tenant", &account.tenant),
            ("name", &account.name),
            ("created_by", &account.created_by),
        ] {
            check_text(f, v)?;
        }
        if let Some(r) = &account.role {
            check_text("role", r)?;
        }
        sqlx::query(
            "INSERT INTO service_accounts (id, tenant, name, role, created_by, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(account.id.as_str())
        .bind(account.tenant.as_str())
        .bind(account.name.as_str())
        .bind(account.role.as_deref())
        .bind(account.created_by.as_str())
        .bind(account.created_at)
        .bind(account.expires_at)
        .execute(&mut *self.write.tx)
        .await
        .map_err(|e| {
            unique(
                e,
                &format!(
                    "an active service account named `{}` in tenant `{}`",
                    account.name, account.tenant
                ),
            )
        })?;
        self.insert_key(key).await
    }

    /// Adds `key` to its account and lets every other key of the account
    /// work until `retire_others_at` at most (the rotation's overlap; now
    /// for none). Keys whose overlap has ended are deleted.
    pub async fn rotate(
        &mut self,
        key: &ServiceAccountKeyRow,
        retire_others_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        check_text("account_id", &key.account_id)?;
        sqlx::query(
            "DELETE FROM service_account_keys WHERE account_id = $1 \
             AND retires_at IS NOT NULL AND retires_at <= $2",
        )
        .bind(key.account_id.as_str())
        .bind(now)
        .execute(&mut *self.write.tx)
        .await?;
        sqlx::query(
            "UPDATE service_account_keys SET retires_at = $2 WHERE account_id = $1 \
             AND (retires_at IS NULL OR retires_at > $2)",
        )
        .bind(key.account_id.as_str())
        .bind(retire_others_at)
        .execute(&mut *self.write.tx)
        .await?;
        self.insert_key(key).await?;
        self.announce(&key.account_id).await
    }

    /// Revokes the account (every key at once); whether it was active.
    pub async fn revoke(&mut self, account_id: &str, now: i64) -> Result<bool, StoreError> {
        check_text("account_id", account_id)?;
        let n = sqlx::query(
            "UPDATE service_accounts SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(account_id)
        .bind(now)
        .execute(&mut *self.write.tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        self.announce(account_id).await?;
        Ok(true)
    }

    /// Deletes every account of the transaction's tenant with its keys (a
    /// deleted tenant), each announced like a revocation so every token
    /// cache drops it; returns how many.
    pub async fn delete_all(&mut self) -> Result<u64, StoreError> {
        let tenant = self.write.tenant().to_owned();
        let ids: Vec<String> = sqlx::query("SELECT id FROM service_accounts WHERE tenant = $1")
            .bind(tenant.as_str())
            .fetch_all(&mut *self.write.tx)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        for id in &ids {
            sqlx::query("DELETE FROM service_account_keys WHERE account_id = $1")
                .bind(id.as_str())
                .execute(&mut *self.write.tx)
                .await?;
            sqlx::query("DELETE FROM service_accounts WHERE id = $1")
                .bind(id.as_str())
                .execute(&mut *self.write.tx)
                .await?;
            self.announce(id).await?;
        }
        Ok(ids.len() as u64)
    }

    async fn insert_key(&mut self, key: &ServiceAccountKeyRow) -> Result<(), StoreError> {
        for (f, v) in [
            ("key_id", &key.key_id),
            ("account_id", &key.account_id),
            ("secret_hash", &key.secret_hash),
        ] {
            check_text(f, v)?;
        }
        sqlx::query(
            "INSERT INTO service_account_keys (key_id, account_id, secret_hash, created_at, \
             retires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key.key_id.as_str())
        .bind(key.account_id.as_str())
        .bind(key.secret_hash.as_str())
        .bind(key.created_at)
        .bind(key.retires_at)
        .execute(&mut *self.write.tx)
        .await
        .map_err(|e| unique(e, "a service account key with this id"))?;
        Ok(())
    }

    /// Tells other processes and replicas inside the transaction (so only
    /// if it commits), and this process at the commit.
    async fn announce(&mut self, account_id: &str) -> Result<(), StoreError> {
        let event = StoreEvent::ServiceAccountChanged {
            account: account_id.to_owned(),
        };
        let backend = self.write.backend();
        events::publish_in(&mut self.write.tx, backend, &event).await?;
        if !self.write.accounts_changed.iter().any(|a| a == account_id) {
            self.write.accounts_changed.push(account_id.to_owned());
        }
        Ok(())
    }
}

fn decode_account(row: &AnyRow) -> Result<ServiceAccountRow, StoreError> {
    Ok(ServiceAccountRow {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

fn decode_key(row: &AnyRow, created: &str) -> Result<ServiceAccountKeyRow, StoreError> {
    Ok(ServiceAccountKeyRow {
        key_id: row.try_get("key_id")?,
        account_id: row.try_get("account_id")?,
        secret_hash: row.try_get("secret_hash")?,
        created_at: row.try_get(created)?,
        retires_at: row.try_get("retires_at")?,
    })
}
