//! RFC points strict clients, Entra and Okta rely on, each on SQLite and
//! PostgreSQL: discovery refuses `filter` (RFC 7644 §4), projections on
//! write answers (§3.9), one primary value (RFC 7643 §2.4), `If-None-Match`
//! (§3.14), Entra's `replace` with `null` or `""`, a scalar for a
//! multi-valued attribute, and the schema extensions an operator declares
//! in `[[scim.extensions]]` (stored, returned, advertised, filtered,
//! patched and carried in webhook events).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::receiver::Receiver;
use crate::support::scim::*;

scim_conformance!(
    discovery_refuses_a_filter_with_403,
    projection_shapes_post_put_and_patch_answers,
    at_most_one_primary_value_and_the_new_one_wins,
    if_none_match_is_304_while_the_etag_is_current,
    replace_with_null_or_empty_string_removes,
    a_scalar_for_a_multi_valued_attribute_is_invalid_syntax,
    declared_extensions_are_stored_returned_advertised_and_filtered,
    declared_extensions_travel_in_webhook_events,
);

const ACME_USER: &str = "urn:example:params:scim:schemas:extension:acme:2.0:User";
const ACME_GROUP: &str = "urn:example:params:scim:schemas:extension:acme:2.0:Group";

/// Two declared extensions, one per resource type.
const EXTENSIONS: &str = r#"
[[scim.extensions]]
urn = "urn:example:params:scim:schemas:extension:acme:2.0:User"
resource = "User"
attributes = [
  { name = "costCode", required = true },
  { name = "badges", multi_valued = true },
  { name = "clearance", type = "integer" },
  { name = "startDate", type = "dateTime" },
  { name = "remote", type = "boolean" },
]

[[scim.extensions]]
urn = "urn:example:params:scim:schemas:extension:acme:2.0:Group"
resource = "Group"
attributes = [{ name = "budgetOwner" }]
"#;

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH], "Operations": ops})
}

#[track_caller]
fn ok(r: &Response) {
    assert!(r.status < 300, "{}: {}", r.status, r.body);
}

/// RFC 7644 §4: a `filter` on a discovery endpoint is 403, so a client
/// never reads an unfiltered list as the matches; other query parameters
/// are ignored.
async fn discovery_refuses_a_filter_with_403(db: Db) {
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    let filter = q("id eq \"User\"");
    for path in [
        "/ServiceProviderConfig".to_owned(),
        "/Schemas".to_owned(),
        format!("/Schemas/{USER}"),
        "/ResourceTypes".to_owned(),
        "/ResourceTypes/User".to_owned(),
    ] {
        c.get(&format!("{path}?filter={filter}"))
            .await
            .assert_error(403, None);
        // Any spelling of the parameter name.
        c.get(&format!("{path}?FILTER={filter}"))
            .await
            .assert_error(403, None);
        let plain = c.get(&format!("{path}?count=1&startIndex=2")).await;
        assert_eq!(plain.status, 200, "{path}: {}", plain.body);
    }
    // Paging is ignored, not applied.
    let types = c.get("/ResourceTypes?count=1").await;
    assert_eq!(types.body["totalResults"], 2);
    assert_eq!(types.body["Resources"].as_array().unwrap().len(), 2);
    // Resource endpoints still filter.
    assert_eq!(
        c.get(&format!("/Users?filter={}", q("userName eq \"x\"")))
            .await
            .status,
        200
    );
}

