//! Google: a Workspace account (`hd`) of one of the tenant's verified
//! domains with a verified address signs in; a personal account, another
//! Workspace, an unverified address or a forged `state` does not.

use serde_json::json;

use crate::support::env::*;
use crate::support::oidc_op::CLIENT_ID;
use crate::support::platform::{PlatformEnv, Setup, user};

fn query(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

async fn google() -> PlatformEnv {
    PlatformEnv::start(Setup {
        google: true,
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workspace_user_of_a_verified_domain_signs_in() {
    let p = google().await;
    let (authorize, _) = p.start_flow("acme-google").await;
    let a = query(&authorize);
    // The operator's client, the one redirect URI of the provider (no
    // connection or tenant in it), PKCE and a nonce.
    assert_eq!(a["client_id"], CLIENT_ID);
    assert_eq!(
        a["redirect_uri"],
        p.env.url("/.portcullis/platform/google/callback")
    );
    assert_eq!(a["code_challenge_method"], "S256");
    assert!(!a["nonce"].is_empty());
    let scopes: Vec<&str> = a["scope"].split(' ').collect();
    for s in ["openid", "email", "profile"] {
        assert!(scopes.contains(&s), "{scopes:?}");
    }

    let (cb, session) = p.login("acme-google").await;
    assert_eq!(cb.status(), 303);
    assert_eq!(cb.headers()["location"], "/dashboard");
    let app = p.app_sees(&session.expect("session")).await;
    assert_eq!(seen(&app, "x-forwarded-email"), Some("alice@acme.com"));
    assert_eq!(seen(&app, "x-forwarded-tenant"), Some("acme"));
    assert_eq!(seen(&app, "x-forwarded-name"), Some("Alice Example"));
    // JIT: the user exists now, with the tenant's default role.
    assert_eq!(seen(&app, "x-forwarded-roles"), Some("member"));
    let m = p.env.metrics_with("portcullis_logins_total").await;
    assert!(
        m.contains(r#"portcullis_logins_total{connection="acme-google",tenant="acme"} 1"#),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gmail_account_without_hd_is_refused() {
    let p = google().await;
    let op = p.google.as_ref().unwrap();
    op.set_user(user(json!({"sub": "g-2", "email": "alice@gmail.com",
        "email_verified": true, "name": "Alice"})));
    p.refused("acme-google", "hd_missing").await;
    // Even with a tenant address: no `hd`, no Workspace, no login.
    op.set_user(user(json!({"sub": "g-3", "email": "alice@acme.com",
        "email_verified": true})));
    p.refused("acme-google", "hd_missing").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hd_of_another_domain_is_refused() {
    let p = google().await;
    let op = p.google.as_ref().unwrap();
    for hd in ["evil.example", "globex.com", "gmail.com"] {
        op.set_user(user(json!({"sub": "g-4", "email": "alice@acme.com",
            "email_verified": true, "hd": hd})));
        p.refused("acme-google", "hd_mismatch").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unverified_email_is_refused() {
    let p = google().await;
    let op = p.google.as_ref().unwrap();
    for verified in [json!(false), json!("false"), json!(null)] {
        let mut u = user(json!({"sub": "g-5", "email": "alice@acme.com", "hd": "acme.com"}));
        if !verified.is_null() {
            u.insert("email_verified".into(), verified);
        }
        op.set_user(u);
        p.refused("acme-google", "email_unverified").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_state_is_refused_at_the_platform_callback() {
    let p = google().await;
    let callback = p.env.url("/.portcullis/platform/google/callback");

    // A state no browser started, with a real flow cookie beside it.
    let at = p.begin("acme-google").await;
    let code = query(&at.url)["code"].clone();
    let before = p.refusal("state_mismatch").await;
    let forged = format!("{callback}?code={code}&state=0123456789abcdef0123456789abcdef");
    let r = client()
        .get(&forged)
        .header("cookie", &at.flow_cookie)
        .send()
        .await
        .unwrap();
    before.assert(r, 403).await;

    // The real callback in a browser without the flow cookie.
    let at = p.begin("acme-google").await;
    let before = p.refusal("state_mismatch").await;
    before.assert(p.send(&at, None).await, 403).await;

    // No state at all.
    let before = p.refusal("missing_state").await;
    let r = client()
        .get(format!("{callback}?code={code}"))
        .send()
        .await
        .unwrap();
    before.assert(r, 403).await;

    // A real callback works once; replayed with a copied cookie, never.
    let at = p.begin("acme-google").await;
    let ok = p.send(&at, Some(&at.flow_cookie)).await;
    assert_eq!(ok.status(), 303);
    let before = p.refusal("replay").await;
    before
        .assert(p.send(&at, Some(&at.flow_cookie)).await, 403)
        .await;

    // The connection's own SSO callback is not a way around the
    // provider's redirect URI.
    let at = p.begin("acme-google").await;
    let (_, q) = at.url.split_once('?').unwrap();
    let before = p.refusal("state_mismatch").await;
    let r = client()
        .get(
            p.env
                .url(&format!("/.portcullis/sso/acme-google/callback?{q}")),
        )
        .header("cookie", &at.flow_cookie)
        .send()
        .await
        .unwrap();
    before.assert(r, 403).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flow_of_another_provider_is_refused() {
    let p = PlatformEnv::start(Setup {
        google: true,
        github: true,
        ..Default::default()
    })
    .await;
    // Google's answer, with Google's flow cookie, at GitHub's callback.
    let at = p.begin("acme-google").await;
    let (_, q) = at.url.split_once('?').unwrap();
    let before = p.refusal("state_mismatch").await;
    let r = client()
        .get(
            p.env
                .url(&format!("/.portcullis/platform/github/callback?{q}")),
        )
        .header("cookie", &at.flow_cookie)
        .send()
        .await
        .unwrap();
    before.assert(r, 403).await;
    // A provider that does not exist.
    let before = p.refusal("unknown_connection").await;
    let r = client()
        .get(
            p.env
                .url(&format!("/.portcullis/platform/myspace/callback?{q}")),
        )
        .header("cookie", &at.flow_cookie)
        .send()
        .await
        .unwrap();
    before.assert(r, 403).await;
    // The flow itself was not spent by those: at Google's callback it works.
    let ok = p.send(&at, Some(&at.flow_cookie)).await;
    assert_eq!(ok.status(), 303);
}
