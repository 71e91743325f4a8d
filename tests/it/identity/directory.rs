//! SCIM groups as session groups: a SCIM change reaches the next request of
//! an existing session on every replica (groups, roles, name, email, the
//! assertion), nested groups are flattened, cycles are refused at write
//! time, and `groups_source` picks the IdP's groups, the directory's or
//! both.

use std::time::Duration;

use base64::Engine;
use portcullis::identity::Principal;
use serde_json::{Value, json};

use crate::support::env::*;
use crate::support::idp::Sso;
use crate::support::postgres::PgCluster;
use crate::support::scim::*;

/// One tenant with SCIM on; `admins` and `Platform Admins` map to roles.
/// The env's routes let only group `admins` into `/admin`.
const TENANT: &str = r#"
[[tenants]]
id = "acme"
domains = ["acme.com"]
jit = { enabled = true, default_role = "member" }
group_roles = { "admins" = ["administrator"], "Platform Admins" = ["administrator", "operator"] }
"#;

/// A session of `user_id` as an SSO login would have recorded it: the IdP
/// asserted the group `idp-staff`.
fn signed_in(user_id: &str) -> Principal {
    Principal {
        user_id: user_id.into(),
        email: "alice@acme.com".into(),
        name: Some("Alice (IdP)".into()),
        groups: vec!["idp-staff".into()],
        roles: vec!["member".into()],
        tenant: Some("acme".into()),
        connection: Some("acme-saml".into()),
        ..Principal::default()
    }
}

/// What the app saw for a request of `cookie` to `path` on `env`.
async fn view(env: &TestEnv, cookie: &str, path: &str) -> (u16, Value) {
    echo(client().get(env.url(path)).header("cookie", cookie)).await
}

