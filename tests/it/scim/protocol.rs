//! SCIM 2.0 over real HTTP through the proxy, per RFC 7644 section. Every
//! scenario runs on SQLite and on PostgreSQL (`scim_conformance!`).

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::env::*;
use crate::support::scim::*;

scim_conformance!(
    tokens_authenticate_tenants,
    discovery_describes_what_is_supported,
    users_crud_meta_etag_location,
    user_name_is_unique_case_insensitively_per_tenant,
    bad_input_gets_scim_errors_never_500,
    groups_crud_and_membership,
    query_filter_pagination_sort_projection,
    bulk_with_bulk_ids_and_fail_on_errors,
    bulk_creates_many_users_in_request_order,
    unindexed_filters_scan_every_page,
    patch_is_atomic_and_idempotent,
);

/// RFC 7644 §2: bearer token per tenant; 401 with a SCIM error otherwise;
/// a new token invalidates the old one; tenants are isolated.
async fn tokens_authenticate_tenants(db: Db) {
    let env = env_on(db, "").await;
    let acme = ScimClient::new(&env, "acme").await;
    assert_eq!(acme.get("/Users").await.status, 200);

    for bad in ["", "non-token", "pcs_0123456789abcdef_wrong"] {
        let r = acme.with_token(bad).get("/Users").await;
        r.assert_error(401, None);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|h| h.starts_with("Bearer"))
        );
    }
    let basic = client()
        .get(format!("{}/Users", acme.base))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    // The right key id with a wrong secret.
    let forged = format!("{}x", &acme.token[..acme.token.len() - 1]);
    acme.with_token(&forged)
        .get("/Users")
        .await
        .assert_error(401, None);

    // A new token replaces the old one.
    let again = ScimClient::new(&env, "acme").await;
    acme.get("/Users").await.assert_error(401, None);
    assert_eq!(again.get("/Users").await.status, 200);

    // Tenants don't see each other's resources.
    let globex = ScimClient::new(&env, "globex").await;
    let id = again.create_user("alice@acme.com").await;
    globex
        .get(&format!("/Users/{id}"))
        .await
        .assert_error(404, None);
    assert_eq!(globex.get("/Users").await.body["totalResults"], 0);
    // A token of a tenant no longer configured is refused.
    let ghost = ScimClient::new(&env, "ghost").await;
    ghost.get("/Users").await.assert_error(401, None);
    // Unknown endpoints under the base are SCIM 404s, authenticated or not.
    again.get("/Nope").await.assert_error(404, None);
}

/// RFC 7644 §4.
async fn discovery_describes_what_is_supported(db: Db) {
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    let spc = c.get("/ServiceProviderConfig").await;
    assert_eq!(spc.status, 200);
    assert_eq!(spc.body["patch"]["supported"], true);
    assert_eq!(spc.body["bulk"]["maxOperations"], 100);
    assert_eq!(spc.body["bulk"]["maxPayloadSize"], 1048576);
    assert_eq!(spc.body["filter"]["supported"], true);
    assert_eq!(spc.body["etag"]["supported"], true);
    assert_eq!(spc.body["sort"]["supported"], true);
    assert_eq!(spc.body["changePassword"]["supported"], false);
    assert_eq!(
        spc.body["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );

    let schemas = c.get("/Schemas").await;
    let ids: Vec<&str> = schemas.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [USER, ENTERPRISE, GROUP]);
    let user = c.get(&format!("/Schemas/{USER}")).await;
    let user_name = user.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "userName")
        .unwrap();
    assert_eq!(user_name["uniqueness"], "server");
    assert_eq!(user_name["caseExact"], false);
    assert_eq!(user_name["required"], true);
    c.get("/Schemas/urn:nope").await.assert_error(404, None);

    let types = c.get("/ResourceTypes").await;
    assert_eq!(types.body["totalResults"], 2);
    let u = c.get("/ResourceTypes/User").await;
    assert_eq!(u.body["endpoint"], "/Users");
    assert_eq!(u.body["schemaExtensions"][0]["schema"], ENTERPRISE);
}

