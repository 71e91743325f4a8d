//! The development IdP (`[dev_idp]`): a real SAML IdP inside the binary for
//! demos and local development. Its key and self-signed certificate are
//! generated when the process first needs them and never leave memory. It
//! answers HTTP-Redirect AuthnRequests from this Portcullis only, offers
//! the configured users on a page, and posts a response signed over the
//! assertion (RSA-SHA256, SHA-256 digest, enveloped XML-DSig by libxmlsec1)
//! to the ACS. The SP verifies it like any other IdP's: the connection
//! (`idp = "dev"`) trusts the generated certificate through metadata.
//!
//! Configuration validation refuses `[dev_idp]` unless every public
//! listener and `server.public_url` are on loopback.

use std::io::Read;
use std::sync::{Arc, OnceLock};

use base64::Engine;
use chrono::{Duration, SecondsFormat, Utc};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use samael::crypto::{Crypto, CryptoProvider};

use super::metadata::{HTTP_REDIRECT_BINDING, escape};
use super::request::EMAIL_NAME_ID;
use super::response::has_dtd;
use crate::config::{Config, DevIdpUser};

/// How long a response from the dev IdP is valid.
pub const VALIDITY_SECONDS: i64 = 300;

/// Largest inflated AuthnRequest accepted.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DevIdpError {
    #[error("key generation: {0}")]
    Key(String),
    #[error("bad AuthnRequest: {0}")]
    Request(String),
    #[error("the ACS URL `{0}` is not one of this Portcullis' dev IdP connections")]
    ForeignAcs(String),
    #[error("no such user `{0}`")]
    UnknownUser(String),
    #[error(
        "`{0}` is not loopback; the development IdP signs a login for anyone, so it only runs on 127.0.0.1, ::1 or localhost"
    )]
    NotLoopback(String),
    #[error("signing: {0}")]
    Sign(String),
}

/// The process-lifetime key and certificate.
struct KeyPair {
    key: PKey<Private>,
    cert_der: Vec<u8>,
    /// PKCS#1 DER of the RSA key, as libxmlsec1 loads it.
    key_der: Vec<u8>,
}

static KEY: OnceLock<Result<Arc<KeyPair>, String>> = OnceLock::new();

fn key_pair() -> Result<Arc<KeyPair>, DevIdpError> {
    KEY.get_or_init(|| generate().map(Arc::new).map_err(|e| e.to_string()))
        .clone()
        .map_err(DevIdpError::Key)
}

fn generate() -> Result<KeyPair, openssl::error::ErrorStack> {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    let rsa = openssl::rsa::Rsa::generate(2048)?;
    let key_der = rsa.private_key_to_der()?;
    let key = PKey::from_rsa(rsa)?;
    let mut name = openssl::x509::X509Name::builder()?;
    name.append_entry_by_nid(Nid::COMMONNAME, "Portcullis development IdP")?;
    let name = name.build();
    let mut b = X509::builder()?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    b.set_serial_number(&serial)?;
    b.set_version(2)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(365)?);
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    b.sign(&key, MessageDigest::sha256())?;
    let cert_der = b.build().to_der()?;
    Ok(KeyPair {
        key,
        cert_der,
        key_der,
    })
}

/// One SP connection the dev IdP serves.
#[derive(Debug, Clone)]
struct Sp {
    entity_id: String,
    acs_url: String,
}

/// A parsed AuthnRequest.
#[derive(Debug, Clone)]
pub struct AuthnReq {
    pub id: String,
    pub acs_url: String,
    pub issuer: String,
}

pub struct DevIdp {
    keys: Arc<KeyPair>,
    pub entity_id: String,
    pub sso_url: String,
    pub pick_path: String,
    pub users: Vec<DevIdpUser>,
    sps: Vec<Sp>,
}

