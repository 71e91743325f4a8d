//! What each SCIM write tells the app, in the shared vocabulary of
//! `crate::events`: SCIM rows become event data here, the builders there.
//! Called inside the write's transaction, so a change and its events commit
//! together, in the order they are emitted here. Also `webhooks resync`,
//! which reads the same rows.

use serde_json::{Map, Value, json};

use super::emails::TenantEmails;
use super::error::ScimError;
use super::resource;
use super::schema::Kind;
use crate::events::{self, EventType};
use crate::store::{ScimMember, ScimRow, WriteTx};

fn doc(row: &ScimRow) -> Map<String, Value> {
    serde_json::from_str(&row.doc).unwrap_or_default()
}

/// Whether a stored user document says `active` (absent means active).
pub fn is_active(row: &ScimRow) -> bool {
    resource::login_of(&doc(row), None).active
}

/// A SCIM user's event data: the login identity Portcullis derives from the
/// document, every address with `verified_domain` (whether its domain is
/// one the tenant has proven, which the app needs when the tenant allows
/// external emails: `emails[].value`, and `userName` when it has an `@`),
/// and the SCIM resource. Members lists are never embedded: a group can
/// have tens of thousands.
fn user_data(row: &ScimRow, base: &str, emails: &TenantEmails) -> Value {
    let doc = doc(row);
    let login = resource::login_of(&doc, None);
    events::user(events::User {
        id: &row.id,
        email: &login.email,
        name: login.name.as_deref(),
        active: login.active,
        role: None,
        source: "scim",
        emails: Some(emails.marks(&doc)),
        scim: Some(resource::render(Kind::User, row, base, None, None)),
    })
}

fn group_data(row: &ScimRow, base: &str) -> Value {
    events::group(events::Group {
        id: &row.id,
        display_name: &row.name,
        external_id: row.external_id.as_deref(),
        scim: resource::render(Kind::Group, row, base, None, None),
    })
}

/// A resource event (`user.*`, `group.*`).
pub async fn resource(
    tx: &mut WriteTx,
    kind: Kind,
    event: EventType,
    row: &ScimRow,
    base: &str,
    emails: &TenantEmails,
) -> Result<(), ScimError> {
    let data = match kind {
        Kind::User => user_data(row, base, emails),
        Kind::Group => group_data(row, base),
    };
    tx.outbox()
        .emit(event, data, crate::clock::now_ms())
        .await?;
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
            let data = events::membership(&g, &m.id, &m.kind);
            tx.outbox()
                .emit(event, data, crate::clock::now_ms())
                .await?;
        }
    }
    Ok(())
}

/// Resources per transaction during a resync: bounded transactions, and
/// the sequence keeps the whole resync in order anyway.
const RESYNC_BATCH: usize = 200;

/// What a resync emitted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resynced {
    pub users: usize,
    pub groups: usize,
    pub memberships: usize,
}

/// `webhooks resync`: the tenant's whole current state as events — every
/// user (`user.updated`, JIT and invited users included), every group
/// (`group.updated`) and every membership (`group.member_added`) — so an
/// app can rebuild from scratch. Events are idempotent full states, so a
/// resync is safe to run at any time; they queue behind pending ones.
pub async fn resync(
    store: &crate::store::Store,
    tenant: &str,
    base: &str,
    emails: &TenantEmails,
) -> Result<Resynced, crate::store::StoreError> {
    use crate::store::ScimKind;
    let mut done = Resynced::default();
    let users = store.users().list(Some(tenant)).await?;
    for chunk in users.chunks(RESYNC_BATCH) {
        let mut tx = store.begin_write(tenant).await?;
        for u in chunk {
            let data = match tx.scim().get(ScimKind::User, &u.id).await? {
                Some(row) => {
                    let mut d = user_data(&row, base, emails);
                    // The users row is the authority on sign-in state.
                    d["active"] = json!(u.active);
                    d
                }
                None => events::user(u.into()),
            };
            tx.outbox()
                .emit(EventType::UserUpdated, data, crate::clock::now_ms())
                .await?;
            done.users += 1;
        }
        tx.commit().await?;
    }
    let mut after: Option<(i64, String)> = None;
    loop {
        let groups = store
            .scim()
            .scan(
                ScimKind::Group,
                tenant,
                after.as_ref().map(|(s, id)| (*s, id.as_str())),
                RESYNC_BATCH as i64,
            )
            .await?;
        let Some(last) = groups.last() else { break };
        after = Some((last.seq, last.id.clone()));
        for g in &groups {
            let members = store.scim().members(&g.id).await?;
            let mut tx = store.begin_write(tenant).await?;
            let gd = group_data(g, base);
            tx.outbox()
                .emit(EventType::GroupUpdated, gd.clone(), crate::clock::now_ms())
                .await?;
            for m in &members {
                let data = events::membership(&gd, &m.id, &m.kind);
                tx.outbox()
                    .emit(EventType::GroupMemberAdded, data, crate::clock::now_ms())
                    .await?;
            }
            tx.commit().await?;
            done.groups += 1;
            done.memberships += members.len();
        }
        if groups.len() < RESYNC_BATCH {
            break;
        }
    }
    Ok(done)
}