/// RFC 7644 §3.9: `attributes` / `excludedAttributes` on any operation
/// that returns a resource, POST and PUT included; a bad one is refused
/// before anything is written.
async fn projection_shapes_post_put_and_patch_answers(db: Db) {
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    let body = json!({"schemas": [USER], "userName": "ann@acme.com", "displayName": "Ann",
                      "title": "Pilot", "emails": [{"value": "ann@acme.com", "type": "work"}]});

    let r = c
        .post("/Users?attributes=userName,emails.value", &body)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.body,
        json!({"schemas": [USER], "id": id, "userName": "ann@acme.com",
               "emails": [{"value": "ann@acme.com"}]})
    );
    // The ETag and Location are still those of the resource.
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert!(r.header("location").unwrap().ends_with(&id));
    // Stored in full all the same.
    let full = c.get(&format!("/Users/{id}")).await;
    assert_eq!(full.body["title"], "Pilot");
    assert_eq!(full.body["displayName"], "Ann");

    let mut put = body.clone();
    put["title"] = json!("Captain");
    let r = c
        .put(
            &format!("/Users/{id}?excludedAttributes=emails,meta,title"),
            &put,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["displayName"], "Ann");
    for gone in ["emails", "meta", "title"] {
        assert!(r.body.get(gone).is_none(), "{gone}: {}", r.body);
    }
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    assert_eq!(
        c.get(&format!("/Users/{id}")).await.body["title"],
        "Captain"
    );

    let r = c
        .patch(
            &format!("/Users/{id}?attributes=title"),
            &patch(json!([{"op": "replace", "path": "title", "value": "Major"}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"schemas": [USER], "id": id, "title": "Major"})
    );

    // Groups: Entra asks `excludedAttributes=members`.
    let r = c
        .post(
            "/Groups?excludedAttributes=members",
            &json!({"schemas": [GROUP], "displayName": "Crew", "members": [{"value": id}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.get("members").is_none(), "{}", r.body);
    let gid = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        member_ids(&c.get(&format!("/Groups/{gid}")).await.body),
        std::slice::from_ref(&id)
    );
    let r = c
        .put(
            &format!("/Groups/{gid}?attributes=displayName"),
            &json!({"schemas": [GROUP], "displayName": "Crew 2", "members": [{"value": id}]}),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"schemas": [GROUP], "id": gid, "displayName": "Crew 2"})
    );

    // A bad projection writes nothing.
    c.post(
        "/Users?attributes=%22%3B",
        &json!({"schemas": [USER], "userName": "bad@acme.com"}),
    )
    .await
    .assert_error(400, Some("invalidValue"));
    c.put(&format!("/Users/{id}?excludedAttributes=%22%3B"), &body)
        .await
        .assert_error(400, Some("invalidValue"));
    let users = c
        .get(&format!(
            "/Users?filter={}",
            q("userName eq \"bad@acme.com\"")
        ))
        .await;
    assert_eq!(users.body["totalResults"], 0);
    assert_eq!(
        c.get(&format!("/Users/{id}")).await.header("etag"),
        Some("W/\"3\"")
    );
}

