use serde_json::{Map, Value, json};

use super::*;
use crate::scim::resource::{Mode, normalize};

fn user() -> Map<String, Value> {
    normalize(
        &Schemas::default(),
        Kind::User,
        &json!({
            "schemas": [schema::USER, schema::ENTERPRISE],
            "userName": "bjensen@example.com",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "active": true,
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
            schema::ENTERPRISE: {"department": "Tour"}
        }),
        Mode::Full,
    )
    .unwrap()
    .doc
}

fn ops(list: Value) -> Vec<Operation> {
    parse_request(&json!({"schemas": [schema::PATCH_OP], "Operations": list})).unwrap()
}

fn run(doc: &mut Map<String, Value>, list: Value) -> Result<MemberChange, ScimError> {
    let mut m = MemberChange::default();
    apply(
        &Schemas::default(),
        Kind::User,
        "self",
        doc,
        &ops(list),
        &mut m,
    )?;
    Ok(m)
}

fn group_run(list: Value) -> Result<MemberChange, ScimError> {
    let mut doc = Map::new();
    doc.insert("displayName".into(), json!("G"));
    let mut m = MemberChange::default();
    apply(
        &Schemas::default(),
        Kind::Group,
        "g1",
        &mut doc,
        &ops(list),
        &mut m,
    )?;
    Ok(m)
}

#[test]
fn entra_capitalised_ops_and_string_booleans() {
    let mut d = user();
    run(
        &mut d,
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
    )
    .unwrap();
    assert_eq!(d["active"], json!(false));
    run(
        &mut d,
        json!([{"op": "Add", "path": "active", "value": "True"}]),
    )
    .unwrap();
    assert_eq!(d["active"], json!(true));
    let e = run(
        &mut d,
        json!([{"op": "Replace", "path": "active", "value": "nope"}]),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some("invalidValue"));
}

#[test]
fn okta_pathless_replace_of_active() {
    let mut d = user();
    run(
        &mut d,
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .unwrap();
    assert_eq!(d["active"], json!(false));
}

#[test]
fn entra_pathless_dotted_and_urn_keys() {
    let mut d = user();
    run(
        &mut d,
        json!([{"op": "Replace", "value": {
            "name.givenName": "Babs",
            "displayName": "Babs Jensen",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Ops",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": {"value": "m1"}
        }}]),
    )
    .unwrap();
    assert_eq!(
        d["name"],
        json!({"givenName": "Babs", "familyName": "Jensen"})
    );
    assert!(!d.contains_key("name.givenName"));
    assert_eq!(d["displayName"], json!("Babs Jensen"));
    assert_eq!(
        d[schema::ENTERPRISE],
        json!({"department": "Ops", "manager": {"value": "m1"}})
    );
}

#[test]
fn replacing_part_of_a_complex_attribute_keeps_the_rest() {
    let mut d = user();
    run(
        &mut d,
        json!([{"op": "replace", "path": "name", "value": {"givenName": "B"}}]),
    )
    .unwrap();
    assert_eq!(d["name"], json!({"givenName": "B", "familyName": "Jensen"}));
}

#[test]
fn value_path_with_sub_attribute() {
    let mut d = user();
    run(
        &mut d,
        json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@x.com"}]),
    )
    .unwrap();
    assert_eq!(d["emails"][0]["value"], json!("b@x.com"));
    assert_eq!(d["emails"][0]["primary"], json!(true));
    // `add` creates the value when no email of that type exists yet.
    run(
        &mut d,
        json!([{"op": "add", "path": "emails[type eq \"home\"].value", "value": "h@x.com"}]),
    )
    .unwrap();
    assert_eq!(d["emails"][1], json!({"type": "home", "value": "h@x.com"}));
    // `replace` that matches nothing is noTarget, and changes nothing.
    let before = d.clone();
    let e = run(
        &mut d,
        json!([{"op": "replace", "path": "emails[type eq \"other\"].value", "value": "o@x.com"}]),
    )
    .unwrap_err();
    assert_eq!(e.scim_type, Some("noTarget"));
    assert_eq!(d, before);
    run(
        &mut d,
        json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
    )
    .unwrap();
    assert_eq!(d["emails"].as_array().unwrap().len(), 1);
    // `.Value` casing (Entra) resolves to the canonical name.
    run(
        &mut d,
        json!([{"op": "Replace", "path": "emails[Type eq \"work\"].Value", "value": "c@x.com"}]),
    )
    .unwrap();
    assert_eq!(d["emails"][0]["value"], json!("c@x.com"));
}

#[test]
fn adding_an_existing_value_changes_nothing() {
    let mut d = user();
    let before = d.clone();
    run(
        &mut d,
        json!([{"op": "add", "path": "emails", "value": [{"value": "bjensen@example.com", "type": "work", "primary": true}]}]),
    )
    .unwrap();
    assert_eq!(d, before);
}

#[test]
fn mutability_and_targets() {
    let mut d = user();
    for (list, ty) in [
        (json!([{"op": "remove", "path": "userName"}]), "mutability"),
        (
            json!([{"op": "replace", "path": "id", "value": "x"}]),
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}]),
            "mutability",
        ),
        (json!([{"op": "remove"}]), "noTarget"),
        (
            json!([{"op": "replace", "path": "nosuch", "value": 1}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "urn:x:y:z", "value": 1}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "emails[type eq", "value": 1}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "emails[type xx \"a\"]", "value": 1}]),
            "invalidFilter",
        ),
        (
            json!([{"op": "replace", "path": "name[givenName eq \"a\"]", "value": 1}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "value": "not an object"}]),
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": "userName", "value": 42}]),
            "invalidValue",
        ),
    ] {
        let e = run(&mut d, list.clone()).unwrap_err();
        assert_eq!(e.scim_type, Some(ty), "{list}");
    }
}

