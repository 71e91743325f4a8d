//! The ACS side: turn a `SAMLResponse` form value into a verified
//! assertion. Cheap refusals (size, base64, DTDs, algorithms, shape) come
//! first; samael then verifies the XML signature with libxmlsec1 and checks
//! conditions on the signed content only; last come the checks samael makes
//! optional (a required issuer, a required audience).

use base64::Engine;
use samael::crypto::{AllowedSignatureAlgorithm, ReduceMode};
use samael::schema::{Assertion, Response};
use samael::service_provider::{Error as SamlError, ServiceProvider};

use crate::auth::ConnectionError;

use super::MAX_RESPONSE_BYTES;

const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const ECDSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
const RSA_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// What a response is checked against.
pub(super) struct Expectations<'a> {
    pub sp: &'a ServiceProvider,
    pub idp_entity_id: &'a str,
    pub sp_entity_id: &'a str,
    pub acs_url: &'a str,
    /// The flow's AuthnRequest id; `None` for an unsolicited response,
    /// which must then name no request at all.
    pub request_id: Option<&'a str>,
    pub allow_sha1: bool,
}

fn err(reason: &'static str, detail: impl Into<String>) -> ConnectionError {
    ConnectionError::new(reason, detail)
}

/// Size, then base64 (IdPs wrap lines), then UTF-8. The size cap applies to
/// the encoded form value, before any decoding work.
pub(super) fn decode(form_value: &str) -> Result<String, ConnectionError> {
    if form_value.len() > MAX_RESPONSE_BYTES {
        return Err(err(
            "too_large",
            format!(
                "SAMLResponse is {} bytes, the limit is {MAX_RESPONSE_BYTES}",
                form_value.len()
            ),
        ));
    }
    // Byte-wise: the bytes of a non-ASCII character are never ASCII
    // whitespace, so this drops exactly the characters a `char` filter would
    // (and a tenth of a verification's time went to re-encoding `char`s).
    let mut compact = Vec::with_capacity(form_value.len());
    compact.extend(form_value.bytes().filter(|b| !b.is_ascii_whitespace()));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|e| err("malformed", format!("SAMLResponse is not base64: {e}")))?;
    String::from_utf8(bytes).map_err(|_| err("malformed", "SAMLResponse is not UTF-8"))
}

/// Any DTD or entity declaration. SAML never needs one, and libxml2 would
/// otherwise be asked to expand entities (XXE, billion laughs).
/// Case-insensitive (ASCII), without copying the document. Most responses
/// have no `<!` at all (no comment, no CDATA), which one fast scan settles.
pub(super) fn has_dtd(xml: &str) -> bool {
    xml.contains("<!")
        && xml.match_indices("<!").any(|(i, _)| {
            let rest = &xml.as_bytes()[i + 2..];
            [b"DOCTYPE".as_slice(), b"ENTITY"].iter().any(|word| {
                rest.get(..word.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(word))
            })
        })
}

/// The start of `chunk` up to the first `char::is_whitespace` character or
/// `stop` byte: a byte scan while the text is ASCII (the ASCII characters
/// `is_whitespace` accepts are exactly the six below, vertical tab
/// included), the `char` split as soon as it is not (U+0085, U+00A0 and
/// other Unicode spaces end a name too). Same result as
/// `chunk.split(|c| c.is_whitespace() || stop.contains(c)).next()`.
fn leading_name<'a>(chunk: &'a str, stop: &[u8]) -> &'a str {
    for (i, b) in chunk.bytes().enumerate() {
        if !b.is_ascii() {
            return chunk
                .split(|c: char| c.is_whitespace() || (c.is_ascii() && stop.contains(&(c as u8))))
                .next()
                .unwrap_or("");
        }
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) || stop.contains(&b) {
            return &chunk[..i];
        }
    }
    chunk
}

