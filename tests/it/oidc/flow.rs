//! OIDC relying party against a provider the tests control
//! (`support::oidc_op`): the whole login, every refusal with its reason,
//! key rotation, userinfo fallback, presets, and both logouts.

use serde_json::json;

use crate::support::env::*;
use crate::support::idp::cookie_pair;
use crate::support::oidc_op::{Alg, CLIENT_ID, CLIENT_SECRET, TestOp, alice};
use crate::support::oidc_rp::{CONNECTION, Rp, counter};

fn secret_basic() -> String {
    format!(
        "client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\npost_logout_redirect_uri = \"http://127.0.0.1:1/bye\"\n"
    )
}

async fn rp(op: &TestOp) -> Rp {
    Rp::start(&op.issuer, "generic", &secret_basic()).await
}

fn query(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let (base, q) = url.split_once('?').unwrap();
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .filter(|(k, _)| k != name)
        .collect();
    if let Some(v) = value {
        pairs.push((name.into(), v.into()));
    }
    let q: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{base}?{q}")
}

#[tokio::test(flavor = "multi_thread")]
async fn full_login_reaches_the_app_with_the_identity() {
    let op = TestOp::start().await;
    let rp = rp(&op).await;
    let at = rp.begin().await;
    // The authorization request: code flow, PKCE S256, nonce, state = the
    // flow's relay, our redirect URI, the typed email as login_hint.
    let a = query(&at.authorize_url);
    assert_eq!(a["response_type"], "code");
    assert_eq!(a["client_id"], CLIENT_ID);
    assert_eq!(a["code_challenge_method"], "S256");
    assert_eq!(a["code_challenge"].len(), 43);
    assert!(a["nonce"].len() >= 22, "{a:?}");
    assert!(
        at.flow_cookie
            .starts_with(&format!("portcullis_flow_{}=", a["state"]))
    );
    assert_eq!(
        a["redirect_uri"],
        rp.env
            .url(&format!("/.portcullis/oidc/{CONNECTION}/callback"))
    );
    let scopes: Vec<&str> = a["scope"].split(' ').collect();
    assert!(
        ["openid", "email", "profile"]
            .iter()
            .all(|s| scopes.contains(s)),
        "{scopes:?}"
    );
    assert_eq!(a["login_hint"], "alice@acme.com");
    // The cookie holds the verifier and nonce, sealed: neither is readable.
    assert!(!at.flow_cookie.contains(&a["nonce"]));

    let cb = rp.callback(&at.url, Some(&at.flow_cookie)).await;
    assert_eq!(cb.status(), 303);
    assert_eq!(cb.headers()["location"], "/dashboard");
    let cleared = cb.headers().get_all("set-cookie").iter().any(|v| {
        v.to_str().unwrap().starts_with("portcullis_flow_")
            && v.to_str().unwrap().contains("Max-Age=0")
    });
    assert!(cleared, "flow cookie is single use");
    let session = cookie_pair(&cb, "portcullis_session=").unwrap();
    let app = assert_alice_engineer(&rp.env, &session).await;
    assert_eq!(seen(&app, "x-forwarded-name"), Some("Alice Example"));

    // The token request: client_secret_basic, the PKCE verifier, no secret
    // in the body.
    let (form, auth) = op.recorded(|r| (r.token[0].clone(), r.token_auth[0].clone()));
    assert!(auth.unwrap().starts_with("Basic "));
    assert!(!form.contains_key("client_secret"));
    assert_eq!(form["code_verifier"].len(), 43);
    assert_eq!(form["grant_type"], "authorization_code");
    // The session remembers the provider's subject and sid for logout.
    let whoami: serde_json::Value = client()
        .get(rp.env.url("/.portcullis/session"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whoami["email"], "alice@acme.com");
    let m = rp.env.metrics_with("portcullis_logins_total").await;
    assert!(
        m.contains(r#"portcullis_logins_total{connection="acme-oidc",tenant="acme"} 1"#),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_mismatched_callbacks_are_refused_with_their_reason() {
    let op = TestOp::start().await;
    let rp = rp(&op).await;

    // state: missing, another flow's, a callback replayed in another browser
    let at = rp.begin().await;
    let before = rp.refusal("missing_state").await;
    let r = rp
        .callback(&with_param(&at.url, "state", None), Some(&at.flow_cookie))
        .await;
    rp.assert_refused(r, "missing_state", before).await;

    let at = rp.begin().await;
    let before = rp.refusal("state_mismatch").await;
    let other = "0123456789abcdef0123456789abcdef";
    let r = rp
        .callback(
            &with_param(&at.url, "state", Some(other)),
            Some(&at.flow_cookie),
        )
        .await;
    rp.assert_refused(r, "state_mismatch", before).await;

    let at = rp.begin().await;
    let before = rp.refusal("state_mismatch").await;
    let r = rp.callback(&at.url, None).await;
    rp.assert_refused(r, "state_mismatch", before).await;
    // ...and another browser's own flow cookie doesn't open it either
    let (_, someone_else) = rp.start_flow("/").await;
    let before = rp.refusal("state_mismatch").await;
    let r = rp.callback(&at.url, Some(&someone_else)).await;
    rp.assert_refused(r, "state_mismatch", before).await;

    // The provider reports an error.
    let at = rp.begin().await;
    let before = rp.refusal("idp_error").await;
    let url = with_param(&at.url, "code", None) + "&error=access_denied&error_description=no";
    let r = rp.callback(&url, Some(&at.flow_cookie)).await;
    rp.assert_refused(r, "idp_error", before).await;

    // No code, or an absurd one.
    let at = rp.begin().await;
    let before = rp.refusal("malformed").await;
    let r = rp
        .callback(&with_param(&at.url, "code", None), Some(&at.flow_cookie))
        .await;
    rp.assert_refused(r, "malformed", before).await;
    let at = rp.begin().await;
    let before = rp.refusal("malformed").await;
    let r = rp
        .callback(
            &with_param(&at.url, "code", Some(&"c".repeat(5000))),
            Some(&at.flow_cookie),
        )
        .await;
    rp.assert_refused(r, "malformed", before).await;

    // RFC 9207 `iss` in the callback naming another provider (mix-up).
    op.set(|k| k.iss_in_callback = Some("https://evil.example".into()));
    let at = rp.begin().await;
    let before = rp.refusal("issuer").await;
    let r = rp.callback(&at.url, Some(&at.flow_cookie)).await;
    rp.assert_refused(r, "issuer", before).await;
    op.reset();

    // Token-level attacks: each one is one knob on the provider.
    type Knob = Box<dyn Fn(&mut crate::support::oidc_op::Knobs)>;
    let cases: Vec<(&str, Knob)> = vec![
        (
            "nonce",
            Box::new(|k| {
                k.claims.insert("nonce".into(), json!("attacker-nonce"));
            }),
        ),
        (
            "nonce",
            Box::new(|k| {
                k.claims.insert("nonce".into(), json!(null));
            }),
        ),
        ("algorithm", Box::new(|k| k.alg = Alg::None)),
        ("algorithm", Box::new(|k| k.alg = Alg::Hs256WithPublicKey)),
        ("signature", Box::new(|k| k.alg = Alg::RogueKey)),
        (
            "issuer",
            Box::new(|k| {
                k.claims.insert("iss".into(), json!("http://127.0.0.1:1"));
            }),
        ),
        (
            "audience",
            Box::new(|k| {
                k.claims.insert("aud".into(), json!("another-client"));
            }),
        ),
        (
            "audience",
            Box::new(|k| {
                k.claims
                    .insert("aud".into(), json!([CLIENT_ID, "untrusted-client"]));
                k.claims.insert("azp".into(), json!(CLIENT_ID));
            }),
        ),
        (
            "azp",
            Box::new(|k| {
                k.claims.insert("azp".into(), json!("another-client"));
            }),
        ),
        ("expired", Box::new(|k| k.exp_offset = -121 - 60)),
        ("expired", Box::new(|k| k.iat_offset = -3600)),
        ("not_yet_valid", Box::new(|k| k.iat_offset = 600)),
        ("at_hash", Box::new(|k| k.bad_at_hash = true)),
        (
            "email_unverified",
            Box::new(|k| {
                k.claims.insert("email_verified".into(), json!(false));
            }),
        ),
        (
            "email_unverified",
            Box::new(|k| {
                k.claims.insert("email_verified".into(), json!("false"));
            }),
        ),
        (
            "domain_not_verified",
            Box::new(|k| {
                k.claims
                    .insert("email".into(), json!("mallory@evil.example"));
            }),
        ),
        (
            "foreign_domain",
            Box::new(|k| {
                k.claims.insert("email".into(), json!("bob@globex.com"));
            }),
        ),
    ];
    for (reason, knob) in cases {
        op.reset();
        op.set(|k| knob(k));
        let at = rp.begin().await;
        let before = rp.refusal(reason).await;
        let r = rp.callback(&at.url, Some(&at.flow_cookie)).await;
        rp.assert_refused(r, reason, before).await;
    }
    op.reset();
    // After all that, a clean login still works.
    let (cb, session) = rp.login().await;
    assert_eq!(cb.status(), 303);
    assert_alice_engineer(&rp.env, &session.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callback_works_once_and_a_used_code_is_refused() {
    let op = TestOp::start().await;
    let rp = rp(&op).await;
    let at = rp.begin().await;
    let first = rp.callback(&at.url, Some(&at.flow_cookie)).await;
    assert_eq!(first.status(), 303);
    // The same callback with the same (copied) flow cookie: the state is
    // burnt in the store.
    let before = rp.refusal("replay").await;
    let r = rp.callback(&at.url, Some(&at.flow_cookie)).await;
    rp.assert_refused(r, "replay", before).await;
    // A used code injected into a fresh flow: the provider refuses it.
    let fresh = rp.begin().await;
    let used_code = query(&at.url)["code"].clone();
    let before = rp.refusal("token_exchange").await;
    let r = rp
        .callback(
            &with_param(&fresh.url, "code", Some(&used_code)),
            Some(&fresh.flow_cookie),
        )
        .await;
    rp.assert_refused(r, "token_exchange", before).await;
    assert_eq!(
        op.recorded(|r| r.token.len()),
        2,
        "the replay never reached the provider"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flow_without_pkce_verifier_is_refused_before_the_token_request() {
    let op = TestOp::start().await;
    let rp = rp(&op).await;
    let at = rp.begin().await;
    // A flow cookie sealed with the server's key (as an old or tampered
    // flow would carry) but without the PKCE verifier.
    let relay = query(&at.url)["state"].clone();
    let cfg = rp.env.shared.config();
    let codec = portcullis::auth::FlowCodec::new(&cfg.session, &cfg.public_urls());
    let flow = portcullis::auth::FlowState {
        connection: CONNECTION.into(),
        return_to: "/".into(),
        state: json!({"nonce": "n-0123456789012345678901"}),
        created_at: portcullis::clock::now(),
        test: false,
        step_up: None,
    };
    let cookie = codec.seal(&relay, &flow).unwrap();
    let cookie = cookie.split(';').next().unwrap();
    let before = rp.refusal("pkce_missing").await;
    let r = rp.callback(&at.url, Some(cookie)).await;
    rp.assert_refused(r, "pkce_missing", before).await;
    assert_eq!(op.recorded(|r| r.token.len()), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_kid_refetches_the_keys_at_most_once_per_interval() {
    // The provider's intervals run on a clock this test moves: the limit
    // (jwks_min_refresh_seconds = 1) is checked exactly, without sleeping.
    let time = portcullis::clock::ManualClock::new();
    let op = TestOp::start().await;
    let rp = Rp::start_clocked(
        &op.issuer,
        "generic",
        &secret_basic(),
        portcullis::clock::Clock::manual(time.clone()),
    )
    .await;
    let interval = std::time::Duration::from_secs(1);
    let (cb, _) = rp.login().await;
    assert_eq!(cb.status(), 303);
    assert_eq!(op.recorded(|r| r.jwks_fetches), 1);
    // Rotation: a new kid is found by fetching the keys again.
    op.rotate("k2");
    time.advance(interval);
    let (cb, session) = rp.login().await;
    assert_eq!(cb.status(), 303, "{}", cb.text().await.unwrap());
    assert_alice_engineer(&rp.env, &session.unwrap()).await;
    assert_eq!(op.recorded(|r| r.jwks_fetches), 2);
    // Tokens with a kid nobody published: refused; the first refetches the
    // keys, the next ones within the interval don't ...
    op.set(|k| k.alg = Alg::RogueKey);
    time.advance(interval);
    for _ in 0..4 {
        let before = rp.refusal("signature").await;
        let at = rp.begin().await;
        let r = rp.callback(&at.url, Some(&at.flow_cookie)).await;
        rp.assert_refused(r, "signature", before).await;
    }
    assert_eq!(op.recorded(|r| r.jwks_fetches), 3);
    // ... and once it has passed, one may again (a limit, not a ban).
    time.advance(interval);
    for _ in 0..2 {
        let before = rp.refusal("signature").await;
        let at = rp.begin().await;
        let r = rp.callback(&at.url, Some(&at.flow_cookie)).await;
        rp.assert_refused(r, "signature", before).await;
    }
    assert_eq!(op.recorded(|r| r.jwks_fetches), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn userinfo_supplies_claims_the_id_token_lacks() {
    let op = TestOp::start().await;
    let rp = rp(&op).await;
    op.set(|k| {
        for c in ["email", "email_verified", "groups", "name"] {
            k.claims.insert(c.into(), json!(null));
        }
    });
    let (cb, session) = rp.login().await;
    assert_eq!(cb.status(), 303, "{}", cb.text().await.unwrap());
    assert_alice_engineer(&rp.env, &session.unwrap()).await;
    assert_eq!(op.recorded(|r| r.userinfo_calls), 1);
    // userinfo never overrides the ID token, and must be about the same sub
    op.set(|k| {
        k.userinfo.insert("sub".into(), json!("someone-else"));
    });
    let before = rp.refusal("userinfo").await;
    let at = rp.begin().await;
    let r = rp.callback(&at.url, Some(&at.flow_cookie)).await;
    rp.assert_refused(r, "userinfo", before).await;
    // With every claim in the ID token, userinfo is not asked.
    op.reset();
    let calls = op.recorded(|r| r.userinfo_calls);
    let (cb, _) = rp.login().await;
    assert_eq!(cb.status(), 303);
    assert_eq!(op.recorded(|r| r.userinfo_calls), calls);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_secret_post_sends_the_secret_in_the_body() {
    let op = TestOp::start().await;
    let rp = Rp::start(
        &op.issuer,
        "okta",
        &format!(
            "{}token_auth_method = \"client_secret_post\"\n",
            secret_basic()
        ),
    )
    .await;
    let (cb, _) = rp.login().await;
    assert_eq!(cb.status(), 303);
    let (form, auth) = op.recorded(|r| (r.token[0].clone(), r.token_auth[0].clone()));
    assert_eq!(auth, None);
    assert_eq!(form["client_secret"], CLIENT_SECRET);
}

#[tokio::test(flavor = "multi_thread")]
async fn google_hd_must_be_a_tenant_domain() {
    let op = TestOp::start().await;
    let rp = Rp::start(&op.issuer, "google", &secret_basic()).await;
    let mut u = alice();
    u.insert("hd".into(), json!("acme.com"));
    op.set_user(u.clone());
    let (cb, session) = rp.login().await;
    assert_eq!(cb.status(), 303);
    // Google sends no groups: the app sees none, and the role is JIT's.
    let (status, app) = echo(
        client()
            .get(rp.env.url("/dashboard"))
            .header("cookie", session.unwrap()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(seen(&app, "x-forwarded-email"), Some("alice@acme.com"));
    // Another Workspace's `hd`, or none at all (a consumer account).
    for (hd, reason) in [
        (json!("gmail.com"), "hd_mismatch"),
        (json!(null), "hd_missing"),
    ] {
        let mut u = alice();
        u.insert("hd".into(), hd);
        op.set_user(u);
        let before = rp.refusal(reason).await;
        let at = rp.begin().await;
        let r = rp.callback(&at.url, Some(&at.flow_cookie)).await;
        rp.assert_refused(r, reason, before).await;
    }
    // Google requires email_verified: absent is unverified.
    u.remove("email_verified");
    op.set_user(u);
    let before = rp.refusal("email_unverified").await;
    let at = rp.begin().await;
    let r = rp.callback(&at.url, Some(&at.flow_cookie)).await;
    rp.assert_refused(r, "email_unverified", before).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_binds_the_tenant_and_reports_groups_overage() {
    let tid = "9188040d-6c67-4c5b-b112-36a304b66dad";
    let op = TestOp::start_at(&format!("/{tid}/v2.0")).await;
    let rp = Rp::start(&op.issuer, "entra", &secret_basic()).await;
    // No email_verified (as Entra sends), the right tid: accepted.
    let mut u = alice();
    u.remove("email_verified");
    u.insert("tid".into(), json!(tid));
    op.set_user(u.clone());
    let (cb, session) = rp.login().await;
    assert_eq!(cb.status(), 303, "{}", cb.text().await.unwrap());
    assert_alice_engineer(&rp.env, &session.unwrap()).await;
    // Another Entra tenant's token for the same client: refused.
    let mut other = u.clone();
    other.insert("tid".into(), json!("00000000-0000-0000-0000-000000000000"));
    op.set_user(other);
    let before = rp.refusal("tenant_mismatch").await;
    let at = rp.begin().await;
    let r = rp.callback(&at.url, Some(&at.flow_cookie)).await;
    rp.assert_refused(r, "tenant_mismatch", before).await;
    // Groups overage without [graph] settings: refused (never signed in
    // with silently missing groups), reported in the metric. The Graph
    // link in the token is never followed.
    let mut over = u.clone();
    over.remove("groups");
    over.insert("_claim_names".into(), json!({"groups": "src1"}));
    over.insert(
        "_claim_sources".into(),
        json!({"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/x/getMemberObjects"}}),
    );
    op.set_user(over);
    let before = rp.refusal("groups_overage").await;
    let at = rp.begin().await;
    let r = rp.callback(&at.url, Some(&at.flow_cookie)).await;
    rp.assert_refused(r, "groups_overage", before).await;
    let m = rp.env.metrics().await;
    assert!(
        m.contains(r#"portcullis_groups_overage_total{connection="acme-oidc",tenant="acme"} 1"#),
        "{m}"
    );
    // An explicit false is refused even for Entra.
    let mut f = u.clone();
    f.insert("email_verified".into(), json!(false));
    op.set_user(f);
    let before = rp.refusal("email_unverified").await;
    let at = rp.begin().await;
    let r = rp.callback(&at.url, Some(&at.flow_cookie)).await;
    rp.assert_refused(r, "email_unverified", before).await;
}

async fn whoami_status(rp: &Rp, session: &str) -> u16 {
    client()
        .get(rp.env.url("/.portcullis/session"))
        .header("cookie", session)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn rp_initiated_logout_sends_the_browser_to_the_provider() {
    let op = TestOp::start().await;
    let rp = rp(&op).await;
    let (_, session) = rp.login().await;
    let session = session.unwrap();
    let r = logout(&rp.env, &session, "/bye").await;
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to.starts_with(&format!("{}/end_session?", op.issuer)),
        "{to}"
    );
    let q = query(&to);
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["post_logout_redirect_uri"], "http://127.0.0.1:1/bye");
    // id_token_hint is the ID token of this login (three parts, our aud).
    let hint = &q["id_token_hint"];
    let claims = portcullis_claims(hint);
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["sub"], "alice-sub");
    assert_eq!(whoami_status(&rp, &session).await, 401);
    // The provider's end_session endpoint accepts it.
    let done = client().get(&to).send().await.unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(op.recorded(|r| r.end_session.len()), 1);
    // Without a session, logout stays local.
    let r = client()
        .get(rp.env.url("/.portcullis/logout?return_to=/bye"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/bye");
}

fn portcullis_claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let p = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p)
            .unwrap(),
    )
    .unwrap()
}

async fn post_logout(rp: &Rp, connection: &str, body: String, ctype: &str) -> reqwest::Response {
    client()
        .post(rp.env.url(&format!(
            "/.portcullis/oidc/{connection}/backchannel-logout"
        )))
        .header("content-type", ctype)
        .body(body)
        .send()
        .await
        .unwrap()
}

fn form(token: &str) -> String {
    format!(
        "logout_token={}",
        form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    )
}

const FORM: &str = "application/x-www-form-urlencoded";

#[tokio::test(flavor = "multi_thread")]
async fn backchannel_logout_ends_the_named_sessions_and_refuses_forgeries() {
    let op = TestOp::start().await;
    let rp = rp(&op).await;
    let (cb_a, a) = rp.login().await;
    let (_, b) = rp.login().await;
    let (a, b) = (a.unwrap(), b.unwrap());
    drop(cb_a);
    // The sid of session A is the one of the first authorization code.
    let first_code = op.recorded(|r| r.token[0]["code"].clone());
    let sid_a = format!("sid-{first_code}");

    let rp = &rp;
    let refusals = |reason: &'static str| async move {
        counter(
            &rp.env.metrics().await,
            "portcullis_oidc_backchannel_logouts_total",
            reason,
        )
    };
    // Forgeries and malformed requests: 400, nothing revoked.
    let cases: Vec<(&str, String, &str)> = vec![
        ("audience", op.logout_token(Some("alice-sub"), None, |c| { c.insert("aud".into(), json!("other")); }), FORM),
        ("issuer", op.logout_token(Some("alice-sub"), None, |c| { c.insert("iss".into(), json!("http://evil")); }), FORM),
        ("malformed", op.logout_token(Some("alice-sub"), None, |c| { c.insert("nonce".into(), json!("n")); }), FORM),
        ("malformed", op.logout_token(Some("alice-sub"), None, |c| { c.remove("events"); }), FORM),
        ("malformed", op.logout_token(None, None, |_| {}), FORM),
        ("malformed", op.logout_token(Some("alice-sub"), None, |c| { c.remove("jti"); }), FORM),
        ("expired", op.logout_token(Some("alice-sub"), None, |c| { c.insert("iat".into(), json!(portcullis::clock::now() - 3600)); }), FORM),
        ("algorithm", op.sign_with(&json!({"iss": op.issuer, "aud": CLIENT_ID, "iat": portcullis::clock::now(), "jti": "j-none", "sub": "alice-sub",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}), &Alg::None), FORM),
        ("algorithm", op.sign_with(&json!({"iss": op.issuer, "aud": CLIENT_ID, "iat": portcullis::clock::now(), "jti": "j-hs", "sub": "alice-sub",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}), &Alg::Hs256WithPublicKey), FORM),
        ("signature", op.sign_with(&json!({"iss": op.issuer, "aud": CLIENT_ID, "iat": portcullis::clock::now(), "jti": "j-rogue", "sub": "alice-sub",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}), &Alg::RogueKey), FORM),
        ("malformed", op.logout_token(Some("alice-sub"), None, |_| {}), "application/json"),
        ("malformed", "not.a.jwt".into(), FORM),
    ];
    for (reason, token, ctype) in cases {
        let before = refusals(reason).await;
        let r = post_logout(rp, CONNECTION, form(&token), ctype).await;
        assert_eq!(r.status(), 400, "{reason}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.text().await.unwrap(), r#"{"error":"invalid_request"}"#);
        assert_eq!(refusals(reason).await, before + 1, "{reason}");
    }
    let before = refusals("too_large").await;
    let r = post_logout(rp, CONNECTION, form(&"a".repeat(20_000)), FORM).await;
    assert_eq!(r.status(), 400);
    assert_eq!(refusals("too_large").await, before + 1);
    let r = post_logout(rp, "no-such-connection", form("x.y.z"), FORM).await;
    assert_eq!(r.status(), 400);
    assert_eq!(whoami_status(rp, &a).await, 200);
    assert_eq!(whoami_status(rp, &b).await, 200);

    // A logout token naming session A's sid ends A only.
    let token = op.logout_token(Some("alice-sub"), Some(&sid_a), |_| {});
    let r = post_logout(rp, CONNECTION, form(&token), FORM).await;
    assert_eq!(r.status(), 200);
    assert_eq!(whoami_status(rp, &a).await, 401);
    assert_eq!(whoami_status(rp, &b).await, 200);
    // The same token again: its jti is spent.
    let before = refusals("replay").await;
    let r = post_logout(rp, CONNECTION, form(&token), FORM).await;
    assert_eq!(r.status(), 400);
    assert_eq!(refusals("replay").await, before + 1);
    // A token naming only the subject ends all of the user's sessions.
    let r = post_logout(
        rp,
        CONNECTION,
        form(&op.logout_token(Some("alice-sub"), None, |_| {})),
        FORM,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(whoami_status(rp, &b).await, 401);
    assert!(refusals("ok").await >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn clock_skew_is_tolerated_within_the_configured_window() {
    let op = TestOp::start().await;
    let rp = rp(&op).await;
    // Expired 60 s ago, issued 60 s in the future: within 120 s of skew.
    op.set(|k| k.exp_offset = -60);
    let (cb, _) = rp.login().await;
    assert_eq!(cb.status(), 303, "{}", cb.text().await.unwrap());
    op.set(|k| {
        k.exp_offset = 300;
        k.iat_offset = 60;
    });
    let (cb, _) = rp.login().await;
    assert_eq!(cb.status(), 303, "{}", cb.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_or_impostor_provider_stops_the_login_at_start() {
    // Nobody listens on port 1.
    let rp = Rp::start("http://127.0.0.1:1", "generic", &secret_basic()).await;
    let before = rp.refusal("discovery").await;
    let r = client()
        .get(
            rp.env
                .url(&format!("/.portcullis/sso/{CONNECTION}/start?return_to=/")),
        )
        .send()
        .await
        .unwrap();
    rp.assert_refused(r, "discovery", before).await;
    // A discovery document naming another issuer than configured (here:
    // the configured one has a trailing slash) is refused too.
    let op = TestOp::start().await;
    let rp = Rp::start(&format!("{}/", op.issuer), "generic", &secret_basic()).await;
    let before = rp.refusal("discovery").await;
    let r = client()
        .get(
            rp.env
                .url(&format!("/.portcullis/sso/{CONNECTION}/start?return_to=/")),
        )
        .send()
        .await
        .unwrap();
    rp.assert_refused(r, "discovery", before).await;
    assert_eq!(op.recorded(|r| r.authorize.len()), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn test_sign_in_link_runs_the_oidc_flow_and_creates_nothing() {
    let op = TestOp::start().await;
    let rp = rp(&op).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["connections", "test", "--config"])
        .arg(rp.env.config_path())
        .arg(CONNECTION)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let start = client().get(&link).send().await.unwrap();
    assert_eq!(start.status(), 302);
    let flow = cookie_pair(&start, "portcullis_flow_").unwrap();
    let at_op = client()
        .get(start.headers()["location"].to_str().unwrap())
        .send()
        .await
        .unwrap();
    let callback = at_op.headers()["location"].to_str().unwrap().to_owned();
    let cb = rp.callback(&callback, Some(&flow)).await;
    assert_eq!(cb.status(), 200);
    assert!(cookie_pair(&cb, "portcullis_session=").is_none());
    let html = cb.text().await.unwrap().replace("&#34;", "\"");
    assert!(
        html.contains("Allowed: this user would be signed in."),
        "{html}"
    );
    assert!(html.contains("\"email\": \"alice@acme.com\""), "{html}");
    assert!(html.contains("\"developer\""), "{html}");
}
