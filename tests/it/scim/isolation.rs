//! SCIM tenant isolation for writes: another tenant's token can
//! neither change nor delete a tenant's users and groups by id, nor pull
//! them into its own groups. Each attempt is a 404 (400 `invalidValue` for
//! a member that is not a resource of the caller's tenant), and afterwards
//! the victim's stored resources, memberships, login rows and webhook
//! outbox are exactly what they were. Both stores.

use portcullis::store::{ScimKind, ScimMember, ScimRow, Store, UserRecord};
use serde_json::{Value, json};

use crate::support::scim::*;

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Db::Sqlite).await; }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Db::Postgres).await; }
        )* }
    };
}

on_both_stores!(another_tenants_token_changes_nothing_by_id);

/// Everything of one tenant a write could touch.
#[derive(Debug, PartialEq)]
struct Snapshot {
    users: Vec<ScimRow>,
    groups: Vec<(ScimRow, Vec<ScimMember>)>,
    logins: Vec<UserRecord>,
    /// (sequence, type, payload) of every outbox event.
    events: Vec<(i64, String, String)>,
}

async fn snapshot(store: &Store, tenant: &str) -> Snapshot {
    let users = store
        .scim()
        .scan(ScimKind::User, tenant, None, 10_000)
        .await
        .unwrap();
    let mut groups = Vec::new();
    for g in store
        .scim()
        .scan(ScimKind::Group, tenant, None, 10_000)
        .await
        .unwrap()
    {
        let members = store.scim().members(&g.id).await.unwrap();
        groups.push((g, members));
    }
    let logins = store.users().list(Some(tenant)).await.unwrap();
    let events = store
        .outbox()
        .events(tenant, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.event_type, e.payload))
        .collect();
    Snapshot {
        users,
        groups,
        logins,
        events,
    }
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH], "Operations": ops})
}