/// RFC 7644 §3.3, §3.4.1, §3.5.1, §3.6, §3.14.
async fn users_crud_meta_etag_location(db: Db) {
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    let body = json!({
        "schemas": [USER, ENTERPRISE],
        "id": "client-chosen-id-is-ignored",
        "externalId": "ext-1",
        "userName": "Barbara@Acme.com",
        "password": "never-stored",
        "name": {"givenName": "Barbara", "familyName": "Jensen", "formatted": null},
        "displayName": "Babs",
        "title": "Tour Guide",
        "phoneNumbers": [{"value": "555-555-8377", "type": "work"}],
        "addresses": [{"locality": "Hollywood", "type": "work"}],
        "emails": [{"value": "barbara@acme.com", "type": "work", "primary": true}],
        "active": true,
        ENTERPRISE: {"employeeNumber": "701984", "manager": {"value": "26118915"}}
    });
    let r = c.post("/Users", &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_ne!(id, "client-chosen-id-is-ignored");
    let location = format!("{}/Users/{id}", c.base);
    assert_eq!(r.header("location"), Some(location.as_str()));
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/scim+json")
    );
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert_eq!(r.body["meta"]["resourceType"], "User");
    assert_eq!(r.body["meta"]["location"], location);
    assert_eq!(r.body["meta"]["version"], "W/\"1\"");
    assert!(r.body["meta"]["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(r.body["schemas"], json!([USER, ENTERPRISE]));
    assert_eq!(r.body[ENTERPRISE]["employeeNumber"], "701984");
    assert_eq!(r.body["phoneNumbers"][0]["value"], "555-555-8377");
    assert_eq!(
        r.body["name"],
        json!({"givenName": "Barbara", "familyName": "Jensen"})
    );
    assert!(!r.body.to_string().contains("never-stored"));

    let g = c.get(&format!("/Users/{id}")).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body, r.body);

    // It is the login identity: the users table has it, same id, by email.
    let login = env
        .shared
        .store
        .users()
        .by_email("acme", "BARBARA@acme.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(login.id, id);
    assert_eq!(login.source, "scim");
    assert_eq!(login.name.as_deref(), Some("Babs"));
    assert_eq!(login.role.as_deref(), Some("member"));

    // PUT replaces (Okta sends back what it read, id, meta and groups included).
    let mut put = g.body.clone();
    put["displayName"] = json!("Barbara J");
    put["groups"] = json!([{"value": "ignored"}]);
    put.as_object_mut().unwrap().remove("title");
    let p = c.put(&format!("/Users/{id}"), &put).await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.body["displayName"], "Barbara J");
    assert!(p.body.get("title").is_none());
    assert_eq!(p.header("etag"), Some("W/\"2\""));
    assert_eq!(p.body["meta"]["created"], r.body["meta"]["created"]);
    // The same PUT again changes nothing, not even the version.
    let same = c.put(&format!("/Users/{id}"), &put).await;
    assert_eq!(same.header("etag"), Some("W/\"2\""));

    // If-Match: stale → 412, current → ok.
    let stale = c
        .raw(
            Method::PUT,
            &format!("/Users/{id}"),
            &[
                ("content-type", "application/scim+json"),
                ("if-match", "W/\"1\""),
            ],
            Some(serde_json::to_vec(&put).unwrap()),
        )
        .await;
    stale.assert_error(412, None);
    let fresh = c
        .raw(
            Method::PATCH,
            &format!("/Users/{id}"),
            &[
                ("content-type", "application/json"),
                ("if-match", "W/\"2\""),
            ],
            Some(
                serde_json::to_vec(&json!({"schemas": [PATCH], "Operations": [
                    {"op": "replace", "path": "title", "value": "Boss"}]}))
                .unwrap(),
            ),
        )
        .await;
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert_eq!(fresh.body["title"], "Boss");
    assert_eq!(fresh.header("etag"), Some("W/\"3\""));

    // DELETE → 204; again → 404 (Microsoft's validator checks this).
    let d = c.delete(&format!("/Users/{id}")).await;
    assert_eq!(d.status, 204);
    c.delete(&format!("/Users/{id}"))
        .await
        .assert_error(404, None);
    c.get(&format!("/Users/{id}")).await.assert_error(404, None);
    // The login identity stays as a deactivated tombstone.
    let tomb = env
        .shared
        .store
        .users()
        .by_email("acme", "barbara@acme.com")
        .await
        .unwrap()
        .unwrap();
    assert!(!tomb.active);
    assert_eq!(tomb.source, "scim-deleted");
    // Re-provisioning the same person adopts it again.
    let again = c.create_user("barbara@acme.com").await;
    assert_eq!(again, id);
    let back = env
        .shared
        .store
        .users()
        .by_email("acme", "barbara@acme.com")
        .await
        .unwrap()
        .unwrap();
    assert!(back.active);
}

/// RFC 7643 §4.1 / 7644 §3.3: `userName` unique case-insensitively per
/// tenant → 409 uniqueness; groups by displayName too.
async fn user_name_is_unique_case_insensitively_per_tenant(db: Db) {
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    let g = ScimClient::new(&env, "globex").await;
    let id = c.create_user("dup@acme.com").await;
    let r = c
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "DUP@ACME.COM"}),
        )
        .await;
    r.assert_error(409, Some("uniqueness"));
    // Another tenant may use the same userName (not an address: addresses
    // stay inside their tenant's domains, see scim_domains.rs).
    for (client, email) in [(&c, "shared@acme.com"), (&g, "shared@globex.com")] {
        let r = client
            .post(
                "/Users",
                &json!({"schemas": [USER], "userName": "shared-name", "emails": [{"value": email}]}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // Renaming onto a taken name is 409 too.
    let other = c.create_user("other@acme.com").await;
    c.patch(
        &format!("/Users/{other}"),
        &json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "userName", "value": "Dup@Acme.com"}]}),
    )
    .await
    .assert_error(409, Some("uniqueness"));
    // Changing only the case of one's own userName is fine.
    let ok = c
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "userName", "value": "Dup@acme.com"}]}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // An email already used by another SCIM user's login is a conflict.
    c.post(
        "/Users",
        &json!({"schemas": [USER], "userName": "third", "emails": [{"value": "other@acme.com", "primary": true}]}),
    )
    .await
    .assert_error(409, Some("uniqueness"));
    c.create_group("Engineering", &[]).await;
    c.post(
        "/Groups",
        &json!({"schemas": [GROUP], "displayName": "engineering"}),
    )
    .await
    .assert_error(409, Some("uniqueness"));
}

