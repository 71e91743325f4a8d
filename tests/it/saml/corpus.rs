//! The hostile SAML corpus: one file per case in tests/fixtures/saml/ (the
//! scheme is in its README.md). Each case is filled in for a fresh login
//! flow, signed by `xmlsec1` at test time where its header says so, posted
//! to the ACS, and must be refused with the reason its header names, as
//! counted by `portcullis_login_failures_total{reason}`.

use std::path::Path;

use chrono::{Duration, SecondsFormat, Utc};

use crate::support::env::*;
use crate::support::saml::*;

struct Case {
    name: String,
    reason: String,
    sign: Sign,
    untrusted: bool,
    sha1: bool,
    twice: bool,
    no_flow: bool,
    after_sign: Vec<(String, String)>,
    body: String,
}

fn load(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).unwrap();
    let (header, body) = text.split_once("-->\n").expect("a header comment");
    let header = header.trim_start_matches("<!--").trim();
    let mut case = Case {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        reason: String::new(),
        sign: Sign::Nothing,
        untrusted: false,
        sha1: false,
        twice: false,
        no_flow: false,
        after_sign: Vec::new(),
        body: body.trim_end().to_owned(),
    };
    for field in header.split(';') {
        let (k, v) = field.split_once(':').expect("key: value");
        let v = v.trim();
        match k.trim() {
            "reason" => case.reason = v.to_owned(),
            "sign" => {
                case.sign = match v {
                    "assertion" => Sign::Assertion,
                    "response" => Sign::Response,
                    "none" => Sign::Nothing,
                    other => panic!("{}: sign {other}", case.name),
                }
            }
            "key" => case.untrusted = v == "untrusted",
            "sha1" => case.sha1 = v == "true",
            "post" => case.twice = v == "twice",
            "flow" => case.no_flow = v == "none",
            "after-sign" => {
                let (from, to) = v.split_once(" => ").expect("FROM => TO");
                case.after_sign.push((from.to_owned(), to.to_owned()));
            }
            other => panic!("{}: unknown header key {other}", case.name),
        }
    }
    assert!(!case.reason.is_empty(), "{}: no reason", case.name);
    case
}

fn strip_decl(xml: &str) -> String {
    match xml.find("?>") {
        Some(i) if xml.starts_with("<?xml") => xml[i + 2..].trim_start().to_owned(),
        _ => xml.to_owned(),
    }
}

/// `(whole element, element without its Signature, Signature, Signature's
/// content)` for the first `<tag` element of `xml`.
fn parts(xml: &str, open: &str, close: &str) -> (String, String, String, String) {
    let start = xml.find(open).expect(open);
    let end = xml.rfind(close).expect(close) + close.len();
    let element = xml[start..end].to_owned();
    let s = element.find("<ds:Signature").expect("signed");
    let e = element.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let signature = element[s..e].to_owned();
    let inner_start = signature.find('>').unwrap() + 1;
    let inner = signature[inner_start..signature.len() - "</ds:Signature>".len()].to_owned();
    let unsigned = format!("{}{}", &element[..s], &element[e..]);
    (element, unsigned, signature, inner)
}

