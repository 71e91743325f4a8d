//! Hostile input at the single logout endpoint, with LogoutRequests signed
//! at test time by the test IdP's key (openssl): every refusal is a 400
//! generic page with its `slo_*` reason counted, and no session ends.

use std::io::Write;

use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use crate::support::env::*;
use crate::support::idp::cookie_pair;
use crate::support::refusal::login_failure;
use crate::support::saml::*;

const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";

fn deflate_b64(xml: &str) -> String {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(xml.as_bytes()).unwrap();
    base64::engine::general_purpose::STANDARD.encode(enc.finish().unwrap())
}

/// `SAMLRequest=…&RelayState=…&SigAlg=…&Signature=…` signed with `key`.
fn signed_query(xml: &str, key: &IdpKey, sig_alg: &str) -> String {
    signed_value(&deflate_b64(xml), key, sig_alg)
}

/// The same for any `SAMLRequest` value.
fn signed_value(value: &str, key: &IdpKey, sig_alg: &str) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("SAMLRequest", value);
    q.append_pair("RelayState", "r");
    q.append_pair("SigAlg", sig_alg);
    let q = q.finish();
    let pkey = PKey::private_key_from_pem(&std::fs::read(&key.key).unwrap()).unwrap();
    let md = if sig_alg == RSA_SHA1 {
        MessageDigest::sha1()
    } else {
        MessageDigest::sha256()
    };
    let mut signer = Signer::new(md, &pkey).unwrap();
    signer.update(q.as_bytes()).unwrap();
    let sig = base64::engine::general_purpose::STANDARD.encode(signer.sign_to_vec().unwrap());
    let sig: String = form_urlencoded::byte_serialize(sig.as_bytes()).collect();
    format!("{q}&Signature={sig}")
}

