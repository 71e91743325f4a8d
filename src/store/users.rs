//! Users who may sign in, per tenant.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::write::WriteTx;
use super::{Inner, StoreError, check_text};

/// One user of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Stable id (a UUID), the `X-Forwarded-User` value.
    pub id: String,
    pub tenant: String,
    /// As first given (IdP or operator); lookups use the lower-cased form.
    pub email: String,
    pub name: Option<String>,
    pub role: Option<String>,
    /// `jit`, `invite` or `scim`.
    pub source: String,
    /// Deactivated users never sign in, whatever the IdP says.
    pub active: bool,
    /// The IdP subject (`connection:sub`) seen at the last login.
    pub subject: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_login_at: Option<i64>,
}

/// How a user the store knows is announced to the app. SCIM users add their
/// resource and addresses on top (`scim::events`).
impl<'a> From<&'a UserRecord> for crate::events::User<'a> {
    fn from(u: &'a UserRecord) -> Self {
        crate::events::User {
            id: &u.id,
            email: &u.email,
            name: u.name.as_deref(),
            active: u.active,
            role: u.role.as_deref(),
            source: &u.source,
            emails: None,
            scim: None,
        }
    }
}

/// The column list, as a macro so queries stay `&'static str` (sqlx refuses
/// dynamically built SQL).
macro_rules! columns {
    () => {
        "id, tenant, email, name, role, source, active, subject, created_at, updated_at, last_login_at"
    };
}

/// The users view of a [`Store`](super::Store): `store.users()`.
#[derive(Clone, Copy)]
pub struct UserStore<'a> {
    pub(super) inner: &'a Inner,
}

impl UserStore<'_> {
    /// Adds a user. A second user with the same email (case-insensitive) in
    /// the same tenant is refused with `StoreError::Duplicate`.
    pub async fn insert(&self, u: &UserRecord) -> Result<(), StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        insert_user_in(&mut conn, u).await
    }

    /// The user with this email in this tenant, case-insensitively.
    pub async fn by_email(
        &self,
        tenant: &str,
        email: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        by_email_in(&mut conn, tenant, email).await
    }

    /// All users, or one tenant's, by email.
    pub async fn list(&self, tenant: Option<&str>) -> Result<Vec<UserRecord>, StoreError> {
        let rows = match tenant {
            Some(t) => {
                check_text("tenant", t)?;
                sqlx::query(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM users WHERE tenant = $1 ORDER BY email_lower"
                ))
                .bind(t)
                .fetch_all(&self.inner.pool)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM users ORDER BY tenant, email_lower"
                ))
                .fetch_all(&self.inner.pool)
                .await?
            }
        };
        rows.iter().map(decode).collect()
    }

    /// Removes a user; returns whether one existed.
    pub async fn delete(
        &self,
        tenant: &str,
        email: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let Some(user) = self.by_email(tenant, email).await? else {
            return Ok(None);
        };
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user.id.as_str())
            .execute(&self.inner.pool)
            .await?;
        Ok(Some(user))
    }

    /// Records a successful sign-in (subject and time).
    pub async fn record_login(&self, id: &str, subject: &str, now: i64) -> Result<(), StoreError> {
        check_text("subject", subject)?;
        sqlx::query(
            "UPDATE users SET subject = $1, last_login_at = $2, updated_at = $2 WHERE id = $3",
        )
        .bind(subject)
        .bind(now)
        .bind(id)
        .execute(&self.inner.pool)
        .await?;
        Ok(())
    }

    /// Activates or deactivates a user.
    pub async fn set_active(&self, id: &str, active: bool, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET active = $1, updated_at = $2 WHERE id = $3")
            .bind(i64::from(active))
            .bind(now)
            .bind(id)
            .execute(&self.inner.pool)
            .await?;
        Ok(())
    }
}

fn decode(row: &AnyRow) -> Result<UserRecord, StoreError> {
    let active: i64 = row.try_get("active")?;
    Ok(UserRecord {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: row.try_get("role")?,
        source: row.try_get("source")?,
        active: active != 0,
        subject: row.try_get("subject")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        last_login_at: row.try_get("last_login_at")?,
    })
}

/// Shared by [`UserStore::insert`] and [`UserTx::insert`].
async fn insert_user_in(conn: &mut sqlx::AnyConnection, u: &UserRecord) -> Result<(), StoreError> {
    for (field, value) in [
        ("id", &u.id),
        ("tenant", &u.tenant),
        ("email", &u.email),
        ("source", &u.source),
    ] {
        check_text(field, value)?;
    }
    for (field, value) in [
        ("name", &u.name),
        ("role", &u.role),
        ("subject", &u.subject),
    ] {
        if let Some(v) = value {
            check_text(field, v)?;
        }
    }
    let result = sqlx::query(
            "INSERT INTO users (id, tenant, email, email_lower, name, role, source, active, subject, \
             created_at, updated_at, last_login_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (tenant, email_lower) DO NOTHING",
        )
        .bind(u.id.as_str())
        .bind(u.tenant.as_str())
        .bind(u.email.as_str())
        .bind(u.email.to_lowercase())
        .bind(u.name.as_deref())
        .bind(u.role.as_deref())
        .bind(u.source.as_str())
        .bind(i64::from(u.active))
        .bind(u.subject.as_deref())
        .bind(u.created_at)
        .bind(u.updated_at)
        .bind(u.last_login_at)
        .execute(&mut *conn)
        .await?;
    if result.rows_affected() == 0 {
        return Err(StoreError::Duplicate(format!(
            "user {} in tenant {}",
            u.email, u.tenant
        )));
    }
    Ok(())
}

/// The user with this email in this tenant, case-insensitively.
async fn by_email_in(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    email: &str,
) -> Result<Option<UserRecord>, StoreError> {
    check_text("tenant", tenant)?;
    check_text("email", email)?;
    let row = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM users WHERE tenant = $1 AND email_lower = $2"
    ))
    .bind(tenant)
    .bind(email.to_lowercase())
    .fetch_optional(conn)
    .await?;
    row.map(|r| decode(&r)).transpose()
}

/// The users view of a [`WriteTx`]: `tx.users()`.
pub struct UserTx<'a> {
    pub(super) write: &'a mut WriteTx,
}

impl UserTx<'_> {
    /// [`UserStore::insert`] inside a write transaction (JIT provisioning
    /// with its webhook event).
    pub async fn insert(&mut self, u: &UserRecord) -> Result<(), StoreError> {
        if u.tenant != self.write.tenant() {
            return Err(StoreError::InvalidInput(
                "user tenant differs from the transaction's".into(),
            ));
        }
        insert_user_in(&mut self.write.tx, u).await
    }

    /// Deletes the transaction's tenant's user with this email
    /// (case-insensitively); the user it was, if any.
    pub async fn delete_email(&mut self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        let tenant = self.write.tenant().to_owned();
        let Some(user) = by_email_in(&mut self.write.tx, &tenant, email).await? else {
            return Ok(None);
        };
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user.id.as_str())
            .execute(&mut *self.write.tx)
            .await?;
        Ok(Some(user))
    }

    /// Deletes every user of the transaction's tenant (a deleted tenant):
    /// their SCIM documents go with them; returns how many.
    pub async fn delete_all(&mut self) -> Result<u64, StoreError> {
        let tenant = self.write.tenant().to_owned();
        Ok(sqlx::query("DELETE FROM users WHERE tenant = $1")
            .bind(tenant)
            .execute(&mut *self.write.tx)
            .await?
            .rows_affected())
    }
}