/// Malformed JSON, wrong schemas, unknown attributes, wrong types, huge
/// bodies and filters, hostile strings: SCIM errors with RFC status codes.
async fn bad_input_gets_scim_errors_never_500(db: Db) {
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    let id = c.create_user("ok@acme.com").await;
    let ct = [("content-type", "application/scim+json")];
    for (body, status, ty) in [
        (b"{not json".to_vec(), 400, Some("invalidSyntax")),
        (b"[]".to_vec(), 400, Some("invalidSyntax")),
        (b"".to_vec(), 400, Some("invalidSyntax")),
        (br#"{"userName":"x"}"#.to_vec(), 400, Some("invalidSyntax")),
        (br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"userName":"x"}"#.to_vec(), 400, Some("invalidSyntax")),
        (br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","favouriteColour":"red"}"#.to_vec(), 400, Some("invalidSyntax")),
        (br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","active":"maybe"}"#.to_vec(), 400, Some("invalidValue")),
        (br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":42}"#.to_vec(), 400, Some("invalidValue")),
        (br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]}"#.to_vec(), 400, Some("invalidValue")),
        (br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x\u0000y"}"#.to_vec(), 400, Some("invalidValue")),
        (br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"x","name":"flat"}"#.to_vec(), 400, Some("invalidValue")),
    ] {
        let r = c.raw(Method::POST, "/Users", &ct, Some(body.clone())).await;
        r.assert_error(status, ty);
    }
    // An unsupported extension is dropped, not stored (Entra's custom ones).
    let r = c
        .post("/Users", &json!({"schemas": [USER], "userName": "ext@acme.com", "urn:example:ext:2.0:User": {"a": 1}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(!r.body.to_string().contains("urn:example"));
    // Wrong media type.
    c.raw(
        Method::POST,
        "/Users",
        &[("content-type", "text/plain")],
        Some(b"{}".to_vec()),
    )
    .await
    .assert_error(415, None);
    // Oversized body: 413 with a SCIM error, before anything is parsed.
    let huge = json!({"schemas": [USER], "userName": "big", "title": "x".repeat(1_100_000)});
    c.post("/Users", &huge).await.assert_error(413, None);
    // Filters: malformed, huge, injection-like.
    for f in [
        "userName eq",
        "userName xx \"a\"",
        "((((userName pr",
        "userName eq \"a\" and",
        &"(".repeat(100),
        &format!("userName eq \"{}\"", "a".repeat(10_000)),
    ] {
        c.get(&format!("/Users?filter={}", q(f)))
            .await
            .assert_error(400, Some("invalidFilter"));
    }
    for f in [
        "userName eq \"x' OR '1'='1\"",
        "userName eq \"%\"",
        "userName sw \"_\"",
        "userName eq \"\\\"; DROP TABLE users; --\"",
    ] {
        let r = c.get(&format!("/Users?filter={}", q(f))).await;
        assert_eq!(r.status, 200, "{f}: {}", r.body);
        assert_eq!(r.body["totalResults"], 0, "{f}");
    }
    c.get("/Users?startIndex=abc")
        .await
        .assert_error(400, Some("invalidValue"));
    c.get("/Users?sortOrder=sideways")
        .await
        .assert_error(400, Some("invalidValue"));
    c.get("/Users?attributes=%22%3B")
        .await
        .assert_error(400, Some("invalidValue"));
    // PATCH bodies.
    for (body, ty) in [
        (
            json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]}),
            "invalidSyntax",
        ),
        (
            json!({"schemas": [PATCH], "Operations": [{"op": "jump", "path": "title"}]}),
            "invalidSyntax",
        ),
        (
            json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": "userName"}]}),
            "mutability",
        ),
        (
            json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "id", "value": "x"}]}),
            "mutability",
        ),
        (
            json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "emails[type eq \"nope\"].value", "value": "x"}]}),
            "noTarget",
        ),
        (
            json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "no.such.path", "value": "x"}]}),
            "invalidPath",
        ),
    ] {
        c.patch(&format!("/Users/{id}"), &body)
            .await
            .assert_error(400, Some(ty));
    }
    c.patch(
        "/Users/does-not-exist",
        &json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "title", "value": "x"}]}),
    )
    .await
    .assert_error(404, None);
    // Methods that don't exist on an endpoint.
    c.send(Method::DELETE, "/Users", None)
        .await
        .assert_error(405, None);
    // Hostile ids in paths.
    for p in ["/Users/%00", "/Users/..%2F..%2Fetc", "/Users/'%20OR%201=1"] {
        c.get(p).await.assert_error(404, None);
    }
    // Still alive and unchanged.
    let r = c.get(&format!("/Users/{id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("etag"), Some("W/\"1\""));
}

