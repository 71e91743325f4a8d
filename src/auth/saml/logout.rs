//! Single logout over the HTTP-Redirect binding. Outgoing: a LogoutRequest
//! naming the session's NameID and SessionIndex (SP-initiated), and the
//! LogoutResponse to an IdP's request. Incoming: the IdP's LogoutRequest,
//! whose query signature (SAML bindings §3.4.4.1) must verify with one of
//! the IdP's signing certificates, and its LogoutResponse.

use std::io::Read;

use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use samael::service_provider::ServiceProvider;

use super::metadata::{IdpMetadata, escape};
use super::response::has_dtd;
use super::xml::{element_span, first_attr, first_text};
use crate::auth::ConnectionError;

const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
/// Inflated logout messages are small; anything larger is hostile.
const MAX_INFLATED: u64 = 64 * 1024;

fn err(reason: &'static str, detail: impl Into<String>) -> ConnectionError {
    ConnectionError::new(reason, detail)
}

/// An IdP's LogoutRequest, verified: whom to log out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpLogoutRequest {
    pub id: String,
    pub name_id: String,
    pub session_indexes: Vec<String>,
}

/// A Redirect-binding query split into raw (still URL-encoded) pairs, so
/// the signed octets can be rebuilt exactly as the sender encoded them.
pub struct RedirectQuery<'a> {
    raw: Vec<(&'a str, &'a str)>,
}

impl<'a> RedirectQuery<'a> {
    pub fn parse(query: &'a str) -> Self {
        Self {
            raw: query
                .split('&')
                .filter_map(|p| p.split_once('=').or(Some((p, ""))))
                .collect(),
        }
    }

    fn raw(&self, key: &str) -> Option<&'a str> {
        self.raw.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// The decoded value of `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        let raw = self.raw(key)?;
        form_urlencoded::parse(format!("v={raw}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    }

    /// Verifies the query signature over `param=…[&RelayState=…]&SigAlg=…`
    /// with one of the IdP's signing certificates. `Ok(false)`: unsigned.
    pub fn verify(
        &self,
        param: &str,
        idp: &IdpMetadata,
        allow_sha1: bool,
    ) -> Result<bool, ConnectionError> {
        let (Some(sig_alg), Some(signature)) = (self.get("SigAlg"), self.get("Signature")) else {
            return Ok(false);
        };
        let digest = match sig_alg.as_str() {
            RSA_SHA256 => MessageDigest::sha256(),
            RSA_SHA1 if allow_sha1 => MessageDigest::sha1(),
            other => {
                return Err(err(
                    "slo_algorithm",
                    format!("SigAlg {other} is not allowed"),
                ));
            }
        };
        let mut signed = format!("{param}={}", self.raw(param).unwrap_or(""));
        if let Some(relay) = self.raw("RelayState") {
            signed.push_str(&format!("&RelayState={relay}"));
        }
        signed.push_str(&format!("&SigAlg={}", self.raw("SigAlg").unwrap_or("")));
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.replace([' ', '\n', '\r'], ""))
            .map_err(|_| err("slo_signature", "Signature is not base64"))?;
        let probe = ServiceProvider {
            idp_metadata: idp.descriptor.clone(),
            ..ServiceProvider::default()
        };
        let certs = probe
            .idp_signing_certs()
            .map_err(|e| err("slo_signature", e.to_string()))?
            .unwrap_or_default();
        for der in certs {
            let Ok(cert) = openssl::x509::X509::from_der(der.der_data()) else {
                continue;
            };
            let Ok(key) = cert.public_key() else { continue };
            let Ok(mut v) = Verifier::new(digest, &key) else {
                continue;
            };
            if v.update(signed.as_bytes()).is_ok() && v.verify(&signature).unwrap_or(false) {
                return Ok(true);
            }
        }
        Err(err(
            "slo_signature",
            "the query signature does not verify with any IdP signing certificate",
        ))
    }
}

/// base64 → raw inflate (bounded) → UTF-8, no DTD.
pub fn inflate(b64: &str) -> Result<String, ConnectionError> {
    if b64.len() > 64 * 1024 {
        return Err(err("slo_malformed", "message too large"));
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.replace([' ', '\n', '\r'], ""))
        .map_err(|_| err("slo_malformed", "not base64"))?;
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&raw[..])
        .take(MAX_INFLATED + 1)
        .read_to_string(&mut xml)
        .map_err(|_| err("slo_malformed", "not DEFLATE-compressed UTF-8"))?;
    if xml.len() as u64 > MAX_INFLATED {
        return Err(err("slo_malformed", "inflated message too large"));
    }
    if has_dtd(&xml) {
        return Err(err("slo_malformed", "DTD in a logout message"));
    }
    Ok(xml)
}

/// The document's root element has local name `local`.
fn root_is(xml: &str, local: &str) -> bool {
    xml.split('<')
        .skip(1)
        .find(|c| !c.starts_with(['?', '!']))
        .and_then(|c| {
            c.split(|ch: char| ch.is_whitespace() || ch == '>' || ch == '/')
                .next()
        })
        .is_some_and(|name| name.rsplit(':').next() == Some(local))
}

