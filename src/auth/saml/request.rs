//! SP-initiated AuthnRequest over the HTTP-Redirect binding: XML, raw
//! DEFLATE, base64, URL-encoded, with the flow relay as `RelayState`.

use std::io::Write;

use base64::Engine;
use flate2::Compression;
use flate2::write::DeflateEncoder;

use super::metadata::escape;

pub(super) const HTTP_POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
pub(super) const EMAIL_NAME_ID: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";

/// A fresh request id. XML IDs must not start with a digit; 128 random
/// bits make it unguessable, so InResponseTo binds the response to this flow.
pub(super) fn new_request_id() -> String {
    format!("_{}", uuid::Uuid::new_v4().simple())
}

/// The AuthnRequest XML. A step-up asks for its context classes with
/// `RequestedAuthnContext Comparison="exact"` (SAML Core 3.3.2.2.1) and,
/// when the route has a `max_age`, for a fresh authentication with
/// `ForceAuthn="true"` (SAML has no maximum age).
pub(super) fn authn_request_xml(
    id: &str,
    issue_instant: &str,
    destination: &str,
    acs_url: &str,
    sp_entity_id: &str,
    step_up: Option<&crate::auth::StepUpAsk>,
) -> String {
    let force = if step_up.is_some_and(|s| s.max_age.is_some()) {
        r#" ForceAuthn="true""#
    } else {
        ""
    };
    let requested: String = match step_up {
        Some(s) if !s.acr_values.is_empty() => format!(
            r#"<samlp:RequestedAuthnContext Comparison="exact">{}</samlp:RequestedAuthnContext>"#,
            s.acr_values
                .iter()
                .map(|c| format!(
                    "<saml:AuthnContextClassRef>{}</saml:AuthnContextClassRef>",
                    escape(c)
                ))
                .collect::<String>()
        ),
        _ => String::new(),
    };
    format!(
        r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{}" Version="2.0" IssueInstant="{}" Destination="{}" AssertionConsumerServiceURL="{}" ProtocolBinding="{HTTP_POST_BINDING}"{force}><saml:Issuer>{}</saml:Issuer><samlp:NameIDPolicy Format="{EMAIL_NAME_ID}" AllowCreate="true"/>{requested}</samlp:AuthnRequest>"#,
        escape(id),
        escape(issue_instant),
        escape(destination),
        escape(acs_url),
        escape(sp_entity_id),
    )
}

/// `sso_url?SAMLRequest=…&RelayState=…` (keeps an existing query); with
/// `key`, also `&SigAlg=…&Signature=…`.
pub(super) fn redirect_url(
    sso_url: &str,
    xml: &str,
    relay: &str,
    key: Option<&super::keys::SpKey>,
) -> std::io::Result<String> {
    redirect_message(sso_url, "SAMLRequest", xml, Some(relay), key)
}

/// A SAML message over the HTTP-Redirect binding (SAML bindings §3.4.4):
/// raw DEFLATE, base64, URL-encoded under `param` (`SAMLRequest` or
/// `SAMLResponse`). Signed per §3.4.4.1: RSA-SHA256 over the exact bytes
/// `param=…&RelayState=…&SigAlg=…` as they appear in the query.
pub(super) fn redirect_message(
    endpoint: &str,
    param: &str,
    xml: &str,
    relay: Option<&str>,
    key: Option<&super::keys::SpKey>,
) -> std::io::Result<String> {
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::default());
    enc.write_all(xml.as_bytes())?;
    let deflated = enc.finish()?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(deflated);
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair(param, &b64);
    if let Some(relay) = relay.filter(|r| !r.is_empty()) {
        query.append_pair("RelayState", relay);
    }
    let mut query = query.finish();
    if let Some(key) = key {
        let sig_alg = form_urlencoded::Serializer::new(String::new())
            .append_pair("SigAlg", super::keys::RSA_SHA256)
            .finish();
        query = format!("{query}&{sig_alg}");
        let signature = key.sign(query.as_bytes()).map_err(std::io::Error::other)?;
        let signature = form_urlencoded::Serializer::new(String::new())
            .append_pair("Signature", &signature)
            .finish();
        query = format!("{query}&{signature}");
    }
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    Ok(format!("{endpoint}{sep}{query}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn redirect_round_trips() {
        let xml = authn_request_xml(
            "_a",
            "2026-01-01T00:00:00Z",
            "https://idp/sso",
            "https://sp/acs",
            "https://sp/md",
            None,
        );
        assert!(!xml.contains("ForceAuthn") && !xml.contains("RequestedAuthnContext"));
        let url = redirect_url("https://idp/sso?x=1", &xml, "relay-1", None).unwrap();
        assert!(url.starts_with("https://idp/sso?x=1&SAMLRequest="));
        let q = url.split_once('?').unwrap().1;
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(q.as_bytes()).into_owned().collect();
        let req = &pairs.iter().find(|(k, _)| k == "SAMLRequest").unwrap().1;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(req)
            .unwrap();
        let mut out = String::new();
        flate2::read::DeflateDecoder::new(&raw[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, xml);
        assert!(pairs.contains(&("RelayState".into(), "relay-1".into())));
        assert!(new_request_id().starts_with('_'));
    }

    #[test]
    fn step_up_asks_for_classes_and_a_fresh_login() {
        let ask = crate::auth::StepUpAsk {
            acr_values: vec![
                "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor".into(),
                "urn:x:<&>".into(),
            ],
            max_age: Some(300),
        };
        let xml = authn_request_xml("_a", "t", "d", "a", "s", Some(&ask));
        assert!(xml.contains(r#" ForceAuthn="true">"#), "{xml}");
        assert!(xml.contains(r#"<samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" AllowCreate="true"/><samlp:RequestedAuthnContext Comparison="exact"><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor</saml:AuthnContextClassRef><saml:AuthnContextClassRef>urn:x:&lt;&amp;&gt;</saml:AuthnContextClassRef></samlp:RequestedAuthnContext></samlp:AuthnRequest>"#), "{xml}");
        let age_only = crate::auth::StepUpAsk {
            acr_values: vec![],
            max_age: Some(60),
        };
        let xml = authn_request_xml("_a", "t", "d", "a", "s", Some(&age_only));
        assert!(xml.contains("ForceAuthn") && !xml.contains("RequestedAuthnContext"));
        let acr_only = crate::auth::StepUpAsk {
            acr_values: vec!["urn:y".into()],
            max_age: None,
        };
        let xml = authn_request_xml("_a", "t", "d", "a", "s", Some(&acr_only));
        assert!(!xml.contains("ForceAuthn") && xml.contains("RequestedAuthnContext"));
    }
}
