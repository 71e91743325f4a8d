//! IdP metadata: from a file or from inline settings, always with at least
//! one signing certificate. samael silently skips signature verification
//! when the metadata names no certificate, so such metadata never loads.

use base64::Engine;
use samael::metadata::EntityDescriptor;
use samael::service_provider::ServiceProvider;

use crate::config::SamlConfig;

use super::response::has_dtd;

pub(super) const HTTP_REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("cannot read IdP metadata file {0}: {1}")]
    Read(String, std::io::Error),
    #[error("IdP metadata contains a DTD or entity declaration")]
    Dtd,
    #[error("IdP metadata is not a SAML EntityDescriptor: {0}")]
    Parse(String),
    #[error("IdP metadata has no IDPSSODescriptor with an HTTP-Redirect SingleSignOnService")]
    NoSsoUrl,
    #[error(
        "IdP metadata has no signing certificate; without one nothing could be verified, so it is refused"
    )]
    NoSigningCertificate,
    #[error("IdP certificate #{0} is not valid PEM: {1}")]
    Certificate(usize, String),
    #[error("IdP metadata is incomplete: {0}")]
    Incomplete(&'static str),
    #[error(
        "IdP signing certificate(s) {} match none of idp_certificate_fingerprints; the metadata is refused",
        .0.join(", ")
    )]
    PinMismatch(Vec<String>),
}

/// A certificate's SHA-256 fingerprint (of its DER encoding).
pub(super) type Fingerprint = [u8; 32];

