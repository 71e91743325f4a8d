//! Single logout over the HTTP-Redirect binding. Outgoing: a LogoutRequest
//! naming the session's NameID and SessionIndex (SP-initiated), and the
//! LogoutResponse to an IdP's request. Incoming: the IdP's LogoutRequest,
//! whose query signature (SAML bindings §3.4.4.1) must verify with one of
//! the IdP's signing certificates, and its LogoutResponse.
//!
//! A signed message is only as fresh as its `IssueInstant` says: without a
//! bound on it (and on the remembered ids), a LogoutRequest captured once
//! — from a browser history, a proxy log, a Referer — could be replayed for
//! ever, long after the store forgot its id. So both messages need an
//! `IssueInstant` no older than `MAX_MESSAGE_AGE_SECONDS` and not in the
//! future, each with the connection's clock skew, and a LogoutRequest's id
//! is remembered exactly as long as it could still be accepted. A signed
//! message also needs a `Destination` naming this SP's SLO endpoint (SAML
//! bindings §3.4.5.2): a signature alone does not say for whom it was made.

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
/// Longest accepted age of a logout message's `IssueInstant`, on top of the
/// clock skew. A Redirect-binding message is made the moment the browser is
/// sent on its way; minutes are plenty.
pub(super) const MAX_MESSAGE_AGE_SECONDS: i64 = 300;

/// The time a logout message is checked against.
#[derive(Debug, Clone, Copy)]
pub(super) struct Freshness {
    /// Unix seconds.
    pub now: i64,
    /// The connection's `clock_skew_seconds`.
    pub skew: i64,
}

fn err(reason: &'static str, detail: impl Into<String>) -> ConnectionError {
    ConnectionError::new(reason, detail)
}

/// An IdP's LogoutRequest, verified: whom to log out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpLogoutRequest {
    pub id: String,
    pub name_id: String,
    pub session_indexes: Vec<String>,
    /// The first second (unix) at which the request is refused anyway:
    /// its id must be remembered until then.
    pub valid_until: i64,
}

/// A Redirect-binding query split into raw (still URL-encoded) pairs, so
/// the signed octets can be rebuilt exactly as the sender encoded them.
pub(super) struct RedirectQuery<'a> {
    raw: Vec<(&'a str, &'a str)>,
}

