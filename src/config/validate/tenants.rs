//! `[[tenants]]`, `[dns]` and `[dev_idp]`: who owns which domain, how
//! ownership is proven, and the development IdP that skips the proof.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use crate::config::EgressRules;
use crate::config::load::Collector;
use crate::config::schema::{Config, GroupsSource, Protocol, ScimGroupName};
use crate::names::{is_hostname, is_public_mail_domain};

pub(super) fn tenants(cfg: &Config, c: &mut Collector<'_>) {
    let mut ids = HashSet::new();
    let mut domain_owner: HashMap<String, &str> = HashMap::new();
    let mut connection_ids = HashSet::new();
    // (issuer, machine audience) → connection: a machine token must lead
    // to one connection, so to one tenant.
    let mut machine: HashMap<(&str, &str), &str> = HashMap::new();
    for (i, t) in cfg.tenants.iter().enumerate() {
        for (j, conn) in t.connections.iter().enumerate() {
            let Some(o) = &conn.oidc else { continue };
            let Some(aud) = o.machine_audience.as_deref() else {
                continue;
            };
            if conn.platform.is_some() {
                c.push(
                    format!("tenants[{i}].connections[{j}].oidc.machine_audience"),
                    "machine access needs a connection of its own (`protocol = \"oidc\"`), not a pre-configured provider",
                );
            } else if let Some(other) = machine.insert((o.issuer.as_str(), aud), &conn.id) {
                c.push(
                    format!("tenants[{i}].connections[{j}].oidc.machine_audience"),
                    format!("connection `{other}` already takes tokens of this issuer for `{aud}`; a machine token must name one tenant"),
                );
            }
        }
        for (j, d) in t.domains.iter().enumerate() {
            let key = format!("tenants[{i}].domains[{j}]");
            let lower = d.to_ascii_lowercase();
            if !is_hostname(&lower) || !lower.contains('.') {
                c.push(key, format!("`{d}` is not a domain name"));
            } else if is_public_mail_domain(&lower) {
                c.push(
                    key,
                    format!("`{d}` is a public mail provider; no tenant can own it"),
                );
            } else if let Some(owner) = domain_owner.get(&lower) {
                c.push(key, format!("`{d}` is already claimed by tenant `{owner}`; a domain belongs to one tenant"));
            } else {
                domain_owner.insert(lower, &t.id);
            }
        }
        for (j, conn) in t.connections.iter().enumerate() {
            let key = format!("tenants[{i}].connections[{j}]");
            super::connections::connection(
                conn,
                &key,
                &mut connection_ids,
                cfg.dev_idp.is_some(),
                cfg.admin.allow_loopback_idp_urls,
                c,
            );
        }
        for group in t.group_roles.keys() {
            if group.is_empty() {
                c.push(
                    format!("tenants[{i}].group_roles"),
                    "group names must not be empty",
                );
            }
        }
        egress(cfg, i, c);
        groups(cfg, i, c);
        super::headers::connection_claims(cfg, i, c);
        if t.jit.default_role.as_deref() == Some("") {
            c.push(
                format!("tenants[{i}].jit.default_role"),
                "must not be empty (omit it for no role)",
            );
        }
        let duplicate = format!("tenant id `{}`", t.id);
        super::unique_id(&t.id, format!("tenants[{i}].id"), &mut ids, &duplicate, c);
    }
}

/// The URLs the server fetches for tenant `i` (SAML metadata, OIDC
/// discovery) against the rules of the tenant's source: the same check for
/// the file, the admin API and the portal; the operator's `[egress]`
/// allowances count for the file's tenants only.
fn egress(cfg: &Config, i: usize, c: &mut Collector<'_>) {
    let Some(t) = cfg.tenants.get(i) else { return };
    let rules = EgressRules::for_origin(cfg, t.origin);
    for (j, conn) in t.connections.iter().enumerate() {
        let key = format!("tenants[{i}].connections[{j}]");
        let saml = conn
            .saml
            .as_ref()
            .and_then(|s| s.idp_metadata_url.as_deref());
        // An `oidc` table on another protocol is already a finding.
        let oidc = conn
            .oidc
            .as_ref()
            .filter(|_| conn.protocol == Some(Protocol::Oidc))
            .map(|o| o.issuer.as_str());
        for (field, url) in [("saml.idp_metadata_url", saml), ("oidc.issuer", oidc)] {
            if let Some(u) = url
                && let Err(e) = rules.check_url(u)
            {
                c.push(format!("{key}.{field}"), e.finding());
            }
        }
    }
}

/// `groups_source` and `[tenants.scim] group_name`: a setting that could
/// only leave users without groups, or that nothing would read, is a
/// mistake to point at rather than to run with.
fn groups(cfg: &Config, i: usize, c: &mut Collector<'_>) {
    let Some(t) = cfg.tenants.get(i) else { return };
    if t.groups_source == Some(GroupsSource::Scim) && !cfg.scim.enabled {
        c.push(
            format!("tenants[{i}].groups_source"),
            "`scim` needs `[scim] enabled = true`: without SCIM this tenant's users would have no groups",
        );
    }
    if t.scim.group_name != ScimGroupName::default() {
        let unused = if !cfg.scim.enabled {
            Some("`[scim] enabled = false`")
        } else if t.groups_source == Some(GroupsSource::Idp) {
            Some("`groups_source = \"idp\"`")
        } else {
            None
        };
        if let Some(why) = unused {
            c.push(
                format!("tenants[{i}].scim.group_name"),
                format!("has no effect with {why}: sessions carry no SCIM groups"),
            );
        }
    }
}