/// RFC 7644 §3.5.2 on groups; membership in its own table.
async fn groups_crud_and_membership(db: Db) {
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    let a = c.create_user("a@acme.com").await;
    let b = c.create_user("b@acme.com").await;
    let d = c.create_user("d@acme.com").await;
    let gid = c.create_group("Eng", &[&a, &b]).await;
    let g = c.get(&format!("/Groups/{gid}")).await;
    assert_eq!(member_ids(&g.body), {
        let mut v = vec![a.clone(), b.clone()];
        v.sort();
        v
    });
    assert_eq!(g.body["members"][0]["type"], "User");
    assert_eq!(g.body["meta"]["resourceType"], "Group");
    // The user shows its groups (read-only).
    let u = c.get(&format!("/Users/{a}")).await;
    assert_eq!(u.body["groups"][0]["value"], gid);
    assert_eq!(u.body["groups"][0]["display"], "Eng");

    // Entra: remove with a value list removes only those.
    let r = c
        .patch(
            &format!("/Groups/{gid}"),
            &json!({"schemas": [PATCH], "Operations": [
                {"op": "Add", "path": "members", "value": [{"value": d}]},
                {"op": "Remove", "path": "members", "value": [{"value": a}]}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut want = vec![b.clone(), d.clone()];
    want.sort();
    assert_eq!(member_ids(&r.body), want);
    // members[value eq "…"] removal.
    let r = c
        .patch(
            &format!("/Groups/{gid}"),
            &json!({"schemas": [PATCH], "Operations": [
                {"op": "remove", "path": format!("members[value eq \"{b}\"]")}]}),
        )
        .await;
    assert_eq!(member_ids(&r.body), vec![d.clone()]);
    let version = r.header("etag").unwrap().to_owned();
    // Adding an existing member changes nothing, not even the version.
    let r = c
        .patch(
            &format!("/Groups/{gid}"),
            &json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": d}]}]}),
        )
        .await;
    assert_eq!(r.header("etag"), Some(version.as_str()));
    // Unknown members are refused, atomically.
    c.patch(
        &format!("/Groups/{gid}"),
        &json!({"schemas": [PATCH], "Operations": [
            {"op": "add", "path": "members", "value": [{"value": a}]},
            {"op": "add", "path": "members", "value": [{"value": "nobody"}]}]}),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    assert_eq!(
        member_ids(&c.get(&format!("/Groups/{gid}")).await.body),
        vec![d.clone()]
    );
    // Entra's membership check and excludedAttributes=members.
    let f = format!("id eq \"{gid}\" and members[value eq \"{d}\"]");
    let r = c
        .get(&format!(
            "/Groups?excludedAttributes=members&filter={}",
            q(&f)
        ))
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    assert!(r.body["Resources"][0].get("members").is_none());
    let f = format!("id eq \"{gid}\" and members.value eq \"{a}\"");
    assert_eq!(
        c.get(&format!("/Groups?filter={}", q(&f))).await.body["totalResults"],
        0
    );
    // Okta rename: path-less replace carrying the group's own id.
    let r = c
        .patch(
            &format!("/Groups/{gid}"),
            &json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"id": gid, "displayName": "Engineering"}}]}),
        )
        .await;
    assert_eq!(r.body["displayName"], "Engineering");
    // PUT replaces the member list.
    let r = c
        .put(
            &format!("/Groups/{gid}"),
            &json!({"schemas": [GROUP], "displayName": "Engineering", "members": [{"value": a}]}),
        )
        .await;
    assert_eq!(member_ids(&r.body), vec![a.clone()]);
    // A PUT without `members` (a rename) keeps them.
    let r = c
        .put(
            &format!("/Groups/{gid}"),
            &json!({"schemas": [GROUP], "displayName": "Engineers"}),
        )
        .await;
    assert_eq!(r.body["displayName"], "Engineers");
    assert_eq!(member_ids(&r.body), vec![a.clone()]);
    // Deleting a user removes it from its groups (and bumps their version).
    let before = c
        .get(&format!("/Groups/{gid}"))
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    c.delete(&format!("/Users/{a}")).await;
    let after = c.get(&format!("/Groups/{gid}")).await;
    assert!(member_ids(&after.body).is_empty());
    assert_ne!(after.header("etag").unwrap(), before);
    // Remove without a value empties the group; the group stays.
    c.patch(
        &format!("/Groups/{gid}"),
        &json!({"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": b}, {"value": d}]}]}),
    )
    .await;
    let r = c
        .patch(
            &format!("/Groups/{gid}"),
            &json!({"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": "members"}]}),
        )
        .await;
    assert!(member_ids(&r.body).is_empty());
    assert_eq!(c.delete(&format!("/Groups/{gid}")).await.status, 204);
    c.get(&format!("/Groups/{gid}"))
        .await
        .assert_error(404, None);
    // A deleted group disappears from users' `groups`.
    assert!(
        c.get(&format!("/Users/{b}"))
            .await
            .body
            .get("groups")
            .is_none()
    );
}

