//! Interop with a third-party IdP: pysaml2's `saml2.server.Server`
//! (tests/pysaml2/idp.py) signs with its own code and xmlsec1; the proxy
//! must accept its SP-initiated and IdP-initiated logins and put the right
//! identity headers on the upstream request.

use crate::support::env::*;
use crate::support::idp::cookie_pair;
use crate::support::pysaml2::{PySaml2Idp, html_form};
use crate::support::refusal::login_failure;
use crate::support::saml::*;

/// The SP's public origin as the IdP knows it (a TLS front end in
/// production); the test posts the IdP's form to the proxy's real address.
const APP: &str = "https://app.test";
/// Accepts IdP-initiated logins, landing at /welcome.
pub(crate) const OPEN: &str = "acme-pysaml2";
/// The default: solicited responses only.
pub(crate) const STRICT: &str = "acme-pysaml2-strict";

fn sp_entity(conn: &str) -> String {
    format!("{APP}/.portcullis/saml/{conn}/metadata")
}

fn acs(conn: &str) -> String {
    format!("{APP}/.portcullis/saml/{conn}/acs")
}

pub(crate) struct Interop {
    pub s: SamlSso,
    pub idp: PySaml2Idp,
}

fn slo(conn: &str) -> String {
    format!("{APP}/.portcullis/saml/{conn}/slo")
}

/// pysaml2 started first (it serves the metadata the proxy loads), with
/// this SP's metadata as the library renders it for the SP endpoint.
pub(crate) async fn interop(open_extra: &str) -> Interop {
    interop_with(open_extra, None, &[]).await
}

/// `sp_key`: the OPEN connection gets an SP key pair of that name (and
/// `open_extra` may turn on `sign_requests`); `idp_args` go to idp.py.
pub(crate) async fn interop_with(
    open_extra: &str,
    sp_key: Option<&str>,
    idp_args: &[&str],
) -> Interop {
    let dir = tempfile::tempdir().unwrap();
    let key = IdpKey::generate(dir.path(), "pysaml2");
    let sp = sp_key.map(|name| IdpKey::generate(dir.path(), name));
    let sp_b64: Option<String> = sp.as_ref().map(|k| {
        k.cert_pem()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect()
    });
    let mut sp_files = Vec::new();
    for conn in [OPEN, STRICT] {
        let path = dir.path().join(format!("{conn}.sp.xml"));
        let (entity, acs, slo) = (sp_entity(conn), acs(conn), slo(conn));
        let open = conn == OPEN;
        std::fs::write(
            &path,
            portcullis::auth::saml::sp_metadata_xml(&portcullis::auth::saml::SpMetadata {
                entity_id: &entity,
                acs_url: &acs,
                slo_url: Some(&slo),
                cert_b64: sp_b64.as_deref().filter(|_| open),
                sign_requests: open && open_extra.contains("sign_requests = true"),
            }),
        )
        .unwrap();
        sp_files.push(path);
    }
    let refs: Vec<&std::path::Path> = sp_files.iter().map(|p| p.as_path()).collect();
    let idp = PySaml2Idp::start(&key, &refs, idp_args);
    let md = dir.path().join("pysaml2-idp.xml");
    std::fs::write(&md, idp.metadata().await).unwrap();
    let block = |conn: &str, extra: &str| {
        format!(
            "[[tenants.connections]]\nid = \"{conn}\"\nprotocol = \"saml\"\npreset = \"okta\"\n[tenants.connections.saml]\nidp_metadata_file = \"{}\"\nsp_entity_id = \"{}\"\nacs_url = \"{}\"\nslo_url = \"{}\"\n{extra}\n",
            md.display(),
            sp_entity(conn),
            acs(conn),
            slo(conn),
        )
    };
    let key_files = sp
        .as_ref()
        .map(|k| {
            format!(
                "sp_key_file = \"{}\"\nsp_cert_file = \"{}\"\n",
                k.key.display(),
                k.cert.display()
            )
        })
        .unwrap_or_default();
    let connections = format!(
        "{}{}",
        block(
            OPEN,
            &format!(
                "allow_idp_initiated = true\nlanding_path = \"/welcome\"\n{key_files}{open_extra}"
            )
        ),
        block(STRICT, "")
    );
    let s = SamlSso::start_with(dir, key, &connections).await;
    Interop { s, idp }
}

impl Interop {
    /// Posts the IdP's auto-post form to the proxy's ACS of `conn`.
    pub(crate) async fn post_form(
        &self,
        conn: &str,
        html: &str,
        cookie: Option<&str>,
    ) -> reqwest::Response {
        let (action, fields) = html_form(html);
        assert_eq!(action, acs(conn), "the IdP posts to the SP's ACS");
        let mut req = client()
            .post(self.s.env.url(&format!("/.portcullis/saml/{conn}/acs")))
            .form(&fields);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().await.unwrap()
    }

