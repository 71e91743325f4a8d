//! What each SCIM write tells the app (webhook events, issue 7). Called
//! inside the write's transaction, so a change and its events commit
//! together, in the order they are emitted here.

use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::resource;
use super::schema::Kind;
use crate::store::{EventType, ScimMember, ScimRow, WriteTx};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn doc(row: &ScimRow) -> Map<String, Value> {
    serde_json::from_str(&row.doc).unwrap_or_default()
}

/// Whether a stored user document says `active` (absent means active).
pub fn is_active(row: &ScimRow) -> bool {
    resource::login_of(&doc(row), None).active
}

/// A user's state: the login identity Portcullis derives (the same shape
/// JIT users have, see `store::user_data`) plus the SCIM resource. Members
/// lists are never embedded: a group can have tens of thousands.
fn user_data(row: &ScimRow, base: &str) -> Value {
    let login = resource::login_of(&doc(row), None);
    json!({
        "id": row.id,
        "email": login.email,
        "name": login.name,
        "active": login.active,
        "role": null,
        "source": "scim",
        "scim": resource::render(Kind::User, row, base, None, None),
    })
}

fn group_data(row: &ScimRow, base: &str) -> Value {
    json!({
        "id": row.id,
        "display_name": row.name,
        "external_id": row.external_id,
        "scim": resource::render(Kind::Group, row, base, None, None),
    })
}

/// A resource event (`user.*`, `group.*`).
pub async fn resource(
    tx: &mut WriteTx,
    kind: Kind,
    event: EventType,
    row: &ScimRow,
    base: &str,
) -> Result<(), ScimError> {
    let data = match kind {
        Kind::User => user_data(row, base),
        Kind::Group => group_data(row, base),
    };
    tx.emit(event, &data, now_ms()).await?;
    Ok(())
}

/// The event for a changed user document: deactivation and reactivation
/// are their own events, anything else is an update.
pub fn user_change(before_active: bool, after: &ScimRow) -> EventType {
    match (before_active, is_active(after)) {
        (true, false) => EventType::UserDeactivated,
        (false, true) => EventType::UserReactivated,
        _ => EventType::UserUpdated,
    }
}

/// `group.member_added` / `group.member_removed`, one per member, each
/// with the group's state after the change.
pub async fn memberships(
    tx: &mut WriteTx,
    group: &ScimRow,
    added: &[ScimMember],
    removed: &[ScimMember],
    base: &str,
) -> Result<(), ScimError> {
    let g = group_data(group, base);
    for (event, list) in [
        (EventType::GroupMemberRemoved, removed),
        (EventType::GroupMemberAdded, added),
    ] {
        for m in list {
            let data = json!({
                "group": g,
                "member": { "id": m.id, "type": m.kind },
            });
            tx.emit(event, &data, now_ms()).await?;
        }
    }
    Ok(())
}
