//! The events Portcullis tells the app about: their types, the envelope
//! they travel in, and one builder per entity (user, group, membership).
//!
//! Every producer goes through here — SCIM writes (`scim::events`), JIT
//! login (`auth::policy`) and `webhooks resync` — so a user announced by
//! any of them has the same shape, and the shape is defined once. The
//! store (`store::outbox`) only numbers and persists what these functions
//! build; `webhook` only delivers the stored bytes.
//!
//! A leaf: it imports nothing of this crate, only serde, chrono and uuid.
//! Producers turn their own records (a SCIM row, a `users` row) into the
//! plain inputs below, so `events` never has to know the store or SCIM —
//! and the store can depend on it for the envelope without a cycle.

use serde::Serialize;
use serde_json::{Value, json};

/// The closed set of event types an app can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    UserCreated,
    UserUpdated,
    UserDeactivated,
    UserReactivated,
    UserDeleted,
    GroupCreated,
    GroupUpdated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::UserCreated,
        EventType::UserUpdated,
        EventType::UserDeactivated,
        EventType::UserReactivated,
        EventType::UserDeleted,
        EventType::GroupCreated,
        EventType::GroupUpdated,
        EventType::GroupDeleted,
        EventType::GroupMemberAdded,
        EventType::GroupMemberRemoved,
    ];

    /// The wire name, e.g. `user.created`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "user.created",
            EventType::UserUpdated => "user.updated",
            EventType::UserDeactivated => "user.deactivated",
            EventType::UserReactivated => "user.reactivated",
            EventType::UserDeleted => "user.deleted",
            EventType::GroupCreated => "group.created",
            EventType::GroupUpdated => "group.updated",
            EventType::GroupDeleted => "group.deleted",
            EventType::GroupMemberAdded => "group.member_added",
            EventType::GroupMemberRemoved => "group.member_removed",
        }
    }

    /// The type a wire name stands for (a receiver reading an envelope).
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// A user as the app learns of it, whoever provisioned them.
#[derive(Debug, Clone, PartialEq)]
pub struct User<'a> {
    pub id: &'a str,
    /// The address the user signs in with.
    pub email: &'a str,
    pub name: Option<&'a str>,
    /// Deactivated users never sign in.
    pub active: bool,
    pub role: Option<&'a str>,
    /// `jit`, `invite`, `scim` (or `scim-deleted`).
    pub source: &'a str,
    /// SCIM users only: every address with `verified_domain`, which the app
    /// needs when a tenant allows addresses outside its proven domains.
    /// `None` leaves the key out.
    pub emails: Option<Value>,
    /// The SCIM resource as served, `null` for users SCIM doesn't manage.
    pub scim: Option<Value>,
}

/// The `data` of a `user.*` event: the full current state, so an app can
/// apply it idempotently.
pub fn user(u: User<'_>) -> Value {
    let mut data = json!({
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "active": u.active,
        "role": u.role,
        "source": u.source,
        "scim": u.scim,
    });
    if let (Some(emails), Some(map)) = (u.emails, data.as_object_mut()) {
        map.insert("emails".into(), emails);
    }
    data
}

/// A group as the app learns of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Group<'a> {
    pub id: &'a str,
    pub display_name: &'a str,
    pub external_id: Option<&'a str>,
    /// The SCIM resource as served (without its members: a group can have
    /// tens of thousands, and each membership is its own event).
    pub scim: Value,
}

/// The `data` of a `group.*` resource event.
pub fn group(g: Group<'_>) -> Value {
    json!({
        "id": g.id,
        "display_name": g.display_name,
        "external_id": g.external_id,
        "scim": g.scim,
    })
}

/// The `data` of `group.member_added` / `group.member_removed`: the group's
/// state (as built by [`group`]) and the member's id and kind (`User` or
/// `Group`).
pub fn membership(group: &Value, member_id: &str, member_kind: &str) -> Value {
    json!({
        "group": group,
        "member": { "id": member_id, "type": member_kind },
    })
}

/// A new Standard Webhooks message id (`msg_` + 32 hex digits). Fixed when
/// the event is stored, so retries and replays carry the same id and a
/// receiver can deduplicate.
pub fn message_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

/// The envelope every event is sent in.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    /// The message id, equal to the `webhook-id` header.
    pub id: &'a str,
    #[serde(rename = "type")]
    pub event_type: &'a str,
    pub tenant: &'a str,
    /// Gap-free per tenant, in commit order: the app applies in this order.
    pub sequence: i64,
    /// RFC 3339, as the Standard Webhooks payload structure recommends.
    pub timestamp: String,
    pub data: &'a Value,
}

impl<'a> Envelope<'a> {
    /// The envelope of one event; `at_ms` is when the change was made.
    pub fn new(
        id: &'a str,
        event_type: EventType,
        tenant: &'a str,
        sequence: i64,
        at_ms: i64,
        data: &'a Value,
    ) -> Self {
        Envelope {
            id,
            event_type: event_type.as_str(),
            tenant,
            sequence,
            timestamp: rfc3339(at_ms),
            data,
        }
    }

    /// The exact body that is stored and sent, byte for byte, every time.
    pub fn body(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("user.exploded"), None);
    }

    #[test]
    fn a_user_without_scim_has_no_emails_key_and_a_null_resource() {
        let data = user(User {
            id: "u1",
            email: "a@acme.com",
            name: None,
            active: true,
            role: Some("admin"),
            source: "jit",
            emails: None,
            scim: None,
        });
        assert_eq!(
            data,
            json!({"id": "u1", "email": "a@acme.com", "name": null, "active": true,
                   "role": "admin", "source": "jit", "scim": null})
        );
        let scim = user(User {
            id: "u1",
            email: "a@acme.com",
            name: Some("A"),
            active: false,
            role: None,
            source: "scim",
            emails: Some(json!([{"value": "a@acme.com", "verified_domain": true}])),
            scim: Some(json!({"id": "u1"})),
        });
        assert_eq!(scim["emails"][0]["verified_domain"], true);
        assert_eq!(scim["scim"]["id"], "u1");
        assert_eq!(scim["role"], Value::Null);
    }

    #[test]
    fn the_envelope_names_its_message_and_sequence() {
        let data = membership(
            &group(Group {
                id: "g1",
                display_name: "Eng",
                external_id: None,
                scim: json!({}),
            }),
            "u1",
            "User",
        );
        let id = message_id();
        assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
        let body = Envelope::new(&id, EventType::GroupMemberAdded, "acme", 7, 0, &data)
            .body()
            .unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["id"], id.as_str());
        assert_eq!(v["type"], "group.member_added");
        assert_eq!(v["sequence"], 7);
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["data"]["member"], json!({"id": "u1", "type": "User"}));
        assert_eq!(v["data"]["group"]["display_name"], "Eng");
    }
}