    /// SP-initiated login of `user` at `conn` through pysaml2's pages;
    /// returns the ACS answer.
    pub(crate) async fn sp_initiated(
        &self,
        conn: &str,
        user: &str,
        sign_response: bool,
    ) -> reqwest::Response {
        let sign = if sign_response { "1" } else { "0" };
        self.sp_initiated_with(conn, user, &[("sign_response", sign)])
            .await
    }

    /// The same with more fields for pysaml2's login form.
    pub(crate) async fn sp_initiated_with(
        &self,
        conn: &str,
        user: &str,
        more: &[(&str, &str)],
    ) -> reqwest::Response {
        let (flow, fields) = self.idp_login_page(conn).await;
        self.submit_login(conn, &flow, fields, user, more).await
    }

    /// Signs `user` in on pysaml2's page (its `fields`, plus `more`) and
    /// posts the answer to `conn`'s ACS with the browser's `cookies`.
    pub(crate) async fn submit_login(
        &self,
        conn: &str,
        cookies: &str,
        mut fields: Vec<(String, String)>,
        user: &str,
        more: &[(&str, &str)],
    ) -> reqwest::Response {
        fields.push(("user".into(), user.into()));
        for (k, v) in more {
            fields.push((k.to_string(), v.to_string()));
        }
        let answer = client()
            .post(self.idp.url("/sso/login"))
            .form(&fields)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let html = answer.text().await.unwrap();
        assert_eq!(status, 200, "pysaml2 refused: {html}");
        self.post_form(conn, &html, Some(cookies)).await
    }

    /// SP-initiated start at `conn`, followed to pysaml2's pick-a-user
    /// page: the flow cookie and the page's form fields.
    pub(crate) async fn idp_login_page(&self, conn: &str) -> (String, Vec<(String, String)>) {
        let (flow, location) = self.start_login(conn).await;
        (flow, self.login_page_at(&location).await)
    }

    /// pysaml2's pick-a-user page for the AuthnRequest in `location`: its
    /// form fields.
    pub(crate) async fn login_page_at(&self, location: &str) -> Vec<(String, String)> {
        let page = client().get(location).send().await.unwrap();
        let status = page.status();
        let text = page.text().await.unwrap();
        assert_eq!(status, 200, "pysaml2 refused the AuthnRequest: {text}");
        let (action, fields) = html_form(&text);
        assert_eq!(action, "/sso/login");
        fields
    }

    /// The proxy's redirect to pysaml2: flow cookie and location.
    pub(crate) async fn start_login(&self, conn: &str) -> (String, String) {
        let start = client()
            .get(self.s.env.url(&format!(
                "/.portcullis/sso/{conn}/start?return_to=%2Fdashboard"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), 302);
        let location = start.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            location.starts_with(&self.idp.url("/sso/redirect?SAMLRequest=")),
            "{location}"
        );
        let flow = cookie_pair(&start, "portcullis_flow_").expect("flow cookie");
        (flow, location)
    }

