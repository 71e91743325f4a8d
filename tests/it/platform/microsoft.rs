//! Microsoft (multi-tenant, `organizations`): discovery names an issuer
//! template; each token must carry the issuer of its own `tid`. Personal
//! accounts are refused; a pinned connection admits only its Entra
//! tenants; an unpinned one only an `email` its directory marks verified
//! (`xms_edov`).

use serde_json::{Value, json};

use crate::support::env::*;
use crate::support::platform::{ACME_TID, GLOBEX_TID, PlatformEnv, Setup, user};

const CONSUMER_TID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// acme-microsoft unpinned; globex-microsoft pinned to globex's tenant.
async fn microsoft() -> PlatformEnv {
    PlatformEnv::start(Setup {
        microsoft: true,
        connection_extra: vec![(
            "globex-microsoft",
            format!(
                "microsoft = {{ tenant_ids = [\"{}\"] }}",
                GLOBEX_TID.to_uppercase()
            ),
        )],
        ..Default::default()
    })
    .await
}

/// The next token: user `claims` of Entra tenant `tid`, issued by the
/// issuer of `iss_tid`.
fn token(p: &PlatformEnv, tid: &str, iss_tid: &str, claims: Value) {
    let op = p.microsoft.as_ref().unwrap();
    let origin = op.issuer.trim_end_matches("/organizations/v2.0");
    op.set_issuers(
        Some(format!("{origin}/{{tenantid}}/v2.0")),
        Some(format!("{origin}/{iss_tid}/v2.0")),
    );
    let mut u = user(json!({"sub": "ms-user", "tid": tid, "name": "Someone"}));
    u.extend(user(claims));
    op.set_user(u);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_work_account_signs_in_with_the_issuer_of_its_tid() {
    let p = microsoft().await;
    let (authorize, _) = p.start_flow("acme-microsoft").await;
    assert!(
        authorize.starts_with(&format!(
            "{}/authorize?",
            p.microsoft.as_ref().unwrap().issuer
        )),
        "the organizations endpoint: {authorize}"
    );
    let (cb, session) = p.login("acme-microsoft").await;
    assert_eq!(cb.status(), 303);
    let app = p.app_sees(&session.unwrap()).await;
    assert_eq!(seen(&app, "x-forwarded-email"), Some("alice@acme.com"));
    assert_eq!(seen(&app, "x-forwarded-tenant"), Some("acme"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_personal_account_is_refused() {
    let p = microsoft().await;
    token(
        &p,
        CONSUMER_TID,
        CONSUMER_TID,
        json!({"email": "alice@acme.com", "xms_edov": true}),
    );
    p.refused("acme-microsoft", "personal_account").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unpinned_tenant_is_refused() {
    let p = microsoft().await;
    // globex pins its own Entra tenant: a token of another one is refused,
    // whatever address it carries.
    token(
        &p,
        ACME_TID,
        ACME_TID,
        json!({"email": "bob@globex.com", "xms_edov": true}),
    );
    p.refused("globex-microsoft", "tenant_not_allowed").await;
    // Its own tenant signs in.
    token(
        &p,
        GLOBEX_TID,
        GLOBEX_TID,
        json!({"email": "bob@globex.com", "xms_edov": true}),
    );
    let (cb, session) = p.login("globex-microsoft").await;
    assert_eq!(cb.status(), 303);
    let app = p.app_sees(&session.unwrap()).await;
    assert_eq!(seen(&app, "x-forwarded-tenant"), Some("globex"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_issuer_naming_another_tid_is_refused() {
    let p = microsoft().await;
    token(
        &p,
        ACME_TID,
        GLOBEX_TID,
        json!({"email": "alice@acme.com", "xms_edov": true}),
    );
    p.refused("acme-microsoft", "issuer").await;
    // A `tid` that is no tenant id names no issuer at all.
    token(
        &p,
        "organizations",
        "organizations",
        json!({"email": "alice@acme.com", "xms_edov": true}),
    );
    p.refused("acme-microsoft", "issuer").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn email_without_xms_edov_is_refused_unless_pinned() {
    let p = microsoft().await;
    for claims in [
        json!({"email": "alice@acme.com"}),
        json!({"email": "alice@acme.com", "xms_edov": false}),
        json!({"email": "alice@acme.com", "xms_edov": "false"}),
        // The UPN is no substitute for a verified email when unpinned.
        json!({"preferred_username": "alice@acme.com", "xms_edov": true}),
    ] {
        token(&p, ACME_TID, ACME_TID, claims);
        p.refused("acme-microsoft", "email_unverified").await;
    }
    // Pinned: the directory is the customer's own, as for the Entra
    // preset; the UPN is a fallback, an explicit `false` still refused.
    token(
        &p,
        GLOBEX_TID,
        GLOBEX_TID,
        json!({"preferred_username": "bob@globex.com"}),
    );
    let (cb, session) = p.login("globex-microsoft").await;
    assert_eq!(cb.status(), 303);
    let app = p.app_sees(&session.unwrap()).await;
    assert_eq!(seen(&app, "x-forwarded-email"), Some("bob@globex.com"));
    token(
        &p,
        GLOBEX_TID,
        GLOBEX_TID,
        json!({"email": "bob@globex.com", "xms_edov": false}),
    );
    p.refused("globex-microsoft", "email_unverified").await;
}
