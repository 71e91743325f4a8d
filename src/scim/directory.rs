//! What a SCIM write means for signed-in users: each write records, in its
//! transaction, whose principals it may alter (a user's own document, the
//! users a membership change or a group's rename or delete reaches through
//! nested groups); the commit announces them to every replica, and this
//! process drops its cached principals before the answer leaves. Group
//! memberships never form a cycle: the write that would close one is
//! refused.

use super::error::ScimError;
use super::schema::Kind;
use super::service::Scim;
use super::wire::clip;
use crate::store::{ScimMember, WriteTx};

impl Scim {
    /// Commits a write and, before the caller answers, drops this process'
    /// cached sessions it revoked and the cached principals it changed
    /// (other processes learn through the store's events), so the next
    /// request here already sees the change.
    pub(super) async fn commit(&self, tx: WriteTx) -> Result<(), ScimError> {
        let change = tx.directory_change();
        let revoked = tx.commit().await?;
        self.after_commit(revoked).await;
        if let Some(change) = change {
            self.sessions
                .invalidate_directory(&change.tenant, change.users.as_deref())
                .await;
        }
        Ok(())
    }
}

/// The resource `id` of `kind` changed (or is about to go): a user's own
/// principal; every user under a group. Call before a delete, while the
/// group still holds its members.
pub(super) async fn touched(tx: &mut WriteTx, kind: Kind, id: &str) -> Result<(), ScimError> {
    match kind {
        Kind::User => tx.directory().touched_users([id]),
        Kind::Group => tx.directory().touched_group(id).await?,
    }
    Ok(())
}

/// Members added to or removed from a group: a user is touched, and so is
/// everyone under a member group (they gain or lose the group and every
/// group above it).
pub(super) async fn touched_members(
    tx: &mut WriteTx,
    members: &[ScimMember],
) -> Result<(), ScimError> {
    for m in members {
        if m.kind == "Group" {
            tx.directory().touched_group(&m.id).await?;
        } else {
            tx.directory().touched_users([m.id.as_str()]);
        }
    }
    Ok(())
}

/// Refuses to make group `member` a member of `group` when `group` is
/// `member` or already under it: nested groups are flattened into
/// sessions, and a cycle has no meaning there. Checked inside the
/// tenant's serialised write transaction, so it holds at commit (for Bulk
/// too).
pub(super) async fn refuse_cycle(
    tx: &mut WriteTx,
    group: &str,
    member: &str,
) -> Result<(), ScimError> {
    if tx.directory().reaches(member, group).await? {
        return Err(ScimError::invalid_value(format!(
            "adding group `{}` to group `{}` would make group membership circular: \
             `{}` is already a member of `{}`, directly or through nested groups",
            clip(member),
            clip(group),
            clip(group),
            clip(member)
        )));
    }
    Ok(())
}