pub(super) fn dns(cfg: &Config, c: &mut Collector<'_>) {
    let d = &cfg.dns;
    for (i, ns) in d.nameservers.iter().enumerate() {
        if parse_nameserver(ns).is_none() {
            c.push(
                format!("dns.nameservers[{i}]"),
                "must be `IP` or `IP:PORT`, e.g. `1.1.1.1:53`",
            );
        }
    }
    if !is_hostname(&d.record_prefix) {
        c.push(
            "dns.record_prefix",
            "must be a DNS label such as `_portcullis-challenge`",
        );
    }
    // The grace counts from the last time the record was seen; shorter than
    // the re-verification period, one missed check would lapse a domain.
    if d.lapse_grace_seconds < d.reverify_seconds {
        c.push(
            "dns.lapse_grace_seconds",
            format!("must be at least reverify_seconds ({})", d.reverify_seconds),
        );
    }
    super::nonzero(
        "dns",
        [
            ("check_interval_seconds", d.check_interval_seconds),
            ("pending_recheck_seconds", d.pending_recheck_seconds),
            ("pending_expiry_seconds", d.pending_expiry_seconds),
            ("reverify_seconds", d.reverify_seconds),
            ("lookup_timeout_ms", d.lookup_timeout_ms),
        ],
        c,
    );
}

/// `IP` or `IP:PORT` (port 53 by default).
pub fn parse_nameserver(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok().or_else(|| {
        s.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// `[dev_idp]` signs anything for anyone: it only runs on loopback.
pub(super) fn dev_idp(cfg: &Config, c: &mut Collector<'_>) {
    let Some(d) = &cfg.dev_idp else { return };
    if !cfg.public_urls().on_loopback() {
        c.push(
            "dev_idp",
            "the development IdP signs a login for anyone; it needs `server.public_url` on loopback (127.0.0.1, ::1 or localhost)",
        );
    }
    for (i, l) in cfg.listeners.iter().enumerate() {
        if let Ok(a) = l.address.parse::<SocketAddr>()
            && !a.ip().is_loopback()
        {
            c.push(
                "dev_idp",
                format!("the development IdP signs a login for anyone; `listeners[{i}].address` ({}) is not loopback", l.address),
            );
        }
    }
    match cfg.tenants.iter().find(|t| t.id == d.tenant) {
        None => c.push("dev_idp.tenant", format!("no tenant `{}`", d.tenant)),
        Some(t) => {
            let serves = t
                .connections
                .iter()
                .any(|conn| conn.saml.as_ref().and_then(|s| s.idp.as_deref()) == Some("dev"));
            if !serves {
                c.push(
                    "dev_idp.tenant",
                    format!(
                        "tenant `{}` has no saml connection with `idp = \"dev\"`",
                        d.tenant
                    ),
                );
            }
        }
    }
    for (i, t) in cfg.tenants.iter().enumerate() {
        if t.id != d.tenant
            && t.connections
                .iter()
                .any(|conn| conn.saml.as_ref().and_then(|s| s.idp.as_deref()) == Some("dev"))
        {
            c.push(
                format!("tenants[{i}]"),
                "only the `[dev_idp]` tenant may use `idp = \"dev\"`",
            );
        }
    }
    if d.users.is_empty() {
        c.push("dev_idp.users", "list at least one user");
    }
    for (i, u) in d.users.iter().enumerate() {
        if !u.email.contains('@') {
            c.push(format!("dev_idp.users[{i}].email"), "not an email address");
        }
    }
}

/// What the admin API must not accept even though the file may: paths on
/// the server's disk (they are the operator's) and the development IdP.
/// (Where IdP URLs may point is `egress`, for every source.)
pub(super) fn store_source(cfg: &Config, i: usize, c: &mut Collector<'_>) {
    let Some(t) = cfg.tenants.get(i) else { return };
    const SERVER_FILES: &str = "not accepted through the API: server files are the operator's";
    for (j, conn) in t.connections.iter().enumerate() {
        let key = format!("tenants[{i}].connections[{j}]");
        if let Some(s) = &conn.saml {
            for (k, v) in [
                ("idp_metadata_file", &s.idp_metadata_file),
                ("sp_key_file", &s.sp_key_file),
                ("sp_cert_file", &s.sp_cert_file),
            ] {
                if v.is_some() {
                    c.push(format!("{key}.saml.{k}"), SERVER_FILES);
                }
            }
            if s.idp.is_some() {
                c.push(
                    format!("{key}.saml.idp"),
                    "not accepted through the API: the development IdP is configured in the file",
                );
            }
        }
    }
}
