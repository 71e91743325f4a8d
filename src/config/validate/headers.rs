//! `[[headers.extra]]`, `[headers] assertion_claims` and the connections'
//! `header_claims`: headers from IdP claims. An extra header may not pose
//! as anything the app or HTTP already trusts (an identity header, the
//! assertion, forwarding, framing or credential headers), and a claim
//! copied into the assertion may not overwrite one Portcullis sets.

use std::collections::HashSet;

use crate::config::load::Collector;
use crate::config::schema::Config;
use crate::names::{is_reserved_header, normalize_header_name};

/// Claims the assertion carries of its own (or will: machine callers and
/// step-up); a copied IdP claim of the same name would override them.
const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "aud",
    "sub",
    "exp",
    "iat",
    "nbf",
    "jti",
    "email",
    "name",
    "groups",
    "roles",
    "tenant",
    "principal_type",
    "acr",
    "amr",
    "auth_time",
];

pub(super) fn extra(cfg: &Config, c: &mut Collector<'_>) {
    let h = &cfg.headers;
    let identity = [
        ("user", &h.user),
        ("email", &h.email),
        ("name", &h.name),
        ("groups", &h.groups),
        ("roles", &h.roles),
        ("tenant", &h.tenant),
        ("principal_type", &h.principal_type),
        ("assertion", &h.assertion),
    ];
    let mut seen = HashSet::new();
    for (i, e) in h.extra.iter().enumerate() {
        let key = format!("headers.extra[{i}]");
        let normal = normalize_header_name(&e.name);
        if http::HeaderName::from_bytes(e.name.as_bytes()).is_err() {
            c.push(
                format!("{key}.name"),
                format!("`{}` is not a valid header name", e.name),
            );
        } else if is_reserved_header(&e.name) {
            c.push(
                format!("{key}.name"),
                format!(
                    "`{}` is reserved (HTTP framing, credentials, forwarding or request rewriting)",
                    e.name
                ),
            );
        } else if let Some((field, _)) = identity
            .iter()
            .copied()
            .chain(h.auth_fact_headers())
            .find(|(_, n)| normalize_header_name(n) == normal)
        {
            c.push(
                format!("{key}.name"),
                format!("`{}` is already the `headers.{field}` header", e.name),
            );
        } else if !seen.insert(normal) {
            c.push(format!("{key}.name"), format!("`{}` is used twice", e.name));
        }
        if e.claim.trim().is_empty() {
            c.push(
                format!("{key}.claim"),
                "must name an OIDC claim or a SAML attribute",
            );
        }
        if let Some(j) = &e.join
            && !is_separator(j)
        {
            c.push(
                format!("{key}.join"),
                "must be 1 to 4 printable ASCII characters other than `%`",
            );
        }
    }
    let mut listed = HashSet::new();
    for (i, claim) in h.assertion_claims.iter().enumerate() {
        let key = format!("headers.assertion_claims[{i}]");
        if claim.trim().is_empty() {
            c.push(key, "must name an OIDC claim or a SAML attribute");
        } else if RESERVED_CLAIMS.contains(&claim.as_str()) {
            c.push(
                key,
                format!("`{claim}` is a claim Portcullis sets in the assertion itself"),
            );
        } else if !listed.insert(claim.as_str()) {
            c.push(key, format!("`{claim}` is listed twice"));
        }
    }
}

/// `header_claims` of tenant `i`'s connections: each names a configured
/// extra header and a claim.
pub(super) fn connection_claims(cfg: &Config, i: usize, c: &mut Collector<'_>) {
    let Some(t) = cfg.tenants.get(i) else { return };
    let extras: HashSet<String> = cfg
        .headers
        .extra
        .iter()
        .map(|e| normalize_header_name(&e.name))
        .collect();
    for (j, conn) in t.connections.iter().enumerate() {
        for (header, claim) in &conn.header_claims {
            let key = format!("tenants[{i}].connections[{j}].header_claims.{header}");
            if !extras.contains(&normalize_header_name(header)) {
                c.push(
                    key,
                    format!("`{header}` is not a `[[headers.extra]]` header"),
                );
            } else if claim.trim().is_empty() {
                c.push(key, "must name an OIDC claim or a SAML attribute");
            }
        }
    }
}

/// A join string: short, printable, and without `%`, which items are
/// percent-encoded with (an item's own join characters are encoded too,
/// so it can't pose as two).
fn is_separator(j: &str) -> bool {
    (1..=4).contains(&j.len()) && j.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'%')
}