impl<'a> RedirectQuery<'a> {
    pub(super) fn parse(query: &'a str) -> Self {
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
    pub(super) fn get(&self, key: &str) -> Option<String> {
        let raw = self.raw(key)?;
        form_urlencoded::parse(format!("v={raw}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    }

    /// Verifies the query signature over `param=…[&RelayState=…]&SigAlg=…`
    /// with one of the IdP's signing certificates. `Ok(false)`: unsigned.
    pub(super) fn verify(
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
pub(super) fn inflate(b64: &str) -> Result<String, ConnectionError> {
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

/// Reads an IdP LogoutRequest (after its signature was verified, so it is
/// always a signed one) and checks issuer, destination (required),
/// `IssueInstant` and `NotOnOrAfter`.
pub(super) fn read_logout_request(
    xml: &str,
    idp_entity_id: &str,
    slo_url: &str,
    at: Freshness,
) -> Result<IdpLogoutRequest, ConnectionError> {
    if !root_is(xml, "LogoutRequest") {
        return Err(err("slo_malformed", "not a LogoutRequest"));
    }
    let issued = check_envelope(xml, "LogoutRequest", idp_entity_id, slo_url, true, at)?;
    let id = first_attr(xml, "LogoutRequest", "ID")
        .ok_or_else(|| err("slo_malformed", "LogoutRequest has no ID"))?;
    let name_id = first_text(xml, "NameID")
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.contains('<'))
        .ok_or_else(|| err("slo_malformed", "LogoutRequest has no NameID"))?;
    // Accepted while the IssueInstant is young enough and, when given,
    // before NotOnOrAfter (both with the skew).
    let mut valid_until = issued + MAX_MESSAGE_AGE_SECONDS + at.skew + 1;
    if let Some(t) = first_attr(xml, "LogoutRequest", "NotOnOrAfter") {
        let t = instant(t, "NotOnOrAfter")?;
        if t + at.skew <= at.now {
            return Err(err("slo_expired", "LogoutRequest NotOnOrAfter has passed"));
        }
        valid_until = valid_until.min(t + at.skew);
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
        valid_until,
    })
}

/// An `xs:dateTime` attribute as unix seconds.
fn instant(value: &str, what: &str) -> Result<i64, ConnectionError> {
    chrono::DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.timestamp())
        .map_err(|_| {
            err(
                "slo_malformed",
                format!("{what} {value:?} is not a dateTime"),
            )
        })
}

/// Reads an IdP LogoutResponse: issuer, destination (required when
/// `signed`), `IssueInstant`, status.
pub(super) fn read_logout_response(
    xml: &str,
    idp_entity_id: &str,
    slo_url: &str,
    signed: bool,
    at: Freshness,
) -> Result<(), ConnectionError> {
    if !root_is(xml, "LogoutResponse") {
        return Err(err("slo_malformed", "not a LogoutResponse"));
    }
    check_envelope(xml, "LogoutResponse", idp_entity_id, slo_url, signed, at)?;
    match first_attr(xml, "StatusCode", "Value") {
        Some(SUCCESS) => Ok(()),
        other => Err(err(
            "slo_idp_status",
            format!("the IdP answered the logout with {other:?}"),
        )),
    }
}

/// Issuer, Destination (required when `signed`) and IssueInstant of a
/// logout message; returns the IssueInstant (unix seconds).
fn check_envelope(
    xml: &str,
    root: &str,
    idp_entity_id: &str,
    slo_url: &str,
    signed: bool,
    at: Freshness,
) -> Result<i64, ConnectionError> {
    let issuer = first_text(xml, "Issuer").map(str::trim);
    if issuer.map(unescape).as_deref() != Some(idp_entity_id) {
        return Err(err(
            "slo_issuer",
            format!("issuer {issuer:?}, expected {idp_entity_id:?}"),
        ));
    }
    match first_attr(xml, root, "Destination") {
        Some(d) if unescape(d) != slo_url => {
            return Err(err(
                "slo_destination",
                format!("Destination {d:?}, expected {slo_url:?}"),
            ));
        }
        None if signed => {
            return Err(err(
                "slo_destination",
                format!("a signed {root} must name its Destination ({slo_url:?})"),
            ));
        }
        _ => {}
    }
    let issued = first_attr(xml, root, "IssueInstant")
        .ok_or_else(|| err("slo_malformed", format!("{root} has no IssueInstant")))?;
    let issued = instant(issued, "IssueInstant")?;
    if issued > at.now + at.skew {
        return Err(err(
            "slo_not_yet_valid",
            format!("{root} IssueInstant is {}s in the future", issued - at.now),
        ));
    }
    if issued + MAX_MESSAGE_AGE_SECONDS + at.skew < at.now {
        return Err(err(
            "slo_expired",
            format!(
                "{root} IssueInstant is {}s old (at most {MAX_MESSAGE_AGE_SECONDS}s plus {}s skew)",
                at.now - issued,
                at.skew
            ),
        ));
    }
    Ok(issued)
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// An SP-initiated LogoutRequest.
pub(super) fn logout_request_xml(
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
pub(super) fn logout_response_xml(
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

    /// 2026-01-01T00:00:00Z
    const T0: i64 = 1_767_225_600;

    fn at(offset: i64) -> Freshness {
        Freshness {
            now: T0 + offset,
            skew: 60,
        }
    }

    fn request(issue_instant: &str) -> String {
        logout_request_xml(
            "_l1",
            issue_instant,
            "https://sp/slo",
            "https://idp/md",
            "alice@acme.com",
            Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"),
            Some("s-1"),
        )
    }

    fn reason(r: Result<impl std::fmt::Debug, ConnectionError>) -> &'static str {
        r.unwrap_err().reason
    }

    #[test]
    fn logout_request_round_trip_and_checks() {
        let xml = request("2026-01-01T00:00:00Z");
        let r = read_logout_request(&xml, "https://idp/md", "https://sp/slo", at(10)).unwrap();
        assert_eq!(r.name_id, "alice@acme.com");
        assert_eq!(r.session_indexes, vec!["s-1"]);
        assert_eq!(r.valid_until, T0 + MAX_MESSAGE_AGE_SECONDS + 60 + 1);
        assert_eq!(
            reason(read_logout_request(
                &xml,
                "https://other/md",
                "https://sp/slo",
                at(10)
            )),
            "slo_issuer"
        );
        assert_eq!(
            reason(read_logout_request(
                &xml,
                "https://idp/md",
                "https://sp/other",
                at(10)
            )),
            "slo_destination"
        );
        let resp = logout_response_xml(
            "_r",
            "2026-01-01T00:00:00Z",
            "https://sp/slo",
            "_l1",
            "https://idp/md",
        );
        assert!(
            read_logout_response(&resp, "https://idp/md", "https://sp/slo", true, at(10)).is_ok()
        );
        assert_eq!(
            reason(read_logout_request(
                &resp,
                "https://idp/md",
                "https://sp/slo",
                at(10)
            )),
            "slo_malformed"
        );
        assert_eq!(inflate("!!").unwrap_err().reason, "slo_malformed");
    }

    #[test]
    fn issue_instant_is_bounded_by_skew_and_max_age() {
        let xml = request("2026-01-01T00:00:00Z");
        let check =
            |offset| read_logout_request(&xml, "https://idp/md", "https://sp/slo", at(offset));
        // the edges of the window are inside it
        assert!(check(-60).is_ok());
        assert!(check(MAX_MESSAGE_AGE_SECONDS + 60).is_ok());
        assert_eq!(reason(check(-61)), "slo_not_yet_valid");
        assert_eq!(reason(check(MAX_MESSAGE_AGE_SECONDS + 61)), "slo_expired");
        for bad in ["", "yesterday", "2026-01-01"] {
            let xml = request(bad);
            assert_eq!(
                reason(read_logout_request(
                    &xml,
                    "https://idp/md",
                    "https://sp/slo",
                    at(0)
                )),
                "slo_malformed",
                "{bad:?}"
            );
        }
        let none = xml.replace(" IssueInstant=\"2026-01-01T00:00:00Z\"", "");
        assert_eq!(
            reason(read_logout_request(
                &none,
                "https://idp/md",
                "https://sp/slo",
                at(0)
            )),
            "slo_malformed"
        );
        // NotOnOrAfter (with the skew) shortens how long the id is kept
        let short = xml.replace(
            "Version=\"2.0\"",
            "Version=\"2.0\" NotOnOrAfter=\"2026-01-01T00:01:00Z\"",
        );
        let r = read_logout_request(&short, "https://idp/md", "https://sp/slo", at(0)).unwrap();
        assert_eq!(r.valid_until, T0 + 60 + 60);
        assert_eq!(
            reason(read_logout_request(
                &short,
                "https://idp/md",
                "https://sp/slo",
                at(120)
            )),
            "slo_expired"
        );
    }

    #[test]
    fn destination_is_required_when_signed() {
        let xml = request("2026-01-01T00:00:00Z").replace(" Destination=\"https://sp/slo\"", "");
        assert_eq!(
            reason(read_logout_request(
                &xml,
                "https://idp/md",
                "https://sp/slo",
                at(0)
            )),
            "slo_destination"
        );
        // spelled with spaces, it is still read (and checked)
        let spaced = request("2026-01-01T00:00:00Z").replace(
            " Destination=\"https://sp/slo\"",
            " Destination = \"https://evil/slo\"",
        );
        assert_eq!(
            reason(read_logout_request(
                &spaced,
                "https://idp/md",
                "https://sp/slo",
                at(0)
            )),
            "slo_destination"
        );
        let resp = logout_response_xml(
            "_r",
            "2026-01-01T00:00:00Z",
            "https://sp/slo",
            "_l1",
            "https://idp/md",
        )
        .replace(" Destination=\"https://sp/slo\"", "");
        assert!(
            read_logout_response(&resp, "https://idp/md", "https://sp/slo", false, at(0)).is_ok()
        );
        assert_eq!(
            reason(read_logout_response(
                &resp,
                "https://idp/md",
                "https://sp/slo",
                true,
                at(0)
            )),
            "slo_destination"
        );
    }
}