fn fill(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    assert!(!out.contains("{{"), "unfilled placeholder in {out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_case_is_refused_with_its_reason() {
    let s = SamlSso::start("").await;
    let dir = s.dir.path();
    let untrusted = IdpKey::generate(dir, "untrusted");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/saml");
    let mut paths: Vec<_> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "xml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 30, "corpus has only {} cases", paths.len());
    let t = |d: chrono::DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut reasons_seen = std::collections::BTreeSet::new();
    for path in &paths {
        let case = load(path);
        let st = s.begin().await;
        let other = s.begin().await;
        let now = Utc::now();
        // genuine signed material of this flow, for the wrapping cases
        let good = s.resp(&st);
        let signed_assertion = strip_decl(&good.signed(&s.key, dir));
        let (sa, sa_unsigned, sa_sig, sa_inner) =
            parts(&signed_assertion, "<saml:Assertion", "</saml:Assertion>");
        let mut good_response = s.resp(&st);
        good_response.sign = Sign::Response;
        let signed_response = strip_decl(&good_response.signed(&s.key, dir));
        let (sr, sr_unsigned, sr_sig, sr_inner) =
            parts(&signed_response, "<samlp:Response", "</samlp:Response>");
        let assertion_id = format!("_a{}", uuid::Uuid::new_v4().simple());
        let response_id = format!("_r{}", uuid::Uuid::new_v4().simple());
        let reference = match case.sign {
            Sign::Response => response_id.clone(),
            _ => assertion_id.clone(),
        };
        let vars: Vec<(&str, String)> = vec![
            ("SIGNATURE", signature_template(&reference, case.sha1)),
            ("NOW", t(now)),
            ("NOT_BEFORE", t(now - Duration::seconds(30))),
            ("NOT_ON_OR_AFTER", t(now + Duration::seconds(300))),
            ("PAST", t(now - Duration::seconds(3600))),
            ("LONG_AGO", t(now - Duration::seconds(7200))),
            ("FUTURE", t(now + Duration::seconds(3600))),
            ("ASSERTION_ID", assertion_id.clone()),
            ("RESPONSE_ID", response_id),
            ("REQUEST_ID", st.request_id.clone()),
            ("OTHER_REQUEST_ID", other.request_id.clone()),
            ("ACS", s.acs()),
            ("SP_ENTITY", s.sp_entity()),
            ("IDP_ENTITY", IDP_ENTITY.into()),
            ("NAME_ID", "alice@acme.com".into()),
            ("PADDING_300K", "a".repeat(300 * 1024)),
            ("SIGNED_ASSERTION_ID", good.assertion_id.clone()),
            ("SIGNED_ASSERTION", sa),
            ("SIGNED_ASSERTION_UNSIGNED", sa_unsigned),
            ("ASSERTION_SIGNATURE", sa_sig),
            ("ASSERTION_SIGNATURE_INNER", sa_inner),
            ("SIGNED_RESPONSE", sr),
            ("SIGNED_RESPONSE_UNSIGNED", sr_unsigned),
            ("RESPONSE_SIGNATURE", sr_sig),
            ("RESPONSE_SIGNATURE_INNER", sr_inner),
        ];
        let xml = fill(&case.body, &vars);
        let signer = Resp {
            assertion_id,
            sign: case.sign,
            sha1: case.sha1,
            ..s.resp(&st)
        };
        let key = if case.untrusted { &untrusted } else { &s.key };
        let mut xml = signer.sign_template(&xml, key, dir);
        for (from, to) in &case.after_sign {
            let from = fill(from, &vars);
            assert!(
                xml.contains(&from),
                "{}: {from} not in the signed XML",
                case.name
            );
            xml = xml.replacen(&from, &fill(to, &vars), 1);
        }
        let body = b64(&xml);
        let post = || async {
            if case.no_flow {
                client()
                    .post(s.acs())
                    .form(&[("SAMLResponse", body.as_str())])
                    .send()
                    .await
                    .unwrap()
            } else {
                s.post(&st, &body).await
            }
        };
        if case.reason == "none" {
            let r = post().await;
            assert_eq!(
                r.status(),
                303,
                "{}: {}",
                case.name,
                r.text().await.unwrap()
            );
            continue;
        }
        if case.twice {
            let r = post().await;
            assert_eq!(r.status(), 303, "{} (first use)", case.name);
        }
        // No session (cookie or row), the app untouched, counted once.
        let refusal = s
            .env
            .refusal(&crate::support::refusal::login_failure(&case.reason))
            .await;
        let page = refusal.assert(post().await, 403).await;
        assert!(
            page.contains("couldn"),
            "{}: generic page expected",
            case.name
        );
        assert!(!page.contains("mallory"), "{}: nothing echoed", case.name);
        reasons_seen.insert(case.reason.clone());
    }
    // the corpus covers the list, by reason
    for r in [
        "signature",
        "malformed",
        "expired",
        "not_yet_valid",
        "audience",
        "destination",
        "recipient",
        "in_response_to",
        "replay",
        "algorithm",
        "dtd",
        "too_large",
        "domain_not_verified",
        "issuer",
        "unsolicited",
    ] {
        assert!(reasons_seen.contains(r), "no case for {r}");
    }
}
