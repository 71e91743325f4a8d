//! The demo app's webhook receiver and directory page: what an app behind
//! Portcullis does with the user and group events it is sent.
//!
//! Each POST is checked the way a real app should (Standard Webhooks: the
//! signature over the raw body with the shared secret, and the timestamp's
//! age), then applied to an in-memory directory per tenant in `sequence`
//! order — each event carries the full state of its resource, so applying
//! is a plain upsert or removal. `/directory` shows the result (users,
//! groups, memberships, the last events), so SCIM or a JIT login → outbox →
//! webhook → app is visible in `make demo`. The state lives only in this
//! process: a restarted demo app gets it back with `portcullis webhooks
//! resync`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;

use crate::events::EventType;
use crate::webhook::Signer;

/// Where the demo app receives events (`[webhook] url` points here).
pub const WEBHOOK_PATH: &str = "/webhooks/portcullis";
/// The directory page (through the proxy: `http://127.0.0.1:8080/directory`).
pub const DIRECTORY_PATH: &str = "/directory";
/// How far a message's timestamp may be from now: the tolerance Standard
/// Webhooks recommends against replayed captures.
const TOLERANCE_S: i64 = 300;
/// Events listed on the page, newest first.
const RECENT: usize = 20;

/// One tenant's directory as the events describe it.
#[derive(Debug, Default)]
struct Tenant {
    /// The highest sequence applied; older or repeated events (replays) are
    /// acknowledged and ignored, so they can't roll the state back.
    last_sequence: i64,
    /// User id → the `data` of its latest `user.*` event.
    users: BTreeMap<String, Value>,
    /// Group id → the group's latest state.
    groups: BTreeMap<String, Value>,
    /// Group id → member ids.
    members: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, Clone, Serialize)]
struct Recent {
    tenant: String,
    sequence: i64,
    #[serde(rename = "type")]
    event_type: String,
    subject: String,
}

#[derive(Debug, Default)]
struct Book {
    tenants: BTreeMap<String, Tenant>,
    recent: VecDeque<Recent>,
}

/// The receiver's state: the secret(s) it verifies with and what it has
/// learnt.
pub struct Directory {
    signer: Signer,
    book: Mutex<Book>,
}

impl Directory {
    /// `secrets` are the decoded `[webhook] secrets` (the demo shares them
    /// with Portcullis, as a real app is given them by its operator).
    pub fn new(secrets: &[Vec<u8>]) -> Self {
        Self {
            signer: Signer::new(secrets),
            book: Mutex::new(Book::default()),
        }
    }
}

/// The receiver and the directory page.
pub fn router(directory: Arc<Directory>) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(receive))
        .route(DIRECTORY_PATH, get(show))
        .with_state(directory)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// One delivery: 401 unless signed with our secret and fresh, 400 unless an
