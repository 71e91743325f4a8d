//! Logout and cookies: a GET of `/.portcullis/logout`
//! only asks; a POST ends the session only with that session's CSRF token;
//! with `secure = true` and no cookie domain the session and flow cookies
//! are `__Host-` cookies (Secure, Path=/, no Domain) that never reach the
//! app; and `/sso/{id}/start` keeps at most four flow cookies per browser.

use std::sync::{Arc, Mutex};

use portcullis::auth::Factories;
use portcullis::identity::Principal;
use portcullis::session::CookieCodec;

use crate::support::dns::DnsServer;
use crate::support::env::*;
use crate::support::idp::{Assert, Slot, TestFactory, tenants_toml};
use crate::support::oidc_op::{CLIENT_ID, CLIENT_SECRET, TestOp};
use crate::support::oidc_rp::Rp;

fn principal(email: &str) -> Principal {
    Principal {
        user_id: email.into(),
        email: email.into(),
        name: None,
        groups: vec![],
        roles: vec![],
        tenant: None,
        connection: None,
        ..Principal::default()
    }
}

/// The store key of the session behind a `Cookie` pair.
fn id_hash(env: &TestEnv, cookie: &str) -> String {
    let opened = CookieCodec::new(&env.shared.config().session)
        .unwrap()
        .open([cookie.as_bytes()].into_iter(), &mut None)
        .unwrap()
        .expect("cookie opens");
    portcullis::secret::sha256_hex(&opened.token.id)
}

