//! A store tenant's life cycle through the admin API, on SQLite and
//! PostgreSQL: it is validated exactly as the file's tenants are, one that
//! cannot be built disables only itself, and deleting it leaves nothing
//! behind (and never touches a file tenant of the same id).

use serde_json::{Value, json};

use super::api::{Db, Setup, file_conflict, setup, setup_with};
use crate::support::admin::errors;
use crate::support::env::*;

on_both_stores!(
    a_platform_connection_is_checked_as_in_the_file,
    a_store_tenant_that_cannot_be_built_disables_only_itself,
    a_deleted_tenant_leaves_no_credential_or_user_behind,
    deleting_a_store_tenant_shadowed_by_the_file_leaves_the_file_tenant_alone,
    changes_read_the_tenant_under_the_lock_not_from_a_snapshot,
    scim_groups_reach_sessions_of_a_store_tenant_after_each_rebuild,
);

/// The findings `portcullis check` prints for `tenant` (TOML) added to
/// the test server's own file, keyed relative to that tenant.
fn check_findings(s: &Setup, tenant: &str) -> Vec<(String, String)> {
    let text = format!("{}\n[[tenants]]\n{tenant}", s.env.config_text);
    let n = s.env.shared.file_config().tenants.len();
    match portcullis::config::from_str(&text, "t.toml", &|_| None) {
        Ok(_) => panic!("the file accepted {tenant}"),
        Err(e) => {
            e.0.into_iter()
                .filter_map(|e| {
                    let key = e.key.strip_prefix(&format!("tenants[{n}]."))?.to_owned();
                    Some((key, e.message))
                })
                .collect()
        }
    }
}

