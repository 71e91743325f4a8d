//! Step-up over SAML with real signatures (`flow.rs`'s stand-in IdP): a
//! route demanding a context class sends a weaker session through a fresh
//! AuthnRequest with `RequestedAuthnContext Comparison="exact"` (and
//! `ForceAuthn` for `max_age`); the assertion's `AuthnContextClassRef` and
//! `AuthnInstant` are checked, a weaker or older one refused.

use chrono::{Duration, SecondsFormat, Utc};

use crate::support::env::*;
use crate::support::idp::cookie_pair;
use crate::support::refusal::login_failure;
use crate::support::saml::*;

const MFA: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor";
const PPT: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport";

fn extra() -> String {
    format!(
        r#"
[tenants.connections.acr_map]
mfa = "{MFA}"

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
acr = ["mfa"]
max_age = 300
"#
    )
}

/// The gate's redirect for `path`, then the step-up start: where the
/// browser is sent (the IdP, with the AuthnRequest), and its cookies (the
/// new flow's and `session`).
async fn step_up_redirect(env: &TestEnv, path: &str, session: &str) -> (String, String) {
    let r = client()
        .get(env.url(path))
        .header("accept", "text/html")
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{path}");
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/.portcullis/step-up?"), "{to}");
    let r = client()
        .get(env.url(&to))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let flow = cookie_pair(&r, "portcullis_flow_").expect("flow cookie");
    (location, format!("{flow}; {session}"))
}

/// [`step_up_redirect`] to the stand-in IdP: the decoded AuthnRequest,
/// bound to a flow cookie that also carries `session`.
async fn step_up_start(s: &SamlSso, path: &str, session: &str) -> Started {
    let (location, flow_cookie) = step_up_redirect(&s.env, path, session).await;
    assert!(
        location.starts_with(&format!("{IDP_SSO}?SAMLRequest=")),
        "{location}"
    );
    let (request_xml, relay) = parse_redirect(&location);
    Started {
        request_id: attr(&request_xml, "ID"),
        relay,
        flow_cookie,
        request_xml,
    }
}

