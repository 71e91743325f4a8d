//! `[[tenants.connections]]`: what every connection needs whatever its
//! protocol; the protocol's own table is checked in `saml.rs` or `oidc.rs`.

use std::collections::HashSet;

use crate::config::load::Collector;
use crate::config::schema::{ConnectionConfig, Protocol};

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
    let duplicate = format!("connection id `{}` (ids are global)", conn.id);
    super::unique_id(&conn.id, format!("{key}.id"), ids, &duplicate, c);
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
    protocol_table(conn, key, dev_idp, c);
    crate::config::step_up::acr_map(&conn.acr_map, key, c);
}

/// The protocol's table is required, the other protocol's is refused. A
/// `platform` connection has neither (checked in `platform.rs`).
fn protocol_table(conn: &ConnectionConfig, key: &str, dev_idp: bool, c: &mut Collector<'_>) {
    let protocol = match (conn.protocol, conn.platform) {
        (Some(p), None) => p,
        (None, Some(_)) => return,
        (Some(_), Some(_)) => {
            return c.push(
                format!("{key}.platform"),
                "use either `protocol` (the tenant's own IdP) or `platform` (a pre-configured provider), not both",
            );
        }
        (None, None) => {
            return c.push(
                format!("{key}.protocol"),
                "missing: set `protocol = \"saml\"` or `\"oidc\"`, or `platform = \"google\"`, `\"microsoft\"`, `\"github\"` or `\"apple\"`",
            );
        }
    };
    match protocol {
        Protocol::Saml => {
            match &conn.saml {
                Some(s) => super::saml::saml(s, key, dev_idp, c),
                None => c.push(
                    format!("{key}.protocol"),
                    "a `saml` connection needs a `saml` table (IdP metadata and certificates)",
                ),
            }
            if conn.oidc.is_some() {
                c.push(
                    format!("{key}.oidc"),
                    "`oidc` settings on a `saml` connection",
                );
            }
        }
        Protocol::Oidc => {
            if conn.saml.is_some() {
                c.push(
                    format!("{key}.saml"),
                    "`saml` settings on an `oidc` connection",
                );
            }
            match &conn.oidc {
                Some(o) => super::oidc::oidc(o, conn.preset.as_deref(), key, c),
                // The `saml` table is the mistake already reported.
                None if conn.saml.is_some() => {}
                None => c.push(
                    format!("{key}.protocol"),
                    "an `oidc` connection needs an `oidc` table (issuer, client_id, secret)",
                ),
            }
        }
    }
}