/// Reads an IdP LogoutRequest (after its signature was verified) and
/// checks issuer and destination.
pub fn read_logout_request(
    xml: &str,
    idp_entity_id: &str,
    slo_url: &str,
) -> Result<IdpLogoutRequest, ConnectionError> {
    if !root_is(xml, "LogoutRequest") {
        return Err(err("slo_malformed", "not a LogoutRequest"));
    }
    check_envelope(xml, "LogoutRequest", idp_entity_id, slo_url)?;
    let id = first_attr(xml, "LogoutRequest", "ID")
        .ok_or_else(|| err("slo_malformed", "LogoutRequest has no ID"))?;
    let name_id = first_text(xml, "NameID")
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.contains('<'))
        .ok_or_else(|| err("slo_malformed", "LogoutRequest has no NameID"))?;
    if let Some(t) = first_attr(xml, "LogoutRequest", "NotOnOrAfter")
        && let Ok(t) = chrono::DateTime::parse_from_rfc3339(t)
        && t.timestamp() < crate::clock::now()
    {
        return Err(err("slo_expired", "LogoutRequest NotOnOrAfter has passed"));
    }
    let mut session_indexes = Vec::new();
    let mut rest = xml;
    while let Some((s, e)) = element_span(rest, "SessionIndex") {
        if let Some(v) = first_text(&rest[s..e], "SessionIndex") {
            session_indexes.push(v.trim().to_owned());
        }
        rest = &rest[e..];
    }
    Ok(IdpLogoutRequest {
        id: id.to_owned(),
        name_id: unescape(name_id),
        session_indexes: session_indexes.iter().map(|s| unescape(s)).collect(),
    })
}

/// Reads an IdP LogoutResponse: issuer, destination, status.
pub fn read_logout_response(
    xml: &str,
    idp_entity_id: &str,
    slo_url: &str,
) -> Result<(), ConnectionError> {
    if !root_is(xml, "LogoutResponse") {
        return Err(err("slo_malformed", "not a LogoutResponse"));
    }
    check_envelope(xml, "LogoutResponse", idp_entity_id, slo_url)?;
    match first_attr(xml, "StatusCode", "Value") {
        Some(SUCCESS) => Ok(()),
        other => Err(err(
            "slo_idp_status",
            format!("the IdP answered the logout with {other:?}"),
        )),
    }
}

fn check_envelope(
    xml: &str,
    root: &str,
    idp_entity_id: &str,
    slo_url: &str,
) -> Result<(), ConnectionError> {
    let issuer = first_text(xml, "Issuer").map(str::trim);
    if issuer.map(unescape).as_deref() != Some(idp_entity_id) {
        return Err(err(
            "slo_issuer",
            format!("issuer {issuer:?}, expected {idp_entity_id:?}"),
        ));
    }
    if let Some(d) = first_attr(xml, root, "Destination")
        && unescape(d) != slo_url
    {
        return Err(err(
            "slo_destination",
            format!("Destination {d:?}, expected {slo_url:?}"),
        ));
    }
    Ok(())
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// An SP-initiated LogoutRequest.
pub fn logout_request_xml(
    id: &str,
    issue_instant: &str,
    destination: &str,
    sp_entity_id: &str,
    name_id: &str,
    name_id_format: Option<&str>,
    session_index: Option<&str>,
) -> String {
    let format = name_id_format
        .map(|f| format!(r#" Format="{}""#, escape(f)))
        .unwrap_or_default();
    let index = session_index
        .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", escape(s)))
        .unwrap_or_default();
    format!(
        r#"<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{}" Version="2.0" IssueInstant="{}" Destination="{}"><saml:Issuer>{}</saml:Issuer><saml:NameID{format}>{}</saml:NameID>{index}</samlp:LogoutRequest>"#,
        escape(id),
        escape(issue_instant),
        escape(destination),
        escape(sp_entity_id),
        escape(name_id),
    )
}

/// The LogoutResponse to an IdP's LogoutRequest.
pub fn logout_response_xml(
    id: &str,
    issue_instant: &str,
    destination: &str,
    in_response_to: &str,
    sp_entity_id: &str,
) -> String {
    format!(
        r#"<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{}" Version="2.0" IssueInstant="{}" Destination="{}" InResponseTo="{}"><saml:Issuer>{}</saml:Issuer><samlp:Status><samlp:StatusCode Value="{SUCCESS}"/></samlp:Status></samlp:LogoutResponse>"#,
        escape(id),
        escape(issue_instant),
        escape(destination),
        escape(in_response_to),
        escape(sp_entity_id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logout_request_round_trip_and_checks() {
        let xml = logout_request_xml(
            "_l1",
            "2026-01-01T00:00:00Z",
            "https://sp/slo",
            "https://idp/md",
            "alice@acme.com",
            Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"),
            Some("s-1"),
        );
        let r = read_logout_request(&xml, "https://idp/md", "https://sp/slo").unwrap();
        assert_eq!(r.name_id, "alice@acme.com");
        assert_eq!(r.session_indexes, vec!["s-1"]);
        assert_eq!(
            read_logout_request(&xml, "https://other/md", "https://sp/slo")
                .unwrap_err()
                .reason,
            "slo_issuer"
        );
        assert_eq!(
            read_logout_request(&xml, "https://idp/md", "https://sp/other")
                .unwrap_err()
                .reason,
            "slo_destination"
        );
        let resp = logout_response_xml("_r", "t", "https://sp/slo", "_l1", "https://idp/md");
        assert!(read_logout_response(&resp, "https://idp/md", "https://sp/slo").is_ok());
        assert_eq!(
            read_logout_request(&resp, "https://idp/md", "https://sp/slo")
                .unwrap_err()
                .reason,
            "slo_malformed"
        );
        assert_eq!(inflate("!!").unwrap_err().reason, "slo_malformed");
    }
}
