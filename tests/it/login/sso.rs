//! Discovery, the generic SSO flow and login policy, driven through a test
//! connection that implements the connection boundary (a stand-in IdP that
//! asserts whatever the test tells it to), with domains verified against a
//! real DNS server on loopback.

use crate::support::env::*;
use crate::support::idp::*;
use portcullis::store::SessionSelector;

#[tokio::test]
async fn discovery_routes_emails_to_their_tenants_idp() {
    let s = Sso::start(true).await;
    let c = client();
    let post = |email: &str| {
        c.post(s.env.url("/.portcullis/login"))
            .form(&[("email", email), ("return_to", "/app?x=1")])
            .send()
    };
    // one connection: on to it, with return_to and login_hint, by a page
    // that moves on by itself (a redirect would stay part of the form
    // submission, which the page's `form-action 'self'` confines)
    let r = post("Alice@Acme.com").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("location").is_none());
    let html = r.text().await.unwrap();
    assert_eq!(
        continue_href(&html),
        "/.portcullis/sso/acme%2Didp/start?return_to=%2Fapp%3Fx%3D1&login_hint=Alice%40Acme%2Ecom"
    );
    assert!(html.contains(">Continue to Acme IdP</a>"), "{html}");
    // several: a chooser
    let html = post("bob@globex.com").await.unwrap().text().await.unwrap();
    assert!(
        html.contains("Continue with Okta") && html.contains("Continue with Entra ID"),
        "{html}"
    );
    assert!(
        html.contains("/.portcullis/sso/globex%2Dokta/start"),
        "{html}"
    );
    // unknown, unverified (pending) and public domains: a clear message and
    // the app's own login
    for (email, domain) in [
        ("carol@example.org", "example.org"),
        ("dan@pending.acme.com", "pending.acme.com"),
        ("eve@gmail.com", "gmail.com"),
    ] {
        let html = post(email)
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .replace("&#39;", "'");
        assert!(
            html.contains(&format!("Single sign-on isn't set up for {domain}.")),
            "{email}: {html}"
        );
        assert!(html.contains(r#"href="/login""#), "{html}");
    }
    let html = post("not-an-email").await.unwrap().text().await.unwrap();
    assert!(html.contains("Enter your work email address."), "{html}");
    // the bookmark link from the IdP portal
    let r = c
        .get(
            s.env
                .url("/.portcullis/login?use_sso=true&email=alice%40acme.com"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // ?email= only prefills
    let html = c
        .get(s.env.url("/.portcullis/login?email=alice%40acme.com"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"value="alice@acme.com""#), "{html}");
}

#[tokio::test]
async fn a_login_creates_a_session_with_mapped_roles() {
    let s = Sso::start(true).await;
    s.assert_next("alice@acme.com", Some(true), &["Engineering", "Everyone"]);
    let (cb, session) = s.login("acme-idp", "%2Fdashboard").await;
    assert_eq!(cb.status(), 303);
    assert_eq!(cb.headers()["location"], "/dashboard");
    // the flow cookie is single use: cleared on completion
    assert!(cookie_pair(&cb, "portcullis_flow_").is_some_and(|c| c.ends_with('=')));
    let session = session.expect("session cookie");
    let app = assert_alice_engineer(&s.env, &session).await;
    // JIT created the user, once
    let users = s.env.shared.store.users().list(Some("acme")).await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].source, "jit");
    assert_eq!(seen(&app, "x-forwarded-user"), Some(users[0].id.as_str()));
    let (_, again) = s.login("acme-idp", "%2F").await;
    assert!(again.is_some());
    assert_eq!(
        s.env
            .shared
            .store
            .users()
            .list(Some("acme"))
            .await
            .unwrap()
            .len(),
        1
    );
    let m = s.env.metrics().await;
    assert!(
        m.contains("portcullis_logins_total{connection=\"acme-idp\",tenant=\"acme\"} 2"),
        "{m}"
    );
}

#[tokio::test]
async fn an_idp_logout_ends_exactly_the_sessions_it_names() {
    let s = Sso::start(true).await;
    s.assert_next("alice@acme.com", Some(true), &["Engineering", "Everyone"]);
    let (_, first) = s.login("acme-idp", "%2F").await;
    let (_, second) = s.login("acme-idp", "%2F").await;
    let (first, second) = (first.expect("session"), second.expect("session"));
    // Both sessions are live, hence cached by this replica.
    assert_alice_engineer(&s.env, &first).await;
    assert_alice_engineer(&s.env, &second).await;

    let store = &s.env.shared.store;
    let dashboard = s.env.url("/dashboard");
    let record = |cookie: &str| {
        let request = client().get(&dashboard).header("cookie", cookie);
        async move { echo(request).await.0 }
    };
    let sessions = s.env.shared.sessions.clone();
    let n = sessions
        .revoke(&SessionSelector::Idp {
            connection: "other-idp".into(),
            subject: Some("sub-alice@acme.com".into()),
            session: None,
        })
        .await
        .unwrap();
    assert_eq!(n, 0, "another connection's logout touches nothing");
    assert_eq!(record(&first).await, 200);

    // What the login stored, read back through the store by the cookie.
    let binding = |cookie: &str| {
        let token = s
            .env
            .shared
            .generation()
            .codec
            .open(std::iter::once(cookie.as_bytes()), &mut None)
            .unwrap()
            .unwrap()
            .token;
        let id_hash = portcullis::secret::sha256_hex(&token.id);
        async move {
            store
                .sessions()
                .get(&id_hash)
                .await
                .unwrap()
                .unwrap()
                .idp
                .unwrap()
        }
    };
    let b1 = binding(&first).await;
    let b2 = binding(&second).await;
    assert_eq!(b1.subject, "sub-alice@acme.com");
    assert_eq!(b1.logout_hint.as_deref(), Some("stand-in hint"));
    assert!(
        b1.session
            .as_deref()
            .is_some_and(|s| s.starts_with("idp-sid-"))
    );
    assert_ne!(b1.session, b2.session);
    let n = sessions
        .revoke(&SessionSelector::Idp {
            connection: "acme-idp".into(),
            subject: None,
            session: b1.session.clone(),
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
    // Exactly that session ends, at once, despite this replica's cache.
    assert_ne!(record(&first).await, 200);
    assert_eq!(record(&second).await, 200);
    // By subject: the rest of alice's sessions at this IdP.
    let n = sessions
        .revoke(&SessionSelector::Idp {
            connection: "acme-idp".into(),
            subject: Some("sub-alice@acme.com".into()),
            session: None,
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_ne!(record(&first).await, 200);
    assert_ne!(record(&second).await, 200);
}

#[tokio::test]
async fn policy_refusals_are_generic_to_the_browser_and_precise_in_metrics() {
    let s = Sso::start(true).await;
    let cases: &[(&str, Option<bool>, &str)] = &[
        // an IdP may only assert its own tenant's verified domains
        ("bob@globex.com", Some(true), "foreign_domain"),
        ("dan@pending.acme.com", Some(true), "domain_not_verified"),
        ("mallory@example.org", None, "domain_not_verified"),
        ("alice@acme.com", Some(false), "email_unverified"),
        ("not an email", None, "invalid_email"),
    ];
    for (email, verified, reason) in cases {
        s.assert_next(email, *verified, &[]);
        // No session (cookie or row), the app untouched, counted once
        // under this connection and tenant.
        let refusal = s
            .env
            .refusal(&format!(
                "portcullis_login_failures_total{{connection=\"acme-idp\",reason=\"{reason}\",tenant=\"acme\"}}"
            ))
            .await
            .app(&s.app_saw);
        let (cb, _) = s.login("acme-idp", "%2F").await;
        let html = refusal.assert(cb, 403).await.replace("&#39;", "'");
        assert!(html.contains("We couldn't sign you in"), "{email}: {html}");
        assert!(
            !html.contains(reason),
            "reason leaked to the browser: {html}"
        );
    }
}

/// Each refusal through the shared check: 403, no session (cookie or
/// row), the app untouched, its reason counted once for its tenant.
#[tokio::test]
async fn flow_state_is_bound_to_the_browser() {
    let s = Sso::start(true).await;
    s.assert_next("alice@acme.com", Some(true), &[]);
    let c = client();
    let failure = |reason: &str, tenant: &str| {
        format!("portcullis_login_failures_total{{reason=\"{reason}\",tenant=\"{tenant}\"}}")
    };
    let start = c
        .get(s.env.url("/.portcullis/sso/acme-idp/start"))
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    // the callback replayed in another browser (no flow cookie)
    let refusal = s
        .env
        .refusal(&failure("state_mismatch", "acme"))
        .await
        .app(&s.app_saw);
    let r = c.get(&location).send().await.unwrap();
    refusal.assert(r, 403).await;
    // no state at all
    let refusal = s
        .env
        .refusal(&failure("missing_state", "acme"))
        .await
        .app(&s.app_saw);
    let r = c
        .get(s.env.url("/.portcullis/sso/acme-idp/callback?code=x"))
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
    // a forged flow cookie
    let relay = location
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let refusal = s
        .env
        .refusal(&failure("state_mismatch", "acme"))
        .await
        .app(&s.app_saw);
    let r = c
        .get(&location)
        .header("cookie", format!("portcullis_flow_{relay}=forged"))
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
    // an unknown connection
    let refusal = s
        .env
        .refusal(&failure("unknown_connection", "unknown"))
        .await
        .app(&s.app_saw);
    let r = c
        .get(s.env.url("/.portcullis/sso/nope/start"))
        .send()
        .await
        .unwrap();
    refusal.assert(r, 403).await;
}

/// Roles that `group_roles` derives from an IdP's groups belong to that
/// IdP's tenant: globex mapping its `Engineering` group to `developer` does
/// not open a route for `acme:developer`, which acme's own mapping does;
/// an unqualified `developer` is anyone's (what `check` warns about).
#[tokio::test]
async fn group_roles_are_scoped_to_the_tenant() {
    let s = Sso::start_edited(
        true,
        r#"
[[routes]]
prefix = "/acme-devs"
policy = "required"
allowed_roles = ["acme:developer"]

[[routes]]
prefix = "/devs"
policy = "required"
allowed_roles = ["developer"]
"#,
        None,
        |t| {
            let globex = "id = \"globex\"\ndomains = [\"globex.com\"]\n";
            assert!(t.contains(globex), "{t}");
            t.replace(
                globex,
                &format!("{globex}group_roles = {{ \"Engineering\" = [\"developer\"] }}\n"),
            )
        },
    )
    .await;
    s.assert_next("bob@globex.com", Some(true), &["Engineering"]);
    let (_, bob) = s.login("globex-okta", "%2F").await;
    let bob = bob.expect("bob signed in");
    // globex's mapping did make bob a developer, of globex
    let (status, app) = echo(client().get(s.env.url("/devs/x")).header("cookie", &bob)).await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(seen(&app, "x-forwarded-tenant"), Some("globex"));
    assert!(
        seen(&app, "x-forwarded-roles").is_some_and(|r| r.split(',').any(|r| r == "developer")),
        "{app}"
    );
    for path in [
        "/acme-devs",
        "/acme-devs/x",
        "/ACME-DEVS/x",
        "/x/..;/acme-devs",
    ] {
        let refusal = s
            .env
            .refusal("portcullis_requests_total{class=\"4xx\",policy=\"required\"}")
            .await
            .app(&s.app_saw)
            .named(path);
        let resp = raw_request(
            s.env.proxy,
            &format!(
                "GET {path} HTTP/1.1\r\nhost: app.example.com\r\naccept: application/json\r\ncookie: {bob}\r\nconnection: close\r\n\r\n"
            ),
        )
        .await;
        refusal.assert_raw(&resp, 403).await;
    }
    s.assert_next("alice@acme.com", Some(true), &["Engineering"]);
    let (_, alice) = s.login("acme-idp", "%2F").await;
    let alice = alice.expect("alice signed in");
    let (status, app) = echo(
        client()
            .get(s.env.url("/acme-devs/x"))
            .header("cookie", &alice),
    )
    .await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(seen(&app, "x-forwarded-tenant"), Some("acme"));
}

#[tokio::test]
async fn jit_off_admits_only_invited_users_and_never_deactivated_ones() {
    let s = Sso::start(false).await;
    s.assert_next("alice@acme.com", Some(true), &[]);
    let (cb, session) = s.login("acme-idp", "%2F").await;
    assert_eq!(cb.status(), 403);
    assert!(session.is_none());
    let html = cb.text().await.unwrap().replace("&#39;", "'");
    assert!(
        html.contains("Your account isn't set up for this application yet."),
        "{html}"
    );
    let m = s.env.metrics().await;
    assert!(
        m.contains("reason=\"not_provisioned\",tenant=\"acme\"} 1"),
        "{m}"
    );

    // invited through the CLI
    let path = s.env.config_path();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["users", "invite", "--config"])
        .arg(&path)
        .args([
            "--tenant",
            "acme",
            "--email",
            "Alice@acme.com",
            "--role",
            "admin",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (cb, session) = s.login("acme-idp", "%2F").await;
    assert_eq!(cb.status(), 303);
    let (_, app) = echo(
        client()
            .get(s.env.url("/x"))
            .header("cookie", session.unwrap()),
    )
    .await;
    assert_eq!(seen(&app, "x-forwarded-roles"), Some("admin"));

    // deactivated: refused even though the IdP vouches for them
    let user = s
        .env
        .shared
        .store
        .users()
        .by_email("acme", "alice@acme.com")
        .await
        .unwrap()
        .unwrap();
    s.env
        .shared
        .store
        .users()
        .set_active(&user.id, false, portcullis::clock::now())
        .await
        .unwrap();
    let (cb, session) = s.login("acme-idp", "%2F").await;
    assert_eq!(cb.status(), 403);
    assert!(session.is_none());
    let m = s.env.metrics().await;
    assert!(
        m.contains("reason=\"deactivated\",tenant=\"acme\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn changing_a_connection_ends_its_sessions() {
    let s = Sso::start(true).await;
    s.assert_next("alice@acme.com", Some(true), &[]);
    let (_, alice) = s.login("acme-idp", "%2F").await;
    let alice = alice.unwrap();
    s.assert_next("bob@globex.com", Some(true), &[]);
    let (_, bob) = s.login("globex-okta", "%2F").await;
    let bob = bob.unwrap();
    let ok = |cookie: &str| {
        client()
            .get(s.env.url("/x"))
            .header("accept", "application/json")
            .header("cookie", cookie.to_owned())
            .send()
    };
    assert_eq!(ok(&alice).await.unwrap().status(), 200);
    // reload with acme's connection changed; globex untouched
    let cfg = s.env.shared.config();
    let mut new = (*cfg).clone();
    new.tenants[0].connections[0].display_name = Some("Acme Okta (new)".into());
    s.env.shared.swap(new).await.unwrap();
    assert_eq!(ok(&alice).await.unwrap().status(), 401);
    assert_eq!(ok(&bob).await.unwrap().status(), 200);
}

#[tokio::test]
async fn enforcing_tenants_password_logins_never_reach_the_app() {
    let s = Sso::start(true).await;
    let c = client();
    let logins = |s: &Sso| {
        s.app_saw
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.ends_with("/login") || r.ends_with("/api/session"))
            .count()
    };

    // Each blocked login: no session, the app untouched, counted once.
    let enforced = "portcullis_sso_enforced_total{tenant=\"acme\"}";
    // acme enforces SSO: a browser's form post is sent to SSO instead
    let refusal = s.env.refusal(enforced).await.app(&s.app_saw);
    let r = c
        .post(s.env.url("/login"))
        .header("accept", "text/html")
        .form(&[("email", "alice@acme.com"), ("password", "hunter2")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["location"],
        "/.portcullis/login?use_sso=true&email=alice%40acme%2Ecom"
    );
    refusal.assert(r, 303).await;
    // an API client gets 403 JSON (JSON pointer configured for this endpoint)
    let refusal = s.env.refusal(enforced).await.app(&s.app_saw);
    let r = c
        .post(s.env.url("/api/session"))
        .json(&serde_json::json!({"user": {"email": "Alice@ACME.com"}, "password": "x"}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&refusal.assert(r, 403).await).unwrap();
    assert_eq!(body["error"], "sso_required");
    // path tricks are the same endpoint; sent raw, as a client library
    // would resolve the dot segments before sending
    for target in ["/x/../login", "/x/%2e%2e/login", "/x/..;/login"] {
        let refusal = s.env.refusal(enforced).await.app(&s.app_saw);
        let body = "email=alice%40acme.com";
        let resp = raw_request(
            s.env.proxy,
            &format!(
                "POST {target} HTTP/1.1\r\nhost: app.example.com\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        refusal.assert_raw(&resp, 303).await;
    }
    assert_eq!(
        logins(&s),
        0,
        "a blocked password login reached the app: {:?}",
        s.app_saw.lock().unwrap()
    );

    // globex does not enforce; unknown domains pass too, with the body
    // intact
    for form in [
        vec![("email", "bob@globex.com"), ("password", "pw")],
        vec![("email", "x@unknown.org")],
    ] {
        let sent = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter())
            .finish();
        let (status, app) = echo(
            c.post(s.env.url("/login"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(sent.clone()),
        )
        .await;
        assert_eq!(status, 200, "{app}");
        assert_eq!(
            app["body_bytes"],
            sent.len() as u64,
            "body replayed to the app intact"
        );
    }
    assert_eq!(logins(&s), 2);
    // a submission without an email is refused: Portcullis can't vouch for
    // a login it can't read (see tests/it/login/enforce.rs for the rest)
    let r = c
        .post(s.env.url("/login"))
        .form(&[("username", "legacy")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(logins(&s), 2);
    let m = s.env.metrics().await;
    assert!(
        m.contains("portcullis_sso_enforced_total{tenant=\"acme\"} 5"),
        "{m}"
    );

    // a login body too large to inspect is refused, not guessed
    let r = c
        .post(s.env.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 70_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(logins(&s), 2);
}

#[tokio::test]
async fn a_domain_removed_from_the_config_stops_routing_at_once() {
    let s = Sso::start(true).await;
    let cfg = s.env.shared.config();
    let mut new = (*cfg).clone();
    new.tenants[0].domains.retain(|d| d != "acme.com");
    s.env.shared.swap(new).await.unwrap();
    let html = client()
        .post(s.env.url("/.portcullis/login"))
        .form(&[("email", "alice@acme.com")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .replace("&#39;", "'");
    assert!(
        html.contains("Single sign-on isn't set up for acme.com."),
        "{html}"
    );
    s.assert_next("alice@acme.com", Some(true), &[]);
    let (cb, session) = s.login("acme-idp", "%2F").await;
    assert_eq!(cb.status(), 403);
    assert!(session.is_none());
}

#[tokio::test]
async fn test_sign_in_shows_what_the_idp_sent_and_creates_nothing() {
    let s = Sso::start(true).await;
    let link = |conn: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["connections", "test", "--config"])
            .arg(s.env.config_path())
            .arg(conn)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap().trim().to_owned(),
        )
    };
    let (code, url) = link("acme-idp");
    assert_eq!(code, Some(0));
    assert!(
        url.starts_with(&s.env.url("/.portcullis/sso/acme%2Didp/test?token=")),
        "{url}"
    );
    assert_eq!(link("nope").0, Some(64));

    s.assert_next("newbie@acme.com", Some(true), &["Engineering"]);
    let c = client();
    let start = c.get(&url).send().await.unwrap();
    assert_eq!(start.status(), 302);
    let flow = cookie_pair(&start, "portcullis_flow_").unwrap();
    let cb = c
        .get(start.headers()["location"].to_str().unwrap())
        .header("cookie", flow)
        .send()
        .await
        .unwrap();
    assert_eq!(cb.status(), 200);
    assert!(
        cookie_pair(&cb, "portcullis_session=").is_none(),
        "a test sign-in must not create a session"
    );
    let html = cb.text().await.unwrap().replace("&#34;", "\"");
    assert!(
        html.contains("Allowed: this user would be signed in."),
        "{html}"
    );
    assert!(html.contains("\"email\": \"newbie@acme.com\""), "{html}");
    assert!(html.contains("\"user_id\": \"(new user)\""), "{html}");
    assert!(html.contains("\"developer\""), "{html}");
    // nothing provisioned
    assert!(
        s.env
            .shared
            .store
            .users()
            .by_email("acme", "newbie@acme.com")
            .await
            .unwrap()
            .is_none()
    );
    // the link works once
    let again = c.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 403);

    // a refusal shows the precise reason to the operator
    let (_, url) = link("acme-idp");
    s.assert_next("bob@globex.com", Some(true), &[]);
    let start = c.get(&url).send().await.unwrap();
    let flow = cookie_pair(&start, "portcullis_flow_").unwrap();
    let html = c
        .get(start.headers()["location"].to_str().unwrap())
        .header("cookie", flow)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Refused by policy: foreign_domain"), "{html}");
    // a link for another connection's path is refused
    let (_, url) = link("globex-okta");
    let forged = url.replace("globex%2Dokta", "acme%2Didp");
    assert_eq!(c.get(&forged).send().await.unwrap().status(), 403);
}