fn logout_request(s: &SamlSso, issuer: &str, destination: &str, name_id: &str) -> String {
    format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_l{}" Version="2.0" IssueInstant="{}" Destination="{destination}"><saml:Issuer>{issuer}</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{name_id}</saml:NameID></samlp:LogoutRequest>"#,
        uuid::Uuid::new_v4().simple(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
    .replace("{slo}", &slo_url(s))
}

fn slo_url(s: &SamlSso) -> String {
    s.env.url(&format!("/.portcullis/saml/{CONNECTION}/slo"))
}

async fn get(s: &SamlSso, query: &str) -> reqwest::Response {
    client()
        .get(format!("{}?{query}", slo_url(s)))
        .send()
        .await
        .unwrap()
}

async fn refused(s: &SamlSso, query: &str, reason: &str) {
    let refusal = s.env.refusal(&login_failure(reason)).await;
    let r = get(s, query).await;
    let body = refusal.assert(r, 400).await;
    assert!(body.contains("couldn"), "{reason}: generic page: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_logout_requests_are_refused_and_end_no_session() {
    let s = SamlSso::start("idp_slo_url = \"https://idp.test/slo\"").await;
    let dir = s.dir.path();
    let st = s.begin().await;
    let r = s.post(&st, &b64(&s.resp(&st).signed(&s.key, dir))).await;
    assert_eq!(r.status(), 303);
    let session = cookie_pair(&r, "portcullis_session=").unwrap();
    let stranger = IdpKey::generate(dir, "stranger");
    let slo = slo_url(&s);
    let good = logout_request(&s, IDP_ENTITY, &slo, "alice@acme.com");

    refused(&s, "", "slo_malformed").await;
    refused(&s, "foo=bar", "slo_malformed").await;
    // unsigned, signed by a stranger, signature of other bytes
    refused(
        &s,
        &format!("SAMLRequest={}", deflate_b64(&good)),
        "slo_signature",
    )
    .await;
    refused(
        &s,
        &signed_query(&good, &stranger, RSA_SHA256),
        "slo_signature",
    )
    .await;
    let q = signed_query(&good, &s.key, RSA_SHA256);
    refused(
        &s,
        &q.replace("RelayState=r", "RelayState=x"),
        "slo_signature",
    )
    .await;
    // SHA-1 without allow_sha1; an unknown SigAlg
    refused(&s, &signed_query(&good, &s.key, RSA_SHA1), "slo_algorithm").await;
    refused(
        &s,
        &signed_query(&good, &s.key, "urn:none"),
        "slo_algorithm",
    )
    .await;
    // genuinely signed, but wrong in content
    let cases = [
        (logout_request(&s, "https://evil.example/idp", &slo, "alice@acme.com"), "slo_issuer"),
        (logout_request(&s, IDP_ENTITY, "https://other.example/slo", "alice@acme.com"), "slo_destination"),
        (format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{good}"), "slo_malformed"),
        (good.replace("LogoutRequest", "AuthnRequest"), "slo_malformed"),
        (good.replace("<saml:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\">alice@acme.com</saml:NameID>", ""), "slo_malformed"),
        (format!("{good}{}", "<!-- pad -->".repeat(8000)), "slo_malformed"),
        (
            good.replace("Version=\"2.0\"", "Version=\"2.0\" NotOnOrAfter=\"2000-01-01T00:00:00Z\""),
            "slo_expired",
        ),
    ];
    for (xml, reason) in &cases {
        refused(&s, &signed_query(xml, &s.key, RSA_SHA256), reason).await;
    }
    // signed, so past the signature: not DEFLATE, not base64, too large
    let plain = base64::engine::general_purpose::STANDARD.encode(&good);
    refused(
        &s,
        &signed_value(&plain, &s.key, RSA_SHA256),
        "slo_malformed",
    )
    .await;
    refused(
        &s,
        &signed_value("%%%", &s.key, RSA_SHA256),
        "slo_malformed",
    )
    .await;
    // a small DEFLATE bomb: 1 MiB once inflated
    let huge = deflate_b64(&" ".repeat(1024 * 1024));
    refused(
        &s,
        &signed_value(&huge, &s.key, RSA_SHA256),
        "slo_malformed",
    )
    .await;
    refused(&s, "SAMLRequest=%%%", "slo_signature").await;

    // alice is still signed in after all of that
    let (status, _) = echo(
        client()
            .get(s.env.url("/dashboard"))
            .header("cookie", &session),
    )
    .await;
    assert_eq!(status, 200);

    // the genuine request ends her session and answers to the IdP's SLO
    let r = get(&s, &signed_query(&good, &s.key, RSA_SHA256)).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("https://idp.test/slo?SAMLResponse="), "{to}");
    assert!(to.contains("&RelayState=r"), "{to}");
    let (status, _) = echo(
        client()
            .get(s.env.url("/dashboard"))
            .header("cookie", &session),
    )
    .await;
    assert_eq!(status, 401);
}

/// A LogoutRequest with full control of its IssueInstant and Destination.
fn logout_request_at(issued: Option<&str>, destination: Option<&str>) -> (String, String) {
    let id = format!("_l{}", uuid::Uuid::new_v4().simple());
    let issued = issued
        .map(|t| format!(" IssueInstant=\"{t}\""))
        .unwrap_or_default();
    let destination = destination
        .map(|d| format!(" Destination=\"{d}\""))
        .unwrap_or_default();
    let xml = format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0"{issued}{destination}><saml:Issuer>{IDP_ENTITY}</saml:Issuer><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">alice@acme.com</saml:NameID></samlp:LogoutRequest>"#
    );
    (id, xml)
}

/// A signed LogoutRequest is only accepted while fresh (IssueInstant no
/// older than 300 s and not in the future, each with the clock skew), only
/// when it names this SP's SLO endpoint as Destination, and once: its id is
/// remembered for this connection exactly until it would be refused anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_requests_must_be_fresh_addressed_and_are_used_once() {
    let s = SamlSso::start("idp_slo_url = \"https://idp.test/slo\"\nclock_skew_seconds = 60").await;
    let slo = slo_url(&s);
    let t = |offset: i64| {
        (chrono::Utc::now() + chrono::Duration::seconds(offset))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    for (issued, destination, reason) in [
        // older than 300 s + 60 s skew; further ahead than the skew
        (Some(t(-400)), Some(slo.as_str()), "slo_expired"),
        (Some(t(120)), Some(slo.as_str()), "slo_not_yet_valid"),
        (None, Some(slo.as_str()), "slo_malformed"),
        (
            Some("yesterday".to_owned()),
            Some(slo.as_str()),
            "slo_malformed",
        ),
        // signed, so a Destination is required
        (Some(t(0)), None, "slo_destination"),
    ] {
        let (_, xml) = logout_request_at(issued.as_deref(), destination);
        refused(&s, &signed_query(&xml, &s.key, RSA_SHA256), reason).await;
    }

    // fresh within the skew: accepted once
    let issued = chrono::Utc::now() - chrono::Duration::seconds(30);
    let (id, xml) = logout_request_at(
        Some(&issued.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        Some(&slo),
    );
    let query = signed_query(&xml, &s.key, RSA_SHA256);
    let r = get(&s, &query).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    refused(&s, &query, "slo_replay").await;

    // remembered for this connection until IssueInstant + 300 + skew, the
    // first second it would be refused as too old anyway
    let store = &s.env.shared.store;
    let kind = format!("saml-logout:{CONNECTION}");
    let until = issued.timestamp() + 300 + 60 + 1;
    assert!(store.one_time().seen(&kind, &id, until - 1).await.unwrap());
    assert!(!store.one_time().seen(&kind, &id, until).await.unwrap());
    assert!(!store.one_time().seen("saml-logout", &id, 0).await.unwrap());
}
