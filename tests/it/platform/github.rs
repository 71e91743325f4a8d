//! GitHub (OAuth 2.0 and its REST API): only a verified address in one of
//! the tenant's verified domains signs in (the primary address is not
//! trusted by itself); a required organisation needs an active
//! membership; that organisation's teams become groups; token errors come
//! as 200s; pagination never leaves the API's origin.

use crate::support::env::*;
use crate::support::github::{GH_CLIENT_ID, email};
use crate::support::platform::{PlatformEnv, Setup};

fn query(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// acme-github requires the acme-corp organisation and maps its teams.
async fn github() -> PlatformEnv {
    PlatformEnv::start(Setup {
        github: true,
        connection_extra: vec![(
            "acme-github",
            "github = { org = \"acme-corp\", teams_as_groups = true }".into(),
        )],
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_tenant_email_signs_in_with_teams_as_groups() {
    let p = github().await;
    let gh = p.github.as_ref().unwrap();
    let (authorize, _) = p.start_flow("acme-github").await;
    let a = query(&authorize);
    assert!(authorize.starts_with(&format!("{}/login/oauth/authorize?", gh.base)));
    assert_eq!(a["client_id"], GH_CLIENT_ID);
    assert_eq!(
        a["redirect_uri"],
        p.env.url("/.portcullis/platform/github/callback")
    );
    assert_eq!(a["scope"], "read:user user:email read:org");
    assert_eq!(a["code_challenge_method"], "S256");
    assert_eq!(a["allow_signup"], "false");

    let (cb, session) = p.login("acme-github").await;
    assert_eq!(cb.status(), 303, "{}", cb.text().await.unwrap());
    let app = p.app_sees(&session.unwrap()).await;
    assert_eq!(seen(&app, "x-forwarded-email"), Some("alice@acme.com"));
    assert_eq!(seen(&app, "x-forwarded-name"), Some("Alice Example"));
    // Only acme-corp's teams (two pages of them), never other-org's.
    assert_eq!(
        seen(&app, "x-forwarded-groups"),
        Some("acme-corp/eng,acme-corp/ops")
    );
    assert_eq!(seen(&app, "x-forwarded-roles"), Some("member,developer"));
    let (token, api) = gh.recorded(|r| (r.token.last().cloned().unwrap(), r.api.clone()));
    assert_eq!(token["code_verifier"].len(), 43);
    assert_eq!(
        api,
        [
            "GET /user",
            "GET /user/emails?per_page=100",
            "GET /user/memberships/orgs/acme-corp",
            "GET /user/teams?page=1",
            "GET /user/teams?page=2",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unverified_tenant_email_is_refused() {
    let p = github().await;
    let gh = p.github.as_ref().unwrap();
    gh.set(|k| k.emails = vec![email("alice@acme.com", true, false)]);
    p.refused("acme-github", "email_unverified").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_primary_email_alone_is_not_trusted() {
    let p = github().await;
    let gh = p.github.as_ref().unwrap();
    // The primary is the tenant's but unverified; the verified one is
    // elsewhere.
    gh.set(|k| {
        k.emails = vec![
            email("alice@acme.com", true, false),
            email("alice@gmail.com", false, true),
        ]
    });
    p.refused("acme-github", "email_unverified").await;
    // A verified tenant address that is not the primary is used.
    gh.set(|k| {
        k.emails = vec![
            email("alice@gmail.com", true, true),
            email("Alice.Work@acme.com", false, true),
        ]
    });
    let (cb, session) = p.login("acme-github").await;
    assert_eq!(cb.status(), 303);
    let app = p.app_sees(&session.unwrap()).await;
    assert_eq!(seen(&app, "x-forwarded-email"), Some("alice.work@acme.com"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_foreign_domain_email_is_refused() {
    let p = github().await;
    let gh = p.github.as_ref().unwrap();
    // Verified, but another tenant's domain, or nobody's.
    gh.set(|k| {
        k.emails = vec![
            email("bob@globex.com", true, true),
            email("bob@acme.com.evil.io", false, true),
        ]
    });
    p.refused("acme-github", "no_tenant_email").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_pending_org_membership_is_refused() {
    let p = github().await;
    let gh = p.github.as_ref().unwrap();
    gh.set(|k| k.org_state = None);
    p.refused("acme-github", "org_membership").await;
    gh.set(|k| k.org_state = Some("pending"));
    p.refused("acme-github", "org_membership").await;
    // The user unticked read:org on the consent page.
    gh.reset();
    gh.set(|k| k.grant_scopes = Some("read:user,user:email".into()));
    p.refused("acme-github", "scope_denied").await;
    // globex requires no organisation: the same account signs in there
    // with its globex address, and gets no groups.
    gh.reset();
    gh.set(|k| {
        k.org_state = None;
        k.emails = vec![email("bob@globex.com", true, true)];
    });
    let (cb, session) = p.login("globex-github").await;
    assert_eq!(cb.status(), 303);
    let app = p.app_sees(&session.unwrap()).await;
    assert_eq!(seen(&app, "x-forwarded-tenant"), Some("globex"));
    assert_eq!(seen(&app, "x-forwarded-groups"), Some(""));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_error_is_refused_even_with_200() {
    let p = github().await;
    p.github
        .as_ref()
        .unwrap()
        .set(|k| k.token_error = Some("bad_verification_code"));
    p.refused("acme-github", "token_exchange").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pagination_never_leaves_the_api_origin() {
    let p = github().await;
    let gh = p.github.as_ref().unwrap();
    gh.set(|k| k.foreign_next = true);
    p.refused("acme-github", "malformed").await;
    let pages = gh.recorded(|r| {
        r.api
            .iter()
            .filter(|a| a.starts_with("GET /user/teams"))
            .cloned()
            .collect::<Vec<_>>()
    });
    assert_eq!(
        pages,
        ["GET /user/teams?page=1"],
        "the foreign page was fetched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_state_is_refused() {
    let p = github().await;
    let at = p.begin("acme-github").await;
    let code = query(&at.url)["code"].clone();
    let before = p.refusal("state_mismatch").await;
    let r = client()
        .get(p.env.url(&format!(
            "/.portcullis/platform/github/callback?code={code}&state=forged-state-value-0000000000"
        )))
        .header("cookie", &at.flow_cookie)
        .send()
        .await
        .unwrap();
    before.assert(r, 403).await;
    // No token was asked for with that code.
    assert!(p.github.as_ref().unwrap().recorded(|r| r.token.is_empty()));
}