async fn another_tenants_token_changes_nothing_by_id(db: Db) {
    let env = env_on(db, "").await;
    let store = &env.shared.store;
    let acme = ScimClient::new(&env, "acme").await;
    let globex = ScimClient::new(&env, "globex").await;

    // The victim, acme: two users, a group with alice in it and a nested group.
    let alice = acme.create_user("alice@acme.com").await;
    let bob = acme.create_user("bob@acme.com").await;
    let eng = acme.create_group("Engineering", &[&alice]).await;
    let ops = acme.create_group("Ops", &[&eng]).await;
    // The attacker, globex, with its own user and group.
    let mallory = globex.create_user("mallory@globex.com").await;
    let crew = globex.create_group("Crew", &[&mallory]).await;

    let acme_before = snapshot(store, "acme").await;
    assert_eq!(acme_before.users.len(), 2);
    assert_eq!(acme_before.groups.len(), 2);
    assert!(!acme_before.events.is_empty());
    let globex_before = snapshot(store, "globex").await;

    let user = |id: &str| format!("/Users/{id}");
    let group = |id: &str| format!("/Groups/{id}");
    let add = |id: &str| patch(json!([{"op": "add", "path": "members", "value": [{"value": id}]}]));

    // Writes to acme's resources by id: 404, exactly like an id that does
    // not exist (nothing tells globex the id is real).
    let unknown = "5d0e2f4c-0000-4000-8000-000000000000";
    let by_id: Vec<(&str, reqwest::Method, String, Option<Value>)> = vec![
        (
            "add a member to acme's group",
            reqwest::Method::PATCH,
            group(&eng),
            Some(add(&mallory)),
        ),
        (
            "add acme's own user to acme's group",
            reqwest::Method::PATCH,
            group(&eng),
            Some(add(&bob)),
        ),
        (
            "remove a member of acme's group",
            reqwest::Method::PATCH,
            group(&eng),
            Some(patch(
                json!([{"op": "remove", "path": format!("members[value eq \"{alice}\"]")}]),
            )),
        ),
        (
            "rename acme's group",
            reqwest::Method::PATCH,
            group(&eng),
            Some(patch(
                json!([{"op": "replace", "value": {"displayName": "pwned"}}]),
            )),
        ),
        (
            "replace acme's group",
            reqwest::Method::PUT,
            group(&eng),
            Some(
                json!({"schemas": [GROUP], "displayName": "pwned", "members": [{"value": mallory}]}),
            ),
        ),
        (
            "delete acme's group",
            reqwest::Method::DELETE,
            group(&ops),
            None,
        ),
        (
            "deactivate acme's user",
            reqwest::Method::PATCH,
            user(&alice),
            Some(patch(
                json!([{"op": "Replace", "path": "active", "value": "False"}]),
            )),
        ),
        (
            "change acme's user's email",
            reqwest::Method::PATCH,
            user(&alice),
            Some(patch(
                json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "alice@globex.com"}]),
            )),
        ),
        (
            "replace acme's user",
            reqwest::Method::PUT,
            user(&alice),
            Some(json!({"schemas": [USER], "userName": "alice@globex.com", "active": false})),
        ),
        (
            "delete acme's user",
            reqwest::Method::DELETE,
            user(&bob),
            None,
        ),
    ];
    for (what, method, path, body) in &by_id {
        let r = globex.send(method.clone(), path, body.as_ref()).await;
        r.assert_error(404, None);
        // The same answer as for an id nobody has.
        let ghost = path.replace(&alice, unknown).replace(&bob, unknown);
        let ghost = ghost.replace(&eng, unknown).replace(&ops, unknown);
        let g = globex.send(method.clone(), &ghost, body.as_ref()).await;
        assert_eq!(
            (
                r.status,
                r.body["detail"]
                    .as_str()
                    .map(|d| d.replace(&path[path.rfind('/').unwrap() + 1..], "ID"))
            ),
            (
                g.status,
                g.body["detail"].as_str().map(|d| d.replace(unknown, "ID"))
            ),
            "{what}"
        );
        // With `If-Match: *` too (the ETag check must not run first).
        let r = globex
            .raw(
                method.clone(),
                path,
                &[("content-type", "application/scim+json"), ("if-match", "*")],
                body.as_ref().map(|b| serde_json::to_vec(b).unwrap()),
            )
            .await;
        r.assert_error(404, None);
    }

    // acme's resources as members of globex's groups: 400 invalidValue.
    let pulls: Vec<(&str, reqwest::Method, String, Value)> = vec![
        (
            "add acme's user to globex's group",
            reqwest::Method::PATCH,
            group(&crew),
            add(&alice),
        ),
        (
            "add acme's group to globex's group",
            reqwest::Method::PATCH,
            group(&crew),
            add(&eng),
        ),
        (
            "replace globex's members with acme's",
            reqwest::Method::PUT,
            group(&crew),
            json!({"schemas": [GROUP], "displayName": "Crew", "members": [{"value": alice}, {"value": bob}]}),
        ),
        (
            "create a globex group of acme's users",
            reqwest::Method::POST,
            "/Groups".to_owned(),
            json!({"schemas": [GROUP], "displayName": "Stolen", "members": [{"value": alice}]}),
        ),
    ];
    for (what, method, path, body) in &pulls {
        let r = globex.send(method.clone(), path, Some(body)).await;
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        r.assert_error(400, Some("invalidValue"));
        assert!(!r.body.to_string().contains("acme"), "{what}: {}", r.body);
    }

    // The same through Bulk: each operation fails alone.
    let bulk = json!({
        "schemas": [BULK],
        "Operations": [
            {"method": "PATCH", "path": group(&eng), "data": add(&mallory)},
            {"method": "PUT", "path": group(&eng), "data": {"schemas": [GROUP], "displayName": "pwned"}},
            {"method": "DELETE", "path": group(&ops)},
            {"method": "PATCH", "path": user(&alice), "data": patch(json!([{"op": "replace", "path": "active", "value": false}]))},
            {"method": "PUT", "path": user(&bob), "data": {"schemas": [USER], "userName": "bob@globex.com"}},
            {"method": "DELETE", "path": user(&alice)},
            {"method": "PATCH", "path": group(&crew), "data": add(&bob)},
            {"method": "POST", "bulkId": "g", "path": "/Groups", "data": {"schemas": [GROUP], "displayName": "Stolen", "members": [{"value": alice}]}},
        ]
    });
    let r = globex.post("/Bulk", &bulk).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let statuses: Vec<&str> = r.body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["404", "404", "404", "404", "404", "404", "400", "400"],
        "{}",
        r.body
    );

    // Nothing of acme changed, not even a version; no event for acme.
    assert_eq!(snapshot(store, "acme").await, acme_before);
    // Nor did globex's own group lose or gain anything.
    assert_eq!(snapshot(store, "globex").await, globex_before);
    // acme still works on its resources.
    let r = acme.get(&group(&eng)).await;
    assert_eq!(member_ids(&r.body), vec![alice.clone()]);
    assert_eq!(acme.delete(&user(&bob)).await.status, 204);
}