/// envelope, else applied (or ignored as already seen) and acknowledged.
async fn receive(State(dir): State<Arc<Directory>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let id = header(&headers, "webhook-id");
    if !dir.signer.verify(
        id,
        header(&headers, "webhook-timestamp"),
        &body,
        header(&headers, "webhook-signature"),
        crate::clock::now(),
        TOLERANCE_S,
    ) {
        tracing::warn!(webhook_id = %id, "demo app: webhook refused (bad signature or stale timestamp)");
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(envelope) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let (Some(tenant), Some(sequence), Some(name)) = (
        envelope.get("tenant").and_then(Value::as_str),
        envelope.get("sequence").and_then(Value::as_i64),
        envelope.get("type").and_then(Value::as_str),
    ) else {
        return StatusCode::BAD_REQUEST;
    };
    // An app ignores event types it doesn't know (newer senders add some).
    let Some(kind) = EventType::parse(name) else {
        return StatusCode::OK;
    };
    let data = envelope.get("data").unwrap_or(&Value::Null);
    let Ok(mut book) = dir.book.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    let t = book.tenants.entry(tenant.to_owned()).or_default();
    if sequence <= t.last_sequence {
        return StatusCode::OK; // a replay: already applied
    }
    t.last_sequence = sequence;
    let subject = apply(t, kind, data);
    book.recent.push_front(Recent {
        tenant: tenant.to_owned(),
        sequence,
        event_type: name.to_owned(),
        subject,
    });
    book.recent.truncate(RECENT);
    StatusCode::OK
}

fn id_of(v: &Value) -> Option<String> {
    v.get("id").and_then(Value::as_str).map(str::to_owned)
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Applies one event's full state; returns what it was about, for the list
/// of recent events.
fn apply(t: &mut Tenant, kind: EventType, data: &Value) -> String {
    match kind {
        EventType::UserCreated
        | EventType::UserUpdated
        | EventType::UserDeactivated
        | EventType::UserReactivated => {
            if let Some(id) = id_of(data) {
                t.users.insert(id, data.clone());
            }
            text(data, "email")
        }
        EventType::UserDeleted => {
            if let Some(id) = id_of(data) {
                t.users.remove(&id);
                for members in t.members.values_mut() {
                    members.remove(&id);
                }
            }
            text(data, "email")
        }
        EventType::GroupCreated | EventType::GroupUpdated => {
            if let Some(id) = id_of(data) {
                t.groups.insert(id, data.clone());
            }
            text(data, "display_name")
        }
        EventType::GroupDeleted => {
            if let Some(id) = id_of(data) {
                t.groups.remove(&id);
                t.members.remove(&id);
                for members in t.members.values_mut() {
                    members.remove(&id);
                }
            }
            text(data, "display_name")
        }
        EventType::GroupMemberAdded | EventType::GroupMemberRemoved => {
            let group = data.get("group").unwrap_or(&Value::Null);
            let (Some(gid), Some(mid)) = (id_of(group), data.get("member").and_then(id_of)) else {
                return String::new();
            };
            let member = t
                .users
                .get(&mid)
                .map(|u| text(u, "email"))
                .unwrap_or_else(|| mid.clone());
            t.groups.insert(gid.clone(), group.clone());
            let members = t.members.entry(gid).or_default();
            if kind == EventType::GroupMemberAdded {
                members.insert(mid);
            } else {
                members.remove(&mid);
            }
            format!("{} ∋ {member}", text(group, "display_name"))
        }
    }
}

#[derive(Debug, Serialize)]
struct UserView {
    id: String,
    email: String,
    name: String,
    active: bool,
    source: String,
    groups: Vec<String>,
}

#[derive(Debug, Serialize)]
struct GroupView {
    id: String,
    display_name: String,
    members: Vec<String>,
}

#[derive(Debug, Serialize)]
struct TenantView {
    id: String,
    last_sequence: i64,
    users: Vec<UserView>,
    groups: Vec<GroupView>,
}

#[derive(Debug, Serialize, Template)]
#[template(path = "demo_directory.html")]
struct Page {
    tenants: Vec<TenantView>,
    recent: Vec<Recent>,
}

fn view(book: &Book) -> Page {
    let tenants = book
        .tenants
        .iter()
        .map(|(id, t)| {
            let email = |uid: &String| {
                t.users
                    .get(uid)
                    .map(|u| text(u, "email"))
                    .or_else(|| t.groups.get(uid).map(|g| text(g, "display_name")))
                    .unwrap_or_else(|| uid.clone())
            };
            let group_name = |gid: &String| {
                t.groups
                    .get(gid)
                    .map(|g| text(g, "display_name"))
                    .unwrap_or_else(|| gid.clone())
            };
            let mut users: Vec<UserView> = t
                .users
                .iter()
                .map(|(uid, u)| UserView {
                    id: uid.clone(),
                    email: text(u, "email"),
                    name: text(u, "name"),
                    active: u.get("active").and_then(Value::as_bool).unwrap_or(false),
                    source: text(u, "source"),
                    groups: t
                        .members
                        .iter()
                        .filter(|(_, m)| m.contains(uid))
                        .map(|(gid, _)| group_name(gid))
                        .collect(),
                })
                .collect();
            users.sort_by(|a, b| a.email.cmp(&b.email));
            let mut groups: Vec<GroupView> = t
                .groups
                .keys()
                .map(|gid| GroupView {
                    id: gid.clone(),
                    display_name: group_name(gid),
                    members: t
                        .members
                        .get(gid)
                        .map(|m| m.iter().map(email).collect())
                        .unwrap_or_default(),
                })
                .collect();
            groups.sort_by(|a, b| a.display_name.cmp(&b.display_name));
            TenantView {
                id: id.clone(),
                last_sequence: t.last_sequence,
                users,
                groups,
            }
        })
        .collect();
    Page {
        tenants,
        recent: book.recent.iter().cloned().collect(),
    }
}

/// JSON when asked (`Accept: application/json`), else the HTML page, which
/// reloads itself every few seconds so arriving events show up.
async fn show(State(dir): State<Arc<Directory>>, headers: HeaderMap) -> Response {
    let page = match dir.book.lock() {
        Ok(book) => view(&book),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    if header(&headers, "accept").contains("application/json") {
        return Json(page).into_response();
    }
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(id: &str, email: &str, active: bool) -> Value {
        json!({"id": id, "email": email, "active": active, "source": "scim"})
    }

    #[test]
    fn events_build_the_directory_and_deletions_clean_memberships() {
        let mut t = Tenant::default();
        let eng = json!({"id": "g1", "display_name": "Engineering"});
        apply(&mut t, EventType::UserCreated, &user("u1", "a@x", true));
        apply(&mut t, EventType::UserCreated, &user("u2", "b@x", true));
        apply(&mut t, EventType::GroupCreated, &eng);
        for u in ["u1", "u2"] {
            let s = apply(
                &mut t,
                EventType::GroupMemberAdded,
                &json!({"group": eng, "member": {"id": u, "type": "User"}}),
            );
            assert!(s.starts_with("Engineering ∋ "), "{s}");
        }
        apply(
            &mut t,
            EventType::UserDeactivated,
            &user("u2", "b@x", false),
        );
        let book = Book {
            tenants: BTreeMap::from([("acme".to_owned(), t)]),
            recent: VecDeque::new(),
        };
        let page = view(&book);
        let acme = &page.tenants[0];
        assert_eq!(acme.groups[0].members, ["a@x", "b@x"]);
        assert_eq!(acme.users[1].groups, ["Engineering"]);
        assert!(!acme.users[1].active);

        let mut t = book.tenants.into_values().next().unwrap_or_default();
        apply(&mut t, EventType::UserDeleted, &user("u1", "a@x", true));
        apply(
            &mut t,
            EventType::GroupMemberRemoved,
            &json!({"group": eng, "member": {"id": "u2", "type": "User"}}),
        );
        assert!(t.members["g1"].is_empty());
        assert_eq!(t.users.len(), 1);
        apply(&mut t, EventType::GroupDeleted, &eng);
        assert!(t.groups.is_empty() && t.members.is_empty());
    }
}
