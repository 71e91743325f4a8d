//! SCIM stays inside the tenant: a user whose addresses
//! (`emails[].value`, and `userName` when it has an `@`) are outside the
//! tenant's verified domains is refused with `400 invalidValue` naming the
//! domain, on POST, PUT, PATCH and Bulk, in the shapes Entra ID and Okta
//! send — unless the tenant sets `[tenants.scim] allow_external_emails`,
//! and then the webhook event marks each address `verified_domain`.
//! "Verified" is what login routing uses: verified in the store for this
//! tenant and still in its configured domains.

use std::time::Duration;

use portcullis::store::DomainStatus;
use serde_json::{Value, json};

use crate::support::env::*;
use crate::support::postgres::PgCluster;
use crate::support::receiver::Receiver;
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

on_both_stores!(
    post_refuses_addresses_outside_verified_domains,
    put_and_patch_may_not_add_an_outside_address,
    bulk_judges_each_operation,
);

const TENANTS: &str = r#"
[[tenants]]
id = "acme"
domains = ["acme.com", "acme-pending.com", "acme-lapsed.com"]

[[tenants]]
id = "globex"
domains = ["globex.com"]

[[tenants]]
id = "initech"
domains = ["initech.com", "initech-pending.com"]
scim = { allow_external_emails = true }
"#;

const WAIT: Duration = Duration::from_secs(10);

/// The three tenants with their domains in every state that is *not*
/// verified for acme: pending, lapsed, verified but no longer configured
/// (`acme-unlisted.com`), and verified for another tenant.
async fn start(db: Db, extra: &str) -> TestEnv {
    let store_url = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(PgCluster::shared().await.fresh_database().await),
    };
    let env = TestEnv::with(Options {
        store_url,
        extra: format!("{TENANTS}\n{extra}"),
        ..Default::default()
    })
    .await;
    let store = &env.shared.store;
    for (tenant, domain, status) in [
        ("acme", "acme.com", DomainStatus::Verified),
        ("acme", "acme-pending.com", DomainStatus::Pending),
        ("acme", "acme-lapsed.com", DomainStatus::Lapsed),
        ("acme", "acme-unlisted.com", DomainStatus::Verified),
        ("globex", "globex.com", DomainStatus::Verified),
        ("initech", "initech.com", DomainStatus::Verified),
        ("initech", "initech-pending.com", DomainStatus::Pending),
    ] {
        set_domain_status(store, tenant, domain, status).await;
    }
    env
}

/// Entra ID's create (Microsoft Learn's request example): `userName` is
/// the UPN, the work email is separate.
fn entra_user(upn: &str, work: &str) -> Value {
    json!({
        "schemas": [USER, ENTERPRISE],
        "externalId": format!("ext-{upn}"),
        "userName": upn,
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": work}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": []
    })
}

/// Okta's create (Okta's SCIM 2.0 reference): `userName` is the login,
/// usually the primary email.
fn okta_user(login: &str, emails: &[&str]) -> Value {
    let emails: Vec<Value> = emails
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"primary": i == 0, "value": e, "type": if i == 0 { "work" } else { "home" }}))
        .collect();
    json!({
        "schemas": [USER],
        "userName": login,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": emails,
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": format!("00u-{login}"),
        "groups": [],
        "password": "1mz050nq",
        "active": true
    })
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH], "Operations": ops})
}

/// `(type, payload data)` of the tenant's outbox events, in order.
async fn events(env: &TestEnv, tenant: &str) -> Vec<(String, Value)> {
    env.shared
        .store
        .outbox()
        .events(tenant, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let body: Value = serde_json::from_str(&e.payload).unwrap();
            (e.event_type, body["data"].clone())
        })
        .collect()
}

#[track_caller]
fn assert_refused(r: &Response, domain: &str, what: &str) {
    assert_eq!(r.status, 400, "{what}: {}", r.body);
    r.assert_error(400, Some("invalidValue"));
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains(domain), "{what}: {detail}");
}