/// `primary: true` on the values of each multi-valued attribute (emails,
/// phoneNumbers, addresses, …) of a resource, after a write.
fn primaries(res: &Value, attr: &str) -> Vec<Value> {
    res[attr]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|v| v["primary"] == true)
                .map(|v| v.get("value").cloned().unwrap_or_else(|| v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// RFC 7643 §2.4: the primary value appears no more than once. Whatever a
/// write sends, the newly primary value wins and the old one is demoted.
async fn at_most_one_primary_value_and_the_new_one_wins(db: Db) {
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    // A create with two primaries: the last one stated wins.
    let r = c
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "pat@acme.com",
                    "emails": [{"value": "pat@acme.com", "type": "work", "primary": true},
                               {"value": "p@acme.com", "type": "home", "primary": true}],
                    "phoneNumbers": [{"value": "1", "primary": true}, {"value": "2"}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(primaries(&r.body, "emails"), [json!("p@acme.com")]);
    assert_eq!(r.body["emails"][0]["primary"], false);
    assert_eq!(primaries(&r.body, "phoneNumbers"), [json!("1")]);
    // The login follows the primary address.
    let login = env
        .shared
        .store
        .users()
        .by_email("acme", "p@acme.com")
        .await
        .unwrap();
    assert_eq!(login.map(|l| l.id), Some(id.clone()));

    // PATCH add of a new primary value: it wins over the stored one.
    let r = c
        .patch(
            &format!("/Users/{id}"),
            &patch(json!([{"op": "add", "path": "phoneNumbers",
                           "value": [{"value": "3", "type": "mobile", "primary": true}]}])),
        )
        .await;
    ok(&r);
    assert_eq!(primaries(&r.body, "phoneNumbers"), [json!("3")]);
    assert_eq!(r.body["phoneNumbers"].as_array().unwrap().len(), 3);

    // PATCH of one value's `primary` (Entra's value path).
    let r = c
        .patch(
            &format!("/Users/{id}"),
            &patch(
                json!([{"op": "Replace", "path": "emails[type eq \"work\"].primary",
                           "value": true}]),
            ),
        )
        .await;
    ok(&r);
    assert_eq!(primaries(&r.body, "emails"), [json!("pat@acme.com")]);

    // PUT sending the old primary back with a new one (Okta's read-modify-
    // write): the new one wins, wherever it sits in the list.
    let mut put = c.get(&format!("/Users/{id}")).await.body;
    put["emails"] = json!([
        {"value": "new@acme.com", "type": "other", "primary": true},
        {"value": "pat@acme.com", "type": "work", "primary": true},
    ]);
    put["addresses"] = json!([
        {"locality": "Oslo", "type": "work", "primary": true},
        {"locality": "Bergen", "type": "home", "primary": true},
    ]);
    let r = c.put(&format!("/Users/{id}"), &put).await;
    ok(&r);
    assert_eq!(primaries(&r.body, "emails"), [json!("new@acme.com")]);
    assert_eq!(primaries(&r.body, "addresses").len(), 1);
    assert_eq!(primaries(&r.body, "addresses")[0]["locality"], "Bergen");
    // Moving the primary flag between addresses (no `value` to match by).
    let r = c
        .patch(
            &format!("/Users/{id}"),
            &patch(
                json!([{"op": "replace", "path": "addresses[locality eq \"Oslo\"].primary",
                           "value": true}]),
            ),
        )
        .await;
    ok(&r);
    assert_eq!(primaries(&r.body, "addresses")[0]["locality"], "Oslo");
    assert_eq!(primaries(&r.body, "addresses").len(), 1);

    // Bulk runs the same writes.
    let r = c
        .post(
            "/Bulk",
            &json!({"schemas": [BULK], "Operations": [{"method": "POST", "path": "/Users", "bulkId": "b",
                "data": {"schemas": [USER], "userName": "bulk@acme.com",
                         "roles": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let bulk = c
        .get(&format!(
            "/Users?filter={}",
            q("userName eq \"bulk@acme.com\"")
        ))
        .await;
    assert_eq!(primaries(&bulk.body["Resources"][0], "roles"), [json!("b")]);
}

/// RFC 7644 §3.14: `If-None-Match` with the current ETag is 304 with no
/// body; the weak ETag the server emits matches, and so does its strong
/// spelling (weak comparison) and `*`.
async fn if_none_match_is_304_while_the_etag_is_current(db: Db) {
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    let id = c.create_user("nan@acme.com").await;
    let gid = c.create_group("Nans", &[&id]).await;
    let get = |path: String, tag: &'static str| {
        let c = c.clone();
        async move {
            c.raw(Method::GET, &path, &[("if-none-match", tag)], None)
                .await
        }
    };
    for path in [format!("/Users/{id}"), format!("/Groups/{gid}")] {
        let etag = c.get(&path).await.header("etag").unwrap().to_owned();
        assert_eq!(etag, "W/\"1\"");
        for tag in ["W/\"1\"", "\"1\"", "*", "W/\"7\", W/\"1\""] {
            let r = get(path.clone(), tag).await;
            assert_eq!(r.status, 304, "{path} {tag}: {}", r.body);
            assert_eq!(r.body, Value::Null, "no body");
            assert_eq!(r.header("etag"), Some("W/\"1\""));
        }
        let r = get(path.clone(), "W/\"2\"").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["meta"]["version"], "W/\"1\"");
    }
    // After a change the old ETag no longer matches.
    ok(&c
        .patch(
            &format!("/Users/{id}"),
            &patch(json!([{"op": "replace", "path": "title", "value": "Chef"}])),
        )
        .await);
    let r = get(format!("/Users/{id}"), "W/\"1\"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["title"], "Chef");
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    assert_eq!(get(format!("/Users/{id}"), "W/\"2\"").await.status, 304);
    // A resource that does not exist is 404 whatever the header says.
    get("/Users/nope".into(), "*").await.assert_error(404, None);
}

/// Entra clears an attribute with `Replace` and `null`, or `""` for a
/// simple attribute: the attribute is removed, not refused. What can't be
/// removed stays refused.
async fn replace_with_null_or_empty_string_removes(db: Db) {
    let env = env_on(db, "").await;
    let c = ScimClient::new(&env, "acme").await;
    let r = c
        .post(
            "/Users",
            &json!({"schemas": [USER, ENTERPRISE], "userName": "eve@acme.com",
                    "displayName": "Eve", "title": "CFO", "nickName": "E", "locale": "en-GB",
                    "name": {"givenName": "Eve", "familyName": "Ng"},
                    "phoneNumbers": [{"value": "5", "type": "work"}],
                    ENTERPRISE: {"department": "Finance", "costCenter": "42"}}),
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = c
        .patch(
            &format!("/Users/{id}"),
            &patch(json!([
                {"op": "Replace", "path": "title", "value": null},
                {"op": "Replace", "path": "nickName", "value": ""},
                {"op": "Replace", "path": "name.givenName", "value": null},
                {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": ""},
                {"op": "Replace", "path": "phoneNumbers", "value": null},
                {"op": "Replace", "value": {"locale": "", "displayName": null}},
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for gone in ["title", "nickName", "locale", "displayName", "phoneNumbers"] {
        assert!(r.body.get(gone).is_none(), "{gone}: {}", r.body);
    }
    assert_eq!(r.body["name"], json!({"familyName": "Ng"}));
    assert_eq!(r.body[ENTERPRISE], json!({"costCenter": "42"}));
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    // Clearing what is already gone changes nothing.
    let again = c
        .patch(
            &format!("/Users/{id}"),
            &patch(json!([{"op": "Replace", "path": "title", "value": null}])),
        )
        .await;
    assert_eq!(again.header("etag"), Some("W/\"2\""));
    // The whole extension, by its URN.
    let r = c
        .patch(
            &format!("/Users/{id}"),
            &patch(json!([{"op": "Replace", "path": ENTERPRISE, "value": null}])),
        )
        .await;
    ok(&r);
    assert!(r.body.get(ENTERPRISE).is_none(), "{}", r.body);
    assert_eq!(r.body["schemas"], json!([USER]));

    // Still refused: a required attribute (as a remove would be), `""` for
    // a complex or multi-valued one, and a replace with no value at all.
    for (ops, ty) in [
        (
            json!([{"op": "Replace", "path": "userName", "value": null}]),
            "mutability",
        ),
        (
            json!([{"op": "Replace", "path": "userName", "value": ""}]),
            "mutability",
        ),
        (
            json!([{"op": "Replace", "path": "name", "value": ""}]),
            "invalidValue",
        ),
        (
            json!([{"op": "Replace", "path": "emails", "value": ""}]),
            "invalidSyntax",
        ),
        (json!([{"op": "Replace", "path": "title"}]), "invalidValue"),
    ] {
        c.patch(&format!("/Users/{id}"), &patch(ops.clone()))
            .await
            .assert_error(400, Some(ty));
    }
    let now = c.get(&format!("/Users/{id}")).await;
    assert_eq!(now.body["userName"], "eve@acme.com");
    assert_eq!(now.header("etag"), Some("W/\"3\""));

    // Groups: `null` members empties the group (as a remove without value).
    let gid = c.create_group("Auditors", &[&id]).await;
    let r = c
        .patch(
            &format!("/Groups/{gid}"),
            &patch(json!([{"op": "Replace", "path": "members", "value": null}])),
        )
        .await;
    ok(&r);
    assert!(member_ids(&c.get(&format!("/Groups/{gid}")).await.body).is_empty());
    c.patch(
        &format!("/Groups/{gid}"),
        &patch(json!([{"op": "Replace", "path": "displayName", "value": ""}])),
    )
    .await
    .assert_error(400, Some("mutability"));
}

/// RFC 7643 §2.4: a multi-valued attribute is a JSON array; a string,
/// number or boolean in its place is `invalidSyntax` and changes nothing.
/// (A single object of a multi-valued complex attribute stays accepted as
/// a list of one: PATCH clients send that.)
async fn a_scalar_for_a_multi_valued_attribute_is_invalid_syntax(db: Db) {
    let env = env_on(db, EXTENSIONS).await;
    let c = ScimClient::new(&env, "acme").await;
    for (attr, value) in [
        ("emails", json!("x@acme.com")),
        ("phoneNumbers", json!(5551234)),
        ("roles", json!("admin")),
        ("x509Certificates", json!(true)),
    ] {
        let mut body = json!({"schemas": [USER], "userName": "s@acme.com"});
        body[attr] = value;
        c.post("/Users", &body)
            .await
            .assert_error(400, Some("invalidSyntax"));
    }
    c.post(
        "/Users",
        &json!({"schemas": [USER, ACME_USER], "userName": "s@acme.com",
                ACME_USER: {"costCode": "c", "badges": "gold"}}),
    )
    .await
    .assert_error(400, Some("invalidSyntax"));
    c.post(
        "/Groups",
        &json!({"schemas": [GROUP], "displayName": "G", "members": "someone"}),
    )
    .await
    .assert_error(400, Some("invalidSyntax"));
    assert_eq!(c.get("/Users").await.body["totalResults"], 0);

    // Lists (of values, or of bare strings for a complex attribute) pass.
    let r = c
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "s@acme.com", "emails": ["s@acme.com"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["emails"], json!([{"value": "s@acme.com"}]));
    let id = r.body["id"].as_str().unwrap().to_owned();
    for ops in [
        json!([{"op": "add", "path": "emails", "value": "t@acme.com"}]),
        json!([{"op": "replace", "path": "phoneNumbers", "value": "555"}]),
        json!([{"op": "replace", "value": {"roles": "admin"}}]),
        json!([{"op": "add", "path": format!("{ACME_USER}:badges"), "value": "gold"}]),
    ] {
        c.patch(&format!("/Users/{id}"), &patch(ops.clone()))
            .await
            .assert_error(400, Some("invalidSyntax"));
    }
    let gid = c.create_group("G", &[]).await;
    c.patch(
        &format!("/Groups/{gid}"),
        &patch(json!([{"op": "add", "path": "members", "value": id}])),
    )
    .await
    .assert_error(400, Some("invalidSyntax"));
    assert_eq!(
        c.get(&format!("/Users/{id}")).await.header("etag"),
        Some("W/\"1\"")
    );
    // One object for a complex multi-valued attribute is a list of one.
    let r = c
        .patch(
            &format!("/Users/{id}"),
            &patch(json!([{"op": "add", "path": "emails",
                           "value": {"value": "t@acme.com", "type": "home"}}])),
        )
        .await;
    ok(&r);
    assert_eq!(r.body["emails"].as_array().unwrap().len(), 2);
    ok(&c
        .patch(
            &format!("/Groups/{gid}"),
            &patch(json!([{"op": "add", "path": "members", "value": {"value": id}}])),
        )
        .await);
    assert_eq!(
        member_ids(&c.get(&format!("/Groups/{gid}")).await.body),
        [id]
    );
}

/// `[[scim.extensions]]`: a declared extension is advertised in /Schemas
/// and /ResourceTypes, stored, returned, validated by type, filtered,
/// sorted and patched like the enterprise one; an undeclared one is still
/// dropped.
async fn declared_extensions_are_stored_returned_advertised_and_filtered(db: Db) {
    let env = env_on(db, EXTENSIONS).await;
    let c = ScimClient::new(&env, "acme").await;

    let schemas = c.get("/Schemas").await;
    let ids: Vec<&str> = schemas.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [USER, ENTERPRISE, GROUP, ACME_USER, ACME_GROUP]);
    let ext = c.get(&format!("/Schemas/{ACME_USER}")).await;
    assert_eq!(ext.status, 200, "{}", ext.body);
    let attr = |name: &str| {
        ext.body["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name}: {}", ext.body))
    };
    assert_eq!(attr("costCode")["type"], "string");
    assert_eq!(attr("costCode")["required"], true);
    assert_eq!(attr("badges")["multiValued"], true);
    assert_eq!(attr("clearance")["type"], "integer");
    assert_eq!(attr("startDate")["type"], "dateTime");
    assert_eq!(attr("remote")["type"], "boolean");
    assert_eq!(attr("remote")["mutability"], "readWrite");
    let user_type = c.get("/ResourceTypes/User").await;
    assert_eq!(
        user_type.body["schemaExtensions"],
        json!([{"schema": ENTERPRISE, "required": false}, {"schema": ACME_USER, "required": false}])
    );
    let group_type = c.get("/ResourceTypes/Group").await;
    assert_eq!(
        group_type.body["schemaExtensions"],
        json!([{"schema": ACME_GROUP, "required": false}])
    );

    // Stored and returned, typed as declared (Entra's string booleans and
    // integers included), URN keys in any case.
    let r = c
        .post(
            "/Users",
            &json!({"schemas": [USER, ACME_USER], "userName": "kim@acme.com",
                    (ACME_USER.to_uppercase()): {"costcode": "CC-7", "badges": ["gold", "red"],
                                               "clearance": "3", "startDate": "2024-05-01T00:00:00Z",
                                               "remote": "True"},
                    "urn:example:undeclared:2.0:User": {"x": 1}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let kim = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["schemas"], json!([USER, ACME_USER]));
    assert_eq!(
        r.body[ACME_USER],
        json!({"costCode": "CC-7", "badges": ["gold", "red"], "clearance": 3,
               "startDate": "2024-05-01T00:00:00Z", "remote": true})
    );
    assert!(!r.body.to_string().contains("undeclared"));
    assert_eq!(c.get(&format!("/Users/{kim}")).await.body, r.body);
    let lee = c
        .post(
            "/Users",
            &json!({"schemas": [USER, ACME_USER], "userName": "lee@acme.com",
                    ACME_USER: {"costCode": "CC-2", "clearance": 5}}),
        )
        .await;
    assert_eq!(lee.status, 201, "{}", lee.body);
    let lee = lee.body["id"].as_str().unwrap().to_owned();
    let plain = c.create_user("moe@acme.com").await;

    // Validation: the declared types, the required attribute when the
    // extension is present, unknown attributes inside it.
    for (ext, ty) in [
        (
            json!({"costCode": "x", "clearance": "high"}),
            "invalidValue",
        ),
        (
            json!({"costCode": "x", "startDate": "yesterday"}),
            "invalidValue",
        ),
        (json!({"costCode": "x", "remote": "maybe"}), "invalidValue"),
        (json!({"badges": ["a"]}), "invalidValue"),
        (json!({"costCode": "x", "shoeSize": 9}), "invalidSyntax"),
    ] {
        c.post(
            "/Users",
            &json!({"schemas": [USER, ACME_USER], "userName": "bad@acme.com", ACME_USER: ext}),
        )
        .await
        .assert_error(400, Some(ty));
    }

    // Filters and sorting reach into it.
    let find = |f: &str| {
        let c = c.clone();
        let f = q(f);
        async move {
            let r = c
                .get(&format!(
                    "/Users?filter={f}&sortBy={}",
                    q(&format!("{ACME_USER}:clearance"))
                ))
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["userName"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        find(&format!("{ACME_USER}:costCode eq \"cc-7\"")).await,
        ["kim@acme.com"]
    );
    assert_eq!(
        find(&format!("{ACME_USER}:badges eq \"red\"")).await,
        ["kim@acme.com"]
    );
    assert_eq!(
        find(&format!("{ACME_USER}:clearance gt 2")).await,
        ["kim@acme.com", "lee@acme.com"]
    );
    assert_eq!(
        find(&format!(
            "{ACME_USER}:startDate gt \"2024-01-01T00:00:00+02:00\""
        ))
        .await,
        ["kim@acme.com"]
    );
    assert_eq!(
        find(&format!("{ACME_USER}:remote eq true")).await,
        ["kim@acme.com"]
    );
    assert_eq!(find(&format!("{ACME_USER}:costCode pr")).await.len(), 2);
    assert_eq!(
        find(&format!("not ({ACME_USER}:costCode pr)")).await,
        ["moe@acme.com"]
    );
    let projected = c
        .get(&format!("/Users/{kim}?attributes={ACME_USER}:badges"))
        .await;
    assert_eq!(
        projected.body[ACME_USER],
        json!({"badges": ["gold", "red"]})
    );

    // PATCH: by path, path-less with the URN object, and refusals.
    let r = c
        .patch(
            &format!("/Users/{lee}"),
            &patch(json!([
                {"op": "add", "path": format!("{ACME_USER}:badges"), "value": ["blue"]},
                {"op": "Replace", "path": format!("{ACME_USER}:remote"), "value": "False"},
                {"op": "replace", "value": {ACME_USER: {"clearance": 1}}},
            ])),
        )
        .await;
    ok(&r);
    assert_eq!(
        r.body[ACME_USER],
        json!({"costCode": "CC-2", "clearance": 1, "badges": ["blue"], "remote": false})
    );
    c.patch(
        &format!("/Users/{lee}"),
        &patch(json!([{"op": "remove", "path": format!("{ACME_USER}:costCode")}])),
    )
    .await
    .assert_error(400, Some("mutability"));
    c.patch(
        &format!("/Users/{lee}"),
        &patch(json!([{"op": "add", "path": format!("{ACME_USER}:shoeSize"), "value": 9}])),
    )
    .await
    .assert_error(400, Some("invalidPath"));
    // Unknown extension URNs behave as before: a path naming one is
    // `invalidPath`, a body key is dropped.
    c.patch(
        &format!("/Users/{lee}"),
        &patch(json!([{"op": "add", "path": "urn:example:undeclared:2.0:User:x", "value": 1}])),
    )
    .await
    .assert_error(400, Some("invalidPath"));
    // The whole extension can go; the resource's `schemas` follows.
    let r = c
        .patch(
            &format!("/Users/{lee}"),
            &patch(json!([{"op": "remove", "path": ACME_USER}])),
        )
        .await;
    ok(&r);
    assert_eq!(r.body["schemas"], json!([USER]));
    // Adding it to a user who had none.
    let r = c
        .patch(
            &format!("/Users/{plain}"),
            &patch(json!([{"op": "add", "path": ACME_USER, "value": {"costCode": "CC-9"}}])),
        )
        .await;
    ok(&r);
    assert_eq!(r.body[ACME_USER], json!({"costCode": "CC-9"}));

    // Groups have theirs.
    let r = c
        .post(
            "/Groups",
            &json!({"schemas": [GROUP, ACME_GROUP], "displayName": "Ops",
                    ACME_GROUP: {"budgetOwner": "kim"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["schemas"], json!([GROUP, ACME_GROUP]));
    assert_eq!(r.body[ACME_GROUP], json!({"budgetOwner": "kim"}));
    // A user extension on a group is not declared for it: dropped.
    let r = c
        .post(
            "/Groups",
            &json!({"schemas": [GROUP], "displayName": "Ops2", ACME_USER: {"costCode": "x"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.get(ACME_USER).is_none(), "{}", r.body);

    // Without the declaration the server is as it was: dropped, not stored.
    let bare = env_on(db, "").await;
    let b = ScimClient::new(&bare, "acme").await;
    let r = b
        .post(
            "/Users",
            &json!({"schemas": [USER, ACME_USER], "userName": "kim@acme.com",
                    ACME_USER: {"costCode": "CC-7"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.get(ACME_USER).is_none(), "{}", r.body);
    assert_eq!(r.body["schemas"], json!([USER]));
    b.get(&format!("/Schemas/{ACME_USER}"))
        .await
        .assert_error(404, None);
}

/// The extension's values are part of the resource every `user.*` and
/// `group.*` event carries (`data.scim`), create and update alike.
async fn declared_extensions_travel_in_webhook_events(db: Db) {
    let r = Receiver::start().await;
    let hook = format!(
        "[webhook]\nurl = \"{}\"\nsecrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]\n\
         poll_interval_ms = 50\n{EXTENSIONS}",
        r.url()
    );
    let env = env_on(db, &hook).await;
    let c = ScimClient::new(&env, "acme").await;
    let created = c
        .post(
            "/Users",
            &json!({"schemas": [USER, ACME_USER], "userName": "ida@acme.com",
                    ACME_USER: {"costCode": "CC-1", "badges": ["gold"]}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    ok(&c
        .patch(
            &format!("/Users/{id}"),
            &patch(
                json!([{"op": "replace", "path": format!("{ACME_USER}:costCode"),
                           "value": "CC-2"}]),
            ),
        )
        .await);
    let g = c
        .post(
            "/Groups",
            &json!({"schemas": [GROUP, ACME_GROUP], "displayName": "Ida's",
                    ACME_GROUP: {"budgetOwner": "ida"}}),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.body);
    let gid = g.body["id"].as_str().unwrap().to_owned();

    r.wait_for("group.created", Duration::from_secs(20), |log| {
        log.iter().any(|e| e.event_type() == "group.created")
    })
    .await;
    let log = r.log();
    let types: Vec<&str> = log.iter().map(|e| e.event_type()).collect();
    assert_eq!(types, ["user.created", "user.updated", "group.created"]);
    let scim = |i: usize| &log[i].json["data"]["scim"];
    assert_eq!(scim(0)["id"], id.as_str());
    assert_eq!(scim(0)["schemas"], json!([USER, ACME_USER]));
    assert_eq!(
        scim(0)[ACME_USER],
        json!({"costCode": "CC-1", "badges": ["gold"]})
    );
    assert_eq!(
        scim(1)[ACME_USER],
        json!({"costCode": "CC-2", "badges": ["gold"]})
    );
    assert_eq!(scim(2)["id"], gid.as_str());
    assert_eq!(scim(2)[ACME_GROUP], json!({"budgetOwner": "ida"}));
}
