//! `[tenants.connections.saml]`: where the IdP's metadata comes from, the
//! certificates it must be signed with, and this SP's own URLs and keys.

use crate::config::load::Collector;
use crate::config::schema::SamlConfig;

/// The largest `idp_metadata_xml` accepted (real metadata is a few KiB;
/// federation aggregates are not per-connection metadata).
const MAX_METADATA_XML: usize = 1 << 20;

/// The `saml` table of a SAML connection at `key`. Its metadata must come
/// from exactly one place and name a signing certificate: samael skips
/// signature checks when the metadata has none.
pub(super) fn saml(s: &SamlConfig, key: &str, dev_idp: bool, c: &mut Collector<'_>) {
    if let Some(idp) = &s.idp {
        if idp != "dev" {
            c.push(
                format!("{key}.saml.idp"),
                "the only value is `dev` (the built-in development IdP)",
            );
        } else if !dev_idp {
            c.push(
                format!("{key}.saml.idp"),
                "`dev` needs a `[dev_idp]` section (development only)",
            );
        } else if s.idp_metadata_file.is_some()
            || s.idp_metadata_xml.is_some()
            || s.idp_entity_id.is_some()
            || s.idp_sso_url.is_some()
            || s.idp_slo_url.is_some()
            || !s.idp_certificates.is_empty()
            || !s.idp_certificate_fingerprints.is_empty()
        {
            c.push(
                format!("{key}.saml.idp"),
                "`dev` brings its own metadata; drop `idp_metadata_file` and the `idp_*` keys",
            );
        }
        return;
    }
    for (n, pin) in s.idp_certificate_fingerprints.iter().enumerate() {
        if parse_sha256_fingerprint(pin).is_none() {
            c.push(
                format!("{key}.saml.idp_certificate_fingerprints[{n}]"),
                "must be a SHA-256 fingerprint: 64 hex digits, colons optional (`openssl x509 -noout -fingerprint -sha256`)",
            );
        }
    }
    let inline = s.idp_entity_id.is_some()
        || s.idp_sso_url.is_some()
        || s.idp_slo_url.is_some()
        || !s.idp_certificates.is_empty();
    if let Some(x) = &s.idp_metadata_xml {
        if s.idp_metadata_file.is_some() || inline {
            c.push(
                format!("{key}.saml.idp_metadata_xml"),
                "give one of `idp_metadata_xml`, `idp_metadata_url`, `idp_metadata_file` or the inline `idp_*` keys",
            );
        }
        if x.len() > MAX_METADATA_XML {
            c.push(
                format!("{key}.saml.idp_metadata_xml"),
                "at most 1 MiB of metadata",
            );
        } else if !x.contains("EntityDescriptor") {
            c.push(
                format!("{key}.saml.idp_metadata_xml"),
                "must be the IdP's SAML metadata XML (an `EntityDescriptor`)",
            );
        }
    }
    if s.idp_metadata_url.is_some() {
        if s.idp_metadata_file.is_some() || s.idp_metadata_xml.is_some() || inline {
            c.push(
                format!("{key}.saml.idp_metadata_url"),
                "give one of `idp_metadata_url`, `idp_metadata_xml`, `idp_metadata_file` or the inline `idp_*` keys",
            );
        }
        // Where it may point (https, public host) is `tenants::egress`.
        if s.metadata_refresh_seconds == 0 {
            c.push(
                format!("{key}.saml.metadata_refresh_seconds"),
                "must be at least 1",
            );
        }
    }
    match (&s.idp_metadata_file, inline) {
        _ if s.idp_metadata_url.is_some() || s.idp_metadata_xml.is_some() => {}
        (Some(_), true) => c.push(
            format!("{key}.saml.idp_metadata_file"),
            "give either `idp_metadata_file` or the inline `idp_*` keys, not both",
        ),
        (Some(f), false) if f.is_empty() => {
            c.push(format!("{key}.saml.idp_metadata_file"), "must not be empty")
        }
        (Some(_), false) => {}
        (None, _) => {
            if s.idp_entity_id.as_deref().unwrap_or("").is_empty() {
                c.push(
                    format!("{key}.saml.idp_entity_id"),
                    "required without `idp_metadata_file`",
                );
            }
            for (k, v) in [
                ("idp_sso_url", s.idp_sso_url.as_deref()),
                ("idp_slo_url", s.idp_slo_url.as_deref()),
            ] {
                match v {
                    Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                        c.push(format!("{key}.saml.{k}"), "must be an http(s) URL")
                    }
                    None if k == "idp_sso_url" => c.push(
                        format!("{key}.saml.{k}"),
                        "required without `idp_metadata_file`",
                    ),
                    _ => {}
                }
            }
            if s.idp_certificates.is_empty() {
                c.push(
                    format!("{key}.saml.idp_certificates"),
                    "at least one IdP signing certificate is required; unsigned responses are never accepted",
                );
            }
            for (n, pem) in s.idp_certificates.iter().enumerate() {
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    c.push(
                        format!("{key}.saml.idp_certificates[{n}]"),
                        "must be a PEM certificate (-----BEGIN CERTIFICATE-----)",
                    );
                }
            }
        }
    }
    for (k, v) in [
        ("sp_entity_id", s.sp_entity_id.as_deref()),
        ("acs_url", s.acs_url.as_deref()),
        ("slo_url", s.slo_url.as_deref()),
    ] {
        if v == Some("") {
            c.push(
                format!("{key}.saml.{k}"),
                "must not be empty (omit it for the default)",
            );
        }
    }
    for (k, v) in [("acs_url", &s.acs_url), ("slo_url", &s.slo_url)] {
        if let Some(u) = v
            && !u.is_empty()
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            c.push(format!("{key}.saml.{k}"), "must be an absolute http(s) URL");
        }
    }
    if s.clock_skew_seconds > 600 {
        c.push(
            format!("{key}.saml.clock_skew_seconds"),
            "at most 600; a larger window mostly helps replays",
        );
    }
    if s.sign_requests && s.sp_key_file.is_none() {
        c.push(
            format!("{key}.saml.sign_requests"),
            "needs `sp_key_file` and `sp_cert_file` (the key that signs)",
        );
    }
    if s.sp_key_file.is_some() != s.sp_cert_file.is_some() {
        c.push(
            format!("{key}.saml.sp_key_file"),
            "`sp_key_file` and `sp_cert_file` go together",
        );
    }
    for (k, v) in [
        ("sp_key_file", &s.sp_key_file),
        ("sp_cert_file", &s.sp_cert_file),
    ] {
        if v.as_deref() == Some("") {
            c.push(format!("{key}.saml.{k}"), "must not be empty");
        }
    }
    match (&s.landing_path, s.allow_idp_initiated) {
        (None, true) => c.push(
            format!("{key}.saml.allow_idp_initiated"),
            "needs `landing_path`: where an unsolicited login lands",
        ),
        (Some(p), _) if crate::redirect::safe_return_to(p).is_none() => c.push(
            format!("{key}.saml.landing_path"),
            "must be a same-origin relative path such as `/`",
        ),
        _ => {}
    }
    for (k, v) in [
        ("email_attribute", &s.email_attribute),
        ("name_attribute", &s.name_attribute),
        ("first_name_attribute", &s.first_name_attribute),
        ("last_name_attribute", &s.last_name_attribute),
        ("groups_attribute", &s.groups_attribute),
    ] {
        if v.as_deref() == Some("") {
            c.push(
                format!("{key}.saml.{k}"),
                "must not be empty (omit it for the preset's)",
            );
        }
    }
}

/// A SHA-256 certificate fingerprint as operators copy it: 64 hex digits,
/// either case, with or without colons (`AB:CD:…`, openssl's format).
pub fn parse_sha256_fingerprint(s: &str) -> Option<[u8; 32]> {
    let hex: Vec<u8> = s.trim().bytes().filter(|b| *b != b':').collect();
    if hex.len() != 64 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
        let digits = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(digits, 16).ok()?;
    }
    Some(out)
}