/// RFC 7644 §3.4.2: filters, pagination, sorting, projection, .search.
async fn query_filter_pagination_sort_projection(db: Db) {
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    let mut ids = Vec::new();
    for (i, name) in ["carol", "alice", "eve", "bob", "dave"].iter().enumerate() {
        let r = c
            .post(
                "/Users",
                &json!({"schemas": [USER], "userName": format!("{name}@acme.com"),
                        "externalId": format!("EXT-{i}"), "active": i % 2 == 0,
                        "emails": [{"value": format!("{name}@acme.com"), "type": "work"}],
                        "name": {"familyName": name.to_uppercase()}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let list = |f: &str| {
        let c = c.clone();
        let f = f.to_owned();
        async move { c.get(&format!("/Users?filter={}", q(&f))).await }
    };
    // Entra's Test Connection: an unknown userName is 200 with an empty list.
    let r = list("userName eq \"2b4ef8a5-97c3-4e4e-a3f1-0bd1c4e0a6e1\"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["schemas"][0], LIST);
    assert_eq!(r.body["totalResults"], 0);
    assert_eq!(r.body["Resources"], json!([]));
    let r = list("userName eq \"ALICE@acme.com\"").await;
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["id"], ids[1]);
    // externalId is case-exact; Entra sometimes leaves it unquoted.
    assert_eq!(
        list("externalId eq \"EXT-2\"").await.body["totalResults"],
        1
    );
    assert_eq!(
        list("externalId eq \"ext-2\"").await.body["totalResults"],
        0
    );
    assert_eq!(list("externalId eq EXT-2").await.body["totalResults"], 1);
    assert_eq!(list("active eq true").await.body["totalResults"], 3);
    assert_eq!(list("not (active eq true)").await.body["totalResults"], 2);
    assert_eq!(
        list("userName sw \"a\" or userName sw \"b\"").await.body["totalResults"],
        2
    );
    assert_eq!(
        list("emails[type eq \"work\" and value co \"@acme.com\"]")
            .await
            .body["totalResults"],
        5
    );
    assert_eq!(
        list("emails[type eq \"work\"].value eq \"eve@acme.com\"")
            .await
            .body["totalResults"],
        1
    );
    assert_eq!(
        list("meta.created gt \"2000-01-01T00:00:00Z\"").await.body["totalResults"],
        5
    );
    assert_eq!(
        list("USERNAME EQ \"bob@acme.com\" AND ACTIVE EQ FALSE")
            .await
            .body["totalResults"],
        1
    );

    // Pagination: integers, itemsPerPage = number returned, stable order.
    let p1 = c.get("/Users?startIndex=1&count=2").await;
    assert_eq!(p1.body["totalResults"], 5);
    assert_eq!(p1.body["startIndex"], 1);
    assert_eq!(p1.body["itemsPerPage"], 2);
    let p3 = c.get("/Users?startIndex=5&count=2").await;
    assert_eq!(p3.body["itemsPerPage"], 1);
    let mut seen = Vec::new();
    for start in [1, 3, 5] {
        let p = c.get(&format!("/Users?startIndex={start}&count=2")).await;
        for r in p.body["Resources"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen, ids, "creation order, no gaps or repeats");
    assert_eq!(c.get("/Users?count=0").await.body["itemsPerPage"], 0);
    assert_eq!(c.get("/Users?count=0").await.body["totalResults"], 5);
    assert_eq!(
        c.get("/Users?startIndex=-4&count=1").await.body["startIndex"],
        1
    );
    // With a filter too.
    let p = c
        .get(&format!(
            "/Users?filter={}&startIndex=2&count=1",
            q("userName co \"v\"")
        ))
        .await;
    assert_eq!(p.body["totalResults"], 2, "dave, eve");
    assert_eq!(p.body["itemsPerPage"], 1);

    // Sorting.
    let names = |r: &Response| -> Vec<String> {
        r.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                u["userName"]
                    .as_str()
                    .unwrap()
                    .split('@')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let r = c.get("/Users?sortBy=userName").await;
    assert_eq!(names(&r), ["alice", "bob", "carol", "dave", "eve"]);
    let r = c
        .get("/Users?sortBy=name.familyName&sortOrder=descending&count=2")
        .await;
    assert_eq!(names(&r), ["eve", "dave"]);

    // Projection.
    let r = c
        .get(&format!(
            "/Users/{}?attributes=userName,name.familyName",
            ids[0]
        ))
        .await;
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "name", "schemas", "userName"]);
    assert_eq!(r.body["name"], json!({"familyName": "CAROL"}));
    let r = c
        .get(&format!("/Users/{}?excludedAttributes=emails,meta", ids[0]))
        .await;
    assert!(r.body.get("emails").is_none() && r.body.get("meta").is_none());
    assert_eq!(r.body["id"], ids[0]);

    // POST /.search.
    let r = c
        .post(
            "/Users/.search",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                    "filter": "active eq true", "attributes": ["userName"],
                    "sortBy": "userName", "startIndex": 1, "count": 2}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 3);
    assert_eq!(names(&r), ["carol", "dave"]);
    assert!(r.body["Resources"][0].get("emails").is_none());
}

/// A filter no index answers looks at every resource, a page of 1,000 at
/// a time (keyset on the listing order): with more than two pages, matches
/// on the last page are found and none is counted twice. Bounded, so a
/// scan that never advances fails instead of hanging.
async fn unindexed_filters_scan_every_page(db: Db) {
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    let total = 2_100;
    let needles = [5usize, 1_500, 2_099];
    for start in (0..total).step_by(100) {
        let ops: Vec<Value> = (start..start + 100)
            .map(|i| {
                let mut data = json!({"schemas": [USER], "userName": format!("scan{i}@acme.com")});
                if needles.contains(&i) {
                    data["title"] = json!("needle");
                }
                json!({"method": "POST", "path": "/Users", "bulkId": format!("s{i}"), "data": data})
            })
            .collect();
        let r = c
            .post("/Bulk", &json!({"schemas": [BULK], "Operations": ops}))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        c.get(&format!(
            "/Users?filter={}&count=10",
            q("title eq \"needle\"")
        )),
    )
    .await
    .expect("the scan must end");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], needles.len(), "{}", r.body);
    let mut names: Vec<&str> = r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["scan1500@acme.com", "scan2099@acme.com", "scan5@acme.com"]
    );
}