    /// pysaml2's IdP-initiated form for `user` at `conn`.
    pub(crate) async fn idp_initiated_form(&self, conn: &str, user: &str, relay: &str) -> String {
        let r = client()
            .get(self.idp.url("/idp-initiated"))
            .query(&[
                ("user", user),
                ("sp", &sp_entity(conn)),
                ("RelayState", relay),
            ])
            .send()
            .await
            .unwrap();
        let status = r.status();
        let html = r.text().await.unwrap();
        assert_eq!(status, 200, "pysaml2 refused: {html}");
        html
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_sp_initiated_login_reaches_the_app() {
    let i = interop("").await;
    // the SP metadata pysaml2 trusts is what the proxy serves
    let served = client()
        .get(i.s.env.url(&format!("/.portcullis/saml/{OPEN}/metadata")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        served,
        std::fs::read_to_string(i.s.dir.path().join(format!("{OPEN}.sp.xml"))).unwrap()
    );
    for (conn, sign_response) in [(OPEN, false), (STRICT, false), (STRICT, true)] {
        let r = i.sp_initiated(conn, "alice", sign_response).await;
        assert_eq!(r.status(), 303, "{conn}: {}", r.text().await.unwrap());
        assert_eq!(r.headers()["location"], "/dashboard");
        let session = cookie_pair(&r, "portcullis_session=").expect("session");
        let app = assert_alice_engineer(&i.s.env, &session).await;
        assert_eq!(seen(&app, "x-forwarded-name"), Some("Alice Example"));
    }
    // bob: other headers, no developer role
    let r = i.sp_initiated(STRICT, "bob", false).await;
    assert_eq!(r.status(), 303);
    let session = cookie_pair(&r, "portcullis_session=").unwrap();
    let (status, app) = echo(
        client()
            .get(i.s.env.url("/dashboard"))
            .header("cookie", session),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(seen(&app, "x-forwarded-email"), Some("bob@acme.com"));
    assert_eq!(seen(&app, "x-forwarded-groups"), Some("Everyone"));
    assert_eq!(seen(&app, "x-forwarded-roles"), Some("member"));
    let log = i.idp.log().await;
    assert_eq!(
        log.iter().filter(|e| e["kind"] == "sp_initiated").count(),
        4,
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_idp_initiated_login_lands_where_allowed() {
    let i = interop("").await;
    // a safe relative RelayState is honoured
    let html = i.idp_initiated_form(OPEN, "alice", "/reports?q=1").await;
    let r = i.post_form(OPEN, &html, None).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/reports?q=1");
    let session = cookie_pair(&r, "portcullis_session=").expect("session");
    assert_alice_engineer(&i.s.env, &session).await;
    // the same response again: the replay cache refuses it
    let refusal = i.s.env.refusal(&login_failure("replay")).await;
    let r = i.post_form(OPEN, &html, None).await;
    refusal.assert(r, 403).await;

    // an absolute or protocol-relative RelayState never redirects off-site:
    // the configured landing path instead
    for relay in ["https://evil.example/", "//evil.example/x", ""] {
        let html = i.idp_initiated_form(OPEN, "alice", relay).await;
        let r = i.post_form(OPEN, &html, None).await;
        assert_eq!(r.status(), 303, "{relay}: {}", r.text().await.unwrap());
        assert_eq!(r.headers()["location"], "/welcome", "{relay}");
    }

    // a connection that did not opt in refuses unsolicited responses
    let html = i.idp_initiated_form(STRICT, "alice", "/reports").await;
    let refusal = i.s.env.refusal(&login_failure("unsolicited")).await;
    let r = i.post_form(STRICT, &html, None).await;
    let body = refusal.assert(r, 403).await;
    assert!(body.contains("couldn"), "{body}");
}

/// pysaml2 configured to want signed AuthnRequests verifies ours (the
/// HTTP-Redirect signature over SAMLRequest, RelayState and SigAlg, with
/// the certificate from our SP metadata); forged or missing signatures are
/// refused by it, so the acceptance is not vacuous.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_verifies_our_signed_authn_requests() {
    let i = interop_with(
        "sign_requests = true",
        Some("sp"),
        &["--want-signed-requests"],
    )
    .await;
    let served = client()
        .get(i.s.env.url(&format!("/.portcullis/saml/{OPEN}/metadata")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(served.contains("AuthnRequestsSigned=\"true\""), "{served}");
    assert!(
        served.contains("<md:KeyDescriptor use=\"signing\">"),
        "{served}"
    );
    assert!(
        served.contains("<md:KeyDescriptor use=\"encryption\">"),
        "{served}"
    );
    assert_eq!(
        served,
        std::fs::read_to_string(i.s.dir.path().join(format!("{OPEN}.sp.xml"))).unwrap()
    );
    let r = i.sp_initiated(OPEN, "alice", false).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let session = cookie_pair(&r, "portcullis_session=").expect("session");
    assert_alice_engineer(&i.s.env, &session).await;
    let log = i.idp.log().await;
    assert!(
        log.iter()
            .any(|e| e["kind"] == "authn_request" && e["signed"] == true),
        "{log:?}"
    );

    // the request with the signature of another request: refused
    let (_, first) = i.start_login(OPEN).await;
    let (_, second) = i.start_login(OPEN).await;
    let head = |u: &str| u.split("&Signature=").next().unwrap().to_owned();
    let sig = |u: &str| u.split("&Signature=").nth(1).unwrap().to_owned();
    assert_ne!(sig(&first), sig(&second));
    let r = client()
        .get(format!("{}&Signature={}", head(&first), sig(&second)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "pysaml2 must refuse the forged signature");
    // ... and without one
    let unsigned = first.split("&SigAlg=").next().unwrap().to_owned();
    let r = client().get(&unsigned).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // the connection without sign_requests sends none
    let (_, strict) = i.start_login(STRICT).await;
    assert!(!strict.contains("Signature="), "{strict}");
}

/// pysaml2 encrypts assertions with 3DES-CBC (hard-coded): not on our
/// allow-list, so its encrypted assertion is refused as `algorithm` even
/// though it is validly signed and encrypted to our key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_triple_des_encrypted_assertion_is_refused() {
    let i = interop_with("", Some("sp"), &[]).await;
    let refusal = i.s.env.refusal(&login_failure("algorithm")).await;
    let r = i
        .sp_initiated_with(OPEN, "alice", &[("encrypt", "1")])
        .await;
    refusal.assert(r, 403).await;
}

/// The proxy's session cookie still works (200 from the app) or not.
async fn session_alive(i: &Interop, session: &str) -> bool {
    let r = client()
        .get(i.s.env.url("/dashboard"))
        .header("cookie", session)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    r.status() == 200
}

async fn login(i: &Interop, user: &str) -> String {
    let r = i.sp_initiated(OPEN, user, false).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    cookie_pair(&r, "portcullis_session=").expect("session")
}

/// SP-initiated single logout with pysaml2: our logout endpoint ends the
/// session and sends a LogoutRequest (NameID + SessionIndex) to pysaml2's
/// SLO endpoint; its signed LogoutResponse lands at our SLO endpoint and
/// the browser on `/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_sp_initiated_single_logout() {
    let i = interop("").await;
    let session = login(&i, "alice").await;
    assert!(session_alive(&i, &session).await);
    let r = logout(&i.s.env, &session, "/bye").await;
    assert_eq!(r.status(), 303);
    let to_idp = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to_idp.starts_with(&i.idp.url("/slo/redirect?SAMLRequest=")),
        "{to_idp}"
    );
    assert!(
        !session_alive(&i, &session).await,
        "the session ended at once"
    );
    let r = client().get(&to_idp).send().await.unwrap();
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let back = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with(&slo(OPEN)), "{back}");
    assert!(back.contains("&Signature="), "pysaml2 signs it: {back}");
    let log = i.idp.log().await;
    let req = log
        .iter()
        .find(|e| e["kind"] == "logout_request")
        .unwrap_or_else(|| panic!("{log:?}"));
    assert_eq!(req["name_id"], "alice@acme.com");
    assert_eq!(req["issuer"], sp_entity(OPEN));
    assert_eq!(
        req["session_index"].as_array().map(|a| a.len()),
        Some(1),
        "{req}"
    );
    // the IdP's answer at our SLO endpoint (the test plays the browser,
    // posting to the proxy's real address)
    let path = &back[APP.len()..];
    let r = client().get(i.s.env.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    // the generic logout hook carries no return path through the IdP
    assert_eq!(r.headers()["location"], "/");
    // tampered: the same answer with its signature broken
    let forged = back.replace("&Signature=", "&Signature=AAAA");
    let r = client()
        .get(i.s.env.url(&forged[APP.len()..]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    i.s.expect_failures("slo_signature", 1).await;
}

/// IdP-initiated single logout with pysaml2: its signed LogoutRequest for
/// alice ends every session of alice at this connection (and only those),
/// and is answered with a LogoutResponse to pysaml2's SLO endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pysaml2_idp_initiated_single_logout() {
    let i = interop("").await;
    let alice1 = login(&i, "alice").await;
    let alice2 = login(&i, "alice").await;
    let bob = login(&i, "bob").await;
    let r = client()
        .get(i.idp.url("/idp-logout"))
        .query(&[
            ("user", "alice"),
            ("sp", &sp_entity(OPEN)),
            ("RelayState", "r1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let to_sp = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to_sp.starts_with(&slo(OPEN)), "{to_sp}");
    let path = to_sp[APP.len()..].to_owned();

    // a forged signature first: refused, nobody logged out
    let forged = path.replace("&Signature=", "&Signature=AAAA");
    let r = client().get(i.s.env.url(&forged)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // ... and the request without its signature
    let unsigned = path.split("&SigAlg=").next().unwrap().to_owned();
    let r = client().get(i.s.env.url(&unsigned)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    i.s.expect_failures("slo_signature", 2).await;
    assert!(session_alive(&i, &alice1).await && session_alive(&i, &bob).await);

    let r = client()
        .get(i.s.env.url(&path))
        .header("cookie", &alice1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let answer = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        answer.starts_with(&i.idp.url("/slo/redirect?SAMLResponse=")),
        "{answer}"
    );
    assert!(answer.contains("RelayState=r1"), "{answer}");
    assert!(
        cookie_pair(&r, "portcullis_session=").is_some(),
        "this browser's cookie is cleared"
    );
    assert!(!session_alive(&i, &alice1).await);
    assert!(!session_alive(&i, &alice2).await);
    assert!(session_alive(&i, &bob).await, "bob stays signed in");
    let r = client().get(&answer).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let log = i.idp.log().await;
    assert!(
        log.iter().any(|e| e["kind"] == "logout_response"),
        "{log:?}"
    );

    // the same LogoutRequest again: a replay
    let r = client().get(i.s.env.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    i.s.expect_failures("slo_replay", 1).await;
}