/// Writes a tenant straight into the store, past every check (as a tenant
/// stored before a check existed would be).
async fn store_unchecked(s: &Setup, tenant: &Value, connections: &[Value]) {
    let id = tenant["id"].as_str().unwrap();
    let mut tx = s.env.shared.store.begin_config(id).await.unwrap();
    tx.tenants().put_tenant(id, tenant).await.unwrap();
    for (i, c) in connections.iter().enumerate() {
        tx.tenants()
            .put_connection(id, i as i64, c["id"].as_str().unwrap(), c)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Adds an OIDC connection `cid` to store tenant `id` through the API.
async fn add_oidc_connection(s: &Setup, id: &str, cid: &str) {
    let (status, body) = s
        .api
        .post(
            &format!("/admin/v1/tenants/{id}/connections"),
            &json!({"id": cid, "protocol": "oidc",
                "oidc": {"issuer": "https://idp.example", "client_id": "rp",
                         "client_secret": "s3cret"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// A `platform` connection whose provider the operator did not configure
/// is refused with the 400 and the very finding `check` prints for the
/// same tenant in the file; nothing is stored.
async fn a_platform_connection_is_checked_as_in_the_file(db: Db) {
    let s = setup(db).await;
    let tenant = json!({"id": "globex", "domains": ["globex.com"],
        "connections": [{"id": "globex-google", "platform": "google"}]});
    let (status, body) = s.api.post("/admin/v1/tenants", &tenant).await;
    assert_eq!(status, 400, "{body}");
    let expected = check_findings(
        &s,
        "id = \"globex\"\ndomains = [\"globex.com\"]\n[[tenants.connections]]\nid = \"globex-google\"\nplatform = \"google\"\n",
    );
    assert!(!expected.is_empty());
    assert_eq!(errors(&body), expected);
    assert_eq!(
        expected[0],
        (
            "connections[0].platform".to_owned(),
            "`google` is not configured; add `[platform.providers.google]` with the operator's client"
                .to_owned()
        )
    );
    // The same through the connections resource of an existing tenant.
    let (status, _) = s
        .api
        .post(
            "/admin/v1/tenants",
            &json!({"id": "globex", "domains": ["globex.com"]}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = s
        .api
        .post(
            "/admin/v1/tenants/globex/connections",
            &json!({"id": "globex-google", "platform": "google"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(errors(&body), expected);
    assert!(s.env.shared.rebuild_from_store().await.is_ok());
    let (_, list) = s.api.get("/admin/v1/tenants/globex/connections").await;
    assert_eq!(list, json!([]));
}

/// A store tenant whose connection can't be built (stored before its check
/// existed, or of a provider this build lacks) is left out, logged and
/// counted; every other tenant is served, and a replica that starts on
/// that store starts.
async fn a_store_tenant_that_cannot_be_built_disables_only_itself(db: Db) {
    // Google is configured, but this build has no platform factory: its
    // connections validate and can't be built.
    let factories = || portcullis::auth::Factories {
        builtin_saml: true,
        builtin_oidc: true,
        ..Default::default()
    };
    const GOOGLE: &str = "[platform.providers.google]\nclient_id = \"g\"\nclient_secret = \"s\"\n";
    let s = setup_with(db, GOOGLE, factories()).await;
    let (status, body) = s
        .api
        .post("/admin/v1/tenants", &json!({"id": "globex"}))
        .await;
    assert_eq!(status, 201, "{body}");
    add_oidc_connection(&s, "globex", "globex-oidc").await;
    // Stored before the platform check existed: now refused by it.
    store_unchecked(
        &s,
        &json!({"id": "initech", "domains": ["initech.com"]}),
        &[json!({"id": "initech-github", "platform": "github"})],
    )
    .await;
    // Valid, but not buildable here.
    store_unchecked(
        &s,
        &json!({"id": "hooli", "domains": ["hooli.com"]}),
        &[json!({"id": "hooli-google", "platform": "google"})],
    )
    .await;

    // (The watcher may have applied it already: then this is a no-op.)
    s.env.shared.rebuild_from_store().await.unwrap();
    let generation = s.env.shared.generation();
    assert!(generation.auth.registry.get("globex-oidc").is_some());
    assert!(generation.auth.tenant("acme").is_some());
    for gone in ["initech", "hooli"] {
        assert!(generation.auth.tenant(gone).is_none(), "{gone}");
        assert!(!generation.config.tenants.iter().any(|t| t.id == gone));
    }
    let (status, t) = s.api.get("/admin/v1/tenants/initech").await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["status"], "invalid", "{t}");
    assert_eq!(errors(&t)[0].0, "connections[0].platform");
    let (status, t) = s.api.get("/admin/v1/tenants/hooli").await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["status"], "invalid", "{t}");
    // A generic finding: the precise error is in the log.
    assert_eq!(
        errors(&t),
        [(
            "connections".to_owned(),
            "connection `hooli-google` could not be set up; the server log says why".to_owned()
        )]
    );
    s.env
        .metrics_with("portcullis_store_tenants_invalid 2")
        .await;
    // The admin API still changes the other tenants.
    let (status, body) = s
        .api
        .patch("/admin/v1/tenants/globex", &json!({"name": "Globex"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let globex = s.env.shared.generation().auth.tenant("globex").cloned();
    assert_eq!(globex.unwrap().name.as_deref(), Some("Globex"));

    // Another replica on the same store starts and serves the rest.
    let other = TestEnv::with(Options {
        store_url: Some(s.env.shared.config().store.url.clone()),
        extra: format!("{GOOGLE}[[tenants]]\nid = \"acme\"\ndomains = [\"acme.com\"]\n"),
        factories: factories(),
        ..Default::default()
    })
    .await;
    let generation = other.shared.generation();
    assert!(generation.auth.registry.get("globex-oidc").is_some());
    assert!(generation.auth.tenant("hooli").is_none());
    let invalid: Vec<String> = other
        .shared
        .invalid_store_tenants()
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(invalid, ["initech", "hooli"]);

    // Deleting them through the API clears them.
    for id in ["initech", "hooli"] {
        let (status, body) = s.api.delete(&format!("/admin/v1/tenants/{id}")).await;
        assert_eq!(status, 204, "{body}");
    }
    s.env
        .metrics_with("portcullis_store_tenants_invalid 0")
        .await;
}

/// Proves `domain` for tenant `id` through the API and the test DNS.
async fn verified_domain(s: &Setup, id: &str, domain: &str) {
    let (status, d) = s
        .api
        .post(
            &format!("/admin/v1/tenants/{id}/domains"),
            &json!({ "domain": domain }),
        )
        .await;
    assert_eq!(status, 201, "{d}");
    s.dns.set_txt(
        d["record_name"].as_str().unwrap(),
        d["record_value"].as_str().unwrap(),
    );
    let (_, v) = s
        .api
        .post(
            &format!("/admin/v1/tenants/{id}/domains/{domain}/verify"),
            &json!({}),
        )
        .await;
    assert_eq!(v["status"], "verified", "{v}");
}

/// A request to the proxy with `authorization`: its status.
async fn status_with(s: &Setup, path: &str, authorization: &str) -> u16 {
    client()
        .get(s.env.url(path))
        .header("authorization", authorization)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Deleting a tenant and making it again with the same id: the old SCIM
/// token and service account token are 401, and its SCIM users, login
/// users and service accounts are gone.
async fn a_deleted_tenant_leaves_no_credential_or_user_behind(db: Db) {
    let s = setup(db).await;
    let create = || async {
        let (status, body) = s
            .api
            .post("/admin/v1/tenants", &json!({"id": "globex"}))
            .await;
        assert_eq!(status, 201, "{body}");
    };
    create().await;
    verified_domain(&s, "globex", "globex.com").await;
    let (status, scim) = s
        .api
        .post("/admin/v1/tenants/globex/scim-token", &json!({}))
        .await;
    assert_eq!(status, 200, "{scim}");
    let scim_auth = format!("Bearer {}", scim["token"].as_str().unwrap());
    let (status, account) = s
        .api
        .post(
            "/admin/v1/tenants/globex/service-accounts",
            &json!({"name": "sync"}),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    let account_auth = format!("Bearer {}", account["token"].as_str().unwrap());
    let resp = client()
        .post(s.env.url("/scim/v2/Users"))
        .header("authorization", &scim_auth)
        .header("content-type", "application/scim+json")
        .body(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "gus@globex.com", "active": true})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    assert_eq!(status_with(&s, "/scim/v2/Users", &scim_auth).await, 200);
    assert_eq!(status_with(&s, "/dashboard", &account_auth).await, 200);
    let (_, users) = s.api.get("/admin/v1/tenants/globex/users").await;
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");

    let (status, body) = s.api.delete("/admin/v1/tenants/globex").await;
    assert_eq!(status, 204, "{body}");
    create().await;
    assert_eq!(status_with(&s, "/scim/v2/Users", &scim_auth).await, 401);
    assert_eq!(status_with(&s, "/dashboard", &account_auth).await, 401);
    let (_, users) = s.api.get("/admin/v1/tenants/globex/users").await;
    assert_eq!(users, json!([]));
    let (_, accounts) = s.api.get("/admin/v1/tenants/globex/service-accounts").await;
    assert_eq!(accounts, json!([]));
    let store = &s.env.shared.store;
    let tenant = Some("globex");
    for kind in [
        portcullis::store::ScimKind::User,
        portcullis::store::ScimKind::Group,
    ] {
        let n = store.scim().count(kind, "globex").await.unwrap();
        assert_eq!(n, 0, "{kind:?} left behind");
    }
    assert!(store.users().list(tenant).await.unwrap().is_empty());
}

/// POSTs a SCIM resource; its id.
async fn scim_create(s: &Setup, auth: &str, kind: &str, doc: Value) -> String {
    let resp = client()
        .post(s.env.url(&format!("/scim/v2/{kind}")))
        .header("authorization", auth)
        .header("content-type", "application/scim+json")
        .body(doc.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    v["id"].as_str().unwrap().to_owned()
}

/// A tenant made through the API maps its SCIM groups to roles in its
/// sessions, and a change of `group_roles` reaches them at once: every
/// store-driven rebuild hands the sessions the new tenants.
async fn scim_groups_reach_sessions_of_a_store_tenant_after_each_rebuild(db: Db) {
    let s = setup(db).await;
    let (status, body) = s
        .api
        .post(
            "/admin/v1/tenants",
            &json!({"id": "globex", "group_roles": {"Engineering": ["engineer"]}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    verified_domain(&s, "globex", "globex.com").await;
    let (_, scim) = s
        .api
        .post("/admin/v1/tenants/globex/scim-token", &json!({}))
        .await;
    let auth = format!("Bearer {}", scim["token"].as_str().unwrap());
    let gus = scim_create(
        &s,
        &auth,
        "Users",
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "gus@globex.com", "active": true}),
    )
    .await;
    scim_create(
        &s,
        &auth,
        "Groups",
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineering", "members": [{"value": gus}]}),
    )
    .await;
    let mut p = principal("gus@globex.com", &[]);
    p.user_id = gus;
    p.tenant = Some("globex".into());
    p.connection = None;
    p.roles = Vec::new();
    let cookie = s.env.mint(&p).await;
    let seen_roles = || async {
        let (status, e) = echo(
            client()
                .get(s.env.url("/dashboard"))
                .header("cookie", &cookie),
        )
        .await;
        assert_eq!(status, 200, "{e}");
        (
            seen(&e, "x-forwarded-groups")
                .unwrap_or_default()
                .to_owned(),
            seen(&e, "x-forwarded-roles").unwrap_or_default().to_owned(),
        )
    };
    assert_eq!(
        seen_roles().await,
        ("Engineering".to_owned(), "member,engineer".to_owned())
    );
    let (status, body) = s
        .api
        .patch(
            "/admin/v1/tenants/globex",
            &json!({"group_roles": {"Engineering": ["lead"]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        seen_roles().await,
        ("Engineering".to_owned(), "member,lead".to_owned())
    );
}

/// A store tenant whose id the file now defines is invalid; deleting it
/// removes the stored document only: the file tenant's domain claim,
/// sessions and SCIM token stay, and the file tenant itself is read-only.
async fn deleting_a_store_tenant_shadowed_by_the_file_leaves_the_file_tenant_alone(db: Db) {
    let s = setup(db).await;
    let file = portcullis::config::load(&s.env.config_path()).unwrap();
    portcullis::cli::domains::add(&file, "acme", "acme.com")
        .await
        .unwrap();
    let cookie = s.env.mint(&principal("lee@acme.com", &[])).await;
    let (status, scim) = s
        .api
        .post("/admin/v1/tenants/acme/scim-token", &json!({}))
        .await;
    assert_eq!(status, 200, "{scim}");
    let scim_auth = format!("Bearer {}", scim["token"].as_str().unwrap());
    store_unchecked(
        &s,
        &json!({"id": "acme", "domains": ["acme.com"]}),
        &[json!({"id": "acme-old", "protocol": "oidc",
            "oidc": {"issuer": "https://acme.okta.example", "client_id": "rp", "client_secret": "s"}})],
    )
    .await;
    s.env.shared.rebuild_from_store().await.unwrap();
    assert_eq!(s.env.shared.invalid_store_tenants()[0].0, "acme");

    let (status, body) = s.api.delete("/admin/v1/tenants/acme").await;
    assert_eq!(status, 204, "{body}");
    assert!(s.env.shared.invalid_store_tenants().is_empty());
    let (_, domains) = s.api.get("/admin/v1/tenants/acme/domains").await;
    assert_eq!(domains[0]["domain"], "acme.com", "{domains}");
    let (status, _) = echo(
        client()
            .get(s.env.url("/dashboard"))
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(status, 200, "the file tenant's session ended");
    assert_eq!(status_with(&s, "/scim/v2/Users", &scim_auth).await, 200);
    let (status, t) = s.api.get("/admin/v1/tenants/acme").await;
    assert_eq!((status, t["source"].as_str()), (200, Some("file")), "{t}");
    // What is left is the file's: read-only.
    let (status, body) = s.api.delete("/admin/v1/tenants/acme").await;
    assert_eq!(status, 409, "{body}");
    file_conflict(&s, &body);
}

/// The server as an operation sees it when a change commits between its
/// snapshot (`ctx`) and its transaction: `config` is the older one.
struct Racing {
    shared: std::sync::Arc<portcullis::app::Shared>,
    config: std::sync::Arc<portcullis::config::Config>,
}

#[async_trait::async_trait]
impl portcullis::admin::Current for Racing {
    fn ctx(&self) -> portcullis::admin::AdminCtx {
        let mut ctx = self.shared.ctx();
        ctx.config = self.config.clone();
        ctx
    }

    async fn rebuild(&self) {
        self.shared.rebuild().await;
    }
}

/// Removing a domain (or resetting SSO) while another change commits
/// keeps that change: the tenant is read in the transaction.
async fn changes_read_the_tenant_under_the_lock_not_from_a_snapshot(db: Db) {
    use portcullis::admin::{Actor, Current, ops};
    let s = setup(db).await;
    let (status, body) = s
        .api
        .post(
            "/admin/v1/tenants",
            &json!({"id": "globex", "domains": ["globex.com", "globex.net"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let racing = Racing {
        shared: s.env.shared.clone(),
        config: s.env.shared.config(),
    };
    let (status, body) = s
        .api
        .patch("/admin/v1/tenants/globex", &json!({"name": "Globex Corp"}))
        .await;
    assert_eq!(status, 200, "{body}");
    ops::remove_domain(&racing, &Actor::cli(), "globex", "globex.net")
        .await
        .unwrap();
    let (_, t) = s.api.get("/admin/v1/tenants/globex").await;
    assert_eq!(t["name"], "Globex Corp", "{t}");
    assert_eq!(t["domains"], json!(["globex.com"]), "{t}");

    // A connection added after the snapshot is reset too.
    let racing = Racing {
        shared: s.env.shared.clone(),
        config: s.env.shared.config(),
    };
    add_oidc_connection(&s, "globex", "globex-oidc").await;
    ops::reset_sso(&racing, &Actor::cli(), "globex")
        .await
        .unwrap();
    let (_, list) = s.api.get("/admin/v1/tenants/globex/connections").await;
    assert_eq!(list, json!([]));
    assert!(
        racing
            .shared
            .ctx()
            .config
            .tenants
            .iter()
            .any(|t| t.id == "globex")
    );
}