impl DevIdp {
    /// `None` without `[dev_idp]`.
    pub fn from_config(config: &Config) -> Result<Option<Self>, DevIdpError> {
        let Some(dev) = &config.dev_idp else {
            return Ok(None);
        };
        // Also checked by config validation; repeated here because
        // `portcullis demo` overrides addresses after loading.
        let urls = config.public_urls();
        if !urls.on_loopback() {
            return Err(DevIdpError::NotLoopback("server.public_url".into()));
        }
        for (i, l) in config.listeners.iter().enumerate() {
            let loopback = l
                .address
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback());
            if !loopback {
                return Err(DevIdpError::NotLoopback(format!("listeners[{i}].address")));
            }
        }
        let sps = config
            .tenants
            .iter()
            .filter(|t| t.id == dev.tenant)
            .flat_map(|t| t.connections.iter())
            .filter(|c| c.saml.as_ref().and_then(|s| s.idp.as_deref()) == Some("dev"))
            .map(|c| {
                let (entity_id, acs_url) = super::sp_ids(c, &urls);
                Sp { entity_id, acs_url }
            })
            .collect();
        Ok(Some(Self {
            keys: key_pair()?,
            entity_id: urls.dev_idp_metadata(),
            sso_url: urls.dev_idp_sso(),
            pick_path: urls.dev_idp_pick_path(),
            users: dev.users.clone(),
            sps,
        }))
    }

    /// IdP metadata: entity id, the signing certificate, the SSO URL.
    pub fn metadata_xml(&self) -> String {
        let cert = base64::engine::general_purpose::STANDARD.encode(&self.keys.cert_der);
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{}"><md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:NameIDFormat>{EMAIL_NAME_ID}</md:NameIDFormat><md:SingleSignOnService Binding="{HTTP_REDIRECT_BINDING}" Location="{}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#,
            escape(&self.entity_id),
            escape(&self.sso_url)
        )
    }

    /// Decodes an HTTP-Redirect `SAMLRequest` (base64 of raw DEFLATE) and
    /// accepts it only if its ACS URL and issuer are one of the dev IdP's
    /// connections on this Portcullis.
    pub fn parse_request(&self, saml_request: &str) -> Result<AuthnReq, DevIdpError> {
        let bad = |m: String| DevIdpError::Request(m);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(saml_request.trim())
            .map_err(|e| bad(format!("base64: {e}")))?;
        let mut xml = String::new();
        flate2::read::DeflateDecoder::new(&raw[..])
            .take(MAX_REQUEST_BYTES)
            .read_to_string(&mut xml)
            .map_err(|e| bad(format!("inflate: {e}")))?;
        if has_dtd(&xml) {
            return Err(bad("DTD or entity declaration".into()));
        }
        let req: samael::schema::AuthnRequest =
            xml.parse().map_err(|e| bad(format!("XML: {e}")))?;
        let acs_url = req
            .assertion_consumer_service_url
            .clone()
            .ok_or_else(|| bad("no AssertionConsumerServiceURL".into()))?;
        let issuer = req
            .issuer
            .as_ref()
            .and_then(|i| i.value.clone())
            .ok_or_else(|| bad("no Issuer".into()))?;
        if req.id.is_empty() {
            return Err(bad("no ID".into()));
        }
        let Some(sp) = self.sps.iter().find(|sp| sp.acs_url == acs_url) else {
            return Err(DevIdpError::ForeignAcs(acs_url));
        };
        if sp.entity_id != issuer {
            return Err(bad(format!(
                "issuer `{issuer}` is not the SP of `{acs_url}`"
            )));
        }
        Ok(AuthnReq {
            id: req.id,
            acs_url,
            issuer,
        })
    }

    /// The signed `Response` XML for `email` answering `req`.
    pub fn respond(&self, req: &AuthnReq, email: &str) -> Result<String, DevIdpError> {
        let user = self
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
            .ok_or_else(|| DevIdpError::UnknownUser(email.to_owned()))?;
        let xml = self.response_template(req, user);
        let key_der = self.keys.key_der.clone();
        Crypto::sign_xml(xml.as_str(), &key_der).map_err(|e| DevIdpError::Sign(e.to_string()))
    }

    fn response_template(&self, req: &AuthnReq, user: &DevIdpUser) -> String {
        let t = |d: chrono::DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Secs, true);
        let now = Utc::now();
        let response_id = format!("_r{}", uuid::Uuid::new_v4().simple());
        let assertion_id = format!("_a{}", uuid::Uuid::new_v4().simple());
        let groups: String = user
            .groups
            .iter()
            .map(|g| format!("<saml:AttributeValue>{}</saml:AttributeValue>", escape(g)))
            .collect();
        let cert = base64::engine::general_purpose::STANDARD.encode(&self.keys.cert_der);
        let signature = format!(
            r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><ds:Reference URI="#{assertion_id}"><ds:Transforms><ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue></ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>"##
        );
        format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{response_id}" Version="2.0" IssueInstant="{now}" Destination="{acs}" InResponseTo="{irt}"><saml:Issuer>{issuer}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><saml:Assertion ID="{assertion_id}" Version="2.0" IssueInstant="{now}"><saml:Issuer>{issuer}</saml:Issuer>{signature}<saml:Subject><saml:NameID Format="{EMAIL_NAME_ID}">{email}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="{irt}" NotOnOrAfter="{nooa}" Recipient="{acs}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{nb}" NotOnOrAfter="{nooa}"><saml:AudienceRestriction><saml:Audience>{aud}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{now}" SessionIndex="{assertion_id}"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement><saml:Attribute Name="email"><saml:AttributeValue>{email}</saml:AttributeValue></saml:Attribute><saml:Attribute Name="displayName"><saml:AttributeValue>{name}</saml:AttributeValue></saml:Attribute><saml:Attribute Name="groups">{groups}</saml:Attribute></saml:AttributeStatement></saml:Assertion></samlp:Response>"#,
            now = t(now),
            nb = t(now - Duration::seconds(5)),
            nooa = t(now + Duration::seconds(VALIDITY_SECONDS)),
            acs = escape(&req.acs_url),
            irt = escape(&req.id),
            issuer = escape(&self.entity_id),
            aud = escape(&req.issuer),
            email = escape(&user.email),
            name = escape(&user.name),
        )
    }
}

