//! `[[tenants]]`, `[dns]` and `[dev_idp]`: who owns which domain, how
//! ownership is proven, and the development IdP that skips the proof.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use crate::config::load::Collector;
use crate::config::schema::{Config, GroupsSource, ScimGroupName};
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
/// the server's disk (they are the operator's), the development IdP, and
/// IdP URLs the server would fetch from inside its own network (a
/// customer's admin must not make Portcullis probe private addresses).
pub(super) fn store_source(cfg: &Config, i: usize, c: &mut Collector<'_>) {
    let Some(t) = cfg.tenants.get(i) else { return };
    const SERVER_FILES: &str = "not accepted through the API: server files are the operator's";
    let loopback_ok = cfg.admin.allow_loopback_idp_urls;
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
            // A URL the file would refuse already has the file's message.
            if let Some(u) = &s.idp_metadata_url
                && super::is_trustworthy_url(u)
                && !is_fetchable_idp_url(u, loopback_ok)
            {
                c.push(format!("{key}.saml.idp_metadata_url"), FETCHABLE);
            }
        }
        if let Some(o) = &conn.oidc
            && super::is_trustworthy_url(&o.issuer)
            && !is_fetchable_idp_url(&o.issuer, loopback_ok)
        {
            c.push(format!("{key}.oidc.issuer"), FETCHABLE);
        }
    }
}

const FETCHABLE: &str = "must be an https URL of a public host (not an IP address in a private, loopback or link-local range)";

/// An https URL whose host is a name or a public IP address; with
/// `loopback_ok` (tests), also what the file accepts (http to loopback).
fn is_fetchable_idp_url(u: &str, loopback_ok: bool) -> bool {
    let Ok(uri) = u.parse::<http::Uri>() else {
        return false;
    };
    if loopback_ok
        && super::is_trustworthy_url(u)
        && uri.host().is_some_and(crate::names::is_loopback_host)
    {
        return true;
    }
    let (Some("https"), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return false;
    };
    if u.contains('#') || host.is_empty() || crate::names::is_loopback_host(host) {
        return false;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => {
            !(ip.is_private()
                || ip.is_loopback()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_documentation()
                || ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64
                || ip.octets()[0] == 0)
        }
        Ok(std::net::IpAddr::V6(ip)) => {
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || ip.to_ipv4_mapped().is_some())
        }
        Err(_) => !bare.ends_with(".localhost") && bare.contains('.'),
    }
}

#[cfg(test)]
mod fetchable_tests {
    use super::is_fetchable_idp_url as ok;

    #[test]
    fn only_public_https_hosts_unless_loopback_is_allowed() {
        for good in [
            "https://login.example.com/tenant/v2.0",
            "https://8.8.8.8/md",
            "https://[2001:4860::1]/md",
        ] {
            assert!(ok(good, false), "{good}");
        }
        for bad in [
            "http://idp.example.com/md",
            "https://127.0.0.1/md",
            "https://localhost/md",
            "https://10.1.2.3/md",
            "https://192.168.0.1/md",
            "https://172.16.0.1/md",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/md",
            "https://0.0.0.0/md",
            "https://[::1]/md",
            "https://[fd00::1]/md",
            "https://[fe80::1]/md",
            "https://[::ffff:10.0.0.1]/md",
            "https://intranet/md",
            "ftp://example.com/md",
        ] {
            assert!(!ok(bad, false), "{bad}");
        }
        assert!(ok("http://127.0.0.1:8080/md", true));
        assert!(!ok("http://10.0.0.1/md", true));
    }
}