/// A Bulk request of only creates takes the batched path (more rows than
/// one multi-row statement holds): every user is created once, with its
/// own id, in request order, each announced by one event in that order.
async fn bulk_creates_many_users_in_request_order(db: Db) {
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    let n = 70;
    let ops: Vec<Value> = (0..n)
        .map(|i| {
            json!({"method": "post", "path": "/Users", "bulkId": format!("b{i}"),
                   "data": {"schemas": [USER], "userName": format!("batch{i:02}@acme.com"),
                            "externalId": format!("ext-{i}"), "active": i % 7 != 0}})
        })
        .collect();
    let r = c
        .post("/Bulk", &json!({"schemas": [BULK], "Operations": ops}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body["Operations"].as_array().unwrap();
    assert_eq!(results.len(), n);
    let mut ids = Vec::new();
    for (i, op) in results.iter().enumerate() {
        assert_eq!(op["status"], "201", "{op}");
        assert_eq!(op["bulkId"], format!("b{i}"));
        let loc = op["location"].as_str().unwrap();
        let id = loc.rsplit('/').next().unwrap().to_owned();
        let user = c.get(&format!("/Users/{id}")).await;
        assert_eq!(user.body["userName"], format!("batch{i:02}@acme.com"));
        assert_eq!(user.body["active"], i % 7 != 0);
        assert_eq!(op["version"], user.body["meta"]["version"]);
        ids.push(id);
    }
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), n, "every user has its own id");
    let listed = c.get("/Users?count=200").await;
    assert_eq!(listed.body["totalResults"], n);
    let listed_ids: Vec<&str> = listed.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed_ids, ids, "listed in request order");
    let events = env
        .shared
        .store
        .outbox()
        .events("acme", 1, 10_000)
        .await
        .unwrap();
    let created: Vec<String> = events
        .iter()
        .filter(|e| e.event_type == "user.created")
        .map(|e| {
            let v: Value = serde_json::from_str(&e.payload).unwrap();
            v["data"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(created, ids, "one user.created per user, in request order");
    // Each can sign in by its email: the login identity exists.
    for i in [0usize, 33, 69] {
        let u = env
            .shared
            .store
            .users()
            .by_email("acme", &format!("batch{i:02}@acme.com"))
            .await
            .unwrap()
            .expect("login identity");
        assert_eq!(u.id, ids[i]);
        assert_eq!(u.active, i % 7 != 0);
    }
}

/// RFC 7644 §3.7.
async fn bulk_with_bulk_ids_and_fail_on_errors(db: Db) {
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    // The group refers to a user created later in the same request.
    let r = c
        .post(
            "/Bulk",
            &json!({"schemas": [BULK], "Operations": [
                {"method": "POST", "path": "/Groups", "bulkId": "g",
                 "data": {"schemas": [GROUP], "displayName": "Tour", "members": [{"value": "bulkId:u1"}]}},
                {"method": "POST", "path": "/Users", "bulkId": "u1",
                 "data": {"schemas": [USER], "userName": "bulk1@acme.com"}},
                {"method": "PATCH", "path": "/Users/bulkId:u1",
                 "data": {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "T"}]}},
                {"method": "POST", "path": "/Users", "bulkId": "dup",
                 "data": {"schemas": [USER], "userName": "BULK1@acme.com"}}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 4);
    let by_id = |b: &str| ops.iter().find(|o| o["bulkId"] == b).unwrap();
    assert_eq!(by_id("u1")["status"], "201");
    assert_eq!(by_id("g")["status"], "201");
    assert_eq!(by_id("dup")["status"], "409");
    assert_eq!(by_id("dup")["response"]["scimType"], "uniqueness");
    let group_loc = by_id("g")["location"].as_str().unwrap();
    let gid = group_loc.rsplit('/').next().unwrap();
    let user_loc = by_id("u1")["location"].as_str().unwrap();
    let uid = user_loc.rsplit('/').next().unwrap();
    assert_eq!(
        member_ids(&c.get(&format!("/Groups/{gid}")).await.body),
        vec![uid.to_owned()]
    );
    assert_eq!(c.get(&format!("/Users/{uid}")).await.body["title"], "T");

    // A failing operation leaves nothing behind (its savepoint is rolled
    // back), and the operations after it still commit.
    let r = c
        .post(
            "/Bulk",
            &json!({"schemas": [BULK], "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "clash",
                 "data": {"schemas": [USER], "userName": "bulk1@acme.com",
                          "emails": [{"value": "fresh@acme.com", "primary": true}]}},
                {"method": "POST", "path": "/Users", "bulkId": "after",
                 "data": {"schemas": [USER], "userName": "after@acme.com"}}
            ]}),
        )
        .await;
    assert_eq!(r.body["Operations"][0]["status"], "409", "{}", r.body);
    assert_eq!(r.body["Operations"][1]["status"], "201", "{}", r.body);
    assert!(
        env.shared
            .store
            .users()
            .by_email("acme", "fresh@acme.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        env.shared
            .store
            .users()
            .by_email("acme", "after@acme.com")
            .await
            .unwrap()
            .is_some()
    );

    // A failure after a success: the request is first tried without
    // savepoints, abandoned at the failure and run again with them; the
    // success must commit exactly once, with exactly one event.
    let r = c
        .post(
            "/Bulk",
            &json!({"schemas": [BULK], "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "first",
                 "data": {"schemas": [USER], "userName": "first@acme.com"}},
                {"method": "POST", "path": "/Users", "bulkId": "clash2",
                 "data": {"schemas": [USER], "userName": "after@acme.com"}}
            ]}),
        )
        .await;
    assert_eq!(r.body["Operations"][0]["status"], "201", "{}", r.body);
    assert_eq!(r.body["Operations"][1]["status"], "409", "{}", r.body);
    let first = c
        .get(&format!(
            "/Users?filter={}",
            q("userName eq \"first@acme.com\"")
        ))
        .await;
    assert_eq!(first.body["totalResults"], 1);
    let first_id = first.body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let announced = env
        .shared
        .store
        .outbox()
        .events("acme", 1, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "user.created" && e.payload.contains(&first_id))
        .count();
    assert_eq!(announced, 1, "one user.created for the committed user");

    // failOnErrors stops after that many errors.
    let r = c
        .post(
            "/Bulk",
            &json!({"schemas": [BULK], "failOnErrors": 1, "Operations": [
                {"method": "DELETE", "path": "/Users/nope"},
                {"method": "POST", "path": "/Users", "bulkId": "x",
                 "data": {"schemas": [USER], "userName": "never@acme.com"}}
            ]}),
        )
        .await;
    assert_eq!(r.body["Operations"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["Operations"][0]["status"], "404");
    assert_eq!(
        c.get(&format!(
            "/Users?filter={}",
            q("userName eq \"never@acme.com\"")
        ))
        .await
        .body["totalResults"],
        0
    );
    // Over 100 operations: 413 with a SCIM error.
    let many: Vec<Value> = (0..101)
        .map(|i| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("b{i}"),
                        "data": {"schemas": [USER], "userName": format!("m{i}@acme.com")}})
        })
        .collect();
    c.post("/Bulk", &json!({"schemas": [BULK], "Operations": many}))
        .await
        .assert_error(413, None);
    c.post("/Bulk", &json!({"Operations": []}))
        .await
        .assert_error(400, Some("invalidSyntax"));
}