/// `AB:CD:…`, the way `openssl x509 -fingerprint -sha256` prints it, so an
/// operator can compare a log line with a configured pin at a glance.
pub(super) fn fingerprint_hex(fp: &Fingerprint) -> String {
    fp.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The IdP as the SP needs it.
#[derive(Debug, Clone)]
pub struct IdpMetadata {
    pub entity_id: String,
    pub sso_url: String,
    pub slo_url: Option<String>,
    /// Parsed metadata, handed to samael for verification.
    pub descriptor: EntityDescriptor,
    /// SHA-256 of every signing certificate samael will verify with
    /// (sorted, no duplicates): what pins are checked against and what a
    /// refresh compares to notice a key change.
    pub signing_fingerprints: Vec<Fingerprint>,
}

impl IdpMetadata {
    /// Loads from `idp_metadata_xml`, `idp_metadata_file` or the inline keys.
    pub fn load(cfg: &SamlConfig) -> Result<Self, MetadataError> {
        let xml = match (&cfg.idp_metadata_xml, &cfg.idp_metadata_file) {
            (Some(xml), _) => xml.clone(),
            (None, Some(path)) => {
                std::fs::read_to_string(path).map_err(|e| MetadataError::Read(path.clone(), e))?
            }
            (None, None) => inline_xml(cfg)?,
        };
        Self::from_xml(&xml)
    }

    /// Parses metadata XML and refuses it without a signing certificate.
    pub fn from_xml(xml: &str) -> Result<Self, MetadataError> {
        if has_dtd(xml) {
            return Err(MetadataError::Dtd);
        }
        let descriptor = xml
            .parse::<EntityDescriptor>()
            .map_err(|e| MetadataError::Parse(e.to_string()))?;
        let entity_id = descriptor
            .entity_id
            .clone()
            .filter(|e| !e.is_empty())
            .ok_or(MetadataError::Incomplete("no entityID"))?;
        let probe = ServiceProvider {
            idp_metadata: descriptor.clone(),
            ..ServiceProvider::default()
        };
        let mut signing_fingerprints: Vec<Fingerprint> = match probe.idp_signing_certs() {
            Ok(Some(certs)) if !certs.is_empty() => certs
                .iter()
                .map(|c| openssl::sha::sha256(c.der_data()))
                .collect(),
            Ok(_) => return Err(MetadataError::NoSigningCertificate),
            Err(e) => return Err(MetadataError::Certificate(0, e.to_string())),
        };
        signing_fingerprints.sort_unstable();
        signing_fingerprints.dedup();
        let sso_url = probe
            .sso_binding_location(HTTP_REDIRECT_BINDING)
            .ok_or(MetadataError::NoSsoUrl)?;
        let slo_url = probe.slo_binding_location(HTTP_REDIRECT_BINDING);
        Ok(Self {
            entity_id,
            sso_url,
            slo_url,
            descriptor,
            signing_fingerprints,
        })
    }

    /// With pins configured, every signing certificate must be one of
    /// them: a certificate added to the metadata by whoever could change
    /// it is exactly what a pin is there to stop. A pin that matches no
    /// certificate is fine (the next key, pinned ahead of a rotation).
    pub fn check_pins(&self, pins: &[Fingerprint]) -> Result<(), MetadataError> {
        if pins.is_empty() {
            return Ok(());
        }
        let unpinned: Vec<String> = self
            .signing_fingerprints
            .iter()
            .filter(|fp| !pins.contains(fp))
            .map(fingerprint_hex)
            .collect();
        if unpinned.is_empty() {
            Ok(())
        } else {
            Err(MetadataError::PinMismatch(unpinned))
        }
    }

    /// The signing fingerprints for a log line.
    pub fn fingerprints_hex(&self) -> Vec<String> {
        self.signing_fingerprints
            .iter()
            .map(fingerprint_hex)
            .collect()
    }
}

impl IdpMetadata {
    /// `notAfter` of every signing certificate, as unix seconds, so
    /// operators see a rotation coming (metric and log warnings).
    pub fn signing_cert_expiries(&self) -> Result<Vec<i64>, MetadataError> {
        let probe = ServiceProvider {
            idp_metadata: self.descriptor.clone(),
            ..ServiceProvider::default()
        };
        let certs = probe
            .idp_signing_certs()
            .map_err(|e| MetadataError::Certificate(0, e.to_string()))?
            .unwrap_or_default();
        let epoch = openssl::asn1::Asn1Time::from_unix(0)
            .map_err(|e| MetadataError::Certificate(0, e.to_string()))?;
        certs
            .iter()
            .enumerate()
            .map(|(n, der)| {
                let cert = openssl::x509::X509::from_der(der.der_data())
                    .map_err(|e| MetadataError::Certificate(n, e.to_string()))?;
                let diff = epoch
                    .diff(cert.not_after())
                    .map_err(|e| MetadataError::Certificate(n, e.to_string()))?;
                Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
            })
            .collect()
    }
}

/// Inline settings rendered as metadata, so both sources go through the
/// same parser and the same certificate check.
fn inline_xml(cfg: &SamlConfig) -> Result<String, MetadataError> {
    let entity_id = cfg
        .idp_entity_id
        .as_deref()
        .ok_or(MetadataError::Incomplete("idp_entity_id"))?;
    let sso = cfg
        .idp_sso_url
        .as_deref()
        .ok_or(MetadataError::Incomplete("idp_sso_url"))?;
    let mut keys = String::new();
    for (n, pem) in cfg.idp_certificates.iter().enumerate() {
        let cert = openssl::x509::X509::from_pem(pem.trim().as_bytes())
            .map_err(|e| MetadataError::Certificate(n, e.to_string()))?;
        let der = cert
            .to_der()
            .map_err(|e| MetadataError::Certificate(n, e.to_string()))?;
        keys.push_str(&format!(
            r#"<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
            base64::engine::general_purpose::STANDARD.encode(der)
        ));
    }
    let slo = cfg
        .idp_slo_url
        .as_deref()
        .map(|u| {
            format!(
                r#"<md:SingleLogoutService Binding="{HTTP_REDIRECT_BINDING}" Location="{}"/>"#,
                escape(u)
            )
        })
        .unwrap_or_default();
    Ok(format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{}"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{keys}{slo}<md:SingleSignOnService Binding="{HTTP_REDIRECT_BINDING}" Location="{}"/></md:IDPSSODescriptor></md:EntityDescriptor>"#,
        escape(entity_id),
        escape(sso)
    ))
}

/// XML attribute escaping.
pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_without_certificate_is_refused() {
        let xml = r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="http://idp/"><md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#;
        assert!(matches!(
            IdpMetadata::from_xml(xml),
            Err(MetadataError::NoSigningCertificate)
        ));
        let dtd = format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{xml}");
        assert!(matches!(
            IdpMetadata::from_xml(&dtd),
            Err(MetadataError::Dtd)
        ));
    }
}