/// Local names of all elements, in document order (prefixes dropped).
fn element_names(xml: &str) -> impl Iterator<Item = &str> {
    xml.split('<').skip(1).filter_map(|chunk| {
        let name = leading_name(chunk, b">/");
        if name.is_empty() || name.starts_with(['!', '?']) {
            return None;
        }
        Some(name.rsplit(':').next().unwrap_or(name))
    })
}

/// `Algorithm` values of every `SignatureMethod` and every `DigestMethod`
/// element (by local name), in one pass over the document.
fn algorithms(xml: &str) -> (Vec<&str>, Vec<&str>) {
    let (mut signature, mut digest) = (Vec::new(), Vec::new());
    for chunk in xml.split('<').skip(1) {
        // the name ends at whitespace or at the end of the tag
        let name = leading_name(chunk, b">");
        let out = match name.rsplit(':').next() {
            Some("SignatureMethod") => &mut signature,
            Some("DigestMethod") => &mut digest,
            _ => continue,
        };
        let tag = chunk.split('>').next().unwrap_or("");
        if let Some(rest) = tag.split("Algorithm=").nth(1) {
            // an empty or unquoted value yields "" or garbage, which no allow
            // list contains (slicing by the quote's own length: a byte index
            // would panic on `Algorithm=>` or a multi-byte first character)
            let mut chars = rest.chars();
            let quote = chars.next().unwrap_or('"');
            out.push(chars.as_str().split(quote).next().unwrap_or(""));
        }
    }
    (signature, digest)
}

/// What `precheck` needs of the element names, in one pass.
struct Shape<'a> {
    root: Option<&'a str>,
    assertions: usize,
    encrypted_assertion: bool,
    signature: bool,
}

fn shape(xml: &str) -> Shape<'_> {
    let mut shape = Shape {
        root: None,
        assertions: 0,
        encrypted_assertion: false,
        signature: false,
    };
    for name in element_names(xml) {
        shape.root.get_or_insert(name);
        match name {
            "Assertion" => shape.assertions += 1,
            "EncryptedAssertion" => shape.encrypted_assertion = true,
            "Signature" => shape.signature = true,
            _ => {}
        }
    }
    shape
}

/// Refusals that need no cryptography: DTDs, shape, algorithms, and the
/// unsigned envelope's issuer, destination and InResponseTo. The signed
/// content is checked again by samael.
pub(super) fn precheck(xml: &str, x: &Expectations<'_>) -> Result<(), ConnectionError> {
    if has_dtd(xml) {
        return Err(err("dtd", "response contains a DTD or entity declaration"));
    }
    let shape = shape(xml);
    if shape.root != Some("Response") {
        return Err(err("malformed", "root element is not a samlp:Response"));
    }
    let assertions = shape.assertions;
    if shape.encrypted_assertion {
        return Err(err(
            "unsupported",
            "an EncryptedAssertion, and the connection has no sp_key_file to decrypt it",
        ));
    }
    if assertions != 1 {
        return Err(err(
            "malformed",
            format!("a response must carry exactly one Assertion, this one has {assertions}"),
        ));
    }
    if !shape.signature {
        return Err(err(
            "signature",
            "neither the response nor the assertion is signed",
        ));
    }
    let mut sig_ok = vec![RSA_SHA256, ECDSA_SHA256];
    let mut digest_ok = vec![SHA256];
    if x.allow_sha1 {
        sig_ok.push(RSA_SHA1);
        digest_ok.push(SHA1);
    }
    let (signature_methods, digest_methods) = algorithms(xml);
    for a in signature_methods {
        if !sig_ok.contains(&a) {
            return Err(err(
                "algorithm",
                format!("signature algorithm {a} is not allowed"),
            ));
        }
    }
    for a in digest_methods {
        if !digest_ok.contains(&a) {
            return Err(err(
                "algorithm",
                format!("digest algorithm {a} is not allowed"),
            ));
        }
    }
    let resp: Response = xml
        .parse()
        .map_err(|e| err("malformed", format!("not a SAML Response: {e}")))?;
    match resp.issuer.as_ref().and_then(|i| i.value.as_deref()) {
        None => return Err(err("issuer", "response has no Issuer")),
        Some(i) if i != x.idp_entity_id => {
            return Err(err(
                "issuer",
                format!("response issuer {i:?}, expected {:?}", x.idp_entity_id),
            ));
        }
        Some(_) => {}
    }
    // samael reads the Status only when the whole response is signed; an
    // assertion-only signature would otherwise turn an IdP's refusal into a
    // login.
    match resp
        .status
        .as_ref()
        .and_then(|s| s.status_code.value.as_deref())
    {
        Some(SUCCESS) => {}
        other => {
            return Err(err(
                "idp_status",
                format!("the IdP answered with status {other:?}"),
            ));
        }
    }
    if let Some(d) = &resp.destination
        && d != x.acs_url
    {
        return Err(err(
            "destination",
            format!("Destination {d:?}, expected {:?}", x.acs_url),
        ));
    }
    if let Some(irt) = &resp.in_response_to
        && Some(irt.as_str()) != x.request_id
    {
        return Err(err(
            "in_response_to",
            format!(
                "InResponseTo {irt:?} is not this flow's request {:?}",
                x.request_id
            ),
        ));
    }
    Ok(())
}