/// RFC 7644 §3.5.2: atomic; a no-op changes nothing.
async fn patch_is_atomic_and_idempotent(db: Db) {
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    let id = c.create_user("atom@acme.com").await;
    let before = c.get(&format!("/Users/{id}")).await;
    let r = c
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas": [PATCH], "Operations": [
                {"op": "replace", "path": "title", "value": "Changed"},
                {"op": "remove", "path": "userName"}]}),
        )
        .await;
    r.assert_error(400, Some("mutability"));
    assert_eq!(c.get(&format!("/Users/{id}")).await.body, before.body);
    let r = c
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas": [PATCH], "Operations": [
                {"op": "add", "path": "emails", "value": [{"value": "atom@acme.com", "type": "work", "primary": true}]}]}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body, before.body,
        "nothing changed, not even lastModified"
    );
}

/// `[scim] max_payload_bytes` above axum's own 2 MiB default is the one
/// limit: a 3 MB user reaches the handler (which judges its
/// attributes), a body over the configured size is the
/// SCIM 413, never axum's plain-text one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_payload_bytes_above_two_mib_is_the_only_limit() {
    let env = env_on(Db::Sqlite, "[scim]\nmax_payload_bytes = 4000000\n").await;
    let c = ScimClient::new(&env, "acme").await;
    let big =
        json!({"schemas": [USER], "userName": "big@acme.com", "title": "x".repeat(3_000_000)});
    let r = c.post("/Users", &big).await;
    r.assert_error(400, Some("invalidValue"));
    assert!(
        r.body["detail"].as_str().unwrap().contains("title"),
        "{}",
        r.body.to_string().chars().take(300).collect::<String>()
    );
    let huge =
        json!({"schemas": [USER], "userName": "huge@acme.com", "title": "x".repeat(4_100_000)});
    c.post("/Users", &huge).await.assert_error(413, None);
}