#[test]
fn malformed_requests_are_invalid_syntax() {
    for body in [
        json!([]),
        json!({"Operations": [{"op": "add", "path": "x", "value": 1}]}),
        json!({"schemas": [schema::PATCH_OP]}),
        json!({"schemas": [schema::PATCH_OP], "Operations": []}),
        json!({"schemas": [schema::PATCH_OP], "Operations": [{"op": "move"}]}),
        json!({"schemas": [schema::PATCH_OP], "Operations": ["add"]}),
    ] {
        let e = parse_request(&body).unwrap_err();
        assert_eq!(e.scim_type, Some("invalidSyntax"), "{body}");
    }
}

#[test]
fn members_removal_by_value_list_keeps_the_others() {
    // Entra: remove only the listed members.
    let m = group_run(
        json!([{"op": "Remove", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}]),
    )
    .unwrap();
    assert!(!m.clear);
    assert_eq!(m.set.get("u1"), Some(&false));
    assert_eq!(m.set.get("u2"), Some(&false));
    // With Entra's flag: a value filter.
    let m = group_run(json!([{"op": "Remove", "path": "members[value eq \"u3\"]"}])).unwrap();
    assert_eq!(m.set.get("u3"), Some(&false));
    assert!(!m.clear);
    // A remove without value empties the group, per RFC.
    let m = group_run(json!([{"op": "remove", "path": "members"}])).unwrap();
    assert!(m.clear);
    // Okta Group Push: a remove and an add in one request.
    let m = group_run(json!([
        {"op": "remove", "path": "members[value eq \"u1\"]"},
        {"op": "add", "path": "members", "value": [{"value": "u2", "display": "x"}]}
    ]))
    .unwrap();
    assert_eq!(m.set.get("u1"), Some(&false));
    assert_eq!(m.set.get("u2"), Some(&true));
    // Okta rename carries the group's own id.
    let m =
        group_run(json!([{"op": "replace", "value": {"id": "g1", "displayName": "New"}}])).unwrap();
    assert!(m.is_empty());
    let e = group_run(json!([{"op": "replace", "value": {"id": "other", "displayName": "New"}}]))
        .unwrap_err();
    assert_eq!(e.scim_type, Some("mutability"));
    let e = group_run(json!([{"op": "remove", "path": "members[type eq \"User\"]"}])).unwrap_err();
    assert_eq!(e.scim_type, Some("invalidFilter"));
}

