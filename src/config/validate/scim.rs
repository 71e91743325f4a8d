//! `[scim]`: the provisioning server's path and limits.

use crate::config::load::Collector;
use crate::config::schema::Config;

/// `[scim]`: a path of its own, sane limits.
pub(super) fn scim(cfg: &Config, c: &mut Collector<'_>) {
    let s = &cfg.scim;
    let p = s.base_path();
    if !p.starts_with('/') || p.len() < 2 || p.contains(['?', '#', '{', '}', '*', ' ']) {
        c.push("scim.path", "must be an absolute path such as `/scim/v2`");
    } else if format!("{p}/").starts_with(&cfg.server.internal_prefix)
        || cfg.server.internal_prefix.starts_with(&format!("{p}/"))
    {
        c.push("scim.path", "must not overlap server.internal_prefix");
    }
    if s.max_payload_bytes < 1024 {
        c.push("scim.max_payload_bytes", "must be at least 1024");
    }
    if s.max_operations == 0 {
        c.push("scim.max_operations", "must be greater than 0");
    }
    if s.max_results == 0 {
        c.push("scim.max_results", "must be greater than 0");
    }
    extensions(cfg, c);
}

/// Schema URNs Portcullis defines itself; an extension may neither take
/// one nor nest under one.
const BUILT_IN_URNS: [&str; 3] = [
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:core:2.0:Group",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
];

/// Most attributes one extension may declare.
const MAX_EXTENSION_ATTRIBUTES: usize = 100;

/// `[[scim.extensions]]`: URNs a SCIM path can name unambiguously,
/// attribute names RFC 7643 §2.1 allows, each once.
fn extensions(cfg: &Config, c: &mut Collector<'_>) {
    let mut urns: Vec<(String, String)> = BUILT_IN_URNS
        .iter()
        .map(|u| (u.to_ascii_lowercase(), String::new()))
        .collect();
    for (i, ext) in cfg.scim.extensions.iter().enumerate() {
        let key = format!("scim.extensions[{i}]");
        let urn = ext.urn.to_ascii_lowercase();
        if !is_urn(&ext.urn) {
            c.push(
                format!("{key}.urn"),
                "must be a URN such as `urn:example:params:scim:schemas:extension:acme:2.0:User` \
                 (letters, digits, `:`, `.`, `-`, `_`)",
            );
        } else if [
            "urn:ietf:params:scim:schemas:core:",
            "urn:ietf:params:scim:api:",
        ]
        .iter()
        .any(|p| urn.starts_with(p))
        {
            c.push(
                format!("{key}.urn"),
                "SCIM core schema and message URNs are reserved",
            );
        } else {
            // A path `URN:attr` must name one thing: neither URN may be
            // another one followed by `:`.
            for (other, at) in &urns {
                let clash = *other == urn
                    || urn.starts_with(&format!("{other}:"))
                    || other.starts_with(&format!("{urn}:"));
                if clash {
                    let whose = if at.is_empty() {
                        "a built-in schema".to_owned()
                    } else {
                        at.clone()
                    };
                    c.push(
                        format!("{key}.urn"),
                        format!("clashes with {whose} (the same URN, or one nested in the other)"),
                    );
                    break;
                }
            }
            urns.push((urn, key.clone()));
        }
        if ext.attributes.is_empty() {
            c.push(
                format!("{key}.attributes"),
                "declare at least one attribute",
            );
        }
        if ext.attributes.len() > MAX_EXTENSION_ATTRIBUTES {
            c.push(
                format!("{key}.attributes"),
                format!("at most {MAX_EXTENSION_ATTRIBUTES} attributes"),
            );
        }
        let mut names = std::collections::HashSet::new();
        for (j, a) in ext.attributes.iter().enumerate() {
            let akey = format!("{key}.attributes[{j}].name");
            if !is_attribute_name(&a.name) {
                c.push(
                    akey,
                    "must start with a letter and hold only letters, digits, `-` and `_` \
                     (RFC 7643 §2.1)",
                );
            } else if a.name.eq_ignore_ascii_case("schemas") {
                c.push(akey, "`schemas` is reserved");
            } else if !names.insert(a.name.to_ascii_lowercase()) {
                c.push(akey, "duplicate attribute (names are case-insensitive)");
            }
        }
    }
}

/// What a SCIM path accepts as a schema URN.
fn is_urn(s: &str) -> bool {
    s.len() > 4
        && s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        && s.split(':').count() >= 3
        && s.split(':').all(|part| !part.is_empty())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '-' | '_'))
}

/// RFC 7643 §2.1 `ATTRNAME`.
fn is_attribute_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
