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
    allow_loopback: bool,
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
    graph(conn, key, allow_loopback, c);
}

/// `graph`: complete app credentials (an OIDC connection lends its own),
/// a GUID directory, and endpoint overrides on loopback only — the Graph
/// token is a directory-wide read credential and must never be sent
/// anywhere but Microsoft.
fn graph(conn: &ConnectionConfig, key: &str, allow_loopback: bool, c: &mut Collector<'_>) {
    let Some(g) = &conn.graph else { return };
    let k = |f: &str| format!("{key}.graph.{f}");
    if conn.platform.is_some() {
        return c.push(
            k(""),
            "a pre-configured provider's connection takes no graph settings",
        );
    }
    let oidc = conn.oidc.as_ref();
    let lent_id = oidc.map(|o| o.client_id.as_str());
    let lent_secret = oidc.and_then(|o| o.client_secret.as_deref());
    for (field, own, lent) in [
        ("client_id", g.client_id.as_deref(), lent_id),
        ("client_secret", g.client_secret.as_deref(), lent_secret),
    ] {
        match (own, lent) {
            (Some(v), _) if v.trim().is_empty() => c.push(k(field), "must not be empty"),
            (Some(_), _) => {}
            (None, Some(v)) if !v.trim().is_empty() => {}
            (None, _) => c.push(
                k(field),
                "required: the app registration Graph is called as (an OIDC connection with a client secret lends its own)",
            ),
        }
    }
    if let Some(d) = &g.directory_id
        && !crate::config::is_guid(d)
    {
        c.push(
            k("directory_id"),
            "must be the Entra tenant id (a GUID), not a domain",
        );
    }
    if g.cache_seconds > 86_400 {
        c.push(k("cache_seconds"), "at most 86400 (a day)");
    }
    for (field, v) in [
        ("authority_url", &g.authority_url),
        ("graph_url", &g.graph_url),
    ] {
        super::platform::loopback_override(v.as_deref(), &k(field), allow_loopback, c);
    }
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
