//! The directory as sessions see it: a SCIM-managed user's login row and
//! every group they are in (nested groups flattened), and, inside a SCIM
//! write, which users the write touched, so that every replica's session
//! cache recomposes exactly their principals on their next request.
//!
//! Memberships form a graph (a group may hold groups). Both walks below
//! use `WITH RECURSIVE … UNION` (not `UNION ALL`): a row already found is
//! not followed again, so even a cycle written before cycles were refused
//! terminates, on SQLite and PostgreSQL alike.

use std::collections::BTreeSet;

use sqlx::Row;

use super::write::WriteTx;
use super::{Backend, Inner, StoreError, StoreEvent, events};

/// Most user ids one change names; beyond, it is announced for the whole
/// tenant (a NOTIFY payload is bounded, and so is a cache scan's work).
pub(super) const MAX_NAMED_USERS: usize = 150;

/// A SCIM-managed user as the directory knows them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The login row's email, which SCIM keeps current.
    pub email: String,
    pub name: Option<String>,
    pub role: Option<String>,
    pub active: bool,
    /// Every group the user is in, directly or through nested groups,
    /// ordered by name (case-insensitively), then id.
    pub groups: Vec<DirectoryGroup>,
}

/// One group a user is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryGroup {
    pub id: String,
    /// `displayName`.
    pub name: String,
    pub external_id: Option<String>,
}

/// What a committed write changed in a tenant's directory: the users whose
/// principals may differ now, or (`None`) possibly anyone in the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryChange {
    pub tenant: String,
    pub users: Option<Vec<String>>,
}

impl DirectoryChange {
    fn event(&self) -> StoreEvent {
        StoreEvent::DirectoryChanged {
            tenant: self.tenant.clone(),
            users: self.users.clone(),
        }
    }
}

/// Users touched so far by a write transaction.
#[derive(Debug, Default)]
pub(super) struct Touched {
    users: BTreeSet<String>,
    tenant_wide: bool,
}

/// The directory view of a [`Store`](super::Store): `store.directory()`.
#[derive(Clone, Copy)]
pub struct DirectoryStore<'a> {
    pub(super) inner: &'a Inner,
}

const USER: &str = "SELECT u.email AS email, u.name AS name, u.role AS role, u.active AS active \
     FROM scim_users s JOIN users u ON u.id = s.id WHERE s.tenant = $1 AND s.id = $2";

const GROUPS_UP: &str = "WITH RECURSIVE up(id) AS ( \
       SELECT group_id FROM scim_members WHERE member_id = $2 \
       UNION SELECT m.group_id FROM scim_members m JOIN up ON m.member_id = up.id) \
     SELECT g.id AS id, g.name AS name, g.external_id AS external_id \
     FROM scim_groups g JOIN up ON g.id = up.id \
     WHERE g.tenant = $1 ORDER BY g.name_lower, g.id";

