//! Step-up against panva's `oidc-provider` (see `interop.rs`): a route
//! demanding an acr or a recent authentication sends a weaker session
//! through a fresh login carrying `acr_values` / `max_age`; the achieved
//! `acr` and `auth_time` reach the app; an IdP answer below what was
//! asked is refused with its reason; API clients get RFC 9470's 401.

use base64::Engine;

use super::interop::{
    CLIENT_ID, CLIENT_SECRET, Jar, NodeOp, ONE_OP, login, start_pair, through_op,
};
use crate::support::env::*;
use crate::support::idp::cookie_pair;
use crate::support::oidc_rp::{CONNECTION, Rp};

const ACR_PWD: &str = "urn:portcullis:test:pwd";
const ACR_MFA: &str = "urn:portcullis:test:mfa";

fn config() -> String {
    format!(
        "client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
         scopes = [\"openid\", \"email\", \"profile\", \"groups\"]\n{}",
        step_up_toml()
    )
}

/// The connection's acr_map, the step-up headers and routes.
fn step_up_toml() -> String {
    format!(
        r#"[tenants.connections.acr_map]
mfa = "{ACR_MFA}"

[headers]
acr = "X-Forwarded-Acr"
auth_time = "X-Forwarded-Auth-Time"

[[routes]]
prefix = "/secure"
policy = "required"
acr = ["mfa"]

[[routes]]
prefix = "/fresh"
policy = "required"
max_age = "1m"
"#
    )
}

/// A browser navigation to `path` with `session`.
async fn navigate(rp: &Rp, path: &str, session: &str) -> reqwest::Response {
    client()
        .get(rp.env.url(path))
        .header("accept", "text/html")
        .header("cookie", session)
        .send()
        .await
        .unwrap()
}

/// The app's view of `path` with `session`: status and echoed request.
async fn app_view(rp: &Rp, path: &str, session: &str) -> (u16, serde_json::Value) {
    echo(client().get(rp.env.url(path)).header("cookie", session)).await
}

/// Makes the provider's next login report `acr` and/or an authentication
/// `age` seconds old, whatever was asked.
async fn next_login(op: &NodeOp, acr: Option<&str>, age: u64) {
    let mut url = format!("{}/__test/next-login?age={age}", op.issuer);
    if let Some(a) = acr {
        url.push_str(&format!("&acr={a}"));
    }
    let r = client().get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// A step-up from `session` for `path`: the gate's redirect, our step-up
/// start (checked to carry `expect_in_authorize`), the provider, and the
/// callback response (not followed).
async fn step_up(
    rp: &Rp,
    op: &NodeOp,
    jar: &mut Jar,
    path: &str,
    session: &str,
    expect_in_authorize: &str,
) -> reqwest::Response {
    let r = navigate(rp, path, session).await;
    assert_eq!(r.status(), 302, "{path}");
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/.portcullis/step-up?return_to="), "{to}");
    let r = client()
        .get(rp.env.url(&to))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let authorize = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        authorize.starts_with(&format!("{}/auth?", op.issuer)),
        "{authorize}"
    );
    assert!(authorize.contains(expect_in_authorize), "{authorize}");
    let flow = cookie_pair(&r, "portcullis_flow_").expect("flow cookie");
    let callback = through_op(op, jar, authorize).await;
    assert!(
        callback.starts_with(
            &rp.env
                .url(&format!("/.portcullis/oidc/{CONNECTION}/callback?"))
        ),
        "{callback}"
    );
    rp.callback(&callback, Some(&format!("{flow}; {session}")))
        .await
}

fn assertion_claims(app: &serde_json::Value) -> serde_json::Value {
    let jwt = seen(app, "x-portcullis-assertion").expect("assertion");
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_provider_step_up_by_acr_and_max_age() {
    let _one = ONE_OP.lock().await;
    let (rp, op) = start_pair(&config(), None).await;

    // 1. A plain login: no acr asked for, so the provider names none
    // (OIDC Core 2: acr is optional unless requested); its auth_time
    // reaches the app.
    let mut browser = Jar::default();
    let s1 = login(&rp, &op, &mut browser).await;
    let (status, app) = app_view(&rp, "/dashboard", &s1).await;
    assert_eq!(status, 200);
    assert_eq!(seen(&app, "x-forwarded-acr"), None);
    let t1: i64 = seen(&app, "x-forwarded-auth-time")
        .unwrap()
        .parse()
        .unwrap();
    assert!((portcullis::clock::now() - t1).abs() < 60, "{t1}");
    assert_eq!(assertion_claims(&app)["auth_time"], t1);

    // 2. An API client with that session: RFC 9470's 401, the app unreached.
    let seen_before = rp.app_saw.lock().unwrap().len();
    let r = client()
        .get(rp.env.url("/secure/data"))
        .header("accept", "application/json")
        .header("cookie", &s1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_user_authentication\"")
            && challenge.contains("acr_values=\"mfa\""),
        "{challenge}"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_user_authentication");
    assert_eq!(rp.app_saw.lock().unwrap().len(), seen_before);

    // 3. The browser steps up: acr_values in the provider's own value, a
    // login there (its policy prompts: the session is below the class),
    // and a new session replacing the weaker one.
    let cb = step_up(
        &rp,
        &op,
        &mut browser,
        "/secure/data",
        &s1,
        "acr_values=urn%3Aportcullis%3Atest%3Amfa",
    )
    .await;
    assert_eq!(cb.status(), 303);
    assert_eq!(cb.headers()["location"], "/secure/data");
    let s2 = cookie_pair(&cb, "portcullis_session=").unwrap();
    assert_ne!(s2, s1);
    let (status, app) = app_view(&rp, "/secure/data", &s2).await;
    assert_eq!(status, 200, "{app}");
    // the provider's value, in the routes' name for it (acr_map)
    assert_eq!(seen(&app, "x-forwarded-acr"), Some("mfa"));
    assert_eq!(seen(&app, "x-forwarded-email"), Some("alice@acme.com"));
    assert_eq!(assertion_claims(&app)["acr"], "mfa");
    // the weaker session is gone, not just superseded
    let (status, _) = app_view(&rp, "/dashboard", &s1).await;
    assert_eq!(status, 401);

    // 4. max_age: a session authenticated an hour ago (the provider's
    // next login says so) is stepped up with max_age; the provider
    // authenticates again and the route opens.
    let mut other = Jar::default();
    next_login(&op, None, 3600).await;
    let s3 = login(&rp, &op, &mut other).await;
    let (status, app) = app_view(&rp, "/fresh", &s3).await;
    assert_eq!(status, 401, "{app}");
    let cb = step_up(&rp, &op, &mut other, "/fresh", &s3, "max_age=60").await;
    assert_eq!(cb.status(), 303);
    let s4 = cookie_pair(&cb, "portcullis_session=").unwrap();
    let (status, app) = app_view(&rp, "/fresh", &s4).await;
    assert_eq!(status, 200, "{app}");
    let t4: i64 = seen(&app, "x-forwarded-auth-time")
        .unwrap()
        .parse()
        .unwrap();
    assert!(portcullis::clock::now() - t4 < 60, "{t4}");

    // 5. A provider that answers below what was asked: refused, precisely
    // counted, no session, the app unreached, the old session intact.
    next_login(&op, Some(ACR_PWD), 0).await;
    let before = rp.refusal("step_up_acr").await;
    let cb = step_up(&rp, &op, &mut other, "/secure/x", &s4, "acr_values=").await;
    rp.assert_refused(cb, "step_up_acr", before).await;
    assert_eq!(app_view(&rp, "/dashboard", &s4).await.0, 200);

    // 6. A provider that reports an authentication older than max_age.
    let mut third = Jar::default();
    next_login(&op, None, 3600).await;
    let s5 = login(&rp, &op, &mut third).await;
    next_login(&op, None, 3600).await;
    let before = rp.refusal("step_up_auth_time").await;
    let cb = step_up(&rp, &op, &mut third, "/fresh", &s5, "max_age=60").await;
    rp.assert_refused(cb, "step_up_auth_time", before).await;
    assert_eq!(app_view(&rp, "/dashboard", &s5).await.0, 200);
}

/// With the provider the tests control (`support::oidc_op`): an ID token
/// without `auth_time` can't meet a `max_age`, and a step-up that signs in
/// someone else is refused — the weaker session stays as it was.
#[tokio::test(flavor = "multi_thread")]
async fn missing_auth_time_and_another_user_are_refused() {
    use crate::support::oidc_op::{TestOp, alice};
    let op = TestOp::start().await;
    let rp = Rp::start(
        &op.issuer,
        "generic",
        &format!(
            "client_id = \"{}\"\nclient_secret = \"{}\"\n{}",
            crate::support::oidc_op::CLIENT_ID,
            crate::support::oidc_op::CLIENT_SECRET,
            step_up_toml()
        ),
    )
    .await;
    // The provider's answers (it redirects at once, no interaction).
    async fn through(rp: &Rp, path: &str, session: &str) -> reqwest::Response {
        let r = navigate(rp, path, session).await;
        assert_eq!(r.status(), 302, "{path}");
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        let r = client()
            .get(rp.env.url(&to))
            .header("cookie", session)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
        let authorize = r.headers()["location"].to_str().unwrap().to_owned();
        let flow = cookie_pair(&r, "portcullis_flow_").unwrap();
        let at_op = client().get(&authorize).send().await.unwrap();
        let callback = at_op.headers()["location"].to_str().unwrap().to_owned();
        rp.callback(&callback, Some(&format!("{flow}; {session}")))
            .await
    }
    let (cb, session) = rp.login().await;
    assert_eq!(cb.status(), 303);
    let s1 = session.unwrap();

    // max_age asked, no auth_time answered
    op.set(|k| {
        k.claims.insert("acr".into(), ACR_MFA.into());
    });
    let before = rp.refusal("step_up_auth_time").await;
    let cb = through(&rp, "/fresh", &s1).await;
    rp.assert_refused(cb, "step_up_auth_time", before).await;

    // the right acr, but for bob
    let mut bob = alice();
    bob.insert("sub".into(), "bob-sub".into());
    bob.insert("email".into(), "bob@acme.com".into());
    op.set_user(bob);
    let before = rp.refusal("step_up_user").await;
    let cb = through(&rp, "/secure", &s1).await;
    rp.assert_refused(cb, "step_up_user", before).await;
    // refused before admission: no user row for bob was made (JIT)
    let bob_row = rp
        .env
        .shared
        .store
        .users()
        .by_email("acme", "bob@acme.com")
        .await
        .unwrap();
    assert!(bob_row.is_none());
    let (status, app) = app_view(&rp, "/dashboard", &s1).await;
    assert_eq!(status, 200);
    assert_eq!(seen(&app, "x-forwarded-email"), Some("alice@acme.com"));

    // alice again, with the asked class: the route opens
    op.set_user(alice());
    let cb = through(&rp, "/secure", &s1).await;
    assert_eq!(cb.status(), 303);
    let s2 = cookie_pair(&cb, "portcullis_session=").unwrap();
    assert_eq!(app_view(&rp, "/secure", &s2).await.0, 200);
}
