//! `[[tenants.connections]]`: what every connection needs whatever its
//! protocol; the protocol's own table is checked in `saml.rs` or `oidc.rs`.

use std::collections::HashSet;

use crate::config::load::Collector;
use crate::config::schema::ConnectionConfig;
use crate::names::{is_loopback_host, is_slug};

/// Provider presets the SAML and OIDC connections understand.
pub const PRESETS: &[&str] = &[
    "entra",
    "okta",
    "google",
    "onelogin",
    "jumpcloud",
    "duo",
    "generic",
];

/// One connection at `key` (`tenants[i].connections[j]`). `ids` holds the
/// ids seen so far in every tenant: callback URLs carry only the id.
pub(super) fn connection<'a>(
    conn: &'a ConnectionConfig,
    key: &str,
    ids: &mut HashSet<&'a str>,
    dev_idp: bool,
    c: &mut Collector<'_>,
) {
    if !is_slug(&conn.id) {
        c.push(
            format!("{key}.id"),
            "use 1-64 characters from a-z, 0-9, `-` and `_`",
        );
    } else if !ids.insert(conn.id.as_str()) {
        c.push(
            format!("{key}.id"),
            format!("duplicate connection id `{}` (ids are global)", conn.id),
        );
    }
    if let Some(p) = &conn.preset
        && !PRESETS.contains(&p.as_str())
    {
        c.push(
            format!("{key}.preset"),
            format!(
                "unknown preset `{p}`, expected one of {}",
                PRESETS.join(", ")
            ),
        );
    }
    super::saml::saml(conn, key, dev_idp, c);
    super::oidc::oidc(conn, key, c);
}

/// `true` for an `https://` URL, or `http://` to a loopback host (tests and
/// local development only).
pub fn is_trustworthy_url(u: &str) -> bool {
    if u.contains('#') {
        return false;
    }
    match u.parse::<http::Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.host()) {
            (Some("https"), Some(h)) => !h.is_empty(),
            (Some("http"), Some(h)) => is_loopback_host(h),
            _ => false,
        },
        Err(_) => false,
    }
}