/// RFC 7644 §3.12 `tooMany`: a filtered or sorted query matching more
/// resources than the server holds in memory is refused, not answered
/// slowly or partially. (The limit is lowered to make it reachable.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_matching_too_many_resources_are_too_many() {
    use portcullis::scim::Scim;
    use portcullis::scim::schema::Kind;
    use portcullis::scim::service::ListQuery;
    let env = env_on(Db::Sqlite, "").await;
    let scim = Scim {
        store: env.shared.store.clone(),
        sessions: env.shared.sessions.clone(),
        config: env.shared.config(),
        metrics: env.shared.metrics.clone(),
        base: "http://x/scim/v2".into(),
        max_matches: 3,
        schemas: Default::default(),
    };
    for i in 0..5 {
        scim.create(
            "acme",
            Kind::User,
            &json!({"schemas": [USER], "userName": format!("u{i}@acme.com")}),
        )
        .await
        .unwrap();
    }
    let q = |f: Option<&str>, sort: Option<&str>| ListQuery {
        filter: f.map(str::to_owned),
        sort_by: sort.map(str::to_owned),
        ..Default::default()
    };
    for (f, sort) in [(Some("userName pr"), None), (None, Some("userName"))] {
        let e = scim
            .list("acme", Kind::User, &q(f, sort))
            .await
            .unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.scim_type, Some("tooMany"));
    }
    let ok = scim
        .list("acme", Kind::User, &q(Some("userName sw \"u1\""), None))
        .await
        .unwrap();
    assert_eq!(ok["totalResults"], 1);
    // Plain pages are answered from the database, with no limit.
    let all = scim.list("acme", Kind::User, &q(None, None)).await.unwrap();
    assert_eq!(all["totalResults"], 5);
}