/// A signed response to `started` with this class and instant.
fn answer(s: &SamlSso, started: &Started, class: &str, instant: chrono::DateTime<Utc>) -> String {
    let resp = s.resp(started);
    let xml = resp.template().replace(PPT, class);
    let at = instant.to_rfc3339_opts(SecondsFormat::Secs, true);
    let start = xml.find("AuthnInstant=\"").unwrap() + "AuthnInstant=\"".len();
    let end = start + xml[start..].find('"').unwrap();
    let xml = format!("{}{at}{}", &xml[..start], &xml[end..]);
    b64(&resp.sign_template(&xml, &s.key, s.dir.path()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saml_step_up_asks_for_the_class_and_checks_the_assertion() {
    let s = SamlSso::start(&extra()).await;
    // a plain login: no RequestedAuthnContext, no ForceAuthn
    let started = s.begin().await;
    assert!(!started.request_xml.contains("RequestedAuthnContext"));
    assert!(!started.request_xml.contains("ForceAuthn"));
    let r = s
        .post(&started, &answer(&s, &started, PPT, Utc::now()))
        .await;
    assert_eq!(r.status(), 303);
    let s1 = cookie_pair(&r, "portcullis_session=").unwrap();
    let (status, app) = echo(client().get(s.env.url("/dashboard")).header("cookie", &s1)).await;
    assert_eq!(status, 200);
    // not mapped: the IdP's own class
    assert_eq!(seen(&app, "x-forwarded-acr"), Some(PPT));

    // an API call to the step-up route: RFC 9470
    let r = client()
        .get(s.env.url("/secure"))
        .header("cookie", &s1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"insufficient_user_authentication\", error_description=\"A different authentication level is required\", acr_values=\"mfa\"")
    );

    // the step-up request names the mapped class, exactly
    let started = step_up_start(&s, "/secure", &s1).await;
    assert!(
        started.request_xml.contains(&format!(
            "<samlp:RequestedAuthnContext Comparison=\"exact\"><saml:AuthnContextClassRef>{MFA}</saml:AuthnContextClassRef></samlp:RequestedAuthnContext>"
        )),
        "{}",
        started.request_xml
    );
    assert!(!started.request_xml.contains("ForceAuthn"));
    // the IdP answers with the weaker class: refused, the old session kept
    let before = s.env.refusal(&login_failure("step_up_acr")).await;
    let r = s
        .post(&started, &answer(&s, &started, PPT, Utc::now()))
        .await;
    before.assert(r, 403).await;
    assert_eq!(
        echo(client().get(s.env.url("/dashboard")).header("cookie", &s1))
            .await
            .0,
        200
    );
    // ...and with the asked class: a new session, the old one ended
    // (authenticated ten minutes ago: fine here, too old for /fresh)
    let started = step_up_start(&s, "/secure", &s1).await;
    let ten_minutes_ago = Utc::now() - Duration::seconds(600);
    let r = s
        .post(&started, &answer(&s, &started, MFA, ten_minutes_ago))
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/secure");
    let s2 = cookie_pair(&r, "portcullis_session=").unwrap();
    let (status, app) = echo(client().get(s.env.url("/secure")).header("cookie", &s2)).await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(seen(&app, "x-forwarded-acr"), Some("mfa"));
    assert_eq!(
        echo(client().get(s.env.url("/dashboard")).header("cookie", &s1))
            .await
            .0,
        401
    );

    // max_age: ForceAuthn, and an AuthnInstant older than max_age refused
    let started = step_up_start(&s, "/fresh", &s2).await;
    assert!(
        started.request_xml.contains(" ForceAuthn=\"true\""),
        "{}",
        started.request_xml
    );
    let before = s.env.refusal(&login_failure("step_up_auth_time")).await;
    let old = Utc::now() - Duration::seconds(3600);
    let r = s.post(&started, &answer(&s, &started, MFA, old)).await;
    before.assert(r, 403).await;
    // a fresh one opens the route
    let started = step_up_start(&s, "/fresh", &s2).await;
    let r = s
        .post(&started, &answer(&s, &started, MFA, Utc::now()))
        .await;
    assert_eq!(r.status(), 303);
    let s3 = cookie_pair(&r, "portcullis_session=").unwrap();
    let (status, app) = echo(client().get(s.env.url("/fresh")).header("cookie", &s3)).await;
    assert_eq!(status, 200, "{app}");
    let t: i64 = seen(&app, "x-forwarded-auth-time")
        .unwrap()
        .parse()
        .unwrap();
    assert!(portcullis::clock::now() - t < 60);
}

/// `/step-up` reads only what it understands: without a session it is
/// the login page's job; malformed demands are a 400 and start nothing; a
/// session no SSO connection made can't step up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_up_endpoint_refuses_what_it_cannot_read() {
    let s = SamlSso::start(&extra()).await;
    let get = |q: String, cookie: Option<String>| {
        let mut r = client().get(s.env.url(&format!("/.portcullis/step-up{q}")));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };
    // no session: the login page, same return target
    let r = get("?return_to=%2Fsecure&acr_values=mfa".into(), None)
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "/.portcullis/login?return_to=%2Fsecure"
    );

    let started = s.begin().await;
    let r = s
        .post(&started, &answer(&s, &started, PPT, Utc::now()))
        .await;
    let session = cookie_pair(&r, "portcullis_session=").unwrap();
    let too_many = vec!["a"; 17].join("%20");
    let long = "x".repeat(257);
    for q in [
        String::new(),
        "?return_to=%2F".into(),
        "?acr_values=".into(),
        "?acr_values=%20".into(),
        "?acr_values=mfa%20%20phr".into(),
        "?acr_values=%22mfa%22".into(),
        "?acr_values=mf%5Ca".into(),
        "?acr_values=caf%C3%A9".into(),
        format!("?acr_values={too_many}"),
        format!("?acr_values={long}"),
        "?max_age=0".into(),
        "?max_age=-5".into(),
        "?max_age=%2B5".into(),
        "?max_age=5m".into(),
        "?max_age=99999999999999999999999".into(),
        "?max_age=31708801".into(),
        "?acr_values=mfa&max_age=abc".into(),
    ] {
        let r = get(q.clone(), Some(session.clone())).await.unwrap();
        assert_eq!(r.status(), 400, "{q}");
        assert!(cookie_pair(&r, "portcullis_flow_").is_none(), "{q}");
    }
    // a well-formed one starts a flow
    let r = get("?acr_values=mfa&max_age=60".into(), Some(session.clone()))
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(cookie_pair(&r, "portcullis_flow_").is_some());

    // a session no configured connection of its tenant made: refused,
    // counted
    for connection in [None, Some("gone".to_owned())] {
        let minted = s
            .env
            .mint(&portcullis::identity::Principal {
                connection,
                ..principal("alice@acme.com", &["Engineering"])
            })
            .await;
        let before = s.env.refusal(&login_failure("step_up_unsupported")).await;
        let r = get("?acr_values=mfa".into(), Some(minted)).await.unwrap();
        before.assert(r, 403).await;
    }
}

/// pysaml2 (a real IdP library) is asked for the class and the fresh
/// authentication, and its answer is what is checked: `RequestedAuthnContext`
/// and `ForceAuthn` as pysaml2 parses them, its `AuthnContextClassRef` and
/// `AuthnInstant` back at the SP.
mod pysaml2 {
    use super::*;
    use crate::saml::interop::{Interop, OPEN, interop_with};