async fn alive(env: &TestEnv, cookie: &str) -> bool {
    let row = env
        .shared
        .store
        .sessions()
        .get(&id_hash(env, cookie))
        .await
        .unwrap();
    let status = client()
        .get(env.url("/.portcullis/session"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(row.is_some(), status == 200, "store and cache disagree");
    row.is_some()
}

async fn refused(env: &TestEnv, reason: &str) -> u64 {
    let m = env.metrics().await;
    let needle = format!("portcullis_logout_refused_total{{reason=\"{reason}\"}} ");
    m.lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

/// A GET (a link, an `<img>`, a prefetch) shows a page with a form and
/// ends nothing: no cookie is touched and the session goes on.
#[tokio::test]
async fn a_get_shows_a_confirmation_page_and_ends_nothing() {
    let env = TestEnv::start().await;
    let cookie = env.mint(&principal("gail@example.com")).await;
    let r = client()
        .get(env.url("/.portcullis/logout?return_to=%2Fafter"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-cookie").is_none());
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("form-action 'self';"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(
        html.contains(r#"<form method="post" action="/.portcullis/logout">"#)
            && html.contains("gail@example.com")
            && html.contains(">Sign out</button>"),
        "{html}"
    );
    assert_eq!(hidden_field(&html, "return_to").as_deref(), Some("/after"));
    assert!(hidden_field(&html, "csrf").is_some_and(|t| t.len() >= 40));
    assert!(alive(&env, &cookie).await, "a GET ended the session");
    // Without a session there is nothing to confirm: on to return_to.
    let r = client()
        .get(env.url("/.portcullis/logout?return_to=%2Fafter"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/after");
    assert!(r.headers().get("set-cookie").is_none());
}

/// A POST without the token, with a forged one, or with another session's
/// token ends nothing (403, counted by reason); this session's token ends
/// this session only.
#[tokio::test]
async fn a_post_ends_the_session_only_with_its_own_csrf_token() {
    let env = TestEnv::start().await;
    let alice = env.mint(&principal("alice@example.com")).await;
    let bob = env.mint(&principal("bob@example.com")).await;
    let token_of = |cookie: String| {
        let env = &env;
        async move {
            let html = client()
                .get(env.url("/.portcullis/logout"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            hidden_field(&html, "csrf").unwrap()
        }
    };
    let bobs_token = token_of(bob.clone()).await;
    let alices_token = token_of(alice.clone()).await;
    let post = |form: Vec<(&'static str, String)>| {
        client()
            .post(env.url("/.portcullis/logout"))
            .header("cookie", &alice)
            .form(&form)
            .send()
    };
    let cases: Vec<(&str, Vec<(&'static str, String)>)> = vec![
        ("csrf_missing", vec![("return_to", "/".into())]),
        ("csrf_missing", vec![("csrf", String::new())]),
        ("csrf_invalid", vec![("csrf", bobs_token.clone())]),
        ("csrf_invalid", vec![("csrf", "A".repeat(43))]),
        ("csrf_invalid", vec![("csrf", "%%%not-base64".into())]),
        (
            "csrf_invalid",
            vec![("csrf", alices_token[..alices_token.len() - 1].to_owned())],
        ),
    ];
    for (reason, form) in cases {
        let before = refused(&env, reason).await;
        let r = post(form.clone()).await.unwrap();
        assert_eq!(r.status(), 403, "{form:?}");
        assert!(r.headers().get("set-cookie").is_none(), "{form:?}");
        let body = r.text().await.unwrap();
        assert!(body.contains("still signed in"), "{body}");
        assert!(alive(&env, &alice).await, "{form:?} ended the session");
        assert_eq!(refused(&env, reason).await, before + 1, "{reason}");
    }
    // Her own token: ended, cookie cleared, sent to return_to.
    let r = post(vec![("csrf", alices_token), ("return_to", "/bye".into())])
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/bye");
    let clear = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        clear.starts_with("portcullis_session=;") && clear.contains("Max-Age=0"),
        "{clear}"
    );
    assert!(!alive(&env, &alice).await);
    assert!(alive(&env, &bob).await, "another session was ended");
    // A POST without any session changes nothing either.
    let r = client()
        .post(env.url("/.portcullis/logout"))
        .form(&[("return_to", "/x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/x");
    assert!(r.headers().get("set-cookie").is_none());
}

/// RP-initiated logout still reaches the provider, and the confirmation
/// page's CSP lets its form redirect there (browsers apply `form-action`
/// to a form's redirects) and nowhere else.
#[tokio::test(flavor = "multi_thread")]
async fn the_confirmation_page_allows_exactly_the_providers_logout_origin() {
    let op = TestOp::start().await;
    let rp = Rp::start(
        &op.issuer,
        "generic",
        &format!("client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n"),
    )
    .await;
    let (_, session) = rp.login().await;
    let session = session.unwrap();
    let r = client()
        .get(rp.env.url("/.portcullis/logout"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let origin = op.issuer.trim_end_matches('/');
    assert!(
        csp.contains(&format!("form-action 'self' {origin};")),
        "{csp}"
    );
    let r = logout(&rp.env, &session, "/").await;
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap();
    assert!(to.starts_with(&format!("{origin}/end_session?")), "{to}");
}

/// An `Sso`-like environment (stand-in IdP, verified domains) with more
/// `[session]` keys.
struct Env {
    env: TestEnv,
    _next: Slot,
    app_saw: Arc<Mutex<Vec<String>>>,
    _dns: DnsServer,
    _app: tokio::task::JoinHandle<()>,
}

async fn sso_env(session_extra: &str) -> Env {
    let dns = DnsServer::start().await;
    let next: Slot = Arc::new(Mutex::new(None));
    let (upstream, app, app_saw) = start_counting_upstream().await;
    let env = TestEnv::with(Options {
        upstream: Some(upstream),
        extra: tenants_toml(dns.addr(), true),
        session_extra: session_extra.into(),
        factories: Factories {
            oidc: Some(Arc::new(TestFactory(next.clone(), None))),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let cfg = env.shared.config();
    let domains = portcullis::domains::Domains::new(env.shared.store.clone(), &cfg.dns).unwrap();
    let now = portcullis::clock::now();
    let entry = domains.add("acme", "acme.com", now).await.unwrap();
    let (name, value) = domains.txt_record(&entry);
    dns.set_txt(&name, &value);
    domains.verify("acme.com", now).await.unwrap();
    *next.lock().unwrap() = Some(Assert {
        email: "alice@acme.com".into(),
        email_verified: Some(true),
        groups: vec![],
    });
    Env {
        env,
        _next: next,
        app_saw,
        _dns: dns,
        _app: app,
    }
}

/// A browser's cookie jar, just enough for these tests: `Set-Cookie`
/// with `Max-Age=0` deletes, anything else sets; insertion order is kept
/// (browsers send older cookies first).
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn take(&mut self, r: &reqwest::Response) -> Vec<String> {
        let mut raw = Vec::new();
        for v in r.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap().to_owned();
            let pair = v.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.0.retain(|(n, _)| n != name);
            if !v.contains("Max-Age=0") {
                self.0.push((name.to_owned(), value.to_owned()));
            }
            raw.push(v);
        }
        raw
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn flows(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n.contains("portcullis_flow_"))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// `secure = true`, no domain: both cookies are `__Host-` cookies with the
/// attributes the prefix demands, the login works with them, and the app
/// receives neither (a `__Host-` flow cookie is Path=/ and so rides along
/// with app requests).
#[tokio::test(flavor = "multi_thread")]
async fn secure_host_only_cookies_carry_the_host_prefix_and_never_reach_the_app() {
    let s = sso_env("secure = true").await;
    let mut jar = Jar::default();
    let start = client()
        .get(
            s.env
                .url("/.portcullis/sso/acme-idp/start?return_to=%2Fdashboard"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 302);
    let set = jar.take(&start);
    let flow = set
        .iter()
        .find(|c| c.starts_with("__Host-portcullis_flow_"))
        .unwrap_or_else(|| panic!("no __Host- flow cookie: {set:?}"));
    for attr in ["; Path=/;", "; Secure", "; HttpOnly"] {
        assert!(format!("{flow};").contains(attr), "{attr}: {flow}");
    }
    assert!(!flow.contains("Domain"), "{flow}");

    // An app request while the flow is in progress: the flow cookie is
    // sent (Path=/), and stripped before the app.
    jar.0.push(("app_pref".into(), "dark".into()));
    let (status, seen) = echo(
        client()
            .get(s.env.url("/public/x"))
            .header("cookie", jar.header()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(seen["headers"]["cookie"][0], "app_pref=dark", "{seen}");

    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let cb = client()
        .get(&location)
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(cb.status(), 303, "{:?}", cb.text().await);
    let set = jar.take(&cb);
    let session = set
        .iter()
        .find(|c| c.starts_with("__Host-portcullis_session="))
        .unwrap_or_else(|| panic!("no __Host- session cookie: {set:?}"));
    assert!(
        session.contains("; Path=/") && session.contains("; Secure") && !session.contains("Domain"),
        "{session}"
    );
    assert!(
        set.iter()
            .any(|c| c.starts_with("__Host-portcullis_flow_") && c.contains("Max-Age=0")),
        "the flow cookie is cleared under its prefixed name: {set:?}"
    );
    assert!(jar.flows().is_empty());
    // The prefixed session cookie signs the app in and is stripped too.
    let (status, seen) = echo(
        client()
            .get(s.env.url("/dashboard"))
            .header("cookie", jar.header()),
    )
    .await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["headers"]["x-forwarded-email"][0], "alice@acme.com");
    assert_eq!(seen["headers"]["cookie"][0], "app_pref=dark", "{seen}");
    // The unprefixed name is not ours any more: it opens nothing.
    let value = jar
        .0
        .iter()
        .find(|(n, _)| n == "__Host-portcullis_session")
        .unwrap()
        .1
        .clone();
    let r = client()
        .get(s.env.url("/dashboard"))
        .header("cookie", format!("portcullis_session={value}"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// With a cookie domain the prefix can't be used (browsers would drop the
/// cookie): the configured names, unprefixed.
#[tokio::test(flavor = "multi_thread")]
async fn a_cookie_domain_keeps_the_configured_names() {
    let s = sso_env("secure = true\ndomain = \"127.0.0.1\"").await;
    let start = client()
        .get(s.env.url("/.portcullis/sso/acme-idp/start"))
        .send()
        .await
        .unwrap();
    let mut jar = Jar::default();
    let set = jar.take(&start);
    assert!(
        set.iter()
            .any(|c| c.starts_with("portcullis_flow_") && c.contains("Path=/.portcullis/")),
        "{set:?}"
    );
}

/// Each start beyond the fourth expires the browser's oldest flow cookie
/// with `Max-Age=0`, so the jar never holds more than four; the newest
/// flows still complete, the evicted one can't.
#[tokio::test(flavor = "multi_thread")]
async fn start_keeps_at_most_four_flow_cookies_per_browser() {
    let s = sso_env("").await;
    let mut jar = Jar::default();
    let mut started: Vec<(String, String)> = Vec::new(); // (cookie name, callback URL)
    for i in 0..7 {
        let r = client()
            .get(
                s.env
                    .url("/.portcullis/sso/acme-idp/start?return_to=%2Fdashboard"),
            )
            .header("cookie", jar.header())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        let set = jar.take(&r);
        let new: Vec<&String> = set.iter().filter(|c| !c.contains("Max-Age=0")).collect();
        let expired: Vec<&String> = set.iter().filter(|c| c.contains("Max-Age=0")).collect();
        assert_eq!(new.len(), 1, "{set:?}");
        let name = new[0].split('=').next().unwrap().to_owned();
        // Up to four flows nothing is expired; then exactly the oldest.
        if i < 4 {
            assert!(expired.is_empty(), "start {i}: {set:?}");
        } else {
            let oldest = &started[i - 4].0;
            assert_eq!(expired.len(), 1, "start {i}: {set:?}");
            assert!(
                expired[0].starts_with(&format!("{oldest}=;")),
                "start {i}: {set:?}"
            );
            assert!(expired[0].contains("Path=/.portcullis/"), "{}", expired[0]);
        }
        started.push((name, location));
        assert!(jar.flows().len() <= 4, "start {i}: {:?}", jar.flows());
    }
    let kept: Vec<String> = started[3..].iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(jar.flows(), kept);
    // An evicted flow is gone for good; the newest still signs in.
    let r = client()
        .get(&started[0].1)
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client()
        .get(&started[6].1)
        .header("cookie", jar.header())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(s.app_saw.lock().unwrap().is_empty());
}