/// The assertion's claims (its signature is checked in
/// `proxy::forwarding`; here only what it says matters).
pub(super) fn assertion(app: &Value) -> Value {
    let jwt = seen(app, "x-portcullis-assertion").expect("assertion");
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Polls `env` (bounded) until what its app sees satisfies `ok`; returns
/// that view. Another replica hears of a change through the store's
/// events, not at once.
async fn eventually(
    env: &TestEnv,
    cookie: &str,
    path: &str,
    what: &str,
    ok: impl Fn(u16, &Value) -> bool,
) -> (u16, Value) {
    let mut last = (0, Value::Null);
    for _ in 0..100 {
        last = view(env, cookie, path).await;
        if ok(last.0, &last.1) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: never seen on the other replica; last: {last:?}");
}

/// The identity headers a view carries: groups, roles, name, email.
fn identity(app: &Value) -> [Option<&str>; 4] {
    [
        seen(app, "x-forwarded-groups"),
        seen(app, "x-forwarded-roles"),
        seen(app, "x-forwarded-name"),
        seen(app, "x-forwarded-email"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scim_group_change_reaches_the_next_request_on_every_replica() {
    let url = PgCluster::shared().await.fresh_database().await;
    let replica = |url: String| {
        TestEnv::with(Options {
            store_url: Some(url),
            extra: TENANT.into(),
            ..Default::default()
        })
    };
    let a = replica(url.clone()).await;
    let b = replica(url).await;
    verify_domain(&a.shared.store, "acme", "acme.com").await;
    let scim = ScimClient::new(&a, "acme").await;
    let alice = scim.create_user("alice@acme.com").await;
    let cookie = a.mint(&signed_in(&alice)).await;
    let sessions = a.shared.store.sessions().keys().await.unwrap();

    // Both replicas have the session cached before anything changes: a
    // change must reach cached principals, not only fresh ones.
    for env in [&a, &b] {
        let (status, app) = view(env, &cookie, "/dashboard").await;
        assert_eq!(status, 200, "{app}");
        assert_eq!(
            identity(&app),
            [
                Some("idp-staff"),
                Some("member"),
                Some("Alice (IdP)"),
                Some("alice@acme.com")
            ]
        );
        assert_eq!(view(env, &cookie, "/admin/panel").await.0, 403);
    }

    // 1. Added to a group on A: A's very next request, and B's soon after,
    // carry the group and the role it maps to, in headers and assertion.
    let admins = scim.create_group("admins", &[&alice]).await;
    let with_admins = |s: u16, app: &Value| {
        s == 200 && seen(app, "x-forwarded-groups") == Some("idp-staff,admins")
    };
    let (status, app) = view(&a, &cookie, "/admin/panel").await;
    assert!(with_admins(status, &app), "{status} {app}");
    let (_, app) = eventually(&b, &cookie, "/admin/panel", "membership", with_admins).await;
    assert_eq!(
        seen(&app, "x-forwarded-roles"),
        Some("member,administrator")
    );
    let claims = assertion(&app);
    assert_eq!(claims["groups"], json!(["idp-staff", "admins"]));
    assert_eq!(claims["roles"], json!(["member", "administrator"]));
    assert_eq!(claims["sub"], alice.as_str());

    // 2. Removed: access to /admin ends on both replicas, everything else
    // goes on; the session itself is untouched.
    let r = scim
        .patch(
            &format!("/Groups/{admins}"),
            &json!({"schemas": [PATCH], "Operations": [
                {"op": "remove", "path": format!("members[value eq \"{alice}\"]")}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(view(&a, &cookie, "/admin/panel").await.0, 403);
    eventually(&b, &cookie, "/admin/panel", "removal", |s, _| s == 403).await;
    let (status, app) = view(&b, &cookie, "/dashboard").await;
    assert_eq!(status, 200);
    assert_eq!(seen(&app, "x-forwarded-groups"), Some("idp-staff"));
    assert_eq!(assertion(&app)["groups"], json!(["idp-staff"]));
    assert_eq!(a.shared.store.sessions().keys().await.unwrap(), sessions);

    // 3. Back in, then the group is renamed: the new name (and its roles)
    // on the next request; /admin is for `admins`, which is gone.
    let r = scim
        .patch(
            &format!("/Groups/{admins}"),
            &json!({"schemas": [PATCH], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": alice}]}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually(&b, &cookie, "/admin/panel", "re-added", with_admins).await;
    let r = scim
        .patch(
            &format!("/Groups/{admins}"),
            &json!({"schemas": [PATCH], "Operations": [
                {"op": "replace", "path": "displayName", "value": "Platform Admins"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let renamed = |s: u16, app: &Value| {
        s == 200 && seen(app, "x-forwarded-groups") == Some("idp-staff,Platform Admins")
    };
    let (status, app) = view(&a, &cookie, "/dashboard").await;
    assert!(renamed(status, &app), "{status} {app}");
    let (_, app) = eventually(&b, &cookie, "/dashboard", "rename", renamed).await;
    assert_eq!(
        seen(&app, "x-forwarded-roles"),
        Some("member,administrator,operator")
    );
    assert_eq!(view(&b, &cookie, "/admin/panel").await.0, 403);

    // 4. The user's name and address change through SCIM.
    let r = scim
        .patch(
            &format!("/Users/{alice}"),
            &json!({"schemas": [PATCH], "Operations": [
                {"op": "replace", "path": "displayName", "value": "Alice Liddell"},
                {"op": "replace", "path": "emails", "value": [
                    {"value": "a.liddell@acme.com", "type": "work", "primary": true}]}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (_, app) = eventually(&b, &cookie, "/dashboard", "user update", |s, app| {
        s == 200 && seen(app, "x-forwarded-name") == Some("Alice Liddell")
    })
    .await;
    assert_eq!(seen(&app, "x-forwarded-email"), Some("a.liddell@acme.com"));
    // who it is never moves
    assert_eq!(seen(&app, "x-forwarded-user"), Some(alice.as_str()));
    let claims = assertion(&app);
    assert_eq!(claims["email"], "a.liddell@acme.com");
    assert_eq!(claims["name"], "Alice Liddell");

    // 5. The group is deleted: its name and roles are gone on the next
    // request; the session still stands.
    assert_eq!(scim.delete(&format!("/Groups/{admins}")).await.status, 204);
    let (_, app) = eventually(&b, &cookie, "/dashboard", "group delete", |s, app| {
        s == 200 && seen(app, "x-forwarded-groups") == Some("idp-staff")
    })
    .await;
    assert_eq!(seen(&app, "x-forwarded-roles"), Some("member"));
    let (_, app) = view(&a, &cookie, "/dashboard").await;
    assert_eq!(seen(&app, "x-forwarded-groups"), Some("idp-staff"));
    assert_eq!(a.shared.store.sessions().keys().await.unwrap(), sessions);
}

/// A group's members, as a SCIM PATCH adding `member` to it.
async fn add_member(scim: &ScimClient, group: &str, member: &str) -> Response {
    scim.patch(
        &format!("/Groups/{group}"),
        &json!({"schemas": [PATCH], "Operations": [
            {"op": "add", "path": "members", "value": [{"value": member}]}]}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_groups_are_flattened_and_cycles_refused() {
    let env = TestEnv::with(Options {
        extra: TENANT.into(),
        ..Default::default()
    })
    .await;
    verify_domain(&env.shared.store, "acme", "acme.com").await;
    let scim = ScimClient::new(&env, "acme").await;
    let alice = scim.create_user("alice@acme.com").await;
    let cookie = env.mint(&signed_in(&alice)).await;
    let groups = |env: &TestEnv| {
        let cookie = cookie.clone();
        let url = env.url("/dashboard");
        async move {
            let (status, app) = echo(client().get(url).header("cookie", cookie)).await;
            assert_eq!(status, 200, "{app}");
            seen(&app, "x-forwarded-groups").map(str::to_owned)
        }
    };
    assert_eq!(groups(&env).await.as_deref(), Some("idp-staff"));

    // admins ⊃ engineers ⊃ alice: she is in both (directory groups in
    // name order, after the IdP's).
    let engineers = scim.create_group("engineers", &[&alice]).await;
    let admins = scim.create_group("admins", &[&engineers]).await;
    assert_eq!(
        groups(&env).await.as_deref(),
        Some("idp-staff,admins,engineers")
    );
    // A group put above a group she is in reaches her at once too.
    let everyone = scim.create_group("everyone", &[]).await;
    assert_eq!(add_member(&scim, &everyone, &admins).await.status, 200);
    assert_eq!(
        groups(&env).await.as_deref(),
        Some("idp-staff,admins,engineers,everyone")
    );
    // The roles of a group she is in only through nesting apply.
    let (_, app) = echo(
        client()
            .get(env.url("/admin/panel"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(
        seen(&app, "x-forwarded-roles"),
        Some("member,administrator")
    );

    // Cycles are refused, whichever way they would close.
    for (group, member) in [
        (&engineers, &admins),   // engineers ⊃ admins ⊃ engineers
        (&engineers, &everyone), // two levels up
        (&admins, &admins),      // itself
    ] {
        let r = add_member(&scim, group, member).await;
        r.assert_error(400, Some("invalidValue"));
        let detail = r.body["detail"].as_str().unwrap();
        assert!(
            detail.contains("circular") || detail.contains("its own member"),
            "{detail}"
        );
    }
    // PUT with a member list that would close one: refused as a whole.
    let r = scim
        .put(
            &format!("/Groups/{engineers}"),
            &json!({"schemas": [GROUP], "displayName": "engineers",
                    "members": [{"value": alice}, {"value": everyone}]}),
        )
        .await;
    r.assert_error(400, Some("invalidValue"));
    assert_eq!(
        member_ids(&scim.get(&format!("/Groups/{engineers}")).await.body),
        std::slice::from_ref(&alice)
    );
    // In a Bulk request, only the operation that would close a cycle fails.
    let r = scim
        .post(
            "/Bulk",
            &json!({"schemas": [BULK], "Operations": [
                {"method": "PATCH", "path": format!("/Groups/{engineers}"), "data": {
                    "schemas": [PATCH], "Operations": [
                        {"op": "add", "path": "members", "value": [{"value": admins}]}]}},
                {"method": "POST", "path": "/Groups", "bulkId": "ops",
                 "data": {"schemas": [GROUP], "displayName": "ops",
                          "members": [{"value": alice}]}}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["Operations"][0]["status"], "400", "{}", r.body);
    assert_eq!(
        r.body["Operations"][0]["response"]["scimType"],
        "invalidValue"
    );
    assert_eq!(r.body["Operations"][1]["status"], "201", "{}", r.body);
    assert_eq!(
        groups(&env).await.as_deref(),
        Some("idp-staff,admins,engineers,everyone,ops")
    );

    // Leaving the innermost group leaves every group above it.
    let r = scim
        .patch(
            &format!("/Groups/{engineers}"),
            &json!({"schemas": [PATCH], "Operations": [
                {"op": "remove", "path": "members"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(groups(&env).await.as_deref(), Some("idp-staff,ops"));
    // Deleting a group in the middle cuts the chain above it.
    assert_eq!(add_member(&scim, &engineers, &alice).await.status, 200);
    assert_eq!(
        groups(&env).await.as_deref(),
        Some("idp-staff,admins,engineers,everyone,ops")
    );
    assert_eq!(scim.delete(&format!("/Groups/{admins}")).await.status, 204);
    assert_eq!(
        groups(&env).await.as_deref(),
        Some("idp-staff,engineers,ops")
    );
}

/// The SSO tenant `acme` (stand-in IdP) with `groups_source` set to
/// `source` (or unset), and `[tenants.scim] group_name`.
fn sourced(tenants: String, source: Option<&str>, group_name: Option<&str>) -> String {
    let mut keys = String::new();
    if let Some(s) = source {
        keys.push_str(&format!("groups_source = \"{s}\"\n"));
    }
    if let Some(n) = group_name {
        keys.push_str(&format!("scim = {{ group_name = \"{n}\" }}\n"));
    }
    let mapped = "group_roles = { \"Engineering\" = [\"developer\"], \
                  \"0f3c-entra-object-id\" = [\"auditor\"] }\n";
    let edited = tenants
        .replacen(
            "group_roles = { \"Engineering\" = [\"developer\"] }\n",
            mapped,
            1,
        )
        .replacen(
            "enforce_sso = true\n",
            &format!("enforce_sso = true\n{keys}"),
            1,
        );
    assert!(edited.contains(mapped), "the SSO tenants' TOML moved");
    edited
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_source_idp_scim_both_and_external_ids() {
    let s = Sso::start_edited(true, "", None, |t| sourced(t, Some("idp"), None)).await;
    let scim = ScimClient::new(&s.env, "acme").await;
    let alice = scim.create_user("alice@acme.com").await;
    let r = scim
        .post(
            "/Groups",
            &json!({"schemas": [GROUP], "displayName": "Directory Team",
                    "externalId": "0f3c-entra-object-id", "members": [{"value": alice}]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);

    // Alice signs in; the IdP says Engineering. Bob is not SCIM-managed
    // (JIT): whatever the source, his groups are the IdP's.
    s.assert_next("alice@acme.com", Some(true), &["Engineering"]);
    let alice_session = s.login("acme-idp", "%2F").await.1.expect("alice signed in");
    s.assert_next("bob@acme.com", Some(true), &["Engineering", "Sales"]);
    let bob_session = s.login("acme-idp", "%2F").await.1.expect("bob signed in");

    let seen_by = |session: &str| {
        let url = s.env.url("/dashboard");
        let session = session.to_owned();
        async move {
            let (status, app) = echo(client().get(url).header("cookie", session)).await;
            assert_eq!(status, 200, "{app}");
            (
                seen(&app, "x-forwarded-groups").map(str::to_owned),
                seen(&app, "x-forwarded-roles").map(str::to_owned),
            )
        }
    };
    let both = (
        Some("Engineering,Directory Team".to_owned()),
        Some("member,developer".to_owned()),
    );
    // A reload changes the source for existing sessions at once.
    for (source, group_name, alice_sees) in [
        (
            Some("idp"),
            None,
            (Some("Engineering".into()), Some("member,developer".into())),
        ),
        (
            Some("scim"),
            None,
            (Some("Directory Team".into()), Some("member".into())),
        ),
        (Some("both"), None, both.clone()),
        // unset: both
        (None, None, both.clone()),
        // Entra's object ids name the groups, and map to roles
        (
            Some("scim"),
            Some("externalId"),
            (
                Some("0f3c-entra-object-id".into()),
                Some("member,auditor".into()),
            ),
        ),
    ] {
        let text = s.env.config_text.replace(
            &sourced(
                crate::support::idp::tenants_toml(s.dns.addr(), true),
                Some("idp"),
                None,
            ),
            &sourced(
                crate::support::idp::tenants_toml(s.dns.addr(), true),
                source,
                group_name,
            ),
        );
        if (source, group_name) != (Some("idp"), None) {
            assert_ne!(text, s.env.config_text, "the tenants' TOML was not found");
        }
        std::fs::write(s.env.config_path(), &text).unwrap();
        s.env.shared.reload().await.unwrap();
        assert_eq!(seen_by(&alice_session).await, alice_sees, "{source:?}");
        assert_eq!(
            seen_by(&bob_session).await,
            (
                Some("Engineering,Sales".into()),
                Some("member,developer".into())
            ),
            "{source:?}"
        );
    }
}
