//! The SAML service provider end to end, with real XML signatures: keys from
//! the `openssl` CLI, responses signed by `xmlsec1`, verified by samael and
//! libxmlsec1 inside the proxy. Every refusal asserts its metric reason.

use chrono::{Duration, Utc};

use crate::support::env::*;
use crate::support::idp::cookie_pair;
use crate::support::refusal::login_failure;
use crate::support::saml::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sp_initiated_login_reaches_the_app_with_the_right_headers() {
    let s = SamlSso::start("").await;
    let started = s.begin().await;
    // the AuthnRequest: fresh id, our ACS and entity id, email NameID
    let req = &started.request_xml;
    assert!(started.request_id.starts_with('_') && started.request_id.len() > 30);
    assert_eq!(attr(req, "AssertionConsumerServiceURL"), s.acs());
    assert_eq!(attr(req, "Destination"), IDP_SSO);
    assert!(
        req.contains(&format!("<saml:Issuer>{}</saml:Issuer>", s.sp_entity())),
        "{req}"
    );
    assert!(req.contains("nameid-format:emailAddress"), "{req}");
    assert!(
        started
            .flow_cookie
            .starts_with(&format!("portcullis_flow_{}=", started.relay)),
        "{}",
        started.flow_cookie
    );

    let xml = s.resp(&started).signed(&s.key, s.dir.path());
    let r = s.post(&started, &b64(&xml)).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/dashboard");
    let session = cookie_pair(&r, "portcullis_session=").expect("session");
    assert_alice_engineer(&s.env, &session).await;
    let m = s.env.metrics().await;
    assert!(
        m.contains("portcullis_logins_total{connection=\"acme-saml\",tenant=\"acme\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_level_and_double_signatures_are_accepted() {
    let s = SamlSso::start("").await;
    let started = s.begin().await;
    let mut resp = s.resp(&started);
    resp.sign = Sign::Response;
    let r = s
        .post(&started, &b64(&resp.signed(&s.key, s.dir.path())))
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    // Okta's "sign the response and the assertion": two signatures
    let started = s.begin().await;
    let mut resp = s.resp(&started);
    resp.sign = Sign::Both;
    let xml = resp.signed(&s.key, s.dir.path());
    assert_eq!(xml.matches("<ds:Signature ").count(), 2, "{xml}");
    let r = s.post(&started, &b64(&xml)).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
}

/// One refused response per case: the generic page, no session (cookie or
/// store row), the app untouched, the reason counted once.
async fn refused(s: &SamlSso, started: &Started, saml_response: &str, reason: &str) {
    let refusal = s.env.refusal(&login_failure(reason)).await;
    let r = s.post(started, saml_response).await;
    let body = refusal.assert(r, 403).await;
    assert!(
        body.contains("couldn"),
        "{reason}: generic page expected: {body}"
    );
    assert!(
        !body.contains("alice@acme.com"),
        "{reason}: no login details leak: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validity_window_honours_the_clock_skew() {
    let s = SamlSso::start("clock_skew_seconds = 60").await;
    let dir = s.dir.path();
    let now = Utc::now();

    let st = s.begin().await;
    let mut r = s.resp(&st);
    r.not_on_or_after = now - Duration::seconds(120);
    refused(&s, &st, &b64(&r.signed(&s.key, dir)), "expired").await;

    let st = s.begin().await;
    let mut r = s.resp(&st);
    r.not_before = now + Duration::seconds(300);
    refused(&s, &st, &b64(&r.signed(&s.key, dir)), "not_yet_valid").await;

    // within the skew: accepted
    let st = s.begin().await;
    let mut r = s.resp(&st);
    r.not_before = now + Duration::seconds(30);
    r.not_on_or_after = now + Duration::seconds(300);
    let resp = s.post(&st, &b64(&r.signed(&s.key, dir))).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let st = s.begin().await;
    let mut r = s.resp(&st);
    r.not_on_or_after = now - Duration::seconds(20);
    let resp = s.post(&st, &b64(&r.signed(&s.key, dir))).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_assertion_is_refused() {
    let s = SamlSso::start("").await;
    let st = s.begin().await;
    let r = s.resp(&st);
    let xml = r.signed(&s.key, s.dir.path());
    assert_eq!(s.post(&st, &b64(&xml)).await.status(), 303);
    // the very same POST again (the browser's flow cookie replayed too)
    refused(&s, &st, &b64(&xml), "replay").await;
    // the same assertion id in a new flow (re-signed so that everything
    // else lines up): the store remembers it across flows and replicas
    let st3 = s.begin().await;
    let mut r3 = s.resp(&st3);
    r3.assertion_id = r.assertion_id.clone();
    refused(&s, &st3, &b64(&r3.signed(&s.key, s.dir.path())), "replay").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha1_is_accepted_only_when_the_connection_allows_it() {
    let s = SamlSso::start("allow_sha1 = true").await;
    let st = s.begin().await;
    let mut r = s.resp(&st);
    r.sha1 = true;
    let resp = s.post(&st, &b64(&r.signed(&s.key, s.dir.path()))).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
}

/// Signature wrapping, DTDs, oversized bodies and the other hostile XML
/// live in the corpus (tests/fixtures/saml, `saml_corpus`); what is not XML
/// at all is refused here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_that_is_not_base64_xml_is_refused() {
    let s = SamlSso::start("").await;
    let st = s.begin().await;
    refused(&s, &st, "%%% not base64 %%%", "malformed").await;
    let st = s.begin().await;
    refused(&s, &st, &b64("not xml at all"), "malformed").await;
    let st = s.begin().await;
    refused(&s, &st, &b64("<x/>"), "malformed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sp_metadata_describes_the_acs() {
    let s = SamlSso::start("").await;
    let r = client()
        .get(
            s.env
                .url(&format!("/.portcullis/saml/{CONNECTION}/metadata")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/samlmetadata+xml");
    let xml = r.text().await.unwrap();
    assert_eq!(attr(&xml, "entityID"), s.sp_entity());
    assert!(
        xml.contains(&format!(
            "Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"{}\"",
            s.acs()
        )),
        "{xml}"
    );
    assert!(
        xml.contains(
            "<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>"
        ),
        "{xml}"
    );
    let missing = client()
        .get(s.env.url("/.portcullis/saml/nope/metadata"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_file_without_a_certificate_is_a_startup_error_with_one_it_loads() {
    let dir = crate::support::env::private_tempdir().unwrap();
    let md = dir.path().join("idp.xml");
    std::fs::write(
        &md,
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{IDP_ENTITY}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{IDP_SSO}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
        ),
    )
    .unwrap();
    let text = config_text(
        "127.0.0.1:1".parse().unwrap(),
        "127.0.0.1:2".parse().unwrap(),
        "127.0.0.1:3".parse().unwrap(),
        &format!("sqlite://{}/s.db", dir.path().display()),
        &[KEY_A],
        &format!(
            "[[tenants]]\nid = \"acme\"\ndomains = [\"acme.com\"]\n[[tenants.connections]]\nid = \"{CONNECTION}\"\nprotocol = \"saml\"\n[tenants.connections.saml]\nidp_metadata_file = \"{}\"\n",
            md.display()
        ),
    );
    let path = dir.path().join("p.toml");
    std::fs::write(&path, text).unwrap();
    let config = portcullis::config::load(&path).unwrap();
    let err = portcullis::app::Shared::new(config, None, portcullis::auth::Factories::builtin())
        .await
        .err()
        .expect("startup must fail");
    let msg = err.to_string();
    assert!(msg.contains("no signing certificate"), "{msg}");
    assert!(msg.contains(CONNECTION), "{msg}");

    // the same metadata with a signing certificate loads
    let key = IdpKey::generate(dir.path(), "idp");
    let der_b64: String = key
        .cert_pem()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    std::fs::write(
        &md,
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP_ENTITY}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{der_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{IDP_SSO}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
        ),
    )
    .unwrap();
    let config = portcullis::config::load(&path).unwrap();
    let shared = portcullis::app::Shared::new(config, None, portcullis::auth::Factories::builtin())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let state = shared.generation();
    let reg = state.auth.registry.get(CONNECTION).expect("registered");
    let started = reg
        .connection
        .start(&portcullis::auth::StartContext {
            relay: "r".into(),
            login_hint: None,
            callback_url: String::new(),
            step_up: None,
        })
        .await
        .unwrap();
    assert!(
        started
            .redirect_to
            .starts_with(&format!("{IDP_SSO}?SAMLRequest=")),
        "{}",
        started.redirect_to
    );
}

/// Replicas share the replay cache through the store: an assertion used at
/// one proxy is refused at the other, even in a fresh flow there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_is_refused_on_another_replica() {
    const SP: &str = "https://app.test/.portcullis/saml/acme-saml/metadata";
    const ACS: &str = "https://app.test/.portcullis/saml/acme-saml/acs";
    let s = SamlSso::start(&format!("sp_entity_id = \"{SP}\"\nacs_url = \"{ACS}\"")).await;
    let b = s.replica().await;
    let st = s.begin().await;
    let r = Resp::new(ACS, SP, &st.request_id);
    let xml = r.signed(&s.key, s.dir.path());
    assert_eq!(s.post(&st, &b64(&xml)).await.status(), 303);

    // a flow at replica b, answered with a re-signed copy of the assertion
    let start = client()
        .get(b.url(&format!(
            "/.portcullis/sso/{CONNECTION}/start?return_to=%2F"
        )))
        .send()
        .await
        .unwrap();
    let flow = cookie_pair(&start, "portcullis_flow_").unwrap();
    let (req, relay) = parse_redirect(start.headers()["location"].to_str().unwrap());
    let mut again = Resp::new(ACS, SP, &attr(&req, "ID"));
    again.assertion_id = r.assertion_id.clone();
    // b's own app and counter; the store both share
    let refusal = b
        .refusal(r#"portcullis_login_failures_total{connection="acme-saml",reason="replay",tenant="acme"}"#)
        .await
        .app(b.app.as_ref().expect("a counting upstream"));
    let resp = client()
        .post(b.url(&format!("/.portcullis/saml/{CONNECTION}/acs")))
        .header("cookie", flow)
        .form(&[
            ("SAMLResponse", b64(&again.signed(&s.key, s.dir.path()))),
            ("RelayState", relay),
        ])
        .send()
        .await
        .unwrap();
    let body = refusal.assert(resp, 403).await;
    assert!(body.contains("couldn"), "generic page expected: {body}");
}

/// What samael leaves optional is required here: an AudienceRestriction, a
/// Response Issuer, a NotOnOrAfter; and a failed IdP status is not a login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_in_samael_is_required_here() {
    let s = SamlSso::start("").await;
    let dir = s.dir.path();
    let sp = s.sp_entity();
    let no_audience = format!(
        "<saml:AudienceRestriction><saml:Audience>{sp}</saml:Audience></saml:AudienceRestriction>"
    );
    let response_issuer = format!("<saml:Issuer>{IDP_ENTITY}</saml:Issuer>");
    let cases: &[(&str, &str, &str)] = &[
        // samael checks the audience only when a restriction is present
        (&no_audience, "", "audience"),
        // ... and the Response Issuer only when present (first Issuer)
        (&response_issuer, "", "issuer"),
        // ... and the Status only when the whole response is signed
        (
            "urn:oasis:names:tc:SAML:2.0:status:Success",
            "urn:oasis:names:tc:SAML:2.0:status:Requester",
            "idp_status",
        ),
    ];
    for (from, to, reason) in cases {
        let st = s.begin().await;
        let r = s.resp(&st);
        let xml = r.template();
        assert!(xml.contains(from), "{from}");
        let xml = xml.replacen(from, to, 1);
        refused(&s, &st, &b64(&r.sign_template(&xml, &s.key, dir)), reason).await;
    }
    // no NotOnOrAfter on the Conditions
    let st = s.begin().await;
    let r = s.resp(&st);
    let nooa = r
        .not_on_or_after
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let xml = r.template().replacen(
        &format!(
            "NotBefore=\"{}\" NotOnOrAfter=\"{nooa}\"",
            r.not_before
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        &format!(
            "NotBefore=\"{}\"",
            r.not_before
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        1,
    );
    refused(
        &s,
        &st,
        &b64(&r.sign_template(&xml, &s.key, dir)),
        "malformed",
    )
    .await;
}

/// Certificate rotation: the connection trusts the old and the new
/// certificate; responses signed with either are accepted, others not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_trusted_certificates_for_rotation() {
    let keys = tempfile::tempdir().unwrap();
    let old = IdpKey::generate(keys.path(), "old");
    let s = SamlSso::start_trusting("", &[old.cert_pem()]).await;
    for key in [&old, &s.key] {
        let st = s.begin().await;
        let resp = s
            .post(&st, &b64(&s.resp(&st).signed(key, s.dir.path())))
            .await;
        assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    }
    let stranger = IdpKey::generate(keys.path(), "stranger");
    let st = s.begin().await;
    refused(
        &s,
        &st,
        &b64(&s.resp(&st).signed(&stranger, s.dir.path())),
        "signature",
    )
    .await;
}

#[tokio::test]
async fn certificate_expiry_is_a_metric() {
    let s = SamlSso::start("").await;
    let m = s.env.metrics().await;
    let line = m
        .lines()
        .find(|l| l.starts_with("portcullis_saml_idp_cert_expiry_seconds{"))
        .unwrap_or_else(|| panic!("no expiry gauge in {m}"));
    let secs: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    // the test IdP's certificate is valid for 30 days from its creation
    assert!((29 * 86_400..=30 * 86_400).contains(&secs), "{line}");
}
