//! SCIM resources: bearer tokens, users (a SCIM document linked to the
//! `users` row that SSO login finds), groups and memberships.
//!
//! Reads go through [`ScimStore`] (`store.scim()`); every write goes
//! through [`ScimTx`] (`tx.scim()`) in a [`WriteTx`], so a change and
//! everything it implies commit together. The `users` rows behind SCIM
//! users are `logins`.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::batch;
use super::error::unique;
use super::write::WriteTx;
use super::{Inner, StoreError, check_text};

/// Which resource table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimKind {
    User,
    Group,
}

/// The indexed lookups IdPs need: `userName`/`displayName` (`name`,
/// case-insensitive), `externalId` (case-exact) and `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimIndex {
    Id,
    Name,
    ExternalId,
}

/// One stored resource. `name` is `userName` for users and `displayName`
/// for groups; `doc` is the resource JSON without `id`, `meta` and
/// (groups) `members`, which are kept in their own columns and table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimRow {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub external_id: Option<String>,
    pub doc: String,
    pub version: i64,
    /// The tenant's write sequence number when it was created: resources
    /// are listed in this order, so pages are stable.
    pub seq: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub updated_at: i64,
}

/// A group member: the member's id and `User` or `Group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimMember {
    pub id: String,
    pub kind: String,
}

/// Picks the table's variant of a statement; sqlx needs `&'static str`.
macro_rules! by_kind {
    ($kind:expr, $a:expr, $b:literal) => {
        match $kind {
            ScimKind::User => concat!($a, "scim_users", $b),
            ScimKind::Group => concat!($a, "scim_groups", $b),
        }
    };
}

macro_rules! row_columns {
    () => {
        "SELECT id, tenant, name, external_id, doc, version, seq, created_at, updated_at FROM "
    };
}

fn decode(row: &AnyRow) -> Result<ScimRow, StoreError> {
    Ok(ScimRow {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        external_id: row.try_get("external_id")?,
        doc: row.try_get("doc")?,
        version: row.try_get("version")?,
        seq: row.try_get("seq")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn check_row(r: &ScimRow) -> Result<(), StoreError> {
    for (f, v) in [
        ("id", &r.id),
        ("tenant", &r.tenant),
        ("name", &r.name),
        ("doc", &r.doc),
    ] {
        check_text(f, v)?;
    }
    if let Some(e) = &r.external_id {
        check_text("externalId", e)?;
    }
    Ok(())
}

/// One resource by id, on the pool or inside a transaction.
async fn get_on<'c, E>(
    ex: E,
    kind: ScimKind,
    tenant: &str,
    id: &str,
) -> Result<Option<ScimRow>, StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    if id.contains('\0') {
        return Ok(None);
    }
    let row = sqlx::query(by_kind!(
        kind,
        row_columns!(),
        " WHERE tenant = $1 AND id = $2"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(decode).transpose()
}

/// A group's members in a stable order, on the pool or inside a
/// transaction.
async fn members_on<'c, E>(ex: E, group_id: &str) -> Result<Vec<ScimMember>, StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT member_id, member_type FROM scim_members WHERE group_id = $1 ORDER BY member_id",
    )
    .bind(group_id)
    .fetch_all(ex)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ScimMember {
                id: r.try_get("member_id")?,
                kind: r.try_get("member_type")?,
            })
        })
        .collect()
}