/// Blocking: XML-DSig verification in libxmlsec1 and samael's checks on
/// the verified content. Run it on a blocking thread.
pub(super) fn verify(xml: &str, x: &Expectations<'_>) -> Result<Assertion, ConnectionError> {
    let ids: Vec<&str> = x.request_id.into_iter().collect();
    let assertion =
        x.sp.parse_xml_response_with_mode(xml, Some(&ids), ReduceMode::ValidateAndMarkNoAncestors)
            .map_err(map_samael)?;
    // samael skips SubjectConfirmationData/@InResponseTo when it allows
    // IdP-initiated responses: an unsolicited assertion must name no request.
    if x.request_id.is_none()
        && assertion
            .subject
            .iter()
            .flat_map(|s| s.subject_confirmations.iter().flatten())
            .any(|c| {
                c.subject_confirmation_data
                    .as_ref()
                    .is_some_and(|d| d.in_response_to.is_some())
            })
    {
        return Err(err(
            "in_response_to",
            "an unsolicited assertion names a request (InResponseTo)",
        ));
    }
    // samael checks the audience only when a restriction is present.
    let audiences: Vec<&str> = assertion
        .conditions
        .iter()
        .flat_map(|c| c.audience_restrictions.iter().flatten())
        .flat_map(|r| r.audience.iter().map(String::as_str))
        .collect();
    if !audiences.contains(&x.sp_entity_id) {
        return Err(err(
            "audience",
            format!(
                "audiences {audiences:?} do not include {:?}",
                x.sp_entity_id
            ),
        ));
    }
    if assertion
        .conditions
        .as_ref()
        .and_then(|c| c.not_on_or_after)
        .is_none()
    {
        return Err(err(
            "malformed",
            "assertion Conditions have no NotOnOrAfter",
        ));
    }
    Ok(assertion)
}

/// The algorithms handed to samael. It has no SHA-1 variant: with
/// `allow_sha1` it gets no list, and `precheck` is what keeps the set to
/// RSA/ECDSA-SHA256 plus RSA-SHA1.
pub(super) fn samael_algorithms(allow_sha1: bool) -> Option<Vec<AllowedSignatureAlgorithm>> {
    (!allow_sha1).then(|| {
        vec![
            AllowedSignatureAlgorithm::RsaSha256,
            AllowedSignatureAlgorithm::EcdsaSha256,
        ]
    })
}