impl DirectoryStore<'_> {
    /// The user as SCIM keeps them, with their groups; `None` when the
    /// user is not SCIM-managed (no SCIM resource in this tenant).
    pub async fn user(
        &self,
        tenant: &str,
        user_id: &str,
    ) -> Result<Option<DirectoryUser>, StoreError> {
        if tenant.contains('\0') || user_id.contains('\0') {
            return Ok(None);
        }
        let Some(row) = sqlx::query(USER)
            .bind(tenant)
            .bind(user_id)
            .fetch_optional(&self.inner.pool)
            .await?
        else {
            return Ok(None);
        };
        let groups = sqlx::query(GROUPS_UP)
            .bind(tenant)
            .bind(user_id)
            .fetch_all(&self.inner.pool)
            .await?
            .iter()
            .map(|g| {
                Ok(DirectoryGroup {
                    id: g.try_get("id")?,
                    name: g.try_get("name")?,
                    external_id: g.try_get("external_id")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(DirectoryUser {
            email: row.try_get("email")?,
            name: row.try_get("name")?,
            role: row.try_get("role")?,
            active: row.try_get::<i64, _>("active")? != 0,
            groups,
        }))
    }
}

/// The directory view of a [`WriteTx`]: `tx.directory()`.
pub struct DirectoryTx<'a> {
    pub(super) write: &'a mut WriteTx,
}

impl DirectoryTx<'_> {
    /// Records that these users' principals may have changed.
    pub fn touched_users<I, S>(&mut self, ids: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let touched = &mut self.write.directory;
        if touched.tenant_wide {
            return;
        }
        touched.users.extend(ids.into_iter().map(Into::into));
        if touched.users.len() > MAX_NAMED_USERS {
            self.touched_tenant();
        }
    }

    /// Records that anyone in the tenant may be affected.
    pub fn touched_tenant(&mut self) {
        let touched = &mut self.write.directory;
        touched.tenant_wide = true;
        touched.users.clear();
    }

    /// Records every user under `group_id` (through nested groups): they
    /// are the ones a rename, a delete or a change of the group's own
    /// memberships reaches. Call before a delete.
    pub async fn touched_group(&mut self, group_id: &str) -> Result<(), StoreError> {
        if self.write.directory.tenant_wide || group_id.contains('\0') {
            return Ok(());
        }
        let tenant = self.write.tenant().to_owned();
        let limit = i64::try_from(MAX_NAMED_USERS + 1).unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "WITH RECURSIVE down(id) AS ( \
               SELECT member_id FROM scim_members WHERE group_id = $1 \
               UNION SELECT m.member_id FROM scim_members m JOIN down ON m.group_id = down.id) \
             SELECT u.id AS id FROM scim_users u JOIN down ON u.id = down.id \
             WHERE u.tenant = $2 ORDER BY u.id LIMIT $3",
        )
        .bind(group_id)
        .bind(tenant)
        .bind(limit)
        .fetch_all(&mut *self.write.tx)
        .await?;
        let ids = rows
            .iter()
            .map(|r| r.try_get::<String, _>("id"))
            .collect::<Result<Vec<_>, _>>()?;
        self.touched_users(ids);
        Ok(())
    }

    /// Whether `to` is `from` or a group under `from`: adding `from` as a
    /// member of `to` would then close a cycle.
    pub async fn reaches(&mut self, from: &str, to: &str) -> Result<bool, StoreError> {
        if from == to {
            return Ok(true);
        }
        if from.contains('\0') || to.contains('\0') {
            return Ok(false);
        }
        let row = sqlx::query(
            "WITH RECURSIVE down(id) AS ( \
               SELECT CAST($1 AS TEXT) \
               UNION SELECT m.member_id FROM scim_members m JOIN down ON m.group_id = down.id \
                 WHERE m.member_type = 'Group') \
             SELECT COUNT(*) AS n FROM down WHERE id = $2",
        )
        .bind(from)
        .bind(to)
        .fetch_one(&mut *self.write.tx)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }
}

impl WriteTx {
    /// Users whose principals this transaction's changes may alter.
    pub fn directory(&mut self) -> DirectoryTx<'_> {
        DirectoryTx { write: self }
    }

    /// What this transaction changed in the directory so far, for the
    /// caller to drop its own cached principals right after the commit
    /// (other processes hear of it through the store's events).
    pub fn directory_change(&self) -> Option<DirectoryChange> {
        let touched = &self.directory;
        if touched.tenant_wide {
            Some(DirectoryChange {
                tenant: self.tenant().to_owned(),
                users: None,
            })
        } else if touched.users.is_empty() {
            None
        } else {
            Some(DirectoryChange {
                tenant: self.tenant().to_owned(),
                users: Some(touched.users.iter().cloned().collect()),
            })
        }
    }

    /// Writes the change's event into the transaction, so it exists iff
    /// the change commits: a `store_events` row on SQLite (other processes
    /// poll it), a NOTIFY on PostgreSQL (delivered at commit).
    pub(super) async fn announce_directory(&mut self) -> Result<(), StoreError> {
        let Some(change) = self.directory_change() else {
            return Ok(());
        };
        let payload = events::encode(&change.event());
        match self.backend() {
            Backend::Sqlite => {
                sqlx::query("INSERT INTO store_events (payload, created_at) VALUES ($1, $2)")
                    .bind(payload)
                    .bind(super::unix_now())
                    .execute(&mut *self.tx)
                    .await?;
            }
            Backend::Postgres => {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(events::CHANNEL)
                    .bind(payload)
                    .execute(&mut *self.tx)
                    .await?;
            }
        }
        Ok(())
    }
}