async fn post_refuses_addresses_outside_verified_domains(db: Db) {
    let env = start(db, "").await;
    let c = ScimClient::new(&env, "acme").await;

    let refused: Vec<(&str, Value, &str)> = vec![
        (
            "Entra: work email elsewhere",
            entra_user("alice@acme.com", "alice@evil.example"),
            "evil.example",
        ),
        (
            "Entra: UPN in another tenant's verified domain",
            entra_user("alice@globex.com", "alice@acme.com"),
            "globex.com",
        ),
        (
            "Entra: a pending domain of the tenant",
            entra_user("bob@acme-pending.com", "bob@acme-pending.com"),
            "acme-pending.com",
        ),
        (
            "Entra: a lapsed domain of the tenant",
            entra_user("bob@acme.com", "bob@acme-lapsed.com"),
            "acme-lapsed.com",
        ),
        (
            "Entra: verified in the store, gone from the config",
            entra_user("bob@acme.com", "bob@acme-unlisted.com"),
            "acme-unlisted.com",
        ),
        (
            "Entra: userName only (its member create)",
            json!({"schemas": [USER], "externalId": "e2", "userName": "member2@evil.example", "active": true}),
            "evil.example",
        ),
        (
            "Okta: login and email elsewhere",
            okta_user("carol@evil.example", &["carol@evil.example"]),
            "evil.example",
        ),
        (
            "Okta: a second (home) email elsewhere",
            okta_user("carol@acme.com", &["carol@acme.com", "carol@gmail.com"]),
            "gmail.com",
        ),
        (
            "Okta: a subdomain is a domain of its own",
            okta_user("carol@eu.acme.com", &["carol@eu.acme.com"]),
            "eu.acme.com",
        ),
        (
            "an address that is not one",
            okta_user("carol@acme.com", &["carol@acme.com", "carol at acme.com"]),
            "emails.value",
        ),
        (
            "a userName with an @ that is no address",
            json!({"schemas": [USER], "userName": "carol@acme.com@", "emails": [{"value": "carol@acme.com"}]}),
            "userName",
        ),
    ];
    for (what, body, domain) in &refused {
        assert_refused(&c.post("/Users", body).await, domain, what);
    }
    // Nothing was created and nothing announced.
    assert_eq!(c.get("/Users").await.body["totalResults"], 0);
    assert!(events(&env, "acme").await.is_empty());
    assert!(
        env.shared
            .store
            .users()
            .list(Some("acme"))
            .await
            .unwrap()
            .is_empty()
    );
    env.metrics_with(&format!(
        "portcullis_scim_external_emails_total{{result=\"refused\",tenant=\"acme\"}} {}\n",
        refused.len()
    ))
    .await;

    // Inside the verified domain (any case), both shapes are accepted, and
    // their events mark every address verified.
    for (what, body) in [
        (
            "Entra",
            entra_user("Alice@ACME.com", "alice.smith@acme.com"),
        ),
        (
            "Okta",
            okta_user("carol@acme.com", &["carol@acme.com", "c.user@Acme.Com"]),
        ),
        (
            "no address at all",
            json!({"schemas": [USER], "userName": "dave"}),
        ),
    ] {
        let r = c.post("/Users", &body).await;
        assert_eq!(r.status, 201, "{what}: {}", r.body);
    }
    let ev = events(&env, "acme").await;
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert_eq!(ev[0].0, "user.created");
    assert_eq!(
        ev[0].1["emails"],
        json!([
            {"value": "alice.smith@acme.com", "verified_domain": true},
            {"value": "Alice@ACME.com", "verified_domain": true},
        ])
    );
    assert_eq!(
        ev[1].1["emails"],
        json!([
            {"value": "carol@acme.com", "verified_domain": true},
            {"value": "c.user@Acme.Com", "verified_domain": true},
        ])
    );
    assert_eq!(ev[2].1["emails"], json!([]));
}

