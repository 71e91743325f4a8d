//! Sign in with Apple: `form_post` callbacks, no PKCE, a client secret
//! that is an ES256 JWT signed with the operator's key, the name only on
//! the first authorisation, and private relay addresses refused.

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use serde_json::json;

use crate::support::env::*;
use crate::support::oidc_op::{AppleClient, CLIENT_ID};
use crate::support::platform::{KEY_ID, PlatformEnv, Setup, TEAM_ID, user};

fn query(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

async fn apple() -> PlatformEnv {
    PlatformEnv::start(Setup {
        apple: true,
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_form_post_login_signs_in_and_keeps_the_first_time_name() {
    let p = apple().await;
    let op = p.apple.as_ref().unwrap();
    let (authorize, _) = p.start_flow("acme-apple").await;
    let a = query(&authorize);
    assert_eq!(a["response_mode"], "form_post");
    assert!(!a.contains_key("code_challenge"), "Apple takes no PKCE");
    let scopes: Vec<&str> = a["scope"].split(' ').collect();
    assert!(
        scopes.contains(&"name") && scopes.contains(&"email"),
        "{scopes:?}"
    );
    assert_eq!(
        a["redirect_uri"],
        p.env.url("/.portcullis/platform/apple/callback")
    );

    // First authorisation: the name comes in the unsigned `user` field;
    // its address is ignored (the ID token's counts).
    op.set_first_time_user(json!({"name": {"firstName": "Alice", "lastName": "Apple"},
        "email": "someone@evil.example"}));
    let at = p.begin("acme-apple").await;
    let form = at.form.clone().expect("a form_post answer");
    assert!(form.iter().any(|(k, _)| k == "user"));
    let cb = p.send(&at, Some(&at.flow_cookie)).await;
    assert_eq!(cb.status(), 303);
    let session = crate::support::idp::cookie_pair(&cb, "portcullis_session=").unwrap();
    let app = p.app_sees(&session).await;
    assert_eq!(seen(&app, "x-forwarded-email"), Some("alice@acme.com"));
    assert_eq!(seen(&app, "x-forwarded-name"), Some("Alice Apple"));

    // Later logins carry no name: the one stored at the first stays.
    let at = p.begin("acme-apple").await;
    assert!(!at.form.as_ref().unwrap().iter().any(|(k, _)| k == "user"));
    let cb = p.send(&at, Some(&at.flow_cookie)).await;
    assert_eq!(cb.status(), 303);
    let session = crate::support::idp::cookie_pair(&cb, "portcullis_session=").unwrap();
    let app = p.app_sees(&session).await;
    assert_eq!(seen(&app, "x-forwarded-name"), Some("Alice Apple"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_secret_is_an_es256_jwt_signed_with_the_operator_key() {
    let p = apple().await;
    let op = p.apple.as_ref().unwrap();
    let (cb, _) = p.login("acme-apple").await;
    assert_eq!(cb.status(), 303);
    // The fake verified the signature with the operator's public key and
    // refused the token request otherwise; here are the claims it saw.
    let (header, claims, form, auth) = op.recorded(|r| {
        let (h, c) = r
            .apple_secrets
            .last()
            .cloned()
            .expect("a verified client secret");
        (h, c, r.token[0].clone(), r.token_auth[0].clone())
    });
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], KEY_ID);
    assert_eq!(claims["iss"], TEAM_ID);
    assert_eq!(claims["sub"], CLIENT_ID);
    assert_eq!(claims["aud"], op.issuer);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!((1..=300).contains(&lifetime), "{claims}");
    // client_secret_post, and no PKCE verifier.
    assert!(auth.is_none(), "{auth:?}");
    assert_eq!(form["client_id"], CLIENT_ID);
    assert!(!form.contains_key("code_verifier"));

    // The fake does check: told to expect another key, it refuses the
    // token request, and the login with it.
    let other = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
    )
    .unwrap();
    op.set_apple(AppleClient::for_key(&other, TEAM_ID, KEY_ID));
    p.refused("acme-apple", "token_exchange").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_relay_address_is_refused() {
    let p = apple().await;
    let op = p.apple.as_ref().unwrap();
    op.set_user(user(
        json!({"sub": "001.relay", "email": "x7fh2@privaterelay.appleid.com",
        "email_verified": "true", "is_private_email": "true"}),
    ));
    p.refused("acme-apple", "apple_private_relay").await;
    // Flagged private even where the address looks like a tenant's.
    op.set_user(user(json!({"sub": "001.relay2", "email": "alice@acme.com",
        "email_verified": true, "is_private_email": true})));
    p.refused("acme-apple", "apple_private_relay").await;
    op.set_user(user(
        json!({"sub": "001.unverified", "email": "alice@acme.com",
        "email_verified": "false"}),
    ));
    p.refused("acme-apple", "email_unverified").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_state_is_refused() {
    let p = apple().await;
    let at = p.begin("acme-apple").await;
    let mut forged = at.clone_with_state("0123456789abcdef0123456789abcdef");
    let before = p.refusal("state_mismatch").await;
    before
        .assert(p.send(&forged, Some(&at.flow_cookie)).await, 403)
        .await;
    // The same POST without the browser's flow cookie.
    forged = at.clone_with_state(&at.state());
    let before = p.refusal("state_mismatch").await;
    before.assert(p.send(&forged, None).await, 403).await;
}