    /// The gate's redirect for `path`, the step-up start, and pysaml2's
    /// pick-a-user page for it: the browser's cookies (flow + session) and
    /// the page's form fields.
    async fn step_up_page(
        i: &Interop,
        path: &str,
        session: &str,
    ) -> (String, Vec<(String, String)>) {
        let (location, cookies) = step_up_redirect(&i.s.env, path, session).await;
        assert!(
            location.starts_with(&i.idp.url("/sso/redirect?SAMLRequest=")),
            "{location}"
        );
        (cookies, i.login_page_at(&location).await)
    }

    /// Alice signs in at pysaml2's page (`more`: its misbehaviour knobs);
    /// the ACS's answer.
    async fn sign_in(
        i: &Interop,
        (cookies, fields): (String, Vec<(String, String)>),
        more: &[(&str, &str)],
    ) -> reqwest::Response {
        i.submit_login(OPEN, &cookies, fields, "alice", more).await
    }

    /// The last log entry of `kind`.
    async fn last(i: &Interop, kind: &str) -> serde_json::Value {
        i.idp
            .log()
            .await
            .into_iter()
            .rev()
            .find(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("pysaml2 logged no {kind}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pysaml2_step_up_gets_the_class_and_a_fresh_login() {
        let i = interop_with(&extra(), None, &[]).await;
        // a plain login: nothing requested, pysaml2 answers with a password
        let r = i.sp_initiated(OPEN, "alice", false).await;
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        let s1 = cookie_pair(&r, "portcullis_session=").unwrap();
        let asked = last(&i, "authn_request").await;
        assert_eq!(asked["requested_classes"], serde_json::json!([]));
        assert_eq!(asked["force_authn"], false);
        let (status, app) = echo(
            client()
                .get(i.s.env.url("/dashboard"))
                .header("cookie", &s1),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(seen(&app, "x-forwarded-acr"), Some(PPT));

        // /secure: pysaml2 parses an exact request for the mapped class...
        let page = step_up_page(&i, "/secure", &s1).await;
        let asked = last(&i, "authn_request").await;
        assert_eq!(
            asked["requested_classes"],
            serde_json::json!([MFA]),
            "{asked}"
        );
        assert_eq!(asked["comparison"], "exact");
        assert_eq!(asked["force_authn"], false);
        // ...and an IdP that answers with a password anyway is refused
        let before = i.s.env.refusal(&login_failure("step_up_acr")).await;
        let r = sign_in(&i, page, &[("class_ref", PPT)]).await;
        before.assert(r, 403).await;
        assert_eq!(last(&i, "sp_initiated").await["class_ref"], PPT);
        // answering as asked: a new session that opens the route
        // (authenticated ten minutes ago: fine here, too old for /fresh)
        let page = step_up_page(&i, "/secure", &s1).await;
        let r = sign_in(&i, page, &[("auth_age", "600")]).await;
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        assert_eq!(r.headers()["location"], "/secure");
        assert_eq!(last(&i, "sp_initiated").await["class_ref"], MFA);
        let s2 = cookie_pair(&r, "portcullis_session=").unwrap();
        let (status, app) = echo(client().get(i.s.env.url("/secure")).header("cookie", &s2)).await;
        assert_eq!(status, 200, "{app}");
        assert_eq!(seen(&app, "x-forwarded-acr"), Some("mfa"));

        // /fresh (max_age 300): ForceAuthn reaches pysaml2; an
        // AuthnInstant an hour old is refused, a fresh one accepted
        let page = step_up_page(&i, "/fresh", &s2).await;
        let asked = last(&i, "authn_request").await;
        assert_eq!(asked["force_authn"], true, "{asked}");
        assert_eq!(asked["requested_classes"], serde_json::json!([MFA]));
        let before = i.s.env.refusal(&login_failure("step_up_auth_time")).await;
        let r = sign_in(&i, page, &[("auth_age", "3600")]).await;
        before.assert(r, 403).await;
        let page = step_up_page(&i, "/fresh", &s2).await;
        let r = sign_in(&i, page, &[]).await;
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        let s3 = cookie_pair(&r, "portcullis_session=").unwrap();
        let (status, app) = echo(client().get(i.s.env.url("/fresh")).header("cookie", &s3)).await;
        assert_eq!(status, 200, "{app}");
        let t: i64 = seen(&app, "x-forwarded-auth-time")
            .unwrap()
            .parse()
            .unwrap();
        assert!((portcullis::clock::now() - t).abs() < 60, "{t}");
    }
}
