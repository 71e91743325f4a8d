//! Login identities of SCIM users: the `users` row a SCIM user is linked
//! to, which is what SSO sign-in finds (by tenant and email) and what JIT
//! provisioning must not recreate. SCIM decides *that* a person exists;
//! this file keeps their login row in step, in the same transaction.

use sqlx::Row;

use super::batch;
use super::error::unique;
use super::write::WriteTx;
use super::{ScimKind, StoreError, check_text};

/// What a SCIM user means for login: the `users` row's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimLogin {
    pub email: String,
    pub name: Option<String>,
    pub active: bool,
    /// Role for a newly created login user (the tenant's default role).
    pub role: Option<String>,
}

/// The logins view of a [`WriteTx`]: `tx.logins()`.
pub struct LoginTx<'a> {
    pub(super) write: &'a mut WriteTx,
}

impl LoginTx<'_> {
    /// The login identity for a new SCIM user: the tenant's existing `users`
    /// row with this email if it has no SCIM resource yet (a JIT or invited
    /// user, or one SCIM deleted earlier, is the same person), else a new
    /// row. Returns the id the SCIM resource must use. An email that belongs
    /// to another SCIM user is `Duplicate`.
    pub async fn link(
        &mut self,
        new_id: &str,
        login: &ScimLogin,
        now: i64,
    ) -> Result<String, StoreError> {
        check_text("email", &login.email)?;
        let tenant = self.write.tenant().to_owned();
        // The common case (a new person) in one statement.
        if self.insert_new(&[(new_id, login)], now).await? {
            return Ok(new_id.to_owned());
        }
        let row = sqlx::query("SELECT id FROM users WHERE tenant = $1 AND email_lower = $2")
            .bind(tenant.as_str())
            .bind(login.email.to_lowercase())
            .fetch_optional(&mut *self.write.tx)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt("user vanished after a conflicting insert".into())
            })?;
        let id: String = row.try_get("id")?;
        if self.write.scim().get(ScimKind::User, &id).await?.is_some() {
            return Err(StoreError::Duplicate("email".into()));
        }
        self.update(&id, login, now).await?;
        Ok(id)
    }

    /// Login identities for several new SCIM users at once (a Bulk
    /// request's creates), each with its own fresh id. Returns `false` if
    /// any email already has a login in the tenant: that person must go
    /// through [`LoginTx::link`] (adoption or a clash), and the
    /// caller abandons the batch (the rows inserted here are rolled back
    /// with it).
    pub async fn insert_new(
        &mut self,
        logins: &[(&str, &ScimLogin)],
        now: i64,
    ) -> Result<bool, StoreError> {
        let tenant = self.write.tenant().to_owned();
        let mut rest = logins;
        let mut inserted = 0u64;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(batch::next_size(rest.len()));
            rest = tail;
            let mut sql = batch::values_sql(
                "INSERT INTO users (id, tenant, email, email_lower, name, role, source, active, \
                 subject, created_at, updated_at, last_login_at) VALUES ",
                "(?1, ?2, ?3, ?4, ?5, ?6, 'scim', ?7, NULL, ?8, ?8, NULL)",
                8,
                chunk.len(),
            );
            sql.push_str(" ON CONFLICT (tenant, email_lower) DO NOTHING");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, login) in chunk {
                check_text("email", &login.email)?;
                q = q
                    .bind(*id)
                    .bind(tenant.as_str())
                    .bind(login.email.as_str())
                    .bind(login.email.to_lowercase())
                    .bind(login.name.as_deref())
                    .bind(login.role.as_deref())
                    .bind(i64::from(login.active))
                    .bind(now);
            }
            inserted += q
                .execute(&mut *self.write.tx)
                .await
                .map_err(|e| unique(e, "email"))?
                .rows_affected();
        }
        Ok(inserted == logins.len() as u64)
    }

    /// Updates the login identity of SCIM user `id`. An email that belongs
    /// to another user of the tenant is `Duplicate`.
    pub async fn update(
        &mut self,
        id: &str,
        login: &ScimLogin,
        now: i64,
    ) -> Result<(), StoreError> {
        check_text("email", &login.email)?;
        if let Some(name) = &login.name {
            check_text("name", name)?;
        }
        let tenant = self.write.tenant().to_owned();
        let other =
            sqlx::query("SELECT id FROM users WHERE tenant = $1 AND email_lower = $2 AND id <> $3")
                .bind(tenant.as_str())
                .bind(login.email.to_lowercase())
                .bind(id)
                .fetch_optional(&mut *self.write.tx)
                .await?;
        if other.is_some() {
            return Err(StoreError::Duplicate("email".into()));
        }
        sqlx::query(
            "UPDATE users SET email = $1, email_lower = $2, name = $3, active = $4, source = 'scim', \
             updated_at = $5 WHERE tenant = $6 AND id = $7",
        )
        .bind(login.email.as_str())
        .bind(login.email.to_lowercase())
        .bind(login.name.as_deref())
        .bind(i64::from(login.active))
        .bind(now)
        .bind(tenant.as_str())
        .bind(id)
        .execute(&mut *self.write.tx)
        .await
        .map_err(|e| unique(e, "email"))?;
        Ok(())
    }

    /// After a SCIM DELETE the `users` row stays as a deactivated tombstone
    /// (`source = 'scim-deleted'`), so JIT cannot let the person back in;
    /// a later SCIM create with the same email adopts it again.
    pub async fn tombstone(&mut self, id: &str, now: i64) -> Result<(), StoreError> {
        let tenant = self.write.tenant().to_owned();
        sqlx::query(
            "UPDATE users SET active = 0, source = 'scim-deleted', updated_at = $1 \
             WHERE tenant = $2 AND id = $3",
        )
        .bind(now)
        .bind(tenant)
        .bind(id)
        .execute(&mut *self.write.tx)
        .await?;
        Ok(())
    }
}