#[test]
fn remove_with_value_list_on_user_attributes() {
    let mut d = user();
    run(
        &mut d,
        json!([{"op": "add", "path": "emails", "value": [{"value": "x@y.com", "type": "home"}]}]),
    )
    .unwrap();
    run(
        &mut d,
        json!([{"op": "remove", "path": "emails", "value": [{"value": "X@Y.com"}]}]),
    )
    .unwrap();
    assert_eq!(d["emails"].as_array().unwrap().len(), 1);
}

#[test]
fn password_is_never_stored() {
    let mut d = user();
    run(
        &mut d,
        json!([{"op": "replace", "path": "password", "value": "hunter2"}]),
    )
    .unwrap();
    run(
        &mut d,
        json!([{"op": "replace", "value": {"password": "hunter2"}}]),
    )
    .unwrap();
    assert!(!serde_json::to_string(&d).unwrap().contains("hunter2"));
}

#[test]
fn replace_with_null_or_empty_simple_value_is_a_remove() {
    let mut d = user();
    d.insert("title".into(), json!("CFO"));
    run(
        &mut d,
        json!([
            {"op": "Replace", "path": "title", "value": null},
            {"op": "Replace", "path": "name.familyName", "value": ""},
            {"op": "Replace", "path": "emails[type eq \"work\"].type", "value": null},
            {"op": "Replace", "path": format!("{}:department", schema::ENTERPRISE), "value": ""},
        ]),
    )
    .unwrap();
    assert!(!d.contains_key("title"));
    assert_eq!(d["name"], json!({"givenName": "Barbara"}));
    assert_eq!(
        d["emails"],
        json!([{"value": "bjensen@example.com", "primary": true}])
    );
    assert!(
        !d.contains_key(schema::ENTERPRISE),
        "an emptied extension goes"
    );
    // Only `replace`: `add` with null still needs a value, and a missing
    // value is not a null one.
    for list in [
        json!([{"op": "add", "path": "title", "value": null}]),
        json!([{"op": "replace", "path": "title"}]),
    ] {
        assert_eq!(
            run(&mut d, list).unwrap_err().scim_type,
            Some("invalidValue")
        );
    }
    // `""` is a value, not a removal, where the target is not simple.
    assert_eq!(
        run(
            &mut d,
            json!([{"op": "replace", "path": "emails", "value": ""}])
        )
        .unwrap_err()
        .scim_type,
        Some("invalidSyntax")
    );
    assert_eq!(
        run(
            &mut user(),
            json!([{"op": "replace", "path": "userName", "value": null}])
        )
        .unwrap_err()
        .scim_type,
        Some("mutability")
    );
}

#[test]
fn one_primary_keeps_the_newly_primary_value() {
    use crate::scim::resource::one_primary;
    let before = user();
    let mut d = before.clone();
    run(
        &mut d,
        json!([{"op": "add", "path": "emails",
                "value": [{"value": "b@example.com", "primary": true}]}]),
    )
    .unwrap();
    one_primary(&mut d, Some(&before));
    assert_eq!(d["emails"][0]["primary"], false);
    assert_eq!(d["emails"][1]["primary"], true);
    // No history: the last stated wins. Arrays inside extensions too; a
    // single primary and lists of plain values are left alone.
    let mut fresh = Map::new();
    fresh.insert(
        "roles".into(),
        json!([{"value": "a", "primary": true}, {"value": "b", "primary": true}, {"value": "c"}]),
    );
    fresh.insert(
        "urn:example:x".into(),
        json!({"tags": [{"value": "x", "primary": true}, {"value": "y", "primary": true}], "plain": ["a", "b"]}),
    );
    fresh.insert(
        "phoneNumbers".into(),
        json!([{"value": "1", "primary": true}]),
    );
    let untouched = fresh["phoneNumbers"].clone();
    one_primary(&mut fresh, None);
    assert_eq!(
        fresh["roles"],
        json!([{"value": "a", "primary": false}, {"value": "b", "primary": true}, {"value": "c"}])
    );
    assert_eq!(fresh["urn:example:x"]["tags"][0]["primary"], false);
    assert_eq!(fresh["urn:example:x"]["tags"][1]["primary"], true);
    assert_eq!(fresh["urn:example:x"]["plain"], json!(["a", "b"]));
    assert_eq!(fresh["phoneNumbers"], untouched);
}
