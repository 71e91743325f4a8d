//! The deep checks of a tenant that validation alone can't make: parsing
//! its SAML metadata (and checking the pins against it) and its OIDC client
//! key. Without them a bad paste would pass `check` and the admin API and
//! only fail when the generation is built — on every replica at once.

use crate::config::{TenantConfig, parse_sha256_fingerprint};

use super::saml::IdpMetadata;

/// Pushes `(key, message)` for every connection of `t` whose metadata or
/// key would not load; keys are relative to the tenant
/// (`connections[0].saml.idp_metadata_xml`). Remote metadata
/// (`idp_metadata_url`) and the development IdP are not fetched here.
pub fn check_tenant(t: &TenantConfig, push: &mut dyn FnMut(String, String)) {
    for (j, conn) in t.connections.iter().enumerate() {
        if let Some(s) = &conn.saml
            && s.idp.is_none()
            && s.idp_metadata_url.is_none()
        {
            let key = if s.idp_metadata_xml.is_some() {
                "idp_metadata_xml"
            } else if s.idp_metadata_file.is_some() {
                "idp_metadata_file"
            } else {
                "idp_certificates"
            };
            // Malformed pins are validation's finding already.
            let pins: Vec<[u8; 32]> = s
                .idp_certificate_fingerprints
                .iter()
                .filter_map(|p| parse_sha256_fingerprint(p))
                .collect();
            if let Err(e) = IdpMetadata::load(s).and_then(|m| m.check_pins(&pins)) {
                push(format!("connections[{j}].saml.{key}"), e.to_string());
            }
        }
        if let Some(o) = &conn.oidc
            && let Some(pem) = &o.private_key
            && pem.contains("-----BEGIN PRIVATE KEY-----")
            && let Err(e) = super::oidc::check_private_key(pem)
        {
            push(format!("connections[{j}].oidc.private_key"), e);
        }
    }
}
