//! The admin API, resource by resource, on SQLite and PostgreSQL: the happy
//! path, validation errors as JSON by field, 401 without a valid token,
//! 409 on a tenant of the configuration file, and the audit trail.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::admin::{AdminApi, errors};
use crate::support::dns::DnsServer;
use crate::support::env::*;
use crate::support::postgres::PgCluster;
use crate::support::scim::token_status;

#[derive(Clone, Copy)]
pub(super) enum Db {
    Sqlite,
    Postgres,
}

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
    every_documented_route_is_401_without_a_valid_token,
    tenants_crud_validation_and_read_only_file_tenants,
    domains_are_claimed_listed_verified_and_released,
    connections_validate_seal_secrets_and_end_sessions,
    scim_tokens_users_sessions_setup_links_and_audit,
    every_connection_secret_is_redacted_in_answers_and_audit,
    a_revoked_scim_token_ends_provisioning_at_once,
);

/// A file tenant `acme` (acme.com) and a DNS server for domain proofs.
pub(super) struct Setup {
    pub(super) env: TestEnv,
    pub(super) dns: DnsServer,
    pub(super) api: AdminApi,
}

pub(super) async fn setup(db: Db) -> Setup {
    setup_with(db, "", portcullis::auth::Factories::builtin()).await
}

/// [`setup`] with `extra` in the file (before the tenants) and `factories`.
pub(super) async fn setup_with(
    db: Db,
    extra: &str,
    factories: portcullis::auth::Factories,
) -> Setup {
    let dns = DnsServer::start().await;
    let store_url = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(PgCluster::shared().await.fresh_database().await),
    };
    let env = TestEnv::with(Options {
        store_url,
        extra: format!(
            "[dns]\nnameservers = [\"{}\"]\n{extra}\n[[tenants]]\nid = \"acme\"\ndomains = [\"acme.com\"]\n",
            dns.addr()
        ),
        admin_extra: "allow_loopback_idp_urls = true".into(),
        factories,
        ..Default::default()
    })
    .await;
    let api = AdminApi::new(&env, "ops").await;
    Setup { env, dns, api }
}

pub(super) fn file_conflict(s: &Setup, body: &Value) {
    let msg = &errors(body)[0].1;
    assert!(
        msg.contains("tenant `acme` is defined in the configuration file")
            && msg.contains(&s.env.config_path().display().to_string()),
        "{msg}"
    );
}

