//! The OpenAPI document: 3.1, generated from the handlers, served behind a
//! token, and the copy checked in at `docs/admin-openapi.json` is current
//! (`UPDATE_OPENAPI=1 cargo test --test it -- admin::openapi` rewrites it).

use crate::support::admin::AdminApi;
use crate::support::env::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_is_3_1_served_and_matches_the_checked_in_copy() {
    let generated = portcullis::admin::api::openapi_json();
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/admin/v1/tenants",
        "/admin/v1/tenants/{id}",
        "/admin/v1/tenants/{id}/domains",
        "/admin/v1/tenants/{id}/domains/{domain}/verify",
        "/admin/v1/tenants/{id}/connections",
        "/admin/v1/tenants/{id}/connections/{cid}/test-link",
        "/admin/v1/tenants/{id}/scim-token",
        "/admin/v1/tenants/{id}/users",
        "/admin/v1/tenants/{id}/sessions",
        "/admin/v1/tenants/{id}/setup-links",
        "/admin/v1/audit",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
    }
    // Request schemas are the configuration file's keys.
    let saml = &doc["components"]["schemas"]["SamlConfig"]["properties"];
    assert!(saml.get("idp_metadata_xml").is_some(), "{saml}");
    let tenant = &doc["components"]["schemas"]["TenantConfig"];
    assert!(tenant["properties"].get("enforce_sso").is_some());
    assert!(tenant["properties"].get("origin").is_none());

    let env = TestEnv::start().await;
    let api = AdminApi::new(&env, "docs").await;
    let (status, served) = api.get("/admin/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(served, doc);

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/admin-openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, format!("{generated}\n")).unwrap();
    }
    let checked_in: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        checked_in, doc,
        "docs/admin-openapi.json is stale: run with UPDATE_OPENAPI=1"
    );
}