async fn put_and_patch_may_not_add_an_outside_address(db: Db) {
    let env = start(db, "").await;
    let store = &env.shared.store;
    let c = ScimClient::new(&env, "acme").await;
    let r = c
        .post("/Users", &okta_user("alice@acme.com", &["alice@acme.com"]))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let alice = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/Users/{alice}");
    let r = c
        .post("/Users", &entra_user("bob@acme.com", "bob@acme.com"))
        .await;
    let bob = r.body["id"].as_str().unwrap().to_owned();

    let stored = || async {
        (
            store
                .scim()
                .get(portcullis::store::ScimKind::User, "acme", &alice)
                .await
                .unwrap(),
            store.users().list(Some("acme")).await.unwrap(),
            events(&env, "acme").await.len(),
        )
    };
    let before = stored().await;

    let mut put = okta_user("alice@acme.com", &["alice@acme.com", "alice@evil.example"]);
    put["id"] = json!(alice);
    let refused: Vec<(&str, reqwest::Method, Value, &str)> = vec![
        (
            "Okta PUT with a second email elsewhere",
            reqwest::Method::PUT,
            put,
            "evil.example",
        ),
        (
            "Okta PUT moving the login elsewhere",
            reqwest::Method::PUT,
            okta_user("alice@globex.com", &["alice@acme.com"]),
            "globex.com",
        ),
        (
            "Entra PATCH of the work email",
            reqwest::Method::PATCH,
            patch(
                json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "alice@evil.example"}, {"op": "Replace", "path": "name.familyName", "value": "X"}]),
            ),
            "evil.example",
        ),
        (
            "Entra PATCH of the UPN",
            reqwest::Method::PATCH,
            patch(
                json!([{"op": "Replace", "path": "userName", "value": "alice@acme-pending.com"}]),
            ),
            "acme-pending.com",
        ),
        (
            "Okta path-less PATCH",
            reqwest::Method::PATCH,
            patch(
                json!([{"op": "replace", "value": {"userName": "alice@acme-lapsed.com", "active": true}}]),
            ),
            "acme-lapsed.com",
        ),
        (
            "PATCH adding an email",
            reqwest::Method::PATCH,
            patch(
                json!([{"op": "add", "path": "emails", "value": [{"value": "alice@gmail.com", "type": "home"}]}]),
            ),
            "gmail.com",
        ),
    ];
    for (what, method, body, domain) in &refused {
        let r = c.send(method.clone(), &path, Some(body)).await;
        assert_refused(&r, domain, what);
    }
    // The stored user, its login row and the outbox are untouched.
    assert_eq!(stored().await, before);

    // Within the domain, both are fine.
    let r = c
        .patch(
            &path,
            &patch(json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "alice.a@acme.com"}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .put(&path, &okta_user("alice@acme.com", &["alice.a@acme.com"]))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // The domain lapses. Addresses the users already have are not judged
    // again: deprovisioning and other changes go on, and the events say
    // the addresses are no longer in a verified domain.
    set_domain_status(store, "acme", "acme.com", DomainStatus::Lapsed).await;
    let n = events(&env, "acme").await.len();
    let r = c
        .patch(
            &path,
            &patch(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .put(&path, &okta_user("alice@acme.com", &["alice.a@acme.com"]))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A new address in the lapsed domain is refused, though.
    let r = c
        .patch(&path, &patch(json!([{"op": "add", "path": "emails", "value": [{"value": "alice.b@acme.com", "type": "home"}]}])))
        .await;
    assert_refused(&r, "acme.com", "a new address in a lapsed domain");
    assert_eq!(c.delete(&format!("/Users/{bob}")).await.status, 204);
    let ev = events(&env, "acme").await;
    let types: Vec<&str> = ev[n..].iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        ["user.deactivated", "user.reactivated", "user.deleted"]
    );
    for (_, data) in &ev[n..] {
        for e in data["emails"].as_array().unwrap() {
            assert_eq!(e["verified_domain"], false, "{data}");
        }
    }
    assert_eq!(ev[n].1["emails"][0]["value"], "alice.a@acme.com");
}

async fn bulk_judges_each_operation(db: Db) {
    let env = start(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    let post = |bulk_id: &str, body: Value| json!({"method": "POST", "bulkId": bulk_id, "path": "/Users", "data": body});

    // Consecutive creates run as one batch first; a refused one must not
    // slip through it, and the others still succeed.
    let r = c
        .post(
            "/Bulk",
            &json!({"schemas": [BULK], "Operations": [
                post("a", entra_user("a@acme.com", "a@acme.com")),
                post("b", entra_user("b@acme.com", "b@evil.example")),
                post("c", okta_user("c@acme.com", &["c@acme.com"])),
                post("d", okta_user("d@globex.com", &["d@globex.com"])),
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ops = r.body["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["201", "400", "201", "400"], "{}", r.body);
    assert_eq!(ops[1]["response"]["scimType"], "invalidValue");
    assert!(
        ops[1]["response"]["detail"]
            .as_str()
            .unwrap()
            .contains("evil.example")
    );
    assert!(
        ops[3]["response"]["detail"]
            .as_str()
            .unwrap()
            .contains("globex.com")
    );
    let a = ops[0]["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();

    // An all-good batch (the fast path, no savepoints).
    let r = c
        .post(
            "/Bulk",
            &json!({"schemas": [BULK], "Operations": [
                post("e", okta_user("e@acme.com", &["e@acme.com"])),
                post("f", entra_user("f@acme.com", "f@acme.com")),
            ]}),
        )
        .await;
    let statuses: Vec<&str> = r.body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201", "201"], "{}", r.body);
    // An all-refused batch.
    let r = c
        .post(
            "/Bulk",
            &json!({"schemas": [BULK], "Operations": [
                post("g", okta_user("g@evil.example", &["g@evil.example"])),
                post("h", okta_user("h@acme-pending.com", &["h@acme-pending.com"])),
            ]}),
        )
        .await;
    let statuses: Vec<&str> = r.body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["400", "400"], "{}", r.body);

    // PUT and PATCH inside Bulk.
    let before = events(&env, "acme").await.len();
    let r = c
        .post(
            "/Bulk",
            &json!({"schemas": [BULK], "Operations": [
                {"method": "PATCH", "path": format!("/Users/{a}"), "data": patch(json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "a@evil.example"}]))},
                {"method": "PUT", "path": format!("/Users/{a}"), "data": entra_user("a@acme-lapsed.com", "a@acme.com")},
                {"method": "PATCH", "path": format!("/Users/{a}"), "data": patch(json!([{"op": "Replace", "path": "displayName", "value": "A"}]))},
            ]}),
        )
        .await;
    let ops = r.body["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["400", "400", "200"], "{}", r.body);
    assert!(
        ops[1]["response"]["detail"]
            .as_str()
            .unwrap()
            .contains("acme-lapsed.com")
    );

    // Only the accepted users exist and were announced.
    let names: Vec<String> = c.get("/Users?sortBy=userName").await.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["a@acme.com", "c@acme.com", "e@acme.com", "f@acme.com"]
    );
    let ev = events(&env, "acme").await;
    let types: Vec<&str> = ev.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "user.created",
            "user.created",
            "user.created",
            "user.created",
            "user.updated"
        ]
    );
    assert_eq!(ev.len(), before + 1);
    // Each refused address counted once, though Bulk may run twice.
    env.metrics_with(
        "portcullis_scim_external_emails_total{result=\"refused\",tenant=\"acme\"} 6\n",
    )
    .await;
}

/// `allow_external_emails`: accepted on every write path, and the webhook
/// the app receives says which addresses are in a verified domain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_external_emails_are_marked_in_the_webhook() {
    let r = Receiver::start().await;
    let hook = format!(
        "[webhook]\nurl = \"{}\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\npoll_interval_ms = 50\n",
        r.url()
    );
    let env = start(Db::Sqlite, &hook).await;
    let c = ScimClient::new(&env, "initech").await;

    // Entra: UPN in a pending domain, work email verified.
    let r1 = c
        .post(
            "/Users",
            &entra_user("ann@initech-pending.com", "ann@initech.com"),
        )
        .await;
    assert_eq!(r1.status, 201, "{}", r1.body);
    let ann = r1.body["id"].as_str().unwrap().to_owned();
    // Okta: a personal second address.
    let r2 = c
        .post(
            "/Users",
            &okta_user("ben@initech.com", &["ben@initech.com", "ben@gmail.com"]),
        )
        .await;
    assert_eq!(r2.status, 201, "{}", r2.body);
    // PATCH: an address of another tenant's verified domain.
    let r3 = c
        .patch(
            &format!("/Users/{ann}"),
            &patch(json!([{"op": "add", "path": "emails", "value": [{"value": "ann@globex.com", "type": "other"}]}])),
        )
        .await;
    assert_eq!(r3.status, 200, "{}", r3.body);
    // Bulk: entirely external.
    let r4 = c
        .post(
            "/Bulk",
            &json!({"schemas": [BULK], "Operations": [
                {"method": "POST", "bulkId": "x", "path": "/Users", "data": okta_user("cy@example.org", &["cy@example.org"])},
            ]}),
        )
        .await;
    assert_eq!(r4.body["Operations"][0]["status"], "201", "{}", r4.body);
    // PUT: back inside.
    let r5 = c
        .put(
            &format!("/Users/{ann}"),
            &entra_user("ann@initech.com", "ann@initech.com"),
        )
        .await;
    assert_eq!(r5.status, 200, "{}", r5.body);

    r.wait_for("five initech events", WAIT, |log| {
        log.iter().filter(|e| e.tenant() == "initech").count() >= 5
    })
    .await;
    let log: Vec<_> = r
        .log()
        .into_iter()
        .filter(|e| e.tenant() == "initech")
        .collect();
    let got: Vec<(&str, Value)> = log
        .iter()
        .map(|e| (e.event_type(), e.json["data"]["emails"].clone()))
        .collect();
    let mark = |v: &str, ok: bool| json!({"value": v, "verified_domain": ok});
    assert_eq!(
        got,
        vec![
            (
                "user.created",
                json!([
                    mark("ann@initech.com", true),
                    mark("ann@initech-pending.com", false)
                ])
            ),
            (
                "user.created",
                json!([mark("ben@initech.com", true), mark("ben@gmail.com", false)])
            ),
            (
                "user.updated",
                json!([
                    mark("ann@initech.com", true),
                    mark("ann@globex.com", false),
                    mark("ann@initech-pending.com", false)
                ])
            ),
            ("user.created", json!([mark("cy@example.org", false)])),
            ("user.updated", json!([mark("ann@initech.com", true)])),
        ]
    );
    // The login email of the event is still the primary one.
    assert_eq!(log[0].json["data"]["email"], "ann@initech.com");
    env.metrics_with(
        "portcullis_scim_external_emails_total{result=\"accepted\",tenant=\"initech\"} 4\n",
    )
    .await;
}