async fn every_documented_route_is_401_without_a_valid_token(db: Db) {
    let s = setup(db).await;
    let (status, doc) = s.api.get("/admin/v1/openapi.json").await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 12, "{paths:?}");
    let revoked = AdminApi::new(&s.env, "soon-revoked").await;
    let revoked_auth = format!("Bearer {}", revoked.token);
    portcullis::admin::tokens::revoke(
        &s.env.shared.store,
        "soon-revoked",
        &portcullis::admin::Actor::cli(),
    )
    .await
    .unwrap();
    let forged = format!("Bearer {}x", s.api.token);
    let mut checked = 0;
    for (path, ops) in paths {
        let concrete = path
            .replace("{id}", "acme")
            .replace("{cid}", "c")
            .replace("{domain}", "acme.com")
            .replace("{sid}", "s");
        for method in ops.as_object().unwrap().keys() {
            let m: Method = method.to_uppercase().parse().unwrap();
            for auth in [
                None,
                Some("Bearer pat_nothing"),
                Some(forged.as_str()),
                Some(revoked_auth.as_str()),
            ] {
                let (status, body) = s
                    .api
                    .call_with(auth, m.clone(), &concrete, Some(&json!({})))
                    .await;
                assert_eq!(status, 401, "{method} {concrete} with {auth:?}: {body}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 4 * 20, "{checked}");
    // The document itself, and unknown routes, need a token too.
    let (status, _) = s
        .api
        .call_with(None, Method::GET, "/admin/v1/openapi.json", None)
        .await;
    assert_eq!(status, 401);
    let resp = reqwest::get(format!("{}/admin/v1/nothing", s.api.base))
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    // The health endpoints are unchanged.
    let health = reqwest::get(format!("{}/healthz", s.api.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

async fn tenants_crud_validation_and_read_only_file_tenants(db: Db) {
    let s = setup(db).await;
    let (status, body) = s
        .api
        .post(
            "/admin/v1/tenants",
            &json!({"id": "globex", "name": "Globex", "jit": {"enabled": false}, "admin_roles": ["it"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["source"], "store");
    assert_eq!(body["status"], "active");
    assert_eq!(body["jit"]["enabled"], false);

    let (status, list) = s.api.get("/admin/v1/tenants").await;
    assert_eq!(status, 200);
    let ids: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["source"].as_str().unwrap()))
        .collect();
    assert_eq!(ids, [("acme", "file"), ("globex", "store")]);
    // Applied on this replica before the answer.
    assert!(s.env.shared.generation().auth.tenant("globex").is_some());

    let (status, body) = s
        .api
        .patch(
            "/admin/v1/tenants/globex",
            &json!({"enforce_sso": true, "name": null}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enforce_sso"], true);
    assert!(body["name"].is_null());
    assert_eq!(body["admin_roles"], json!(["it"]));

    // Validation: the messages `check` prints, by field.
    let (status, body) = s
        .api
        .post("/admin/v1/tenants", &json!({"id": "initech", "polcy": 1}))
        .await;
    assert_eq!(status, 400);
    let e = errors(&body);
    assert_eq!(e[0].0, "polcy");
    assert!(
        e[0].1.starts_with("unknown field `polcy`, expected one of"),
        "{e:?}"
    );
    let (status, body) = s
        .api
        .post(
            "/admin/v1/tenants",
            &json!({"id": "initech", "enforce_sso": "yes"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(errors(&body)[0].0, "enforce_sso");
    let (status, body) = s
        .api
        .post("/admin/v1/tenants", &json!({"id": "acme"}))
        .await;
    // The file's tenant: a conflict naming the file, not a bad document.
    assert_eq!(status, 409, "{body}");
    file_conflict(&s, &body);
    let (status, body) = s
        .api
        .post("/admin/v1/tenants", &json!({"id": "globex"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        errors(&body),
        [("id".to_owned(), "duplicate tenant id `globex`".to_owned())]
    );
    let (status, body) = s
        .api
        .post(
            "/admin/v1/tenants",
            &json!({"id": "x", "domains": ["gmail.com"], "name": null}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        errors(&body),
        [(
            "name".to_owned(),
            "null is not allowed; omit the key".to_owned()
        )]
    );
    let (status, body) = s.api.call(Method::POST, "/admin/v1/tenants", None).await;
    assert_eq!(status, 400, "{body}");

    // The file's tenant is read-only: 409 naming the file.
    for (status, body) in [
        s.api
            .patch("/admin/v1/tenants/acme", &json!({"enforce_sso": true}))
            .await,
        s.api.delete("/admin/v1/tenants/acme").await,
    ] {
        assert_eq!(status, 409, "{body}");
        file_conflict(&s, &body);
    }
    let (status, _) = s.api.get("/admin/v1/tenants/nobody").await;
    assert_eq!(status, 404);

    // Deleting ends the tenant's sessions.
    let mut p = principal("lee@globex.com", &[]);
    p.tenant = Some("globex".into());
    let cookie = s.env.mint(&p).await;
    let (status, _) = s.api.delete("/admin/v1/tenants/globex").await;
    assert_eq!(status, 204);
    let (status, _) = s.api.get("/admin/v1/tenants/globex").await;
    assert_eq!(status, 404);
    let resp = client()
        .get(s.env.url("/api"))
        .header("accept", "application/json")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let (_, audit) = s.api.get("/admin/v1/audit?tenant=globex").await;
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "tenant.deleted",
            "tenant.updated",
            "enforcement.changed",
            "tenant.created"
        ]
    );
    assert_eq!(audit["events"][0]["actor_kind"], "operator_token");
    assert_eq!(audit["events"][0]["actor"], "ops");
}

async fn domains_are_claimed_listed_verified_and_released(db: Db) {
    let s = setup(db).await;
    let (status, _) = s
        .api
        .post("/admin/v1/tenants", &json!({"id": "globex"}))
        .await;
    assert_eq!(status, 201);
    let (status, d) = s
        .api
        .post(
            "/admin/v1/tenants/globex/domains",
            &json!({"domain": "Globex.com"}),
        )
        .await;
    assert_eq!(status, 201, "{d}");
    assert_eq!(d["domain"], "globex.com");
    assert_eq!(d["status"], "pending");
    assert_eq!(d["record_name"], "_portcullis-challenge.globex.com");
    let value = d["record_value"].as_str().unwrap();
    assert!(value.starts_with("portcullis-domain-verification="));
    let (_, t) = s.api.get("/admin/v1/tenants/globex").await;
    assert_eq!(t["domains"], json!(["globex.com"]));

    // Not yet published: still pending, the check said why.
    let (status, v) = s
        .api
        .post(
            "/admin/v1/tenants/globex/domains/globex.com/verify",
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "pending");
    assert!(v["detail"].is_string());
    s.dns.set_txt("_portcullis-challenge.globex.com", value);
    let (_, v) = s
        .api
        .post(
            "/admin/v1/tenants/globex/domains/globex.com/verify",
            &json!({}),
        )
        .await;
    assert_eq!(v["status"], "verified", "{v}");
    let (_, list) = s.api.get("/admin/v1/tenants/globex/domains").await;
    assert_eq!(list[0]["status"], "verified");

    // Field errors: a public mail provider, a domain the file gives acme.
    let (status, body) = s
        .api
        .post(
            "/admin/v1/tenants/globex/domains",
            &json!({"domain": "gmail.com"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(errors(&body)[0].0, "domain");
    let (status, body) = s
        .api
        .post(
            "/admin/v1/tenants/globex/domains",
            &json!({"domain": "acme.com"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        errors(&body),
        [(
            "domain".to_owned(),
            "`acme.com` is already claimed by tenant `acme`; a domain belongs to one tenant"
                .to_owned()
        )]
    );
    let (status, body) = s
        .api
        .post(
            "/admin/v1/tenants/globex/domains",
            &json!({"domian": "x.com"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(errors(&body)[0].0, "domian");
    let (status, body) = s
        .api
        .post(
            "/admin/v1/tenants/acme/domains",
            &json!({"domain": "acme.org"}),
        )
        .await;
    assert_eq!(status, 409);
    file_conflict(&s, &body);

    let (status, _) = s
        .api
        .delete("/admin/v1/tenants/globex/domains/globex.com")
        .await;
    assert_eq!(status, 204);
    assert!(
        s.env
            .shared
            .store
            .domains()
            .get("globex.com")
            .await
            .unwrap()
            .is_none()
    );
    let (_, t) = s.api.get("/admin/v1/tenants/globex").await;
    assert_eq!(t["domains"], json!([]));
    let (status, _) = s
        .api
        .delete("/admin/v1/tenants/globex/domains/globex.com")
        .await;
    assert_eq!(status, 404);
}

/// SAML metadata of a throwaway IdP key.
fn metadata_xml(dir: &std::path::Path) -> String {
    let key = crate::support::saml::IdpKey::generate(dir, "globex-idp");
    let pem = key.cert_pem();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.globex.example/"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.globex.example/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
    )
}

async fn connections_validate_seal_secrets_and_end_sessions(db: Db) {
    let s = setup(db).await;
    s.api
        .post("/admin/v1/tenants", &json!({"id": "globex"}))
        .await;
    let oidc = json!({"id": "globex-oidc", "protocol": "oidc", "preset": "okta",
        "oidc": {"issuer": "https://globex.okta.example", "client_id": "rp",
                 "client_secret": "oidc-client-secret-42"}});
    let (status, c) = s
        .api
        .post("/admin/v1/tenants/globex/connections", &oidc)
        .await;
    assert_eq!(status, 201, "{c}");
    let base = format!("http://{}/.portcullis/oidc/globex-oidc", s.env.proxy);
    assert_eq!(c["redirect_uri"], format!("{base}/callback"));
    assert_eq!(
        c["backchannel_logout_uri"],
        format!("{base}/backchannel-logout")
    );
    assert_eq!(c["connection"]["oidc"]["client_secret"], "<redacted>");
    assert!(
        s.env
            .shared
            .generation()
            .auth
            .registry
            .get("globex-oidc")
            .is_some()
    );

    let dir = private_tempdir().unwrap();
    let saml = json!({"id": "globex-saml", "protocol": "saml",
        "saml": {"idp_metadata_xml": metadata_xml(dir.path())}});
    let (status, c) = s
        .api
        .post("/admin/v1/tenants/globex/connections", &saml)
        .await;
    assert_eq!(status, 201, "{c}");
    let sp = format!("http://{}/.portcullis/saml/globex-saml", s.env.proxy);
    assert_eq!(c["sp_entity_id"], format!("{sp}/metadata"));
    assert_eq!(c["acs_url"], format!("{sp}/acs"));
    assert!(
        c["connection"]["saml"]["idp_metadata_xml"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    // Field errors, keyed inside the tenant as `check` keys them.
    let bad = [
        (
            json!({"id": "b1", "protocol": "saml", "saml": {"idp_metadata_xml": "<md:EntityDescriptor/>"}}),
            "connections[2].saml.idp_metadata_xml",
        ),
        (
            json!({"id": "b2", "protocol": "oidc", "oidc": {"issuer": "https://x.example", "client_secret": "s"}}),
            "connections[2].oidc.client_id",
        ),
        (
            json!({"id": "b3", "protocol": "saml", "saml": {"idp_metadata_file": "/etc/passwd"}}),
            "connections[2].saml.idp_metadata_file",
        ),
        (
            json!({"id": "b4", "protocol": "oidc", "oidc": {"issuer": "https://10.0.0.7", "client_id": "c", "client_secret": "s"}}),
            "connections[2].oidc.issuer",
        ),
        (
            json!({"id": "globex-oidc", "protocol": "oidc", "oidc": {"issuer": "https://x.example", "client_id": "c", "client_secret": "s"}}),
            "connections[2].id",
        ),
    ];
    for (body, field) in bad {
        let (status, e) = s
            .api
            .post("/admin/v1/tenants/globex/connections", &body)
            .await;
        assert_eq!(status, 400, "{body}: {e}");
        assert!(errors(&e).iter().any(|(f, _)| f == field), "{field}: {e}");
    }

    // Sealed at rest: the secret is nowhere in the table.
    let raw: Vec<String> = s
        .env
        .shared
        .store
        .tenants()
        .load_all()
        .await
        .unwrap()
        .iter()
        .map(|t| t.document().to_string())
        .collect();
    assert!(
        raw.iter().any(|d| d.contains("oidc-client-secret-42")),
        "opened"
    );
    sqlx::any::install_default_drivers();
    let url = s.env.shared.config().store.url.clone();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let docs: Vec<String> = sqlx::query_scalar("SELECT doc FROM tenant_connections")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(docs.len(), 2);
    assert!(
        docs.iter()
            .all(|d| d.starts_with("pcs1:") && !d.contains("oidc-client-secret"))
    );

    // PATCH (secret sent back redacted = unchanged) ends the connection's sessions.
    let mut p = principal("lee@globex.com", &[]);
    p.tenant = Some("globex".into());
    p.connection = Some("globex-oidc".into());
    let cookie = s.env.mint(&p).await;
    let (status, c) = s
        .api
        .patch(
            "/admin/v1/tenants/globex/connections/globex-oidc",
            &json!({"display_name": "Globex SSO", "oidc": {"client_secret": "<redacted>"}}),
        )
        .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["connection"]["display_name"], "Globex SSO");
    let generation = s.env.shared.generation();
    let t = generation.auth.tenant("globex").unwrap();
    assert_eq!(
        t.connections[0]
            .oidc
            .as_ref()
            .unwrap()
            .client_secret
            .as_deref(),
        Some("oidc-client-secret-42")
    );
    let resp = client()
        .get(s.env.url("/api"))
        .header("accept", "application/json")
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "the connection's session ended");

    let (status, link) = s
        .api
        .post(
            "/admin/v1/tenants/globex/connections/globex-oidc/test-link",
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        link["url"].as_str().unwrap().starts_with(&format!(
            "http://{}/.portcullis/sso/globex%2Doidc/test?token=",
            s.env.proxy
        )),
        "{link}"
    );
    let (status, body) = s
        .api
        .post(
            "/admin/v1/tenants/acme/connections",
            &json!({"id": "acme-oidc", "protocol": "oidc"}),
        )
        .await;
    assert_eq!(status, 409);
    file_conflict(&s, &body);

    let (status, _) = s
        .api
        .delete("/admin/v1/tenants/globex/connections/globex-saml")
        .await;
    assert_eq!(status, 204);
    let (status, _) = s
        .api
        .get("/admin/v1/tenants/globex/connections/globex-saml")
        .await;
    assert_eq!(status, 404);
    assert!(
        s.env
            .shared
            .generation()
            .auth
            .registry
            .get("globex-saml")
            .is_none()
    );

    // The audit keeps no secret, only that something changed.
    let (_, audit) = s.api.get("/admin/v1/audit?tenant=globex").await;
    let text = audit.to_string();
    assert!(!text.contains("oidc-client-secret-42"), "{text}");
    assert!(text.contains("connection.created") && text.contains("<redacted>"));
}

async fn scim_tokens_users_sessions_setup_links_and_audit(db: Db) {
    let s = setup(db).await;
    s.api
        .post("/admin/v1/tenants", &json!({"id": "globex"}))
        .await;

    // SCIM token: shown once; rotation invalidates the previous one.
    let (status, first) = s
        .api
        .post("/admin/v1/tenants/acme/scim-token", &json!({}))
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["base_url"], format!("http://{}/scim/v2", s.env.proxy));
    let env = &s.env;
    let scim = |token: String| async move { token_status(env, &token).await };
    assert_eq!(scim(first["token"].as_str().unwrap().to_owned()).await, 200);
    let (_, second) = s
        .api
        .post("/admin/v1/tenants/acme/scim-token", &json!({}))
        .await;
    assert_eq!(scim(first["token"].as_str().unwrap().to_owned()).await, 401);
    assert_eq!(
        scim(second["token"].as_str().unwrap().to_owned()).await,
        200
    );

    // Users and sessions, scoped to the tenant.
    let lee = s.env.mint(&principal("lee@acme.com", &[])).await;
    let _kim = s.env.mint(&principal("kim@acme.com", &[])).await;
    let mut g = principal("gus@globex.com", &[]);
    g.tenant = Some("globex".into());
    s.env.mint(&g).await;
    let (status, sessions) = s.api.get("/admin/v1/tenants/acme/sessions").await;
    assert_eq!(status, 200);
    let list = sessions.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let lee_id = list.iter().find(|x| x["email"] == "lee@acme.com").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, globex_sessions) = s.api.get("/admin/v1/tenants/globex/sessions").await;
    let gus_id = globex_sessions[0]["id"].as_str().unwrap().to_owned();
    let (status, _) = s
        .api
        .delete(&format!("/admin/v1/tenants/acme/sessions/{gus_id}"))
        .await;
    assert_eq!(status, 404, "another tenant's session");
    let (status, r) = s
        .api
        .delete(&format!("/admin/v1/tenants/acme/sessions/{lee_id}"))
        .await;
    assert_eq!((status, r["revoked"].as_u64()), (200, Some(1)));
    let resp = client()
        .get(s.env.url("/api"))
        .header("accept", "application/json")
        .header("cookie", lee)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (_, r) = s.api.delete("/admin/v1/tenants/acme/sessions").await;
    assert_eq!(r["revoked"], 1);
    let (_, left) = s.api.get("/admin/v1/tenants/globex/sessions").await;
    assert_eq!(left.as_array().unwrap().len(), 1);
    let (status, users) = s.api.get("/admin/v1/tenants/acme/users").await;
    assert_eq!((status, users), (200, json!([])));

    // Setup links: store tenants only, validated.
    let (status, link) = s
        .api
        .post(
            "/admin/v1/tenants/globex/setup-links",
            &json!({"intents": ["domain", "sso"], "ttl_seconds": 3600}),
        )
        .await;
    assert_eq!(status, 201, "{link}");
    assert!(
        link["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{}/.portcullis/setup/psl_", s.env.proxy))
    );
    let (status, body) = s
        .api
        .post(
            "/admin/v1/tenants/globex/setup-links",
            &json!({"intents": ["dns"], "ttl_seconds": 10}),
        )
        .await;
    assert_eq!(status, 400);
    let fields: Vec<String> = errors(&body).into_iter().map(|e| e.0).collect();
    assert_eq!(fields, ["intents[0]", "ttl_seconds"]);
    let (status, _) = s
        .api
        .post(
            "/admin/v1/tenants/acme/setup-links",
            &json!({"intents": ["sso"]}),
        )
        .await;
    assert_eq!(status, 409);

    // CLI changes are audited too.
    let cfg = s.env.shared.file_config();
    portcullis::cli::admin_token::create(&cfg, "robot")
        .await
        .unwrap();
    portcullis::cli::admin_token::revoke(&cfg, "robot")
        .await
        .unwrap();

    // The audit: newest first, paged, no secret.
    // A bad query is a JSON error like every other.
    for bad in ["limit=many", "before=-x", "tenant=a&tenant=b&limit=1.5"] {
        let (status, body) = s.api.get(&format!("/admin/v1/audit?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert!(errors(&body)[0].1.contains("query string"), "{bad}: {body}");
    }
    let (_, page) = s.api.get("/admin/v1/audit?limit=3").await;
    let actions: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "admin_token.revoked",
            "admin_token.created",
            "setup_link.created"
        ]
    );
    assert_eq!(page["events"][0]["actor_kind"], "cli");
    let next = page["next"].as_i64().unwrap();
    let (_, older) = s
        .api
        .get(&format!("/admin/v1/audit?before={next}&limit=1000"))
        .await;
    let older: Vec<&str> = older["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        older,
        [
            "sessions.revoked",
            "sessions.revoked",
            "scim_token.rotated",
            "scim_token.rotated",
            "tenant.created",
            "admin_token.created",
        ]
    );
    let (_, all) = s.api.get("/admin/v1/audit").await;
    for token in [
        first["token"].as_str().unwrap(),
        second["token"].as_str().unwrap(),
    ] {
        assert!(!all.to_string().contains(token));
    }
    // A refused change leaves no event; the metric counts what committed.
    let (_, before) = s.api.get("/admin/v1/audit").await;
    s.api
        .post("/admin/v1/tenants", &json!({"id": "acme"}))
        .await;
    let (_, after) = s.api.get("/admin/v1/audit").await;
    assert_eq!(before, after);
    s.env
        .metrics_with("portcullis_admin_changes_total{action=\"scim_token.rotated\"} 2")
        .await;
    s.env
        .metrics_with("portcullis_admin_changes_total{action=\"tenant.created\"} 1")
        .await;
}

/// `DELETE …/scim-token`: the IdP's next SCIM call is a 401, the
/// deletion is audited once (a second DELETE has nothing to delete and
/// records nothing), and an unknown tenant is a 404.
async fn a_revoked_scim_token_ends_provisioning_at_once(db: Db) {
    let s = setup(db).await;
    let (status, creds) = s
        .api
        .post("/admin/v1/tenants/acme/scim-token", &json!({}))
        .await;
    assert_eq!(status, 200, "{creds}");
    let token = creds["token"].as_str().unwrap().to_owned();
    let scim = || token_status(&s.env, &token);
    assert_eq!(scim().await, 200);
    for _ in 0..2 {
        let (status, body) = s.api.delete("/admin/v1/tenants/acme/scim-token").await;
        assert_eq!(status, 204, "{body}");
        assert_eq!(scim().await, 401);
    }
    let (status, _) = s.api.delete("/admin/v1/tenants/nope/scim-token").await;
    assert_eq!(status, 404);
    let (_, events) = s.api.get("/admin/v1/audit?tenant=acme").await;
    let revoked = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "scim_token.revoked")
        .count();
    assert_eq!(revoked, 1);
    s.env
        .metrics_with("portcullis_admin_changes_total{action=\"scim_token.revoked\"} 1")
        .await;
}

/// The status line the admin listener answers `head` with, if it answers
/// within `wait` (the declared body is never sent).
async fn answer_to_head(addr: std::net::SocketAddr, head: &str, wait: u64) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut s, mut w) = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap()
        .into_split();
    let bytes = head.as_bytes().to_vec();
    // The server may answer and close before it has it all.
    tokio::spawn(async move {
        let _ = w.write_all(&bytes).await;
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(wait), async {
        let mut chunk = [0u8; 1024];
        while !buf.windows(2).any(|w| w == b"\r\n") {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    read.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.lines().next().map(str::to_owned)
}

/// A request without a valid token is answered 401 from its head: the
/// listener never waits for (or buffers) the body it announces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_requests_are_refused_before_their_body_is_read() {
    let s = setup(Db::Sqlite).await;
    for auth in ["", "Authorization: Bearer pat_nothing\r\n"] {
        let head = format!(
            "POST /admin/v1/tenants HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{{\"id\":"
        );
        let status = answer_to_head(s.env.admin, &head, 3).await;
        assert_eq!(
            status.as_deref(),
            Some("HTTP/1.1 401 Unauthorized"),
            "{auth:?}"
        );
    }
    // With a valid token, the body is read and its limit still holds.
    let head = format!(
        "POST /admin/v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 3145728\r\n\r\n",
        s.api.token
    );
    let big = format!("{head}{}", " ".repeat(3 << 20));
    let status = answer_to_head(s.env.admin, &big, 10).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 413 Payload Too Large"));
}

/// Every secret of a connection — the OIDC client secret and the Graph
/// app's — is `<redacted>` in answers and audit events, and sending
/// `<redacted>` back keeps the stored value.
async fn every_connection_secret_is_redacted_in_answers_and_audit(db: Db) {
    let s = setup(db).await;
    s.api
        .post("/admin/v1/tenants", &json!({"id": "globex"}))
        .await;
    let conn = json!({"id": "globex-entra", "protocol": "oidc",
        "oidc": {"issuer": "https://login.globex.example", "client_id": "rp",
                 "client_secret": "oidc-s3cret"},
        "graph": {"client_id": "graph-app", "client_secret": "graph-s3cret"}});
    let (status, c) = s
        .api
        .post("/admin/v1/tenants/globex/connections", &conn)
        .await;
    assert_eq!(status, 201, "{c}");
    let (_, shown) = s
        .api
        .get("/admin/v1/tenants/globex/connections/globex-entra")
        .await;
    for answer in [&c, &shown] {
        assert_eq!(answer["connection"]["graph"]["client_secret"], "<redacted>");
        assert_eq!(answer["connection"]["oidc"]["client_secret"], "<redacted>");
        assert!(!answer.to_string().contains("s3cret"), "{answer}");
    }
    // The document as read, edited and sent back: secrets unchanged.
    let mut edited = shown["connection"].clone();
    edited["graph"]["cache_seconds"] = json!(60);
    let (status, body) = s
        .api
        .patch("/admin/v1/tenants/globex/connections/globex-entra", &edited)
        .await;
    assert_eq!(status, 200, "{body}");
    let config = s.env.shared.config();
    let stored = config
        .tenants
        .iter()
        .flat_map(|t| &t.connections)
        .find(|c| c.id == "globex-entra")
        .unwrap();
    let graph = stored.graph.as_ref().unwrap();
    assert_eq!(graph.client_secret.as_deref(), Some("graph-s3cret"));
    assert_eq!(graph.cache_seconds, 60);
    assert_eq!(
        stored.oidc.as_ref().unwrap().client_secret.as_deref(),
        Some("oidc-s3cret")
    );
    let (_, audit) = s.api.get("/admin/v1/audit?tenant=globex").await;
    let events = audit["events"].as_array().unwrap();
    assert!(events.len() >= 3, "{audit}");
    assert!(!audit.to_string().contains("s3cret"), "{audit}");
    let updated = &events[0];
    assert_eq!(updated["action"], "connection.updated");
    for side in ["before", "after"] {
        assert_eq!(
            updated[side]["graph"]["client_secret"], "<redacted>",
            "{side}"
        );
    }
}
