//! This SP's metadata for the IdP administrator: entity id, the ACS with
//! the HTTP-POST binding, the single logout endpoint, NameID format
//! emailAddress, and the SP certificate (signing and encryption) when the
//! connection has a key.

use super::metadata::escape;
use super::request::{EMAIL_NAME_ID, HTTP_POST_BINDING};

const HTTP_REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

/// What the SP metadata says.
pub struct SpMetadata<'a> {
    pub entity_id: &'a str,
    pub acs_url: &'a str,
    pub slo_url: Option<&'a str>,
    /// Base64 DER of the SP certificate.
    pub cert_b64: Option<&'a str>,
    pub sign_requests: bool,
}

pub fn sp_metadata_xml(m: &SpMetadata<'_>) -> String {
    let keys = m
        .cert_b64
        .map(|c| {
            ["signing", "encryption"]
                .iter()
                .map(|usage| {
                    format!(
                        "\n    <md:KeyDescriptor use=\"{usage}\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{c}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
                    )
                })
                .collect::<String>()
        })
        .unwrap_or_default();
    let slo = m
        .slo_url
        .map(|u| {
            format!(
                "\n    <md:SingleLogoutService Binding=\"{HTTP_REDIRECT_BINDING}\" Location=\"{}\"/>",
                escape(u)
            )
        })
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{}">
  <md:SPSSODescriptor AuthnRequestsSigned="{}" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">{keys}{slo}
    <md:NameIDFormat>{EMAIL_NAME_ID}</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{HTTP_POST_BINDING}" Location="{}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        escape(m.entity_id),
        m.sign_requests,
        escape(m.acs_url)
    )
}