fn map_samael(e: SamlError) -> ConnectionError {
    let reason = match &e {
        SamlError::FailedToValidateSignature | SamlError::CryptoXmlError(_) => "signature",
        SamlError::DestinationValidationError { .. } => "destination",
        SamlError::AssertionRecipientMismatch { .. } => "recipient",
        SamlError::AssertionExpired { .. }
        | SamlError::ResponseExpired { .. }
        | SamlError::AssertionConditionExpired { .. }
        | SamlError::AssertionSubjectConfirmationExpired { .. } => "expired",
        SamlError::AssertionConditionExpiredBefore { .. }
        | SamlError::AssertionSubjectConfirmationExpiredBefore { .. } => "not_yet_valid",
        SamlError::AssertionIssuerMismatch { .. } | SamlError::ResponseIssuerMismatch { .. } => {
            "issuer"
        }
        SamlError::AssertionConditionAudienceRestrictionFailed { .. } => "audience",
        SamlError::AssertionInResponseToInvalid { .. }
        | SamlError::ResponseInResponseToInvalid { .. } => "in_response_to",
        SamlError::ResponseBadStatusCode { .. } => "idp_status",
        SamlError::EncryptedAssertionsNotYetSupported => "unsupported",
        _ => "malformed",
    };
    err(reason, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The scans as they were before the byte fast paths (and before the
    /// panic on `Algorithm=>` was fixed, so they run on values whose first
    /// character is a one-byte quote).
    fn element_names_by_chars(xml: &str) -> Vec<&str> {
        xml.split('<')
            .skip(1)
            .filter_map(|chunk| {
                let name = chunk
                    .split(|c: char| c.is_whitespace() || c == '>' || c == '/')
                    .next()?;
                if name.is_empty() || name.starts_with(['!', '?']) {
                    return None;
                }
                Some(name.rsplit(':').next().unwrap_or(name))
            })
            .collect()
    }

    fn algorithms_by_chars<'a>(xml: &'a str, local: &str) -> Vec<&'a str> {
        let mut out = Vec::new();
        for chunk in xml.split('<').skip(1) {
            let tag = chunk.split('>').next().unwrap_or("");
            let name = tag.split(char::is_whitespace).next().unwrap_or("");
            if name.rsplit(':').next() != Some(local) {
                continue;
            }
            if let Some(rest) = tag.split("Algorithm=").nth(1) {
                let quote = rest.chars().next().unwrap_or('"');
                out.push(rest[1..].split(quote).next().unwrap_or(""));
            }
        }
        out
    }

    /// Documents made of the pieces that matter to the scans: markup,
    /// names, prefixes, quotes, ASCII and Unicode whitespace, non-ASCII.
    fn soup() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "<",
            ">",
            "/",
            ":",
            "!",
            "?",
            "=",
            "\"",
            "'",
            " ",
            "\t",
            "\n",
            "\r",
            "\u{b}",
            "\u{c}",
            "\u{85}",
            "\u{a0}",
            "\u{2003}",
            "\u{3000}",
            "é",
            "ds",
            "Assertion",
            "EncryptedAssertion",
            "Signature",
            "Response",
            "SignatureMethod",
            "DigestMethod",
            "Algorithm=\"a\"",
            "Algorithm='b'",
            "x",
        ]);
        prop::collection::vec(piece, 0..40).prop_map(|p| p.concat())
    }

    proptest! {
        #[test]
        fn byte_scans_equal_the_char_scans(xml in soup()) {
            prop_assert_eq!(element_names(&xml).collect::<Vec<_>>(), element_names_by_chars(&xml));
            // the old code panicked on an empty value or a multi-byte quote
            let old_safe = xml.split("Algorithm=").skip(1).all(|rest| {
                rest.chars().next().is_some_and(|c| c.is_ascii() && c != '>' && c != '<')
            });
            if old_safe {
                let (signature, digest) = algorithms(&xml);
                prop_assert_eq!(signature, algorithms_by_chars(&xml, "SignatureMethod"));
                prop_assert_eq!(digest, algorithms_by_chars(&xml, "DigestMethod"));
            }
        }
    }

    /// What a test response looks like; each field a knob.
    struct Doc {
        issuer: &'static str,
        status: &'static str,
        destination: Option<&'static str>,
        in_response_to: Option<&'static str>,
        confirmation_irt: Option<&'static str>,
        audience: Option<&'static str>,
        not_on_or_after: bool,
        assertions: usize,
        encrypted: bool,
        signature: bool,
        signature_alg: &'static str,
        digest_alg: &'static str,
    }

    const IDP: &str = "https://idp.example.com";
    const SP: &str = "https://sp.example.com/saml/metadata";
    const ACS: &str = "https://sp.example.com/saml/acs";

    impl Default for Doc {
        fn default() -> Self {
            Doc {
                issuer: IDP,
                status: SUCCESS,
                destination: Some(ACS),
                in_response_to: Some("_req1"),
                confirmation_irt: Some("_req1"),
                audience: Some(SP),
                not_on_or_after: true,
                assertions: 1,
                encrypted: false,
                signature: true,
                signature_alg: RSA_SHA256,
                digest_alg: SHA256,
            }
        }
    }

    fn t(d: chrono::DateTime<chrono::Utc>) -> String {
        d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    impl Doc {
        /// The response XML; the (first) assertion carries an enveloped
        /// signature template over itself when `signature` is set.
        fn xml(&self, cert_b64: &str) -> String {
            let now = chrono::Utc::now();
            let nooa = t(now + chrono::Duration::seconds(300));
            let signature = if self.signature {
                format!(
                    r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{}"/><ds:Reference URI="#_a0"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="{}"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"##,
                    self.signature_alg, self.digest_alg
                )
            } else {
                String::new()
            };
            let confirmation_irt = self
                .confirmation_irt
                .map(|i| format!(r#" InResponseTo="{i}""#))
                .unwrap_or_default();
            let audience = self
                .audience
                .map(|a| {
                    format!("<saml:AudienceRestriction><saml:Audience>{a}</saml:Audience></saml:AudienceRestriction>")
                })
                .unwrap_or_default();
            let conditions_nooa = if self.not_on_or_after {
                format!(r#" NotOnOrAfter="{nooa}""#)
            } else {
                String::new()
            };
            let assertions: String = (0..self.assertions)
                .map(|i| {
                    format!(
                        r#"<saml:Assertion ID="_a{i}" Version="2.0" IssueInstant="{now}"><saml:Issuer>{issuer}</saml:Issuer>{sig}<saml:Subject><saml:NameID>alice@acme.com</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData{confirmation_irt} NotOnOrAfter="{nooa}" Recipient="{ACS}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{nb}"{conditions_nooa}>{audience}</saml:Conditions><saml:AuthnStatement AuthnInstant="{now}" SessionIndex="_a{i}"/></saml:Assertion>"#,
                        now = t(now),
                        nb = t(now - chrono::Duration::seconds(5)),
                        issuer = self.issuer,
                        sig = if i == 0 { signature.as_str() } else { "" },
                    )
                })
                .collect();
            let encrypted = if self.encrypted {
                "<saml:EncryptedAssertion/>"
            } else {
                ""
            };
            let destination = self
                .destination
                .map(|d| format!(r#" Destination="{d}""#))
                .unwrap_or_default();
            let irt = self
                .in_response_to
                .map(|i| format!(r#" InResponseTo="{i}""#))
                .unwrap_or_default();
            format!(
                r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r1" Version="2.0" IssueInstant="{now}"{destination}{irt}><saml:Issuer>{issuer}</saml:Issuer><samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status>{assertions}{encrypted}</samlp:Response>"#,
                now = t(now),
                issuer = self.issuer,
                status = self.status,
            )
        }
    }

    fn expectations<'a>(
        sp: &'a ServiceProvider,
        request_id: Option<&'a str>,
        allow_sha1: bool,
    ) -> Expectations<'a> {
        Expectations {
            sp,
            idp_entity_id: IDP,
            sp_entity_id: SP,
            acs_url: ACS,
            request_id,
            allow_sha1,
        }
    }

    fn precheck_reason(
        doc: Doc,
        request_id: Option<&str>,
        allow_sha1: bool,
    ) -> Option<&'static str> {
        let sp = ServiceProvider::default();
        precheck(&doc.xml("AA=="), &expectations(&sp, request_id, allow_sha1))
            .err()
            .map(|e| e.reason)
    }

    #[test]
    fn precheck_refusals() {
        const HMAC_SHA1: &str = "http://www.w3.org/2000/09/xmldsig#hmac-sha1";
        let req = Some("_req1");
        assert_eq!(precheck_reason(Doc::default(), req, false), None);
        for (doc, why) in [
            (
                Doc {
                    issuer: "https://evil.example.com",
                    ..Doc::default()
                },
                "issuer",
            ),
            (
                Doc {
                    status: "urn:oasis:names:tc:SAML:2.0:status:Requester",
                    ..Doc::default()
                },
                "idp_status",
            ),
            (
                Doc {
                    destination: Some("https://evil.example.com/acs"),
                    ..Doc::default()
                },
                "destination",
            ),
            (
                Doc {
                    in_response_to: Some("_other"),
                    ..Doc::default()
                },
                "in_response_to",
            ),
            (
                Doc {
                    assertions: 0,
                    ..Doc::default()
                },
                "malformed",
            ),
            (
                Doc {
                    assertions: 2,
                    ..Doc::default()
                },
                "malformed",
            ),
            (
                Doc {
                    encrypted: true,
                    ..Doc::default()
                },
                "unsupported",
            ),
            (
                Doc {
                    signature: false,
                    ..Doc::default()
                },
                "signature",
            ),
            (
                Doc {
                    signature_alg: RSA_SHA1,
                    ..Doc::default()
                },
                "algorithm",
            ),
            (
                Doc {
                    digest_alg: SHA1,
                    ..Doc::default()
                },
                "algorithm",
            ),
            (
                Doc {
                    signature_alg: HMAC_SHA1,
                    ..Doc::default()
                },
                "algorithm",
            ),
        ] {
            assert_eq!(precheck_reason(doc, req, false), Some(why));
        }
        // Optional envelope fields may be absent.
        let bare = Doc {
            destination: None,
            in_response_to: None,
            ..Doc::default()
        };
        assert_eq!(precheck_reason(bare, req, false), None);
        // An unsolicited response must name no request.
        assert_eq!(
            precheck_reason(Doc::default(), None, false),
            Some("in_response_to")
        );
        // allow_sha1 opens RSA-SHA1 and SHA-1 digests, never HMAC.
        let sha1 = || Doc {
            signature_alg: RSA_SHA1,
            digest_alg: SHA1,
            ..Doc::default()
        };
        assert_eq!(precheck_reason(sha1(), req, true), None);
        let hmac = Doc {
            signature_alg: HMAC_SHA1,
            ..Doc::default()
        };
        assert_eq!(precheck_reason(hmac, req, true), Some("algorithm"));
        // Not a Response at all, or with a DTD.
        let sp = ServiceProvider::default();
        let x = expectations(&sp, req, false);
        let wrapped = format!("<x>{}</x>", Doc::default().xml("AA=="));
        assert_eq!(precheck(&wrapped, &x).unwrap_err().reason, "malformed");
        let dtd = format!("<!DOCTYPE r>{}", Doc::default().xml("AA=="));
        assert_eq!(precheck(&dtd, &x).unwrap_err().reason, "dtd");
    }

    /// A key pair and self-signed certificate, once per test binary.
    fn idp_key() -> &'static (Vec<u8>, Vec<u8>) {
        use openssl::asn1::Asn1Time;
        use openssl::hash::MessageDigest;
        use openssl::nid::Nid;
        use openssl::pkey::PKey;
        use openssl::x509::{X509, X509Name};
        static KEY: std::sync::OnceLock<(Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
        KEY.get_or_init(|| {
            let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
            let key_der = rsa.private_key_to_der().unwrap();
            let key = PKey::from_rsa(rsa).unwrap();
            let mut name = X509Name::builder().unwrap();
            name.append_entry_by_nid(Nid::COMMONNAME, "test IdP")
                .unwrap();
            let name = name.build();
            let mut b = X509::builder().unwrap();
            b.set_version(2).unwrap();
            b.set_subject_name(&name).unwrap();
            b.set_issuer_name(&name).unwrap();
            b.set_pubkey(&key).unwrap();
            b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
                .unwrap();
            b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
                .unwrap();
            b.sign(&key, MessageDigest::sha256()).unwrap();
            (key_der, b.build().to_der().unwrap())
        })
    }

    /// The SP as the connection builds it, trusting `idp_key`.
    fn service_provider(unsolicited: bool) -> ServiceProvider {
        let cert = base64::engine::general_purpose::STANDARD.encode(&idp_key().1);
        let md = format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{IDP}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{IDP}/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
        );
        let md = crate::auth::saml::IdpMetadata::from_xml(&md).unwrap();
        ServiceProvider {
            entity_id: Some(SP.into()),
            metadata_url: Some(SP.into()),
            acs_url: Some(ACS.into()),
            idp_metadata: md.descriptor,
            allow_idp_initiated: unsolicited,
            max_issue_delay: chrono::Duration::seconds(120),
            max_clock_skew: chrono::Duration::seconds(60),
            allowed_signature_algorithms: samael_algorithms(false),
            ..ServiceProvider::default()
        }
    }

    fn signed(doc: Doc) -> String {
        use samael::crypto::{Crypto, CryptoProvider};
        let cert = base64::engine::general_purpose::STANDARD.encode(&idp_key().1);
        Crypto::sign_xml(doc.xml(&cert).as_str(), &idp_key().0).unwrap()
    }

    /// The checks after the signature: what samael leaves optional.
    #[test]
    fn verify_after_the_signature() {
        let sp = service_provider(false);
        let x = expectations(&sp, Some("_req1"), false);
        let ok = signed(Doc::default());
        precheck(&ok, &x).unwrap();
        let a = verify(&ok, &x).unwrap();
        assert_eq!(
            a.subject
                .and_then(|s| s.name_id)
                .map(|n| n.value)
                .as_deref(),
            Some("alice@acme.com")
        );
        let tampered = ok.replace("alice@acme.com", "mallory@acme.com");
        assert_eq!(verify(&tampered, &x).unwrap_err().reason, "signature");
        for (doc, why) in [
            (
                Doc {
                    audience: None,
                    ..Doc::default()
                },
                "audience",
            ),
            (
                Doc {
                    audience: Some("https://other-sp.example.com"),
                    ..Doc::default()
                },
                "audience",
            ),
            (
                Doc {
                    not_on_or_after: false,
                    ..Doc::default()
                },
                "malformed",
            ),
        ] {
            assert_eq!(verify(&signed(doc), &x).unwrap_err().reason, why);
        }
        // IdP-initiated: allowed only when the assertion names no request.
        let sp = service_provider(true);
        let x = expectations(&sp, None, false);
        let unsolicited = || Doc {
            in_response_to: None,
            confirmation_irt: None,
            ..Doc::default()
        };
        assert!(verify(&signed(unsolicited()), &x).is_ok());
        let naming = Doc {
            confirmation_irt: Some("_req1"),
            ..unsolicited()
        };
        assert_eq!(
            verify(&signed(naming), &x).unwrap_err().reason,
            "in_response_to"
        );
    }

    /// samael's errors → the closed reasons of the refusal metric.
    #[test]
    fn samael_errors_map_to_reasons() {
        let time = || "2026-01-01T00:00:00Z".to_owned();
        let none = || None::<String>;
        for (e, why) in [
            (SamlError::FailedToValidateSignature, "signature"),
            (
                SamlError::DestinationValidationError {
                    response_destination: none(),
                    sp_acs_url: none(),
                },
                "destination",
            ),
            (
                SamlError::AssertionRecipientMismatch {
                    assertion_recipient: none(),
                    sp_acs_url: none(),
                },
                "recipient",
            ),
            (SamlError::AssertionExpired { time: time() }, "expired"),
            (SamlError::ResponseExpired { time: time() }, "expired"),
            (
                SamlError::AssertionConditionExpired { time: time() },
                "expired",
            ),
            (
                SamlError::AssertionSubjectConfirmationExpired { time: time() },
                "expired",
            ),
            (
                SamlError::AssertionConditionExpiredBefore { time: time() },
                "not_yet_valid",
            ),
            (
                SamlError::AssertionSubjectConfirmationExpiredBefore { time: time() },
                "not_yet_valid",
            ),
            (
                SamlError::AssertionIssuerMismatch {
                    issuer: none(),
                    entity_id: none(),
                },
                "issuer",
            ),
            (
                SamlError::ResponseIssuerMismatch {
                    issuer: none(),
                    entity_id: none(),
                },
                "issuer",
            ),
            (
                SamlError::AssertionConditionAudienceRestrictionFailed {
                    requirement: "x".into(),
                },
                "audience",
            ),
            (
                SamlError::AssertionInResponseToInvalid {
                    possible_ids: vec![],
                },
                "in_response_to",
            ),
            (
                SamlError::ResponseInResponseToInvalid {
                    possible_ids: vec![],
                },
                "in_response_to",
            ),
            (
                SamlError::ResponseBadStatusCode { code: "x".into() },
                "idp_status",
            ),
            (SamlError::EncryptedAssertionsNotYetSupported, "unsupported"),
            (SamlError::DeserializeResponseError, "malformed"),
        ] {
            let detail = e.to_string();
            let mapped = map_samael(e);
            assert_eq!((mapped.reason, mapped.detail), (why, detail));
        }
    }

    #[test]
    fn sha1_leaves_the_list_to_precheck() {
        assert_eq!(samael_algorithms(true), None);
        assert_eq!(
            samael_algorithms(false),
            Some(vec![
                AllowedSignatureAlgorithm::RsaSha256,
                AllowedSignatureAlgorithm::EcdsaSha256
            ])
        );
    }

    #[test]
    fn the_size_limit_is_inclusive() {
        // `A` * 4n is valid base64 (of NUL bytes, valid UTF-8).
        assert!(decode(&"A".repeat(MAX_RESPONSE_BYTES)).is_ok());
    }

    #[test]
    fn cheap_refusals() {
        assert_eq!(
            decode(&"A".repeat(MAX_RESPONSE_BYTES + 1))
                .unwrap_err()
                .reason,
            "too_large"
        );
        assert_eq!(decode("!!not base64!!").unwrap_err().reason, "malformed");
        assert_eq!(decode("PHg+\n").unwrap(), "<x>");
        assert!(has_dtd(
            "<?xml version='1.0'?><!doctype r [<!entity x 'y'>]><r/>"
        ));
        assert!(has_dtd("<r/><!ENTITY x 'y'>"));
        assert!(has_dtd("<r/><!DocType r>"));
        assert!(!has_dtd("<r><!-- DOCTYPE --><![CDATA[ENTITY]]></r>"));
        assert!(!has_dtd("<r/><!"));
        assert!(!has_dtd("<r/><!DOCTYP"));
        assert_eq!(
            algorithms(
                r#"<ds:SignatureMethod Algorithm="a"/><SignatureMethod Algorithm='b'><x:DigestMethod Algorithm="c"/>"#,
            ),
            (vec!["a", "b"], vec!["c"])
        );
        // hostile values: no panic, and nothing an allow list contains
        assert_eq!(
            algorithms("<SignatureMethod Algorithm=><DigestMethod Algorithm=\u{e9}x\u{e9}>"),
            (vec![""], vec!["x"])
        );
        let names: Vec<&str> = element_names(
            "<?xml?><samlp:Response a='1'><saml:Assertion/><!-- x --></samlp:Response>",
        )
        .collect();
        assert_eq!(names, vec!["Response", "Assertion"]);
    }
}