impl std::fmt::Debug for DevIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdp")
            .field("entity_id", &self.entity_id)
            .field("key_bits", &self.keys.key.bits())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::saml::request::{authn_request_xml, redirect_url};

    fn demo() -> (Config, DevIdp) {
        let env = |name: &str| match name {
            "PORTCULLIS_SESSION_KEY" => Some("k".repeat(32)),
            "PORTCULLIS_STORE_KEY" => Some("cG9ydGN1bGxpcy10ZXN0LXN0b3JlLWtleS0wMDAwMDE=".into()),
            "PORTCULLIS_DATA_DIR" => Some("/tmp".into()),
            _ => None,
        };
        let cfg =
            crate::config::from_str(include_str!("../../../config/demo.toml"), "demo.toml", &env)
                .unwrap();
        let dev = DevIdp::from_config(&cfg).unwrap().unwrap();
        (cfg, dev)
    }

    fn saml_request(acs: &str, issuer: &str) -> String {
        let xml = authn_request_xml("_req1", "2026-01-01T00:00:00Z", "x", acs, issuer, None);
        let url = redirect_url("http://idp/sso", &xml, "relay", None).unwrap();
        let q = url.split_once('?').unwrap().1;
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "SAMLRequest")
            .unwrap()
            .1
            .into_owned()
    }

    #[test]
    fn answers_only_this_portcullis_and_signs_a_verifiable_assertion() {
        let (cfg, dev) = demo();
        let conn = &cfg.tenants[0].connections[0];
        let (sp, acs) = crate::auth::saml::sp_ids(conn, &cfg.public_urls());
        assert!(matches!(
            dev.parse_request(&saml_request("https://evil.test/acs", &sp)),
            Err(DevIdpError::ForeignAcs(_))
        ));
        assert!(matches!(
            dev.parse_request(&saml_request(&acs, "https://evil.test/sp")),
            Err(DevIdpError::Request(_))
        ));
        let req = dev.parse_request(&saml_request(&acs, &sp)).unwrap();
        assert_eq!(req.id, "_req1");
        assert!(matches!(
            dev.respond(&req, "mallory@example.com"),
            Err(DevIdpError::UnknownUser(_))
        ));
        let xml = dev.respond(&req, "alice@example.com").unwrap();
        let cert: samael::crypto::CertificateDer = dev.keys.cert_der.clone().into();
        Crypto::verify_signed_xml(xml.as_bytes(), &cert, Some("ID")).unwrap();
        let tampered = xml.replace("Alice Example", "Mallory");
        assert!(Crypto::verify_signed_xml(tampered.as_bytes(), &cert, Some("ID")).is_err());
        // the generated metadata loads through the SP's own parser
        let md = super::super::IdpMetadata::from_xml(&dev.metadata_xml()).unwrap();
        assert_eq!((md.entity_id, md.sso_url), (dev.entity_id, dev.sso_url));
    }

    /// samael (vendored) keeps each IdP certificate's parsed key in a
    /// process-wide cache: a cached key must never stand in for another
    /// certificate, and a hit must judge exactly like a miss.
    #[test]
    fn the_certificate_key_cache_keeps_certificates_apart() {
        use samael::crypto::{CertificateDer, ReduceMode};
        let (cfg, dev) = demo();
        let conn = &cfg.tenants[0].connections[0];
        let (sp, acs) = crate::auth::saml::sp_ids(conn, &cfg.public_urls());
        let req = AuthnReq {
            id: "_req1".into(),
            acs_url: acs,
            issuer: sp,
        };
        let xml = dev.respond(&req, "alice@example.com").unwrap();
        let tampered = xml.replace("Alice Example", "Mallory");
        let idp: CertificateDer = dev.keys.cert_der.clone().into();
        let stranger: CertificateDer = generate().unwrap().cert_der.into();
        let check = |xml: &str, certs: &[CertificateDer]| {
            Crypto::reduce_xml_to_signed(xml, certs, ReduceMode::ValidateAndMarkNoAncestors).is_ok()
        };
        for round in 0..2 {
            // round 0 parses the stranger's key first; round 1 answers all
            // from the cache
            assert!(
                !check(&xml, std::slice::from_ref(&stranger)),
                "round {round}"
            );
            assert!(check(&xml, std::slice::from_ref(&idp)), "round {round}");
            assert!(
                check(&xml, &[stranger.clone(), idp.clone()]),
                "round {round}"
            );
            assert!(
                !check(&tampered, std::slice::from_ref(&idp)),
                "round {round}"
            );
            assert!(
                !check(&tampered, &[stranger.clone(), idp.clone()]),
                "round {round}"
            );
            assert!(Crypto::verify_signed_xml(xml.as_bytes(), &idp, Some("ID")).is_ok());
            assert!(Crypto::verify_signed_xml(xml.as_bytes(), &stranger, Some("ID")).is_err());
        }
    }

    #[test]
    fn refuses_non_loopback_addresses_at_startup() {
        let (mut cfg, _) = demo();
        cfg.listeners[0].address = "0.0.0.0:8080".into();
        assert!(matches!(
            DevIdp::from_config(&cfg),
            Err(DevIdpError::NotLoopback(k)) if k == "listeners[0].address"
        ));
        let (mut cfg, _) = demo();
        cfg.server.public_url = "https://app.example.com".into();
        assert!(matches!(
            DevIdp::from_config(&cfg),
            Err(DevIdpError::NotLoopback(k)) if k == "server.public_url"
        ));
    }
}