/// Replaces `tenant`'s SCIM token (only its hash) on `conn`: the one
/// place its SQL is written, for `store.scim()` and a `WriteTx`.
pub(super) async fn replace_token_in(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    key_id: &str,
    secret_hash: &str,
    now: i64,
) -> Result<(), StoreError> {
    for (f, v) in [("key_id", key_id), ("secret_hash", secret_hash)] {
        check_text(f, v)?;
    }
    delete_token_in(conn, tenant).await?;
    sqlx::query(
        "INSERT INTO scim_tokens (tenant, key_id, secret_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant)
    .bind(key_id)
    .bind(secret_hash)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes `tenant`'s SCIM token on `conn`, if it has one; whether it had.
pub(super) async fn delete_token_in(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
) -> Result<bool, StoreError> {
    check_text("tenant", tenant)?;
    let done = sqlx::query("DELETE FROM scim_tokens WHERE tenant = $1")
        .bind(tenant)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The SCIM view of a [`Store`](super::Store): `store.scim()`.
#[derive(Clone, Copy)]
pub struct ScimStore<'a> {
    pub(super) inner: &'a Inner,
}

impl ScimStore<'_> {
    /// Replaces the tenant's SCIM token (the previous one stops working).
    pub async fn token_set(
        &self,
        tenant: &str,
        key_id: &str,
        secret_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.inner.pool.begin().await?;
        replace_token_in(&mut tx, tenant, key_id, secret_hash, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether `tenant` has a SCIM token: the tenant is provisioned by
    /// SCIM exactly while it has one (the portal's "SCIM" mode).
    pub async fn token_exists(&self, tenant: &str) -> Result<bool, StoreError> {
        check_text("tenant", tenant)?;
        let row = sqlx::query("SELECT 1 AS one FROM scim_tokens WHERE tenant = $1")
            .bind(tenant)
            .fetch_optional(&self.inner.pool)
            .await?;
        Ok(row.is_some())
    }

    /// `(tenant, secret_hash)` of the token with this key id.
    pub async fn token_lookup(&self, key_id: &str) -> Result<Option<(String, String)>, StoreError> {
        check_text("key_id", key_id)?;
        let row = sqlx::query("SELECT tenant, secret_hash FROM scim_tokens WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(&self.inner.pool)
            .await?;
        row.map(|r| Ok((r.try_get("tenant")?, r.try_get("secret_hash")?)))
            .transpose()
    }

    /// One resource by id.
    pub async fn get(
        &self,
        kind: ScimKind,
        tenant: &str,
        id: &str,
    ) -> Result<Option<ScimRow>, StoreError> {
        get_on(&self.inner.pool, kind, tenant, id).await
    }

    /// Resources whose indexed attribute equals `value` (`Name`:
    /// case-insensitively; `ExternalId`, `Id`: exactly).
    pub async fn find(
        &self,
        kind: ScimKind,
        tenant: &str,
        index: ScimIndex,
        value: &str,
    ) -> Result<Vec<ScimRow>, StoreError> {
        if value.contains('\0') {
            return Ok(Vec::new());
        }
        let (sql, value) = match index {
            ScimIndex::Id => (
                by_kind!(
                    kind,
                    row_columns!(),
                    " WHERE tenant = $1 AND id = $2 ORDER BY seq, id"
                ),
                value.to_owned(),
            ),
            ScimIndex::Name => (
                by_kind!(
                    kind,
                    row_columns!(),
                    " WHERE tenant = $1 AND name_lower = $2 ORDER BY seq, id"
                ),
                value.to_lowercase(),
            ),
            ScimIndex::ExternalId => (
                by_kind!(
                    kind,
                    row_columns!(),
                    " WHERE tenant = $1 AND external_id = $2 ORDER BY seq, id"
                ),
                value.to_owned(),
            ),
        };
        let rows = sqlx::query(sql)
            .bind(tenant)
            .bind(value)
            .fetch_all(&self.inner.pool)
            .await?;
        rows.iter().map(decode).collect()
    }

    /// How many resources the tenant has.
    pub async fn count(&self, kind: ScimKind, tenant: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(by_kind!(
            kind,
            "SELECT COUNT(*) AS n FROM ",
            " WHERE tenant = $1"
        ))
        .bind(tenant)
        .fetch_one(&self.inner.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// One page in the stable listing order (creation time, then id).
    pub async fn page(
        &self,
        kind: ScimKind,
        tenant: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<ScimRow>, StoreError> {
        let rows = sqlx::query(by_kind!(
            kind,
            row_columns!(),
            " WHERE tenant = $1 ORDER BY seq, id LIMIT $2 OFFSET $3"
        ))
        .bind(tenant)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// The next `limit` resources after `after` (`(seq, id)`, keyset on the
    /// listing order), for filters that must look at every resource.
    pub async fn scan(
        &self,
        kind: ScimKind,
        tenant: &str,
        after: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<ScimRow>, StoreError> {
        let (at, id) = after.unwrap_or((i64::MIN, ""));
        let rows = sqlx::query(by_kind!(
            kind,
            row_columns!(),
            " WHERE tenant = $1 AND (seq > $2 OR (seq = $2 AND id > $3)) \
             ORDER BY seq, id LIMIT $4"
        ))
        .bind(tenant)
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// A group's members, in a stable order.
    pub async fn members(&self, group_id: &str) -> Result<Vec<ScimMember>, StoreError> {
        members_on(&self.inner.pool, group_id).await
    }

    /// Whether `member_id` is a direct member of `group_id`.
    pub async fn is_member(&self, group_id: &str, member_id: &str) -> Result<bool, StoreError> {
        if member_id.contains('\0') {
            return Ok(false);
        }
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM scim_members WHERE group_id = $1 AND member_id = $2",
        )
        .bind(group_id)
        .bind(member_id)
        .fetch_one(&self.inner.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// The groups `member_id` belongs to directly: `(id, displayName)`.
    pub async fn groups_of(&self, member_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT g.id AS id, g.name AS name FROM scim_members m JOIN scim_groups g ON g.id = m.group_id \
             WHERE m.member_id = $1 ORDER BY g.name_lower, g.id",
        )
        .bind(member_id)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect()
    }
}

/// The SCIM view of a [`WriteTx`]: `tx.scim()`.
pub struct ScimTx<'a> {
    pub(super) write: &'a mut WriteTx,
}

impl ScimTx<'_> {
    /// Deletes every SCIM user, group and membership of the transaction's
    /// tenant (a deleted tenant), so a tenant made again with its id starts
    /// empty. The `users` rows behind SCIM users are `tx.users()`'.
    pub async fn delete_all(&mut self) -> Result<(), StoreError> {
        let tenant = self.write.tenant().to_owned();
        for sql in [
            "DELETE FROM scim_members WHERE group_id IN \
             (SELECT id FROM scim_groups WHERE tenant = $1)",
            "DELETE FROM scim_groups WHERE tenant = $1",
            "DELETE FROM scim_users WHERE tenant = $1",
        ] {
            sqlx::query(sql)
                .bind(tenant.as_str())
                .execute(&mut *self.write.tx)
                .await?;
        }
        Ok(())
    }

    /// A group's members as this transaction sees them (webhook events
    /// need what a replacement removed).
    pub async fn members(&mut self, group_id: &str) -> Result<Vec<ScimMember>, StoreError> {
        members_on(&mut *self.write.tx, group_id).await
    }

    /// Ids of the groups `member_id` is a direct member of, in this
    /// transaction.
    pub async fn groups_containing(&mut self, member_id: &str) -> Result<Vec<String>, StoreError> {
        if member_id.contains('\0') {
            return Ok(Vec::new());
        }
        let rows =
            sqlx::query("SELECT group_id FROM scim_members WHERE member_id = $1 ORDER BY group_id")
                .bind(member_id)
                .fetch_all(&mut *self.write.tx)
                .await?;
        rows.iter()
            .map(|r| r.try_get("group_id").map_err(StoreError::from))
            .collect()
    }

    /// One resource by id, read inside the transaction.
    pub async fn get(&mut self, kind: ScimKind, id: &str) -> Result<Option<ScimRow>, StoreError> {
        let tenant = self.write.tenant().to_owned();
        get_on(&mut *self.write.tx, kind, &tenant, id).await
    }

    /// Whether another resource of the tenant already has this name
    /// (case-insensitively).
    pub async fn name_taken(
        &mut self,
        kind: ScimKind,
        name: &str,
        except_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        check_text("name", name)?;
        let tenant = self.write.tenant().to_owned();
        let row = sqlx::query(by_kind!(
            kind,
            "SELECT id FROM ",
            " WHERE tenant = $1 AND name_lower = $2"
        ))
        .bind(tenant)
        .bind(name.to_lowercase())
        .fetch_optional(&mut *self.write.tx)
        .await?;
        Ok(match row {
            None => false,
            Some(r) => Some(r.try_get::<String, _>("id")?.as_str()) != except_id,
        })
    }

    /// Adds a resource; a name clash is `Duplicate`.
    pub async fn insert(&mut self, kind: ScimKind, r: &ScimRow) -> Result<(), StoreError> {
        self.insert_many(kind, std::slice::from_ref(r)).await
    }

    /// Adds several resources in a few multi-row statements (a Bulk
    /// request's creates); any name clash is `Duplicate` and, like a
    /// failed single insert, leaves the transaction to be rolled back.
    pub async fn insert_many(
        &mut self,
        kind: ScimKind,
        rows: &[ScimRow],
    ) -> Result<(), StoreError> {
        let head = by_kind!(
            kind,
            "INSERT INTO ",
            " (id, tenant, name, name_lower, external_id, doc, version, seq, created_at, updated_at) VALUES "
        );
        let mut rest = rows;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(batch::next_size(rest.len()));
            rest = tail;
            let sql = batch::values_sql(
                head,
                "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                10,
                chunk.len(),
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for r in chunk {
                check_row(r)?;
                q = q
                    .bind(r.id.as_str())
                    .bind(r.tenant.as_str())
                    .bind(r.name.as_str())
                    .bind(r.name.to_lowercase())
                    .bind(r.external_id.as_deref())
                    .bind(r.doc.as_str())
                    .bind(r.version)
                    .bind(r.seq)
                    .bind(r.created_at)
                    .bind(r.updated_at);
            }
            q.execute(&mut *self.write.tx)
                .await
                .map_err(|e| unique(e, "name"))?;
        }
        Ok(())
    }

    /// Overwrites a resource's name, externalId, document, version and
    /// modification time.
    pub async fn update(&mut self, kind: ScimKind, r: &ScimRow) -> Result<(), StoreError> {
        check_row(r)?;
        sqlx::query(by_kind!(
            kind,
            "UPDATE ",
            " SET name = $1, name_lower = $2, external_id = $3, doc = $4, version = $5, updated_at = $6 \
             WHERE tenant = $7 AND id = $8"
        ))
        .bind(r.name.as_str())
        .bind(r.name.to_lowercase())
        .bind(r.external_id.as_deref())
        .bind(r.doc.as_str())
        .bind(r.version)
        .bind(r.updated_at)
        .bind(r.tenant.as_str())
        .bind(r.id.as_str())
        .execute(&mut *self.write.tx)
        .await
        .map_err(|e| unique(e, "name"))?;
        Ok(())
    }

    /// Deletes a resource (a group's memberships go with it); `true` if it
    /// existed.
    pub async fn delete(&mut self, kind: ScimKind, id: &str) -> Result<bool, StoreError> {
        let tenant = self.write.tenant().to_owned();
        let n = sqlx::query(by_kind!(
            kind,
            "DELETE FROM ",
            " WHERE tenant = $1 AND id = $2"
        ))
        .bind(tenant)
        .bind(id)
        .execute(&mut *self.write.tx)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Bumps a group's version and modification time after a membership
    /// change, without rewriting its document.
    pub async fn touch_group(&mut self, group_id: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE scim_groups SET version = version + 1, updated_at = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(group_id)
            .execute(&mut *self.write.tx)
            .await?;
        Ok(())
    }

    /// Adds members (already present ones are left alone); returns how many
    /// were new.
    pub async fn add_members(
        &mut self,
        group_id: &str,
        members: &[ScimMember],
    ) -> Result<u64, StoreError> {
        let mut added = 0;
        for m in members {
            check_text("member", &m.id)?;
            added += sqlx::query(
                "INSERT INTO scim_members (group_id, member_id, member_type) VALUES ($1, $2, $3) \
                 ON CONFLICT (group_id, member_id) DO NOTHING",
            )
            .bind(group_id)
            .bind(m.id.as_str())
            .bind(m.kind.as_str())
            .execute(&mut *self.write.tx)
            .await?
            .rows_affected();
        }
        Ok(added)
    }

    /// Removes the listed members; returns how many were there.
    pub async fn remove_members(
        &mut self,
        group_id: &str,
        member_ids: &[String],
    ) -> Result<u64, StoreError> {
        let mut removed = 0;
        for id in member_ids {
            if id.contains('\0') {
                continue;
            }
            removed +=
                sqlx::query("DELETE FROM scim_members WHERE group_id = $1 AND member_id = $2")
                    .bind(group_id)
                    .bind(id.as_str())
                    .execute(&mut *self.write.tx)
                    .await?
                    .rows_affected();
        }
        Ok(removed)
    }

    /// Removes every member of a group; returns how many there were.
    pub async fn clear_members(&mut self, group_id: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM scim_members WHERE group_id = $1")
            .bind(group_id)
            .execute(&mut *self.write.tx)
            .await?
            .rows_affected())
    }

    /// A deleted user or group leaves every group it was in; those groups'
    /// versions change.
    pub async fn remove_member_everywhere(
        &mut self,
        member_id: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE scim_groups SET version = version + 1, updated_at = $1 \
             WHERE id IN (SELECT group_id FROM scim_members WHERE member_id = $2)",
        )
        .bind(now_ms)
        .bind(member_id)
        .execute(&mut *self.write.tx)
        .await?;
        sqlx::query("DELETE FROM scim_members WHERE member_id = $1")
            .bind(member_id)
            .execute(&mut *self.write.tx)
            .await?;
        Ok(())
    }

    /// `User` or `Group` if a resource with this id exists in the tenant.
    pub async fn member_kind(&mut self, id: &str) -> Result<Option<&'static str>, StoreError> {
        if id.contains('\0') {
            return Ok(None);
        }
        let tenant = self.write.tenant().to_owned();
        for (kind, label) in [(ScimKind::User, "User"), (ScimKind::Group, "Group")] {
            let row = sqlx::query(by_kind!(
                kind,
                "SELECT id FROM ",
                " WHERE tenant = $1 AND id = $2"
            ))
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&mut *self.write.tx)
            .await?;
            if row.is_some() {
                return Ok(Some(label));
            }
        }
        Ok(None)
    }
}
